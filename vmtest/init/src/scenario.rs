//! The TCP scenario: a server process and a client process with recognisable comms and
//! distinct uids, so every identity field conntrace reports can be told apart. After the
//! connections of each family and the refused connect, the same two play the lifecycle cases
//! (src/lifecycle.rs) on their own port.
//!
//! Both run as this same binary (`/init ct-server ...`, `/init ct-client ...`) and report
//! what they did as `key=value` lines on stdout, which end up in the EXPECT console line.

use crate::lines::{wait_timeout, Lines, Next};
use crate::system::gettid;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const SERVER_COMM: &str = "ct-server";
pub const CLIENT_COMM: &str = "ct-client";
const SERVER_UID: u32 = 2000;
const CLIENT_UID: u32 = 1000;
const STEP_LIMIT: Duration = Duration::from_secs(20);

/// Runs the scenario from the init: returns the key=value facts for the EXPECT line.
/// `life_port` is the lifecycle cases' port.
pub fn run(port: u16, closed_port: u16, life_port: u16, ipv6: bool) -> Result<Vec<String>, String> {
    let flag = if ipv6 { "1" } else { "0" };
    let mut server = Command::new("/proc/self/exe")
        .args([SERVER_COMM, &port.to_string(), &life_port.to_string(), flag])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let mut server_out = Lines::spawn(server.stdout.take().ok_or("server has no stdout")?);
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        match server_out.next_until(deadline) {
            Next::Line(l) if l == "ready" => break,
            Next::Line(_) => {}
            Next::Eof | Next::Timeout => {
                let _ = server.kill();
                let _ = server.wait();
                return Err(format!(
                    "the server did not get ready; it said: {}",
                    server_out.seen.join(" | ")
                ));
            }
        }
    }

    let client = Command::new("/proc/self/exe")
        .args([
            CLIENT_COMM,
            &port.to_string(),
            &closed_port.to_string(),
            &life_port.to_string(),
            flag,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the client: {e}"));
    let client_result = client.and_then(|mut child| {
        let out = Lines::spawn(child.stdout.take().ok_or("client has no stdout")?);
        let status = wait_timeout(&mut child, STEP_LIMIT);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let lines = out.drain_until(Instant::now() + Duration::from_secs(2));
        match status {
            Some(s) if s.success() => Ok(lines),
            Some(s) => Err(format!(
                "the client failed ({}); it said: {}",
                crate::report::status_text(s),
                lines.join(" | ")
            )),
            None => Err(format!("the client hung; it said: {}", lines.join(" | "))),
        }
    });

    let server_status = wait_timeout(&mut server, STEP_LIMIT);
    if server_status.is_none() {
        let _ = server.kill();
        let _ = server.wait();
    }
    let server_lines = server_out.drain_until(Instant::now() + Duration::from_secs(2));
    let client_lines = client_result?;
    match server_status {
        Some(s) if s.success() => {}
        Some(s) => {
            return Err(format!(
                "the server failed ({}); it said: {}",
                crate::report::status_text(s),
                server_lines.join(" | ")
            ))
        }
        None => {
            return Err(format!(
                "the server hung; it said: {}",
                server_lines.join(" | ")
            ))
        }
    }
    let facts: Vec<String> = server_lines
        .into_iter()
        .chain(client_lines)
        .filter(|l| l.contains('='))
        .collect();
    Ok(facts)
}

/// Names this thread (and threads it creates later) and drops root for `uid`.
pub(crate) fn become_actor(comm: &str, uid: u32) -> io::Result<()> {
    let name = std::ffi::CString::new(comm).map_err(|_| io::Error::other("NUL in comm"))?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes; name is one.
    if unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Group first, while we may still change it.
    // SAFETY: setresgid takes plain integers and touches no memory of ours.
    if unsafe { libc::setresgid(uid, uid, uid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setresuid takes plain integers and touches no memory of ours.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Our comm as the kernel sees it: proves PR_SET_NAME took effect.
pub(crate) fn own_comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub(crate) fn emit(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> io::Result<T> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other(format!("missing or bad {what} argument")))
}

/// `ct-server <port> <life_port> <ipv6>`: listens on 127.0.0.1 and [::1], accepts one
/// connection on each; then serves the lifecycle cases on `life_port`.
pub fn server_main(args: &[String]) -> io::Result<()> {
    let port: u16 = arg(args, 0, "port")?;
    let life_port: u16 = arg(args, 1, "lifecycle port")?;
    let ipv6 = arg::<u8>(args, 2, "ipv6")? == 1;
    become_actor(SERVER_COMM, SERVER_UID)?;
    let v4 = TcpListener::bind(("127.0.0.1", port))?;
    let v6 = if ipv6 {
        Some(TcpListener::bind(("::1", port))?)
    } else {
        None
    };
    let life = crate::lifecycle::listen(life_port, ipv6)?;
    emit(&format!(
        "server_pid={} server_tid={} server_uid={} server_comm={}",
        std::process::id(),
        gettid(),
        // SAFETY: getuid cannot fail.
        unsafe { libc::getuid() },
        own_comm()
    ));
    emit("ready");
    let (_conn4, peer4) = v4.accept()?;
    emit(&format!("v4_peer_port={}", peer4.port()));
    let _conn6 = match v6 {
        Some(v6) => {
            let (conn6, peer6) = v6.accept()?;
            emit(&format!("v6_peer_port={}", peer6.port()));
            Some(conn6)
        }
        None => None,
    };
    for fact in crate::lifecycle::serve(&life, ipv6)? {
        emit(&fact);
    }
    Ok(())
}

/// `ct-client <port> <closed_port> <life_port> <ipv6>`: connects from a second thread (so
/// tid != pid): IPv4 and IPv6 to the server, then IPv4 to a closed port; then plays the
/// lifecycle cases to `life_port`, from the same thread.
pub fn client_main(args: &[String]) -> io::Result<()> {
    let port: u16 = arg(args, 0, "port")?;
    let closed: u16 = arg(args, 1, "closed port")?;
    let life_port: u16 = arg(args, 2, "lifecycle port")?;
    let ipv6 = arg::<u8>(args, 3, "ipv6")? == 1;
    become_actor(CLIENT_COMM, CLIENT_UID)?;
    // No Builder::name: that would rename the thread and change its comm.
    let worker = std::thread::spawn(move || -> io::Result<()> {
        emit(&format!(
            "client_pid={} client_tid={} client_uid={} client_comm={}",
            std::process::id(),
            gettid(),
            // SAFETY: getuid cannot fail.
            unsafe { libc::getuid() },
            own_comm()
        ));
        let c4 = TcpStream::connect(("127.0.0.1", port))?;
        emit(&format!("v4_lport={}", c4.local_addr()?.port()));
        let _c6 = if ipv6 {
            let c6 = TcpStream::connect(("::1", port))?;
            emit(&format!("v6_lport={}", c6.local_addr()?.port()));
            Some(c6)
        } else {
            None
        };
        match TcpStream::connect(("127.0.0.1", closed)) {
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "connect to closed port {closed} succeeded"
                )))
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                emit("refused_error=ECONNREFUSED");
            }
            Err(e) => {
                return Err(io::Error::other(format!(
                    "connect to closed port {closed}: {e}, expected ECONNREFUSED"
                )))
            }
        }
        for fact in crate::lifecycle::connect(life_port, ipv6)? {
            emit(&fact);
        }
        Ok(())
    });
    worker
        .join()
        .map_err(|_| io::Error::other("client thread panicked"))?
}
