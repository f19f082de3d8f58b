//! Counts the BPF programs loaded in the kernel, to prove conntrace unloads all of its own.
//! The VM has no bpftool, so this walks program ids with bpf(BPF_PROG_GET_NEXT_ID).

use std::io;
use std::time::{Duration, Instant};

/// `enum bpf_cmd` value of BPF_PROG_GET_NEXT_ID (include/uapi/linux/bpf.h).
const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
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

/// How many BPF programs are loaded right now.
pub fn count() -> Result<u32, String> {
    let mut attr = NextId::default();
    let mut n = 0;
    while n < MAX_PROGRAMS {
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
                Some(libc::ENOENT) => Ok(n),
                _ => Err(format!("bpf(BPF_PROG_GET_NEXT_ID) failed: {e}")),
            };
        }
        n += 1;
        attr.start_id = attr.next_id;
    }
    Err(format!(
        "more than {MAX_PROGRAMS} BPF programs: the id walk does not end"
    ))
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
