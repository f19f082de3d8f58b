//! Signals that ask the process to stop, caught into a flag, and signals ignored.
//!
//! The handler lives here, with the unsafe call that installs it, so that what runs in signal
//! context is one atomic store and nothing a caller could get wrong. No `Sys` method: a test
//! raises a real signal at itself if it must.

use std::sync::atomic::{AtomicI32, Ordering};

static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP_SIGNAL.store(signal, Ordering::Relaxed);
}

/// Makes each of `signals` set the stop flag instead of ending the process. Without
/// SA_RESTART, a blocked epoll_wait returns EINTR at once.
pub fn catch_as_stop(signals: &[libc::c_int]) {
    for &signal in signals {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler is
        // an extern "C" fn that only does an atomic store.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// Sets `signal`'s disposition to SIG_IGN.
pub fn ignore(signal: libc::c_int) {
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory-safety preconditions.
    unsafe {
        libc::signal(signal, libc::SIG_IGN);
    }
}

/// The signal caught by [`catch_as_stop`], if one was.
pub fn stop_signal() -> Option<i32> {
    match STOP_SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}
