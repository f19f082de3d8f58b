//! SIGINT and SIGTERM end the run through the normal path (so every probe is detached by
//! Drop); SIGPIPE is ignored so a closed pipe shows up as EPIPE and ends the run quietly.

use crate::kernel::sys::signals;

/// Installs the handlers. Without SA_RESTART, a blocked epoll_wait returns EINTR at once.
pub fn install() {
    signals::catch_as_stop(&[libc::SIGINT, libc::SIGTERM]);
    signals::ignore(libc::SIGPIPE);
}

/// The signal that asked us to stop, if one did.
pub fn stop_requested() -> Option<i32> {
    signals::stop_signal()
}
