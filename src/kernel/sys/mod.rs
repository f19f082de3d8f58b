//! The one place conntrace talks to the kernel: bpf(), perf_event_open(), ioctl, mmap, epoll,
//! mount, and the few sysfs/tracefs file accesses attach needs.
//!
//! Everything above this module takes a `&dyn Sys`, so the loader, attach logic and ring
//! reader run unchanged against `fake::FakeSys` in unit tests. What a fake could not usefully
//! answer is not on `Sys` but safe free functions: `process` (this process's ids,
//! capabilities and prctl flags), `host` (uname, the page size, the clocks), `signals`.
//!
//! With the rings' mapped memory (`ring::mapped`, `ring::bpf_mapped`), this is the only code
//! allowed `unsafe`.

// Tests only: the crate's unit tests, and the fuzz targets through the `test-util` feature.
// Kept out of the binary.
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod files;
pub mod host;
pub mod process;
mod real;
pub mod signals;
pub mod socket;

use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

use crate::kernel::abi;
use std::path::Path;
use std::ptr::NonNull;

pub use real::RealSys;

/// A failed system call: which one, and the errno it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    pub call: &'static str,
    pub errno: i32,
}

impl SysError {
    pub fn new(call: &'static str, errno: i32) -> Self {
        SysError { call, errno }
    }

    /// The errno of the calling thread, for the call that just failed.
    pub fn last(call: &'static str) -> Self {
        SysError::new(
            call,
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = io::Error::from_raw_os_error(self.errno);
        match crate::kernel::errno::name(self.errno) {
            Some(name) => write!(
                f,
                "{} failed: {} ({})",
                self.call,
                strip_os_suffix(&text),
                name
            ),
            None => write!(f, "{} failed: {}", self.call, strip_os_suffix(&text)),
        }
    }
}

/// `io::Error`'s Display appends " (os error N)"; the errno name says it better.
fn strip_os_suffix(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl std::error::Error for SysError {}

pub type SysResult<T> = Result<T, SysError>;

/// What `BPF_MAP_CREATE` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapCreate<'a> {
    pub name: &'a str,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// BTF for the key and value (socket-local storage maps require it); None for the rest.
    pub btf: Option<MapBtf>,
}

/// The BTF a map is created with: a loaded BTF object (`Sys::btf_load`) and the type ids of
/// its key and value in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapBtf {
    pub fd: RawFd,
    pub key_type_id: u32,
    pub value_type_id: u32,
}

/// A resource limit as getrlimit(2) gives it: soft and hard, `RLIM_INFINITY` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub soft: u64,
    pub hard: u64,
}

/// No limit (`RLIM_INFINITY`).
pub const RLIM_INFINITY: u64 = u64::MAX;

/// What `BPF_PROG_LOAD` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgLoad<'a> {
    pub name: &'a str,
    pub prog_type: u32,
    /// Raw instructions, 8 bytes each.
    pub insns: &'a [u64],
    pub license: &'a str,
    pub kern_version: u32,
    /// `enum bpf_attach_type` the program is for; 0 where the type needs none.
    pub expected_attach_type: u32,
    /// For a BTF-typed program (`tp_btf`): the kernel's BTF id of what it attaches to
    /// (the typedef `btf_trace_NAME`); 0 for the others.
    pub attach_btf_id: u32,
}

/// `struct perf_event_attr` as of PERF_ATTR_SIZE_VER7 (128 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PerfEventAttr {
    pub type_: u32,
    pub size: u32,
    pub config: u64,
    pub sample_period_or_freq: u64,
    pub sample_type: u64,
    pub read_format: u64,
    /// The bitfield word: disabled, inherit, ..., watermark (bit 14), ...
    pub flags: u64,
    pub wakeup_events_or_watermark: u32,
    pub bp_type: u32,
    /// kprobe: pointer to the symbol name; tracepoint: unused.
    pub config1: u64,
    /// kprobe: offset from the symbol.
    pub config2: u64,
    pub branch_sample_type: u64,
    pub sample_regs_user: u64,
    pub sample_stack_user: u32,
    pub clockid: i32,
    pub sample_regs_intr: u64,
    pub aux_watermark: u32,
    pub sample_max_stack: u16,
    pub reserved_2: u16,
    pub aux_sample_size: u32,
    pub reserved_3: u32,
    pub sig_data: u64,
}

