//! The integration suites that load BPF programs need root (or CAP_BPF+CAP_PERFMON). As any
//! other user they skip with one line instead of failing, so `cargo test` there still runs
//! the unit tests and every test that needs no privilege. As root nothing is skipped.

use std::io::Write;

/// True as root. Otherwise writes `<what>: skipped: needs root (BPF)` and returns false, and
/// the caller returns (or exits 0) at once.
pub fn root_or_skip(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    // Through the stderr handle, not eprintln!: libtest captures the macros, not the handle,
    // so the skip shows in `cargo test`'s output.
    let _ = writeln!(std::io::stderr(), "{what}: skipped: needs root (BPF)");
    false
}
