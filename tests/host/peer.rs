//! Peer processes: the traffic conntrace must see. The test binary re-runs itself with
//! `CONNTRACE_TEST_ROLE` set, so every peer has its own pid and a comm we choose.
//!
//! Roles (arguments separated by spaces in the variable):
//! - `server 4|6 N`: listens on 127.0.0.1 or ::1, an ephemeral port; prints
//!   `listening port=P pid=P tid=T`, then one `accepted rport=R pid=P tid=T` per connection
//!   for N connections, then exits.
//! - `client ADDR PORT [nonblock] [repeat] [wait] [uid=U] [escape-comm]`: connects once and prints
//!   `client pid=P tid=T uid=U lport=L errno=E soerror=S comm_ok=0|1`. `wait` first prints
//!   `waiting pid=P` and waits for a line on stdin; `uid=U` drops to that uid first.
//! - `talk-server 4|6 SEND RECV HOW` and `talk-client ADDR PORT SEND RECV HOW`: one connection
//!   that carries known bytes: the server prints `listening ...` and `accepted ...` as
//!   `server` does, the client `client ...` as `client` does; each side writes SEND bytes
//!   (the client first, the server once it has read the client's), reads RECV bytes, then
//!   ends by HOW: `first` closes at once, `second` waits for the peer's FIN (or reset)
//!   first, `reset` closes with SO_LINGER {1, 0} (an RST); then it prints `done` and exits.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const ROLE_VAR: &str = "CONNTRACE_TEST_ROLE";
pub const SERVER_COMM: &str = "ct-server";
pub const CLIENT_COMM: &str = "ct-client";
/// ESC, newline, quote, backslash and a byte that is not UTF-8: everything an output must escape.
pub const ESCAPE_COMM: &[u8] = b"ct\x1b\n\"\\\xffesc";

// ---------------------------------------------------------------------------------------------
// Child side.

/// Runs the role named in the environment and returns the exit status.
pub fn run_role(role: &str) -> i32 {
    let args: Vec<&str> = role.split(' ').filter(|a| !a.is_empty()).collect();
    let result = match args.split_first() {
        Some((&"server", rest)) => server(rest),
        Some((&"client", rest)) => client(rest),
        Some((&"talk-server", rest)) => talk_server(rest),
        Some((&"talk-client", rest)) => talk_client(rest),
        _ => Err(format!("unknown role {role:?}")),
    };
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("peer {role:?}: {message}");
            1
        }
    }
}

