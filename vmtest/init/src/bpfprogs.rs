//! Counts the BPF programs loaded in the kernel, to prove conntrace unloads all of its own,
//! and the runs the kernel skipped. The VM has no bpftool, so this walks program ids with
//! bpf(BPF_PROG_GET_NEXT_ID).

use std::io;
use std::time::{Duration, Instant};

/// `enum bpf_cmd` values (include/uapi/linux/bpf.h).
const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
/// `struct bpf_prog_info`: its size up to and with `recursion_misses` (5.12+), at 208.
const PROG_INFO_LEN: usize = 216;
const RECURSION_MISSES_AT: usize = 208;
/// A kernel has far fewer programs than this; the bound only stops a runaway loop.
const MAX_PROGRAMS: u32 = 1 << 20;

/// The part of `union bpf_attr` that BPF_PROG_GET_NEXT_ID reads and writes.
#[repr(C)]
#[derive(Default)]
struct NextId {
    start_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The ids of the BPF programs loaded right now.
fn ids() -> Result<Vec<u32>, String> {
    let mut attr = NextId::default();
    let mut ids = Vec::new();
    while ids.len() < MAX_PROGRAMS as usize {
        // SAFETY: attr is a valid, writable NextId that outlives the call, and the size
        // passed is its size, so the kernel reads and writes only within it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_GET_NEXT_ID,
                &mut attr as *mut NextId,
                std::mem::size_of::<NextId>(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(ids),
                _ => Err(format!("bpf(BPF_PROG_GET_NEXT_ID) failed: {e}")),
            };
        }
        ids.push(attr.next_id);
        attr.start_id = attr.next_id;
    }
    Err(format!(
        "more than {MAX_PROGRAMS} BPF programs: the id walk does not end"
    ))
}

/// The part of `union bpf_attr` that BPF_OBJ_GET_INFO_BY_FD reads.
#[repr(C)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// Runs of all loaded programs the kernel skipped because another BPF program was running
/// on the CPU (`bpf_prog_info.recursion_misses`). Tracepoint and kprobe programs are only
/// counted from Linux 6.7; before, or before 5.12 (no such field), this reads 0.
pub fn recursion_misses() -> Result<u64, String> {
    let mut total = 0;
    for id in ids()? {
        // The attr's first word is prog_id; the rest of it is zero.
        let mut by_id = [id, 0, 0, 0];
        // SAFETY: the attr is 16 valid bytes; the kernel only reads them.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_GET_FD_BY_ID,
                by_id.as_mut_ptr(),
                std::mem::size_of_val(&by_id),
            )
        };
        if fd < 0 {
            // Unloaded since the walk: nothing to count.
            continue;
        }
        let mut info = [0u8; PROG_INFO_LEN];
        let mut attr = InfoByFd {
            bpf_fd: fd as u32,
            info_len: PROG_INFO_LEN as u32,
            info: info.as_mut_ptr() as u64,
        };
        // SAFETY: attr is valid for its size; the kernel writes at most info_len bytes to
        // `info`, which is that long and outlives the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_OBJ_GET_INFO_BY_FD,
                &mut attr as *mut InfoByFd,
                std::mem::size_of::<InfoByFd>(),
            )
        };
        let err = io::Error::last_os_error();
        // SAFETY: fd is the descriptor opened above, not used afterwards.
        unsafe { libc::close(fd as libc::c_int) };
        if rc < 0 {
            return Err(format!("bpf(BPF_OBJ_GET_INFO_BY_FD) failed: {err}"));
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&info[RECURSION_MISSES_AT..RECURSION_MISSES_AT + 8]);
        total += u64::from_ne_bytes(word);
    }
    Ok(total)
}

/// How many BPF programs are loaded right now.
pub fn count() -> Result<u32, String> {
    ids().map(|ids| ids.len() as u32)
}

/// The count once it is back to `want`, or the last count after `limit`: the kernel frees
/// a program after its last reference goes, which perf events may drop a little late.
pub fn settle(want: u32, limit: Duration) -> Result<u32, String> {
    let deadline = Instant::now() + limit;
    loop {
        let now = count()?;
        if now == want || Instant::now() >= deadline {
            return Ok(now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
