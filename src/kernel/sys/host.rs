//! Facts about the running system: the kernel's release, the page size, the clocks.
//!
//! Safe free functions, not `Sys` methods: each is a constant of the machine (or its
//! clocks), and the fake's rings and the code under test must agree on the page size, which
//! they do by both asking the real one; a scripted answer would only let them disagree.

use std::io;

/// uname(2)'s release ("6.1.0-28-cloud-amd64") and machine ("x86_64").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uname {
    pub release: String,
    pub machine: String,
}

/// The running kernel's names, or None if uname fails.
pub fn uname() -> Option<Uname> {
    // SAFETY: utsname is plain bytes, so all-zero is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname for the duration of the call.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Some(Uname {
        release: field(&uts.release),
        machine: field(&uts.machine),
    })
}

/// The page size (4096 if sysconf gives something that is not a power of two).
pub fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the process; no memory is involved.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two())
        .unwrap_or(4096)
}

/// The clock `id` (CLOCK_MONOTONIC, CLOCK_REALTIME, ...) now, in nanoseconds.
pub fn clock_ns(id: libc::clockid_t) -> io::Result<i128> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call; clock_gettime
    // writes nothing else.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}
