//! The kprobe PMU (Linux 4.17+): a kprobe is one perf_event_open whose config1 points at the
//! function name; nothing is written to tracefs and the kernel removes it with the fd.

use super::{perf, AttachError};
use crate::kernel::sys::Sys;
use std::ffi::CString;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

pub const TYPE_PATH: &str = "/sys/bus/event_source/devices/kprobe/type";
pub const RETPROBE_PATH: &str = "/sys/bus/event_source/devices/kprobe/format/retprobe";

/// (perf type, retprobe config bit) if the kernel has the PMU.
pub fn detect(sys: &dyn Sys) -> Option<(u32, u32)> {
    let perf_type = text(sys, TYPE_PATH)?.trim().parse().ok()?;
    let retprobe_bit = parse_config_bit(&text(sys, RETPROBE_PATH)?)?;
    Some((perf_type, retprobe_bit))
}

fn text(sys: &dyn Sys, path: &str) -> Option<String> {
    String::from_utf8(sys.read_file(Path::new(path)).ok()?).ok()
}

/// "config:0\n" -> 0.
pub fn parse_config_bit(format: &str) -> Option<u32> {
    let bit: u32 = format.trim().strip_prefix("config:")?.parse().ok()?;
    (bit < 64).then_some(bit)
}

pub fn open(
    sys: &dyn Sys,
    perf_type: u32,
    retprobe_bit: u32,
    function: &str,
    retprobe: bool,
    prog: BorrowedFd<'_>,
    what: &str,
) -> Result<OwnedFd, AttachError> {
    let name = CString::new(function)
        .map_err(|_| AttachError::BadSection(format!("function name {function:?} contains NUL")))?;
    let config = if retprobe { 1u64 << retprobe_bit } else { 0 };
    let mut attr = perf::attr(perf_type, config);
    // The kernel reads the name during perf_event_open only; `name` outlives the call.
    attr.config1 = name.as_ptr() as u64;
    attr.config2 = 0;
    perf::open_with_program(sys, &attr, prog, what)
}
