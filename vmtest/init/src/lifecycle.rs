//! Connection lifecycles, for the close records: exchanges of known sizes between separate
//! processes on loopback, ended every way a TCP connection ends, and connections older than
//! conntrace.
//!
//! The lifecycle cases run in the scenario's own `ct-client` (its worker thread) and
//! `ct-server`, on their own listening port, after the scenario's flows. Each case is one
//! connection: the client sends one block, the server another (sizes per case and family,
//! client sizes ending in 0 and server sizes in 1, so a swap or a mix-up shows), then it ends
//! as the case says:
//! - `cfirst`: the client closes first, the server after reading the client's FIN;
//! - `sfirst`: the server closes first;
//! - `creset` / `sreset`: the client / the server aborts it (SO_LINGER {1, 0}: an RST). The
//!   side that aborts speaks last and waits until the peer has acknowledged all it sent
//!   (SIOCOUTQ 0), so both ends' byte counts are settled before the RST.
//!
//! The old pair, `ct-old-server` and `ct-old-client`, is started before conntrace: per family,
//! one connection (`old`) connected, accepted and carrying the client's block before conntrace
//! starts, and one (`late`) connected with the client's block sent but not accepted yet. Once
//! conntrace runs (the init writes `go` on the old server's stdin), the server answers the
//! `old` one and the client closes it first; then the server accepts the `late` one, answers
//! and closes it first.
//!
//! Each side reports each case as `<v4|v6>_<case>_<client|server>=PORT:SENT:RECEIVED`: the
//! client its local port, the server the peer port it saw; SENT and RECEIVED are the payload
//! bytes it wrote and read.

use crate::lines::{finish_child, Lines, Next};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub const OLD_SERVER_COMM: &str = "ct-old-server";
pub const OLD_CLIENT_COMM: &str = "ct-old-client";
const OLD_SERVER_UID: u32 = 3000;
const OLD_CLIENT_UID: u32 = 3001;
/// How long one step (a read, an acknowledgement, a child's start) may take under TCG.
const STEP_LIMIT: Duration = Duration::from_secs(20);

/// How a lifecycle connection ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    ClientFirst,
    ServerFirst,
    ClientReset,
    ServerReset,
}

struct Case {
    /// The case's name in the facts (vmtest/src/verdict/scenario.rs has the same names).
    name: &'static str,
    end: End,
    /// Payload bytes the client sends, the server sends (IPv4; IPv6 adds V6_EXTRA to both).
    client: usize,
    server: usize,
}

const CASES: [Case; 4] = [
    Case {
        name: "cfirst",
        end: End::ClientFirst,
        client: 1000,
        server: 501,
    },
    Case {
        name: "sfirst",
        end: End::ServerFirst,
        client: 1100,
        server: 601,
    },
    Case {
        name: "creset",
        end: End::ClientReset,
        client: 1200,
        server: 701,
    },
    Case {
        name: "sreset",
        end: End::ServerReset,
        client: 1300,
        server: 801,
    },
];

/// The old pair's two connections: (client bytes, server bytes).
const OLD: (usize, usize) = (1400, 901);
const LATE: (usize, usize) = (1500, 1001);
const V6_EXTRA: usize = 1000;

/// The families the cases run over: (fact prefix, loopback address).
fn families(ipv6: bool) -> Vec<(&'static str, &'static str)> {
    let mut f = vec![("v4", "127.0.0.1")];
    if ipv6 {
        f.push(("v6", "::1"));
    }
    f
}

fn sizes(v: &str, (client, server): (usize, usize)) -> (usize, usize) {
    let extra = if v == "v6" { V6_EXTRA } else { 0 };
    (client + extra, server + extra)
}

fn fact(v: &str, case: &str, side: &str, port: u16, sent: usize, received: usize) -> String {
    format!("{v}_{case}_{side}={port}:{sent}:{received}")
}

fn payload(len: usize, byte: u8) -> Vec<u8> {
    vec![byte; len]
}

fn read_exactly(s: &mut TcpStream, len: usize, what: &str) -> io::Result<()> {
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf)
        .map_err(|e| io::Error::other(format!("{what}: reading {len} bytes: {e}")))
}

/// The next read must see the peer's FIN.
fn expect_eof(s: &mut TcpStream, what: &str) -> io::Result<()> {
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(0) => Ok(()),
        Ok(_) => Err(io::Error::other(format!("{what}: more bytes than sent"))),
        Err(e) => Err(io::Error::other(format!(
            "{what}: expected the peer's FIN: {e}"
        ))),
    }
}