fn set_comm(name: &[u8]) {
    let mut buf = [0u8; 16];
    let len = name.len().min(15);
    buf[..len].copy_from_slice(&name[..len]);
    // SAFETY: PR_SET_NAME reads at most 16 bytes from a pointer to a live, NUL-terminated buffer.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

/// Whether the kernel took `name` as our comm byte for byte (for the harness self-check).
fn comm_is(name: &[u8]) -> bool {
    let read = std::fs::read("/proc/thread-self/comm").unwrap_or_default();
    read.strip_suffix(b"\n") == Some(name)
}

fn ids() -> (u32, u32, u32) {
    // SAFETY: getpid/gettid/getuid have no preconditions.
    unsafe { (libc::getpid() as u32, libc::gettid() as u32, libc::getuid()) }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // The parent reads line by line: flush each one so it never waits on a buffer.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn loopback(family: &str) -> Result<IpAddr, String> {
    match family {
        "4" => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "6" => Ok(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => Err(format!("family must be 4 or 6, not {family:?}")),
    }
}

/// A server's listener on loopback, an ephemeral port, announced with `listening ...`.
fn listen(family: &str) -> Result<TcpListener, String> {
    set_comm(SERVER_COMM.as_bytes());
    let listener = TcpListener::bind(SocketAddr::new(loopback(family)?, 0))
        .map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let (pid, tid, _) = ids();
    say(&format!("listening port={port} pid={pid} tid={tid}"));
    Ok(listener)
}

fn server(args: &[&str]) -> Result<(), String> {
    let [family, count] = args else {
        return Err("usage: server 4|6 N".into());
    };
    let count: usize = count.parse().map_err(|_| format!("bad count {count:?}"))?;
    let listener = listen(family)?;
    for _ in 0..count {
        let (stream, peer) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        let (pid, tid, _) = ids();
        say(&format!(
            "accepted rport={} pid={pid} tid={tid}",
            peer.port()
        ));
        drop(stream);
    }
    Ok(())
}

fn client(args: &[&str]) -> Result<(), String> {
    let [addr, port, flags @ ..] = args else {
        return Err(
            "usage: client ADDR PORT [nonblock] [repeat] [wait] [uid=U] [escape-comm]".into(),
        );
    };
    let ip: IpAddr = addr.parse().map_err(|_| format!("bad address {addr:?}"))?;
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let mut nonblock = false;
    let mut repeat = false;
    let mut comm = CLIENT_COMM.as_bytes();
    for flag in flags {
        match *flag {
            "nonblock" => nonblock = true,
            // connect() again on the same socket, the way some programs poll a non-blocking one.
            "repeat" => repeat = true,
            "escape-comm" => comm = ESCAPE_COMM,
            "wait" => {
                say(&format!("waiting pid={}", ids().0));
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| e.to_string())?;
            }
            other => match other.strip_prefix("uid=") {
                Some(uid) => drop_to_uid(uid.parse().map_err(|_| format!("bad uid {uid:?}"))?)?,
                None => return Err(format!("unknown flag {other:?}")),
            },
        }
    }
    set_comm(comm);
    let comm_ok = comm_is(comm) as u8;
    let (socket, errno) = connect(SocketAddr::new(ip, port), nonblock)?;
    let soerror = pending_error(&socket, nonblock)?;
    if repeat {
        for _ in 0..2 {
            connect_again(&socket, SocketAddr::new(ip, port));
        }
    }
    let lport = local_port(&socket)?;
    let (pid, tid, uid) = ids();
    say(&format!(
        "client pid={pid} tid={tid} uid={uid} lport={lport} errno={errno} soerror={soerror} comm_ok={comm_ok}"
    ));
    Ok(())
}

/// How a `talk-*` peer ends its connection.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    First,
    Second,
    Reset,
}

fn talk_args(args: &[&str]) -> Result<(usize, usize, Ending), String> {
    let [send, recv, how] = args else {
        return Err("want SEND RECV first|second|reset".into());
    };
    let number = |s: &str| s.parse().map_err(|_| format!("bad byte count {s:?}"));
    let how = match *how {
        "first" => Ending::First,
        "second" => Ending::Second,
        "reset" => Ending::Reset,
        other => return Err(format!("bad ending {other:?}")),
    };
    Ok((number(send)?, number(recv)?, how))
}

/// Sends `send` bytes (after reading `recv` first when `reply`), reads the rest, ends by `how`.
fn talk(
    mut stream: std::net::TcpStream,
    send: usize,
    recv: usize,
    how: Ending,
    reply: bool,
) -> Result<(), String> {
    use std::io::Read;
    let mut buf = vec![0u8; recv];
    let payload = vec![b'x'; send];
    if reply {
        stream
            .read_exact(&mut buf)
            .map_err(|e| format!("read: {e}"))?;
        stream
            .write_all(&payload)
            .map_err(|e| format!("write: {e}"))?;
    } else {
        stream
            .write_all(&payload)
            .map_err(|e| format!("write: {e}"))?;
        stream
            .read_exact(&mut buf)
            .map_err(|e| format!("read: {e}"))?;
    }
    match how {
        Ending::First => {}
        Ending::Second => {
            // The peer's FIN (0 bytes) or its reset (an error): either way it ended first.
            let mut rest = [0u8; 1];
            let _ = stream.read(&mut rest);
        }
        Ending::Reset => crate::linger::reset_on_close(&stream)?,
    }
    drop(stream);
    say("done");
    Ok(())
}

