//! Setting faults up for a run and undoing them: tracefs unmounted, a CPU offline.

use crate::kprobes::TRACEFS;
use crate::report::{one_line, say};
use crate::system;
use std::ffi::CString;
use std::io;
use std::path::Path;

/// `CTVM SETUP <run> ok <what>` or `CTVM SETUP <run> failed <why>`.
pub fn report_setup(run: &str, result: Result<String, String>) {
    say("SETUP", &format!("{run} {}", outcome(result)));
}

/// `CTVM RESTORE <run> ok <what>` or `CTVM RESTORE <run> failed <why>`.
pub fn report_restore(run: &str, result: Result<String, String>) {
    say("RESTORE", &format!("{run} {}", outcome(result)));
}

fn outcome(result: Result<String, String>) -> String {
    match result {
        Ok(what) => format!("ok {}", one_line(&what)),
        Err(why) => format!("failed {}", one_line(&why)),
    }
}

fn tracefs_mounted() -> bool {
    Path::new(TRACEFS).join("events/header_page").exists()
}

/// Unmounts the init's tracefs and makes sure no tracefs is left where conntrace looks.
pub fn unmount_tracefs() -> Result<String, String> {
    let target = CString::new(TRACEFS).map_err(|_| "NUL in the tracefs path".to_string())?;
    // SAFETY: target is a valid NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(target.as_ptr(), 0) } != 0 {
        return Err(format!("umount {TRACEFS}: {}", io::Error::last_os_error()));
    }
    if tracefs_mounted() {
        return Err(format!("{TRACEFS} is still mounted after umount"));
    }
    if Path::new("/sys/kernel/debug/tracing/events/header_page").exists() {
        return Err("tracefs is reachable through debugfs".into());
    }
    Ok(format!("{TRACEFS} unmounted"))
}

/// Mounts tracefs again unless conntrace left it mounted; says which.
pub fn ensure_tracefs() -> Result<String, String> {
    if tracefs_mounted() {
        return Ok("tracefs was mounted (by conntrace)".into());
    }
    system::mount("tracefs", TRACEFS, "tracefs")
        .map(|()| "tracefs mounted again by the init".into())
        .map_err(|e| format!("cannot mount tracefs on {TRACEFS}: {e}"))
}

/// Writes 0 or 1 to cpuN/online; returns the online list afterwards.
pub fn set_cpu_online(cpu: u32, online: bool) -> Result<String, String> {
    let path = format!("/sys/devices/system/cpu/cpu{cpu}/online");
    std::fs::write(&path, if online { "1" } else { "0" })
        .map_err(|e| format!("writing {} to {path}: {e}", u8::from(online)))?;
    let list = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map_err(|e| format!("reading /sys/devices/system/cpu/online: {e}"))?;
    Ok(format!("online={}", list.trim()))
}