/// The next read must see the peer's RST.
fn expect_reset(s: &mut TcpStream, what: &str) -> io::Result<()> {
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => Ok(()),
        Ok(0) => Err(io::Error::other(format!(
            "{what}: the peer's FIN, expected its RST"
        ))),
        Ok(_) => Err(io::Error::other(format!("{what}: more bytes than sent"))),
        Err(e) => Err(io::Error::other(format!(
            "{what}: expected ECONNRESET, got {e}"
        ))),
    }
}

/// Waits until the peer has acknowledged everything written (SIOCOUTQ = 0).
fn wait_acked(s: &TcpStream, what: &str) -> io::Result<()> {
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        let mut unacked: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer, which is valid.
        if unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ as _, &mut unacked) } != 0 {
            return Err(io::Error::other(format!(
                "{what}: SIOCOUTQ: {}",
                io::Error::last_os_error()
            )));
        }
        if unacked == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "{what}: {unacked} bytes still unacknowledged"
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Closes with SO_LINGER {1, 0}: the kernel aborts the connection with an RST.
fn reset(s: TcpStream, what: &str) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the option value points at a live linger struct of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::other(format!(
            "{what}: SO_LINGER: {}",
            io::Error::last_os_error()
        )));
    }
    drop(s);
    Ok(())
}

/// The lifecycle listeners of `ct-server`, one per family, on `port`.
pub fn listen(port: u16, ipv6: bool) -> io::Result<Vec<TcpListener>> {
    families(ipv6)
        .into_iter()
        .map(|(_, addr)| TcpListener::bind((addr, port)))
        .collect()
}

/// `ct-server`'s part: accepts and plays every case on each listener (from `listen`), in
/// order; returns the facts.
pub fn serve(listeners: &[TcpListener], ipv6: bool) -> io::Result<Vec<String>> {
    let mut facts = Vec::new();
    for ((v, _), listener) in families(ipv6).into_iter().zip(listeners) {
        for case in &CASES {
            let (c, s) = sizes(v, (case.client, case.server));
            let what = format!("server, {v} {}", case.name);
            let (mut conn, peer) = listener.accept()?;
            match case.end {
                End::ClientFirst => {
                    read_exactly(&mut conn, c, &what)?;
                    conn.write_all(&payload(s, b's'))?;
                    expect_eof(&mut conn, &what)?;
                    drop(conn);
                }
                End::ServerFirst => {
                    read_exactly(&mut conn, c, &what)?;
                    conn.write_all(&payload(s, b's'))?;
                    drop(conn);
                }
                End::ClientReset => {
                    conn.write_all(&payload(s, b's'))?;
                    read_exactly(&mut conn, c, &what)?;
                    expect_reset(&mut conn, &what)?;
                    drop(conn);
                }
                End::ServerReset => {
                    read_exactly(&mut conn, c, &what)?;
                    conn.write_all(&payload(s, b's'))?;
                    wait_acked(&conn, &what)?;
                    reset(conn, &what)?;
                }
            }
            facts.push(fact(v, case.name, "server", peer.port(), s, c));
        }
    }
    Ok(facts)
}

/// `ct-client`'s part: connects to `port` and plays every case, in order; returns the facts.
pub fn connect(port: u16, ipv6: bool) -> io::Result<Vec<String>> {
    let mut facts = Vec::new();
    for (v, addr) in families(ipv6) {
        for case in &CASES {
            let (c, s) = sizes(v, (case.client, case.server));
            let what = format!("client, {v} {}", case.name);
            let mut conn = TcpStream::connect((addr, port))?;
            let lport = conn.local_addr()?.port();
            match case.end {
                End::ClientFirst => {
                    conn.write_all(&payload(c, b'c'))?;
                    read_exactly(&mut conn, s, &what)?;
                    drop(conn);
                }
                End::ServerFirst => {
                    conn.write_all(&payload(c, b'c'))?;
                    read_exactly(&mut conn, s, &what)?;
                    expect_eof(&mut conn, &what)?;
                    drop(conn);
                }
                End::ClientReset => {
                    read_exactly(&mut conn, s, &what)?;
                    conn.write_all(&payload(c, b'c'))?;
                    wait_acked(&conn, &what)?;
                    reset(conn, &what)?;
                }
                End::ServerReset => {
                    conn.write_all(&payload(c, b'c'))?;
                    read_exactly(&mut conn, s, &what)?;
                    expect_reset(&mut conn, &what)?;
                    drop(conn);
                }
            }
            facts.push(fact(v, case.name, "client", lport, c, s));
        }
    }
    Ok(facts)
}