/// A file opened for appending ahead of time: tracefs `kprobe_events`, whose entries are
/// removed at exit, after conntrace has dropped the privileges needed to open it.
#[derive(Debug)]
pub struct AppendFile {
    pub path: std::path::PathBuf,
    /// The open file; None where a `Sys` keeps only the path (fakes).
    pub file: Option<std::fs::File>,
}

/// A file opened for reading ahead of time and read again later: tracefs `kprobe_profile`,
/// read at exit, after conntrace has dropped the privileges needed to open it.
#[derive(Debug)]
pub struct HeldFile {
    pub path: std::path::PathBuf,
    /// The open file; None where a `Sys` keeps only the path (fakes).
    pub file: Option<std::fs::File>,
}

/// The perf event ioctls conntrace issues, typed: each carries its own argument, and the
/// request numbers are written once, in `abi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerfEventIoctl {
    Enable,
    Disable,
    /// Run the BPF program with this fd on the event.
    SetBpf(RawFd),
}

impl PerfEventIoctl {
    /// The request number and the integer argument, as ioctl(2) takes them.
    pub fn encode(self) -> (u64, u64) {
        match self {
            PerfEventIoctl::Enable => (abi::PERF_EVENT_IOC_ENABLE, 0),
            PerfEventIoctl::Disable => (abi::PERF_EVENT_IOC_DISABLE, 0),
            PerfEventIoctl::SetBpf(prog) => (abi::PERF_EVENT_IOC_SET_BPF, prog as u64),
        }
    }
}

pub const PERF_ATTR_SIZE: u32 = std::mem::size_of::<PerfEventAttr>() as u32;

