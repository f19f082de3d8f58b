//! A state map too small for the connects in flight: with `--max-tracked 16`, 200 connects
//! left in SYN_SENT at once are each either printed or counted lost (`state_full`), exactly.
//!
//! The connects go to an address of a veth pair in two network namespaces this test creates
//! (and removes on every exit path): the client end has 10.200.71.1/24 and a permanent
//! neighbour entry for 10.200.71.2 (no ARP, so no "host unreachable" after the ARP timeout);
//! the far end, in a namespace of its own, has no address and no route, so every SYN is
//! dropped there and nothing answers. Nothing leaves this machine.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::tracer::Tracer;
use vmtest::json::{self, Value};

const CONNECTS: usize = 200;
const MAX_TRACKED: &str = "16";
const CLIENT_ADDR: &str = "10.200.71.1/24";
const TARGET: [u8; 4] = [10, 200, 71, 2];
const TARGET_TEXT: &str = "10.200.71.2";
const PEER_MAC: &str = "02:00:0a:c8:47:02";
/// Any port: nothing listens, nothing answers; -P keeps other traffic out.
const PORT: u16 = 4719;

/// The two namespaces; dropping it deletes them (and the veth pair with them).
struct Namespaces {
    client: String,
    peer: String,
}

impl Namespaces {
    fn create() -> Result<Namespaces, String> {
        let id = std::process::id();
        let ns = Namespaces {
            client: format!("ct-scale-c-{id}"),
            peer: format!("ct-scale-p-{id}"),
        };
        // `ns` exists before the first `ip netns add`: an error on the way removes both.
        let (a, b) = (format!("ctsc{id}a"), format!("ctsc{id}b"));
        ip(&["netns", "add", &ns.client])?;
        ip(&["netns", "add", &ns.peer])?;
        let (c, p) = (ns.client.as_str(), ns.peer.as_str());
        ip(&[
            "-n", c, "link", "add", &a, "type", "veth", "peer", "name", &b,
        ])?;
        ip(&["-n", c, "link", "set", &b, "netns", p])?;
        ip(&["-n", p, "link", "set", &b, "address", PEER_MAC])?;
        ip(&["-n", p, "link", "set", &b, "up"])?;
        ip(&["-n", c, "addr", "add", CLIENT_ADDR, "dev", &a])?;
        ip(&["-n", c, "link", "set", &a, "up"])?;
        ip(&[
            "-n",
            c,
            "neigh",
            "add",
            TARGET_TEXT,
            "lladdr",
            PEER_MAC,
            "dev",
            &a,
            "nud",
            "permanent",
        ])?;
        Ok(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in [&self.client, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// In a thread moved into the client namespace: `CONNECTS` non-blocking connects to the
/// target, each answered EINPROGRESS. The sockets stay open (in SYN_SENT) until dropped.
fn connect_in(namespace: &str) -> Result<Vec<OwnedFd>, String> {
    let path = format!("/run/netns/{namespace}");
    std::thread::spawn(move || -> Result<Vec<OwnedFd>, String> {
        let ns = std::fs::File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
        // SAFETY: setns on a valid namespace fd moves this thread alone, which ends when done.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
        }
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: PORT.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(TARGET),
            },
            sin_zero: [0; 8],
        };
        let mut sockets = Vec::with_capacity(CONNECTS);
        for n in 0..CONNECTS {
            // SAFETY: a plain socket() call; the fd is owned at once.
            let fd = unsafe {
                libc::socket(
                    libc::AF_INET,
                    libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    0,
                )
            };
            if fd < 0 {
                return Err(format!("socket: {}", std::io::Error::last_os_error()));
            }
            // SAFETY: fd was just returned by socket() and is owned by nothing else.
            let socket = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: addr is a valid sockaddr_in of the length passed.
            let ret = unsafe {
                libc::connect(
                    socket.as_raw_fd(),
                    &addr as *const libc::sockaddr_in as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            let error = std::io::Error::last_os_error();
            if ret == 0 || error.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(format!(
                    "connect {n} to {TARGET_TEXT}:{PORT} gave {ret} ({error}), want EINPROGRESS"
                ));
            }
            sockets.push(socket);
        }
        Ok(sockets)
    })
    .join()
    .map_err(|_| "the connecting thread panicked".to_string())?
}

/// What a run printed: connect records to the target, and the lost counts by reason.
#[derive(Debug, Default)]
struct Counted {
    connects: usize,
    lost: Vec<(String, u64)>,
}

impl Counted {
    fn lost(&self, reason: &str) -> u64 {
        self.lost
            .iter()
            .filter(|(r, _)| r == reason)
            .map(|(_, n)| n)
            .sum()
    }
}

fn count(lines: &[Vec<u8>]) -> Result<Counted, String> {
    let mut counted = Counted::default();
    for line in lines {
        let text = String::from_utf8_lossy(line);
        let Value::Object(members) = json::parse(&text)? else {
            return Err(format!("not a JSON object: {text}"));
        };
        let get = |key: &str| members.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let string = |key: &str| match get(key) {
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        };
        let number = |key: &str| match get(key) {
            Some(Value::Number(n)) => n.parse::<u64>().ok(),
            _ => None,
        };
        match string("event") {
            Some("connect")
                if string("raddr") == Some(TARGET_TEXT) && number("rport") == Some(PORT.into()) =>
            {
                counted.connects += 1
            }
            Some("lost") => {
                let reason = string("reason").unwrap_or("?").to_string();
                let n = number("count").ok_or_else(|| format!("lost without a count: {text}"))?;
                counted.lost.push((reason, n));
            }
            _ => {}
        }
    }
    Ok(counted)
}

pub fn state_map_full_counts_every_connect() -> Result<(), String> {
    let started = Instant::now();
    let namespaces = Namespaces::create()?;
    let pid = std::process::id().to_string();
    let port = PORT.to_string();
    let tracer = Tracer::attached(&[
        "--json",
        "--backend",
        "tracepoint",
        "--max-tracked",
        MAX_TRACKED,
        "-p",
        &pid,
        "-P",
        &port,
        "-e",
        "connect",
    ])?;
    let sockets = connect_in(&namespaces.client)?;
    // The tracked connects are printed at once; the rest only counted, reported at exit.
    tracer.wait_for(Duration::from_secs(5), |lines| {
        count(lines).is_ok_and(|c| c.connects >= 16)
    });
    std::thread::sleep(Duration::from_millis(300));
    drop(sockets);
    let finished = tracer.interrupt()?;
    drop(namespaces);
    let counted = count(&finished.stdout)?;
    let state_full = counted.lost("state_full");
    let made = CONNECTS as u64;
    let printed = counted.connects as u64;
    let summary = format!(
        "{CONNECTS} connects made, {printed} printed, {state_full} lost (state_full), all \
         losses {:?}, in {:.1} s",
        counted.lost,
        started.elapsed().as_secs_f64()
    );
    if printed + state_full != made || state_full == 0 {
        return Err(format!(
            "want printed + lost(state_full) = made with some lost: {summary}; stderr:\n{}",
            finished.stderr_text()
        ));
    }
    if !finished
        .stderr_text()
        .contains("tracking up to 16 connects in flight and 16 connections (~")
    {
        return Err(format!(
            "the attached line does not state the 16 connects tracked; stderr:\n{}",
            finished.stderr_text()
        ));
    }
    println!("    {summary}");
    Ok(())
}