fn talk_server(args: &[&str]) -> Result<(), String> {
    let [family, rest @ ..] = args else {
        return Err("usage: talk-server 4|6 SEND RECV HOW".into());
    };
    let (send, recv, how) = talk_args(rest)?;
    let listener = listen(family)?;
    let (pid, tid, _) = ids();
    let (stream, peer) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    say(&format!(
        "accepted rport={} pid={pid} tid={tid}",
        peer.port()
    ));
    talk(stream, send, recv, how, true)
}

fn talk_client(args: &[&str]) -> Result<(), String> {
    let [addr, port, rest @ ..] = args else {
        return Err("usage: talk-client ADDR PORT SEND RECV HOW".into());
    };
    let ip: IpAddr = addr.parse().map_err(|_| format!("bad address {addr:?}"))?;
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let (send, recv, how) = talk_args(rest)?;
    set_comm(CLIENT_COMM.as_bytes());
    let stream = std::net::TcpStream::connect(SocketAddr::new(ip, port))
        .map_err(|e| format!("connect: {e}"))?;
    let lport = stream.local_addr().map_err(|e| e.to_string())?.port();
    let (pid, tid, uid) = ids();
    say(&format!(
        "client pid={pid} tid={tid} uid={uid} lport={lport} errno=0 soerror=0 comm_ok=1"
    ));
    talk(stream, send, recv, how, false)
}

