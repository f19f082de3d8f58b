//! Finding tracefs (tracepoint ids, kprobe_events), and mounting it where nobody has (an
//! initramfs or a minimal container).

use super::AttachError;
use crate::kernel::sys::Sys;
use std::io;
use std::path::{Path, PathBuf};

pub const TRACING: &str = "/sys/kernel/tracing";
pub const DEBUG_TRACING: &str = "/sys/kernel/debug/tracing";

/// A file every mounted tracefs has.
fn is_mounted(sys: &dyn Sys, root: &Path) -> io::Result<()> {
    sys.read_file(&root.join("events/header_page")).map(|_| ())
}

/// The tracefs root: /sys/kernel/tracing, else /sys/kernel/debug/tracing, else tracefs freshly
/// mounted at /sys/kernel/tracing.
pub fn root(sys: &dyn Sys) -> Result<PathBuf, AttachError> {
    for candidate in [TRACING, DEBUG_TRACING] {
        match is_mounted(sys, Path::new(candidate)) {
            Ok(()) => return Ok(PathBuf::from(candidate)),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(AttachError::Tracefs(format!(
                    "{candidate} is not readable ({e}): conntrace needs root"
                )));
            }
            Err(_) => {}
        }
    }
    let target = Path::new(TRACING);
    sys.mount("tracefs", target, "tracefs").map_err(|e| {
        AttachError::Tracefs(format!(
            "tracefs is not mounted and mounting it at {TRACING} failed ({e}): \
             mount it yourself (`mount -t tracefs tracefs {TRACING}`, sysfs first if /sys is empty)"
        ))
    })?;
    is_mounted(sys, target).map_err(|e| {
        AttachError::Tracefs(format!(
            "mounted tracefs at {TRACING}, but {TRACING}/events/header_page is unreadable ({e})"
        ))
    })?;
    Ok(target.to_path_buf())
}