/// The old pair, started before conntrace and waiting for `finish`.
pub struct OldPair {
    server: Child,
    server_out: Lines,
    server_in: ChildStdin,
    client: Child,
    client_out: Lines,
}

/// Waits for `line` from a child (killing it when it does not come).
fn await_line(child: &mut Child, out: &mut Lines, line: &str, who: &str) -> Result<(), String> {
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        match out.next_until(deadline) {
            Next::Line(l) if l == line => return Ok(()),
            Next::Line(_) => {}
            Next::Eof | Next::Timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the {who} did not say {line:?}; it said: {}",
                    out.seen.join(" | ")
                ));
            }
        }
    }
}

impl OldPair {
    /// Starts both and returns once every old connection is established and its client
    /// block received, and every late one waits in the listener's queue.
    pub fn start(port: u16, ipv6: bool) -> Result<OldPair, String> {
        let flag = if ipv6 { "1" } else { "0" };
        let mut server = Command::new("/proc/self/exe")
            .args([OLD_SERVER_COMM, &port.to_string(), flag])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the old server: {e}"))?;
        let (Some(server_in), Some(pipe)) = (server.stdin.take(), server.stdout.take()) else {
            let _ = server.kill();
            let _ = server.wait();
            return Err("the old server has no stdin or stdout pipe".into());
        };
        let mut server_out = Lines::spawn(pipe);
        await_line(&mut server, &mut server_out, "ready", "old server")?;
        let client = Command::new("/proc/self/exe")
            .args([OLD_CLIENT_COMM, &port.to_string(), flag])
            .stdout(Stdio::piped())
            .spawn();
        let mut client = match client {
            Ok(c) => c,
            Err(e) => {
                let _ = server.kill();
                let _ = server.wait();
                return Err(format!("cannot start the old client: {e}"));
            }
        };
        let Some(pipe) = client.stdout.take() else {
            for c in [&mut client, &mut server] {
                let _ = c.kill();
                let _ = c.wait();
            }
            return Err("the old client has no stdout pipe".into());
        };
        let mut client_out = Lines::spawn(pipe);
        let set_up = await_line(&mut client, &mut client_out, "connected", "old client")
            .and_then(|()| await_line(&mut server, &mut server_out, "waiting", "old server"));
        if let Err(e) = set_up {
            for c in [&mut client, &mut server] {
                let _ = c.kill();
                let _ = c.wait();
            }
            return Err(e);
        }
        Ok(OldPair {
            server,
            server_out,
            server_in,
            client,
            client_out,
        })
    }

    /// Lets the old server go on, waits for both to end; returns their facts.
    pub fn finish(self) -> Result<Vec<String>, String> {
        let OldPair {
            mut server,
            server_out,
            mut server_in,
            mut client,
            client_out,
        } = self;
        let go = server_in
            .write_all(b"go\n")
            .and_then(|()| server_in.flush());
        drop(server_in);
        let (server_status, server_lines) = finish_child(&mut server, server_out, STEP_LIMIT);
        let (client_status, client_lines) = finish_child(&mut client, client_out, STEP_LIMIT);
        go.map_err(|e| format!("cannot tell the old server to go on: {e}"))?;
        for (who, status, lines) in [
            ("old server", server_status, &server_lines),
            ("old client", client_status, &client_lines),
        ] {
            match status {
                Some(s) if s.success() => {}
                Some(s) => {
                    return Err(format!(
                        "the {who} failed ({}); it said: {}",
                        crate::report::status_text(s),
                        lines.join(" | ")
                    ))
                }
                None => return Err(format!("the {who} hung; it said: {}", lines.join(" | "))),
            }
        }
        Ok(server_lines
            .into_iter()
            .chain(client_lines)
            .filter(|l| l.contains('='))
            .collect())
    }
}

/// Waits until `listener` has a connection to accept (poll: readable), without accepting it.
fn await_queued(listener: &TcpListener, what: &str) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = STEP_LIMIT.as_millis() as libc::c_int;
    // SAFETY: one valid pollfd, and its count.
    match unsafe { libc::poll(&mut pfd, 1, ms) } {
        1 => Ok(()),
        0 => Err(io::Error::other(format!(
            "{what}: nothing queued to accept"
        ))),
        _ => Err(io::Error::last_os_error()),
    }
}