fn drop_to_uid(uid: u32) -> Result<(), String> {
    // SAFETY: setresgid/setresuid take plain integers; the process is single-threaded here.
    let failed =
        unsafe { libc::setresgid(uid, uid, uid) != 0 || libc::setresuid(uid, uid, uid) != 0 };
    if failed {
        return Err(format!(
            "cannot drop to uid {uid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// One connect(2) the way an application makes it; returns the socket and connect's errno.
fn connect(to: SocketAddr, nonblock: bool) -> Result<(OwnedFd, i32), String> {
    let (domain, storage, len) = sockaddr(to);
    let kind =
        libc::SOCK_STREAM | libc::SOCK_CLOEXEC | if nonblock { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: socket() has no memory preconditions.
    let fd = unsafe { libc::socket(domain, kind, 0) };
    if fd < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just returned by socket() and is owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: storage is a live sockaddr_storage whose first `len` bytes hold the address.
    let rc = unsafe {
        libc::connect(
            fd,
            &storage as *const libc::sockaddr_storage as *const libc::sockaddr,
            len,
        )
    };
    let errno = if rc == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    };
    Ok((socket, errno))
}

/// connect(2) once more on an existing socket (0 once established, then EISCONN); the result
/// does not matter, only that conntrace does not take it for a new attempt.
fn connect_again(socket: &OwnedFd, to: SocketAddr) {
    let (_, storage, len) = sockaddr(to);
    // SAFETY: storage is a live sockaddr_storage whose first `len` bytes hold the address.
    unsafe {
        libc::connect(
            socket.as_raw_fd(),
            &storage as *const libc::sockaddr_storage as *const libc::sockaddr,
            len,
        );
    }
}

fn sockaddr(to: SocketAddr) -> (i32, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data for which all-zero bytes are valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match to {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            (
                libc::AF_INET,
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            (
                libc::AF_INET6,
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as u32,
            )
        }
    }
}

/// For a non-blocking connect: waits until the handshake is decided and returns SO_ERROR.
fn pending_error(socket: &OwnedFd, nonblock: bool) -> Result<i32, String> {
    if nonblock {
        let mut poll = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: poll reads and writes exactly one live pollfd.
        if unsafe { libc::poll(&mut poll, 1, 10_000) } != 1 {
            return Err("non-blocking connect undecided after 10 s".into());
        }
    }
    let mut error: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: SO_ERROR writes one int into `error`, whose size `len` states.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut error as *mut i32 as *mut libc::c_void,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(format!(
            "getsockopt(SO_ERROR): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(error)
}

/// The port the kernel chose; getsockname still reports it after a refused connect.
fn local_port(socket: &OwnedFd) -> Result<u16, String> {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into the live `storage`.
    let rc = unsafe {
        libc::getsockname(
            socket.as_raw_fd(),
            &mut storage as *mut _ as *mut libc::sockaddr,
            &mut len,
        )
    };
    if rc != 0 {
        return Err(format!("getsockname: {}", std::io::Error::last_os_error()));
    }
    // sin_port and sin6_port sit at the same offset, right after the family.
    // SAFETY: storage is initialised and at least as large as sockaddr_in.
    let sin = unsafe { &*(&storage as *const _ as *const libc::sockaddr_in) };
    Ok(u16::from_be(sin.sin_port))
}

// ---------------------------------------------------------------------------------------------
// Parent side.

/// A running peer; killed if the test drops it early.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    role: String,
}

impl Peer {
    pub fn spawn(role: &str) -> Result<Peer, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .env(ROLE_VAR, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn peer {role:?}: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        Ok(Peer {
            stdin: child.stdin.take(),
            lines: forward_lines(stdout),
            child,
            role: role.into(),
        })
    }

    /// The next line the peer prints, parsed as `word key=value ...`, which must start with `word`.
    pub fn expect(&mut self, word: &str) -> Result<Report, String> {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(15))
            .map_err(|_| format!("peer {:?} printed no '{word}' line within 15 s", self.role))?;
        let report = Report::parse(&line)?;
        if report.word != word {
            return Err(format!(
                "peer {:?}: expected '{word} ...', got {line:?}",
                self.role
            ));
        }
        Ok(report)
    }

    /// Lets a `wait` client go on.
    pub fn release(&mut self) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("peer stdin already closed")?;
        stdin
            .write_all(b"go\n")
            .map_err(|e| format!("release peer: {e}"))
    }

    /// Waits for the peer to exit and checks it succeeded.
    pub fn finish(&mut self) -> Result<(), String> {
        self.stdin.take();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            match self.child.try_wait().map_err(|e| e.to_string())? {
                Some(status) if status.success() => return Ok(()),
                Some(status) => return Err(format!("peer {:?} failed: {status}", self.role)),
                None if std::time::Instant::now() > deadline => {
                    return Err(format!("peer {:?} still running after 15 s", self.role))
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// One `word key=value ...` line from a peer.
#[derive(Debug)]
pub struct Report {
    pub word: String,
    fields: Vec<(String, u64)>,
}

impl Report {
    fn parse(line: &str) -> Result<Report, String> {
        let mut parts = line.split(' ');
        let word = parts.next().unwrap_or_default().to_string();
        let mut fields = Vec::new();
        for part in parts {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("bad peer line {line:?}"))?;
            let value = value
                .parse()
                .map_err(|_| format!("bad number in peer line {line:?}"))?;
            fields.push((key.to_string(), value));
        }
        Ok(Report { word, fields })
    }

    pub fn get(&self, key: &str) -> u64 {
        match self.fields.iter().find(|(k, _)| k == key) {
            Some((_, value)) => *value,
            None => panic!("peer line '{}' has no {key}", self.word),
        }
    }

    pub fn u16(&self, key: &str) -> u16 {
        self.get(key) as u16
    }

    pub fn u32(&self, key: &str) -> u32 {
        self.get(key) as u32
    }
}

/// A loopback port that refuses connections: bound, never listening, held until dropped.
pub struct RefusingPort {
    _socket: OwnedFd,
    pub port: u16,
}

impl RefusingPort {
    pub fn new(family: &str) -> Result<RefusingPort, String> {
        let (domain, storage, len) = sockaddr(SocketAddr::new(loopback(family)?, 0));
        // SAFETY: socket() has no memory preconditions.
        let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: fd was just returned by socket() and is owned by nothing else.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: storage holds a valid address of `len` bytes.
        let rc = unsafe { libc::bind(fd, &storage as *const _ as *const libc::sockaddr, len) };
        if rc != 0 {
            return Err(format!("bind: {}", std::io::Error::last_os_error()));
        }
        let port = local_port(&socket)?;
        Ok(RefusingPort {
            _socket: socket,
            port,
        })
    }
}