/// The kernel interface conntrace uses. Implemented by [`RealSys`] (the syscalls) and by
/// `fake::FakeSys` (scripted, for tests).
pub trait Sys {
    fn map_create(&self, req: &MapCreate<'_>) -> SysResult<OwnedFd>;
    fn map_update(
        &self,
        map: BorrowedFd<'_>,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> SysResult<()>;
    /// Copies the value at `key` into `value` (for a per-CPU map: one 8-byte-aligned slot per
    /// possible CPU).
    fn map_lookup(&self, map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> SysResult<()>;
    /// The key after `key` (the first with None) into `next`; false when there is none.
    /// Fakes that script no map contents see an empty map.
    fn map_next_key(
        &self,
        _map: BorrowedFd<'_>,
        _key: Option<&[u8]>,
        _next: &mut [u8],
    ) -> SysResult<bool> {
        Ok(false)
    }
    /// BPF_OBJ_GET_INFO_BY_FD: the kernel's info about the object behind `fd` (for a program,
    /// a `struct bpf_prog_info`) into `info`; returns how many bytes of it the kernel knows.
    fn obj_info(&self, fd: BorrowedFd<'_>, info: &mut [u8]) -> SysResult<usize>;
    /// BPF_BTF_LOAD of a raw BTF blob (header, types, strings); returns the BTF object's fd.
    fn btf_load(&self, btf: &[u8]) -> SysResult<OwnedFd>;
    /// This process's RLIMIT_MEMLOCK, which kernels before 5.11 charge BPF maps and programs to.
    fn memlock_limit(&self) -> SysResult<Rlimit>;
    /// Sets this process's RLIMIT_MEMLOCK (raising the hard limit needs CAP_SYS_RESOURCE).
    fn set_memlock_limit(&self, limit: Rlimit) -> SysResult<()>;
    /// On failure the verifier's log, as far as it fits, is in `log`.
    fn prog_load(&self, req: &ProgLoad<'_>, log: &mut [u8]) -> SysResult<OwnedFd>;
    fn perf_event_open(
        &self,
        attr: &PerfEventAttr,
        pid: i32,
        cpu: i32,
        group_fd: i32,
        flags: u64,
    ) -> SysResult<OwnedFd>;
    fn ioctl(&self, fd: BorrowedFd<'_>, request: PerfEventIoctl) -> SysResult<i32>;
    /// read(2) of a counting perf event (no read_format): how often it happened so far.
    fn read_count(&self, fd: BorrowedFd<'_>) -> SysResult<u64>;
    /// BPF_RAW_TRACEPOINT_OPEN: runs `prog` at the tracepoint `name` ("inet_sock_set_state")
    /// until the returned fd closes. A `tp_btf` program is opened with no name: it was loaded
    /// for its tracepoint.
    fn raw_tracepoint_open(&self, name: Option<&str>, prog: BorrowedFd<'_>) -> SysResult<OwnedFd>;
    /// A shared read-write mapping of `len` bytes of `fd` from offset 0.
    fn mmap_shared(&self, fd: BorrowedFd<'_>, len: usize) -> SysResult<NonNull<u8>>;
    /// A shared read-only mapping of `len` bytes of `fd` from `offset` (a page multiple): a
    /// BPF ring buffer's producer page and data, which the kernel refuses to map writable.
    fn mmap_read_only(
        &self,
        fd: BorrowedFd<'_>,
        len: usize,
        offset: usize,
    ) -> SysResult<NonNull<u8>>;
    /// # Safety
    /// `ptr`/`len` must come from one `mmap_shared` or `mmap_read_only` call and nothing may
    /// use the mapping after.
    unsafe fn munmap(&self, ptr: NonNull<u8>, len: usize);
    /// membarrier(MEMBARRIER_CMD_GLOBAL): returns once every CPU has passed an RCU grace
    /// period, so no BPF program that was running (they run with preemption off) still is.
    fn membarrier_global(&self) -> SysResult<()>;
    fn epoll_create(&self) -> SysResult<OwnedFd>;
    fn epoll_add(&self, epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64) -> SysResult<()>;
    /// Waits up to `timeout_ms` (-1: forever); fills `tokens` with the ready fds' tokens.
    fn epoll_wait(
        &self,
        epoll: BorrowedFd<'_>,
        tokens: &mut [u64],
        timeout_ms: i32,
    ) -> SysResult<usize>;
    fn mount(&self, source: &str, target: &Path, fstype: &str) -> SysResult<()>;
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Writes `data` to an existing file (tracefs control files), appending when asked.
    fn write_file(&self, path: &Path, data: &[u8], append: bool) -> io::Result<()>;
    /// Opens an existing file for appending and keeps it open. The default keeps the path
    /// only, so fakes see every later [`Sys::append`] as a `write_file` call.
    fn open_append(&self, path: &Path) -> io::Result<AppendFile> {
        Ok(AppendFile {
            path: path.to_path_buf(),
            file: None,
        })
    }
    /// Opens an existing file for reading and keeps it open. The default keeps the path only,
    /// so fakes see every later [`Sys::read_held`] as a `read_file` call.
    fn open_held(&self, path: &Path) -> io::Result<HeldFile> {
        self.read_file(path)?;
        Ok(HeldFile {
            path: path.to_path_buf(),
            file: None,
        })
    }
    /// Reads a file from `open_held` from its start, as it is now.
    fn read_held(&self, file: &HeldFile) -> io::Result<Vec<u8>> {
        self.read_file(&file.path)
    }
    /// Writes `data` to a file from `open_append`, in one write (a tracefs command).
    fn append(&self, file: &AppendFile, data: &[u8]) -> io::Result<()> {
        self.write_file(&file.path, data, true)
    }
}

#[cfg(test)]
mod tests {
    use super::PerfEventIoctl;

    #[test]
    fn perf_ioctls_encode_as_the_uapi_header_says() {
        assert_eq!(PerfEventIoctl::Enable.encode(), (0x2400, 0));
        assert_eq!(PerfEventIoctl::Disable.encode(), (0x2401, 0));
        assert_eq!(PerfEventIoctl::SetBpf(7).encode(), (0x4004_2408, 7));
    }

    #[test]
    fn rlim_infinity_is_the_c_librarys() {
        assert_eq!(super::RLIM_INFINITY, libc::RLIM_INFINITY);
    }

    #[test]
    fn the_real_memlock_limit_reads_and_sets_back() {
        use super::{RealSys, Sys};
        let now = RealSys.memlock_limit().unwrap();
        assert!(now.soft <= now.hard, "{now:?}");
        // Setting the limit it already has needs no privilege.
        RealSys.set_memlock_limit(now).unwrap();
        assert_eq!(RealSys.memlock_limit().unwrap(), now);
    }
}