fn args(args: &[String]) -> io::Result<(u16, bool)> {
    let port = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other("missing or bad port argument"))?;
    let ipv6 = args.get(1).map(String::as_str) == Some("1");
    Ok((port, ipv6))
}

/// `ct-old-server <port> <ipv6>`: before conntrace, accepts each family's `old` connection and
/// reads its client block, and waits until the `late` one is queued; says `waiting`, and on
/// `go` (stdin) ends both as the module's top says.
pub fn old_server_main(argv: &[String]) -> io::Result<()> {
    let (port, ipv6) = args(argv)?;
    crate::scenario::become_actor(OLD_SERVER_COMM, OLD_SERVER_UID)?;
    let listeners = listen(port, ipv6)?;
    crate::scenario::emit(&format!(
        "old_server_pid={} old_server_tid={} old_server_uid={} old_server_comm={}",
        std::process::id(),
        crate::system::gettid(),
        OLD_SERVER_UID,
        crate::scenario::own_comm()
    ));
    crate::scenario::emit("ready");
    let mut old = Vec::new();
    for ((v, _), listener) in families(ipv6).into_iter().zip(&listeners) {
        let (mut conn, peer) = listener.accept()?;
        read_exactly(&mut conn, sizes(v, OLD).0, &format!("old server, {v} old"))?;
        await_queued(listener, &format!("old server, {v} late"))?;
        old.push((conn, peer.port()));
    }
    crate::scenario::emit("waiting");
    let mut line = String::new();
    io::stdin().read_line(&mut line)?;
    if line.trim() != "go" {
        return Err(io::Error::other(format!(
            "expected go on stdin, got {line:?}"
        )));
    }
    let mut facts = Vec::new();
    for (((v, _), listener), (mut conn, peer)) in
        families(ipv6).into_iter().zip(&listeners).zip(old)
    {
        let (c, s) = sizes(v, OLD);
        let what = format!("old server, {v} old");
        conn.write_all(&payload(s, b's'))?;
        expect_eof(&mut conn, &what)?;
        drop(conn);
        facts.push(fact(v, "old", "server", peer, s, c));
        let (c, s) = sizes(v, LATE);
        let what = format!("old server, {v} late");
        let (mut conn, peer) = listener.accept()?;
        read_exactly(&mut conn, c, &what)?;
        conn.write_all(&payload(s, b's'))?;
        drop(conn);
        facts.push(fact(v, "late", "server", peer.port(), s, c));
    }
    for f in facts {
        crate::scenario::emit(&f);
    }
    Ok(())
}

/// `ct-old-client <port> <ipv6>`: connects each family's `old` and `late` connections and
/// sends their client blocks, says `connected`; then reads the server's answers, closing the
/// `old` ones first and the `late` ones after the server's FIN.
pub fn old_client_main(argv: &[String]) -> io::Result<()> {
    let (port, ipv6) = args(argv)?;
    crate::scenario::become_actor(OLD_CLIENT_COMM, OLD_CLIENT_UID)?;
    let mut conns = Vec::new();
    for (v, addr) in families(ipv6) {
        let mut old = TcpStream::connect((addr, port))?;
        old.write_all(&payload(sizes(v, OLD).0, b'c'))?;
        let mut late = TcpStream::connect((addr, port))?;
        late.write_all(&payload(sizes(v, LATE).0, b'c'))?;
        conns.push((v, old, late));
    }
    crate::scenario::emit("connected");
    let mut facts = Vec::new();
    for (v, mut old, mut late) in conns {
        let (c, s) = sizes(v, OLD);
        let lport = old.local_addr()?.port();
        read_exactly(&mut old, s, &format!("old client, {v} old"))?;
        drop(old);
        facts.push(fact(v, "old", "client", lport, c, s));
        let (c, s) = sizes(v, LATE);
        let what = format!("old client, {v} late");
        let lport = late.local_addr()?.port();
        read_exactly(&mut late, s, &what)?;
        expect_eof(&mut late, &what)?;
        drop(late);
        facts.push(fact(v, "late", "client", lport, c, s));
    }
    for f in facts {
        crate::scenario::emit(&f);
    }
    Ok(())
}
