//! What can go wrong setting up or waiting on the rings, worded for the person running us.

use crate::kernel::sys::SysError;
use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum RingError {
    CpuListUnreadable {
        path: PathBuf,
        err: io::Error,
    },
    CpuListInvalid {
        path: PathBuf,
        text: String,
        reason: String,
    },
    NoCpus,
    BadRingSize {
        data_pages: usize,
    },
    PerfEventOpen {
        cpu: u32,
        err: SysError,
    },
    Mmap {
        cpu: u32,
        bytes: usize,
        err: SysError,
    },
    MapUpdate {
        cpu: u32,
        err: SysError,
    },
    Enable {
        cpu: u32,
        err: SysError,
    },
    EpollCreate {
        err: SysError,
    },
    EpollAdd {
        cpu: u32,
        err: SysError,
    },
    Wait {
        err: SysError,
    },
    /// The BPF ring buffer's data area is not a power-of-two multiple of the page size.
    BadBpfRingSize {
        bytes: usize,
    },
    BpfRingMmap {
        bytes: usize,
        err: SysError,
    },
    BpfRingEpollAdd {
        err: SysError,
    },
}

impl RingError {
    /// The failed system call behind this error, if there is one.
    pub fn sys_error(&self) -> Option<&SysError> {
        match self {
            RingError::PerfEventOpen { err, .. }
            | RingError::Mmap { err, .. }
            | RingError::MapUpdate { err, .. }
            | RingError::Enable { err, .. }
            | RingError::EpollCreate { err }
            | RingError::EpollAdd { err, .. }
            | RingError::Wait { err }
            | RingError::BpfRingMmap { err, .. }
            | RingError::BpfRingEpollAdd { err } => Some(err),
            _ => None,
        }
    }
}

fn perf_open_advice(errno: i32) -> &'static str {
    match errno {
        libc::EACCES | libc::EPERM => {
            "reading BPF output on every CPU needs root or CAP_PERFMON (CAP_SYS_ADMIN before \
             Linux 5.8); check kernel.perf_event_paranoid"
        }
        libc::ENOENT | libc::EOPNOTSUPP | libc::EINVAL => {
            "this kernel lacks the BPF output perf event (Linux 4.4+ with CONFIG_PERF_EVENTS)"
        }
        libc::EMFILE | libc::ENFILE => "too many open files: raise the limit (ulimit -n)",
        libc::ENODEV => "the CPU went offline: run again",
        _ => "check that perf events are enabled in this kernel",
    }
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::CpuListUnreadable { path, err } => write!(
                f,
                "cannot read the online CPU list {}: {err}; is sysfs mounted on /sys?",
                path.display()
            ),
            RingError::CpuListInvalid { path, text, reason } => write!(
                f,
                "cannot understand the online CPU list {} ({text:?}): {reason}",
                path.display()
            ),
            RingError::NoCpus => write!(f, "no CPUs to read events from: the online CPU list was empty"),
            RingError::BadRingSize { data_pages } => write!(
                f,
                "a perf ring of {data_pages} data pages is not possible: use a power of two such as 64"
            ),
            RingError::PerfEventOpen { cpu, err } => write!(
                f,
                "cannot open the BPF output perf event on CPU {cpu}: {err}; {}",
                perf_open_advice(err.errno)
            ),
            RingError::Mmap { cpu, bytes, err } => write!(
                f,
                "cannot map the {bytes}-byte perf ring of CPU {cpu}: {err}; use a smaller ring, run \
                 as root, or raise kernel.perf_event_mlock_kb"
            ),
            RingError::MapUpdate { cpu, err } => write!(
                f,
                "cannot put CPU {cpu}'s perf ring into the events map: {err}; the map needs an entry \
                 for every possible CPU (max_entries above the highest CPU number)"
            ),
            RingError::Enable { cpu, err } => write!(f, "cannot enable the perf event on CPU {cpu}: {err}"),
            RingError::EpollCreate { err } => write!(f, "cannot create the epoll set for the rings: {err}"),
            RingError::EpollAdd { cpu, err } => {
                write!(f, "cannot add CPU {cpu}'s perf ring to the epoll set: {err}")
            }
            RingError::Wait { err } => write!(f, "waiting for ring data failed: {err}"),
            RingError::BadBpfRingSize { bytes } => write!(
                f,
                "a BPF ring buffer of {bytes} bytes is not possible: it must be a power-of-two \
                 number of pages"
            ),
            RingError::BpfRingMmap { bytes, err } => write!(
                f,
                "cannot map {bytes} bytes of the BPF ring buffer: {err}; use a smaller ring \
                 (--pages) or run as root"
            ),
            RingError::BpfRingEpollAdd { err } => {
                write!(f, "cannot add the BPF ring buffer to the epoll set: {err}")
            }
        }
    }
}

impl std::error::Error for RingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RingError::CpuListUnreadable { err, .. } => Some(err),
            _ => self
                .sys_error()
                .map(|e| e as &(dyn std::error::Error + 'static)),
        }
    }
}
