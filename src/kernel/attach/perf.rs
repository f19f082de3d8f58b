//! One perf event with a BPF program on it: perf_event_open, PERF_EVENT_IOC_SET_BPF, enable.

use super::AttachError;
use crate::kernel::abi::PERF_FLAG_FD_CLOEXEC;
use crate::kernel::sys::{PerfEventAttr, PerfEventIoctl, Sys, PERF_ATTR_SIZE};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// The attributes every event of ours shares: one sample per hit (the program runs each time).
pub fn attr(type_: u32, config: u64) -> PerfEventAttr {
    PerfEventAttr {
        type_,
        size: PERF_ATTR_SIZE,
        config,
        sample_period_or_freq: 1,
        ..Default::default()
    }
}

/// Opens the event system-wide (pid -1; for these event types cpu 0 covers every CPU) and
/// runs `prog` on it. `what` names the hook for errors.
pub fn open_with_program(
    sys: &dyn Sys,
    attr: &PerfEventAttr,
    prog: BorrowedFd<'_>,
    what: &str,
) -> Result<OwnedFd, AttachError> {
    let fd = sys
        .perf_event_open(attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC)
        .map_err(|error| AttachError::sys(format!("opening a perf event for {what}"), error))?;
    sys.ioctl(fd.as_fd(), PerfEventIoctl::SetBpf(prog.as_raw_fd()))
        .map_err(|error| AttachError::sys(format!("attaching the BPF program to {what}"), error))?;
    sys.ioctl(fd.as_fd(), PerfEventIoctl::Enable)
        .map_err(|error| AttachError::sys(format!("enabling {what}"), error))?;
    Ok(fd)
}
