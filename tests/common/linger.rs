//! SO_LINGER for the test crates that reset their connections (host and flood).

use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// SO_LINGER {1, 0}: the socket's close sends a reset (an RST) instead of a FIN.
pub fn reset_on_close(stream: &TcpStream) -> Result<(), String> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: SO_LINGER reads a live `linger` of the size passed, on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!("SO_LINGER: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
