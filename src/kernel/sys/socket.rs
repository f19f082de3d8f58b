//! TCP sockets std cannot make: bound before they connect (so their port is known before the
//! handshake), closed with a reset (SO_LINGER {1, 0}), or with socket options std has no
//! setter for (SO_KEEPALIVE, SO_BROADCAST, SO_OOBINLINE). conntrace's own loopback
//! connections use them: the layout discovery and the self-test without BTF.
//!
//! Safe free functions and a wrapper type, not `Sys` methods: they act on this process's own
//! sockets, which a fake could not usefully answer for.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A TCP socket bound to an address (port 0: the kernel picks one), not yet connected.
#[derive(Debug)]
pub struct BoundSocket(OwnedFd);

/// The sockaddr of `addr`, and its length.
fn raw_addr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain bytes, so all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned for it.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in6 and suitably aligned for it.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl BoundSocket {
    /// A TCP socket of `ip`'s family bound to `ip`, port 0.
    pub fn bind(ip: IpAddr) -> io::Result<BoundSocket> {
        let family = match ip {
            IpAddr::V4(_) => libc::AF_INET,
            IpAddr::V6(_) => libc::AF_INET6,
        };
        // SAFETY: plain integer arguments; the result is checked before use.
        let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket() and is owned by nothing else.
        let socket = BoundSocket(unsafe { OwnedFd::from_raw_fd(fd) });
        let (addr, len) = raw_addr(SocketAddr::new(ip, 0));
        // SAFETY: `addr` is a valid sockaddr of `len` bytes for the duration of the call.
        check(unsafe { libc::bind(fd, (&raw const addr).cast(), len) })?;
        Ok(socket)
    }

    /// The address the socket is bound to, with the port the kernel chose.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        // SAFETY: sockaddr_storage is plain bytes, so all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `storage` is writable for `len` bytes and `len` is a valid in/out length.
        check(unsafe {
            libc::getsockname(self.0.as_raw_fd(), (&raw mut storage).cast(), &raw mut len)
        })?;
        match i32::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in (its family says so) into storage,
                // which is large enough and aligned for one.
                let sin: libc::sockaddr_in = unsafe { std::ptr::read((&raw const storage).cast()) };
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    sin.sin_addr.s_addr.to_ne_bytes().into(),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for a sockaddr_in6.
                let sin6: libc::sockaddr_in6 =
                    unsafe { std::ptr::read((&raw const storage).cast()) };
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    sin6.sin6_addr.s6_addr.into(),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            other => Err(io::Error::other(format!(
                "getsockname gave address family {other}"
            ))),
        }
    }

    /// A blocking connect to `addr`. On success the socket is a connected stream; on failure
    /// (ECONNREFUSED, ...) it stays open and bound until dropped.
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        let (raw, len) = raw_addr(addr);
        loop {
            // SAFETY: `raw` is a valid sockaddr of `len` bytes for the duration of the call.
            match check(unsafe { libc::connect(self.0.as_raw_fd(), (&raw const raw).cast(), len) })
            {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// The connected socket as a std stream.
    pub fn into_stream(self) -> TcpStream {
        TcpStream::from(self.0)
    }
}

impl AsFd for BoundSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// SO_LINGER {on, 0 s}: closing `socket` then resets the connection instead of ending it.
pub fn set_linger_zero(socket: BorrowedFd<'_>) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid struct linger of the size passed, for the duration of the call.
    check(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    })
}

/// Turns on the boolean SOL_SOCKET option `option` (SO_KEEPALIVE, SO_BROADCAST, SO_OOBINLINE,
/// ...) of `socket`.
pub fn set_flag(socket: BorrowedFd<'_>, option: libc::c_int) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a valid int of the size passed, for the duration of the call.
    check(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn get(socket: &BoundSocket, option: libc::c_int) -> libc::c_int {
        let mut value: libc::c_int = -1;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` is a writable int and `len` its size, for the duration of the call.
        check(unsafe {
            libc::getsockopt(
                socket.as_fd().as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&raw mut value).cast(),
                &raw mut len,
            )
        })
        .unwrap();
        value
    }

    #[test]
    fn set_flag_turns_the_option_on() {
        let socket = BoundSocket::bind(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        for option in [libc::SO_KEEPALIVE, libc::SO_BROADCAST, libc::SO_OOBINLINE] {
            assert_eq!(get(&socket, option), 0, "{option}");
            set_flag(socket.as_fd(), option).unwrap();
            assert_eq!(get(&socket, option), 1, "{option}");
        }
    }
}
