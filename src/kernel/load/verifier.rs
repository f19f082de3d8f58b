//! BPF_PROG_LOAD with the verifier's log only when it is needed: a first attempt without a
//! log (the kernel skips formatting it), and on failure a retry with a log buffer that grows
//! while the kernel says it is too small (ENOSPC).

use crate::kernel::sys::{ProgLoad, Sys, SysError};
use std::os::fd::OwnedFd;

pub const FIRST_LOG_SIZE: usize = 64 * 1024;
pub const MAX_LOG_SIZE: usize = 16 * 1024 * 1024;
/// How many of the log's last lines an error carries: where the verifier gave up.
pub const TAIL_LINES: usize = 20;

pub enum Failure {
    /// The kernel refused and the log explains (or the log is empty for another reason).
    Verifier {
        errno: i32,
        log_tail: Vec<String>,
        log_truncated: bool,
    },
    /// EPERM/EACCES with nothing from the verifier: missing privileges.
    Permission(SysError),
}

pub fn load_with_log(sys: &dyn Sys, req: &ProgLoad<'_>) -> Result<OwnedFd, Failure> {
    if let Ok(fd) = sys.prog_load(req, &mut []) {
        return Ok(fd);
    }
    let mut size = FIRST_LOG_SIZE;
    loop {
        let mut log = vec![0u8; size];
        let err = match sys.prog_load(req, &mut log) {
            Ok(fd) => return Ok(fd),
            Err(e) => e,
        };
        if err.errno == libc::ENOSPC && size < MAX_LOG_SIZE {
            size *= 2;
            continue;
        }
        let log_tail = tail(&log, TAIL_LINES);
        let denied = err.errno == libc::EPERM || err.errno == libc::EACCES;
        if denied && log_tail.is_empty() {
            return Err(Failure::Permission(err));
        }
        let log_truncated = err.errno == libc::ENOSPC;
        return Err(Failure::Verifier {
            errno: err.errno,
            log_tail,
            log_truncated,
        });
    }
}

/// The last `n` non-blank lines of a NUL-terminated log buffer.
pub fn tail(log: &[u8], n: usize) -> Vec<String> {
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_non_blank_lines() {
        let log = b"0: (b7) r0 = 0\n\n1: (95) exit\n  \nR0 !read_ok\nprocessed 2 insns\n\0garbage";
        assert_eq!(tail(log, 2), vec!["R0 !read_ok", "processed 2 insns"]);
        assert_eq!(tail(log, 20).len(), 4);
        assert!(tail(b"\0", 20).is_empty());
        assert!(tail(b"", 20).is_empty());
        assert_eq!(tail(b"no nul at all", 20), vec!["no nul at all"]);
    }
}
