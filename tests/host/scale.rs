//! The state maps under load. With `--max-tracked 16`, 200 connects left in SYN_SENT at once
//! are each either printed or counted lost (`state_full`), exactly. At the default size, a
//! storm of 40,000 connects in flight at once, from two processes, each gets its connect and
//! its `failed` ETIMEDOUT record, none lost.
//!
//! The connects go to an address of a veth pair in two network namespaces each test creates
//! (and removes on every exit path): the client end has 10.200.71.1/24 and a permanent
//! neighbour entry for 10.200.71.2 (no ARP, so no "host unreachable" after the ARP timeout);
//! the far end, in a namespace of its own, has no address and no route, so every SYN is
//! dropped there and nothing answers. Nothing leaves this machine.
//!
//! Thousands of sockets need processes of their own (RLIMIT_NOFILE, and owners to check):
//! [`Forked`] children of the test process, which make only system calls. Shared with
//! tests/host/held.rs.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
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

pub fn ip(args: &[&str]) -> Result<(), String> {
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
        let addr = sockaddr_v4(TARGET, PORT);
        let mut sockets = Vec::with_capacity(CONNECTS);
        for n in 0..CONNECTS {
            let fd = tcp4_socket(libc::SOCK_NONBLOCK);
            if fd < 0 {
                return Err(format!("socket: {}", std::io::Error::last_os_error()));
            }
            // SAFETY: fd was just returned by socket() and is owned by nothing else.
            let socket = unsafe { OwnedFd::from_raw_fd(fd) };
            let ret = connect_v4(socket.as_raw_fd(), &addr);
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
    if tracking(&finished.stderr_text()).is_none_or(|(conns, socks, _)| (conns, socks) != (16, 16))
    {
        return Err(format!(
            "the attached line does not state the 16 connects tracked; stderr:\n{}",
            finished.stderr_text()
        ));
    }
    println!("    {summary}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared with tests/host/held.rs: namespaces, ports, forked children, the attached line.

/// Runs `f` in a thread moved into the named network namespace (`/run/netns/NAME`).
pub fn in_namespace<T: Send + 'static>(
    namespace: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let path = format!("/run/netns/{namespace}");
    std::thread::spawn(move || -> Result<T, String> {
        let ns = std::fs::File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
        // SAFETY: setns on a valid namespace fd moves this thread alone, which ends when done.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
        }
        f()
    })
    .join()
    .map_err(|_| "the thread in the namespace panicked".to_string())?
}

/// Sets `net.*` sysctls (paths below /proc/sys) inside a namespace, and reads each back.
pub fn sysctls_in(namespace: &str, settings: &[(&str, &str)]) -> Result<(), String> {
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (format!("/proc/sys/{k}"), v.to_string()))
        .collect();
    in_namespace(namespace, move || {
        for (path, value) in &settings {
            std::fs::write(path, value).map_err(|e| format!("cannot write {path}: {e}"))?;
            let back = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            let normal = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
            if normal(&back) != normal(value) {
                return Err(format!("{path} reads {back:?} after writing {value:?}"));
            }
        }
        Ok(())
    })
}

/// The namespace's inode: the `netns` of its records.
pub fn netns_inode(namespace: &str) -> Result<u64, String> {
    let path = format!("/run/netns/{namespace}");
    std::fs::metadata(&path)
        .map(|m| m.ino())
        .map_err(|e| format!("cannot stat {path}: {e}"))
}

/// `count` (at most 16) ports of this test run's own, below the ephemeral range (so no
/// other test's kernel-chosen port is one of them) and apart from another run's (by pid):
/// 32 per run, slot 0 or 1.
pub fn own_ports(slot: u16, count: u16) -> Result<Vec<u16>, String> {
    if slot > 1 || count > 16 {
        return Err(format!(
            "own_ports: slot {slot}, {count} ports: at most 2 x 16"
        ));
    }
    let base = 20_000 + (std::process::id() % 380) as u16 * 32 + slot * 16;
    Ok((0..count).map(|n| base + n).collect())
}

/// What the "attached" line says the state maps hold: connects in flight, connections, MiB.
pub fn tracking(stderr: &str) -> Option<(u64, u64, f64)> {
    let rest = stderr.split("tracking up to ").nth(1)?;
    let conns = rest.split(' ').next()?.parse().ok()?;
    let rest = rest.split(" connects in flight and ").nth(1)?;
    let socks = rest.split(' ').next()?.parse().ok()?;
    let mib = rest
        .split("(~")
        .nth(1)?
        .split(" MiB")
        .next()?
        .parse()
        .ok()?;
    Some((conns, socks, mib))
}

/// What `conntrace check` says this machine's default holds: connects in flight, connections.
pub fn default_size() -> Result<(u64, u64), String> {
    let check = crate::tracer::run_to_end(&["check"])?;
    let text = String::from_utf8_lossy(&check.stdout.join(&b'\n')).into_owned();
    let numbers = || -> Option<(u64, u64)> {
        let line = text.lines().find(|l| l.starts_with("state maps"))?;
        let rest = line.split(": up to ").nth(1)?;
        let conns = rest.split(' ').next()?.parse().ok()?;
        let rest = rest.split(" connects in flight and ").nth(1)?;
        let socks = rest.split(' ').next()?.parse().ok()?;
        Some((conns, socks))
    };
    numbers().ok_or_else(|| format!("no state maps line in conntrace check:\n{text}"))
}

/// `args` as they are where this machine's default holds `need` connects in flight (or
/// connections, `sockets`), else with `--max-tracked` added, and a note saying so.
pub fn sized(
    args: &[&str],
    need: u64,
    sockets: bool,
) -> Result<(Vec<String>, Option<String>), String> {
    let (conns, socks) = default_size()?;
    let held = if sockets { socks } else { conns };
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    if held >= need {
        return Ok((args, None));
    }
    let size = need.next_power_of_two().to_string();
    let note = format!("this machine's default tracks {held}, below {need}: --max-tracked {size}");
    args.extend(["--max-tracked".to_string(), size]);
    Ok((args, Some(note)))
}

/// Waits until the tracer has printed `n` lines, or printed nothing new for `quiet` (a lost
/// record never comes): whether it got there.
pub fn wait_lines(tracer: &Tracer, n: usize, quiet: Duration) -> bool {
    let seen = std::cell::Cell::new(0);
    let mut last = (0, Instant::now());
    loop {
        if tracer.wait_for(Duration::from_millis(200), |lines| {
            seen.set(lines.len());
            lines.len() >= n
        }) {
            return true;
        }
        if seen.get() != last.0 {
            last = (seen.get(), Instant::now());
        } else if last.1.elapsed() >= quiet {
            return false;
        }
    }
}

/// A child process forked from the test process, to hold thousands of sockets of its own
/// (its own RLIMIT_NOFILE, its own pid as their owner). The child runs only system calls (no
/// allocation: its buffers are reserved before the fork; no locks, no output), reports
/// 8-byte words on one pipe and waits for a byte on another before each next step, and is
/// killed with the test process (PR_SET_PDEATHSIG) or when dropped.
pub struct Forked {
    pub pid: i32,
    commands: OwnedFd,
    reports: OwnedFd,
    reaped: bool,
}

/// The child's side of the pipes.
pub struct Steps {
    commands: RawFd,
    reports: RawFd,
}

/// A child's failure report: this bit, the step (a [`STEP_NAMES`] index) << 32, the errno.
const FAILED: u64 = 1 << 63;
pub const STEP_SETNS: u64 = 0;
pub const STEP_SOCKET: u64 = 1;
pub const STEP_CONNECT: u64 = 2;
pub const STEP_LISTEN: u64 = 3;
pub const STEP_ACCEPT: u64 = 4;
pub const STEP_CLOSE: u64 = 5;
const STEP_NAMES: [&str; 6] = [
    "setns",
    "socket",
    "connect",
    "bind/listen",
    "accept",
    "close",
];

/// The failure word for `step`, with the errno of the call that just failed.
pub fn failure(step: u64) -> u64 {
    // SAFETY: reads this thread's errno, no preconditions.
    let errno = unsafe { *libc::__errno_location() } as u32;
    FAILED | step << 32 | errno as u64
}

impl Steps {
    pub fn report(&self, word: u64) {
        let bytes = word.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our own pipe.
        unsafe { libc::write(self.reports, bytes.as_ptr().cast(), 8) };
    }

    /// Reports `word`, then waits for the parent's go.
    pub fn report_and_wait(&self, word: u64) {
        self.report(word);
        self.wait();
    }

    /// Blocks until the parent says go on; ends the child if the parent is gone.
    pub fn wait(&self) {
        let mut byte = 0u8;
        loop {
            // SAFETY: reads one byte into a live local from our own pipe.
            let n = unsafe { libc::read(self.commands, (&mut byte as *mut u8).cast(), 1) };
            match n {
                1 => return,
                // SAFETY: _exit ends the child without running the parent's destructors.
                0 => unsafe { libc::_exit(2) },
                _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
                // SAFETY: as above.
                _ => unsafe { libc::_exit(2) },
            }
        }
    }
}

/// In a child: its comm (at most 15 bytes, NUL-terminated here).
pub fn set_comm(name: &[u8; 16]) {
    // SAFETY: PR_SET_NAME reads at most 16 bytes from a live buffer that holds a NUL.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

/// RLIMIT_NOFILE of the test process (its forked children inherit it) raised toward `want`:
/// to `want` (at most fs.nr_open) where it may raise the hard limit (CAP_SYS_RESOURCE), else
/// the soft limit to the hard one. Returns how many sockets one child may then hold (the
/// limit, less room for the fds it inherits).
pub fn socket_room(want: u64) -> Result<usize, String> {
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes a live rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    let want = want.min(nr_open) as libc::rlim_t;
    let raised = libc::rlimit {
        rlim_cur: want.max(limit.rlim_cur),
        rlim_max: want.max(limit.rlim_max),
    };
    // SAFETY: setrlimit reads a live rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above; the soft limit up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
        }
    } else {
        limit = raised;
    }
    Ok((limit.rlim_cur as usize).saturating_sub(256))
}

/// `total` sockets in as few processes as `room` each allows, at least `min`: the count of
/// each.
pub fn split(total: usize, room: usize, min: usize) -> Vec<usize> {
    let processes = total.div_ceil(room.max(1)).max(min);
    (0..processes)
        .map(|n| total / processes + usize::from(n < total % processes))
        .collect()
}

/// In a child: into the network namespace whose fd the parent opened before the fork.
pub fn enter(ns: RawFd) -> Result<(), u64> {
    // SAFETY: setns on an inherited namespace fd; the child has one thread.
    if unsafe { libc::setns(ns, libc::CLONE_NEWNET) } != 0 {
        return Err(failure(STEP_SETNS));
    }
    Ok(())
}

/// 127.0.0.1 or another IPv4 address and a port, for bind and connect.
pub fn sockaddr_v4(addr: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr),
        },
        sin_zero: [0; 8],
    }
}

/// A new IPv4 TCP socket, close-on-exec, with `flags` added (SOCK_NONBLOCK), or -1 with
/// errno set. Allocates nothing: children call it.
pub fn tcp4_socket(flags: libc::c_int) -> RawFd {
    // SAFETY: a plain socket() call; the caller owns the fd it returns.
    unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | flags,
            0,
        )
    }
}

/// connect(2) of `fd` to `addr`: its return value, errno set on -1.
pub fn connect_v4(fd: RawFd, addr: &libc::sockaddr_in) -> libc::c_int {
    // SAFETY: addr is a valid sockaddr_in of the length passed; fd is the caller's.
    unsafe {
        libc::connect(
            fd,
            (addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    }
}

/// In a child: closes every fd of `fds`.
pub fn close_all(fds: &[RawFd]) -> Result<(), u64> {
    for &fd in fds {
        // SAFETY: each fd is one this child opened and closes once.
        if unsafe { libc::close(fd) } != 0 {
            return Err(failure(STEP_CLOSE));
        }
    }
    Ok(())
}

impl Forked {
    /// Forks; the child runs `work` and exits 0, or reports its failure word and exits 1.
    pub fn spawn(work: impl FnOnce(&Steps) -> Result<(), u64>) -> Result<Forked, String> {
        let pipe = || -> Result<(OwnedFd, OwnedFd), String> {
            let mut fds = [0; 2];
            // SAFETY: pipe2 writes two fds into a live array.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
                return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
            }
            // SAFETY: both fds were just returned by pipe2 and are owned by nothing else.
            Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
        };
        let (command_read, command_write) = pipe()?;
        let (report_read, report_write) = pipe()?;
        // SAFETY: the child runs `work`, which makes only system calls into memory reserved
        // before the fork, then _exit; the parent goes on as before.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: asks for SIGKILL when the parent dies; no preconditions.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
            let steps = Steps {
                commands: command_read.as_raw_fd(),
                reports: report_write.as_raw_fd(),
            };
            let code = match work(&steps) {
                Ok(()) => 0,
                Err(word) => {
                    steps.report(word);
                    1
                }
            };
            // SAFETY: ends the child without running the parent's destructors or atexit.
            unsafe { libc::_exit(code) };
        }
        Ok(Forked {
            pid,
            commands: command_write,
            reports: report_read,
            reaped: false,
        })
    }

    /// The child's next report, within `timeout`; a failure word or an early exit is an error.
    pub fn expect(&mut self, what: &str, timeout: Duration) -> Result<u64, String> {
        let mut poll = libc::pollfd {
            fd: self.reports.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // SAFETY: polls one live pollfd.
            let n = unsafe { libc::poll(&mut poll, 1, left.as_millis().min(60_000) as i32) };
            if n > 0 {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "child {} did not report {what} within {} s",
                    self.pid,
                    timeout.as_secs()
                ));
            }
        }
        let mut bytes = [0u8; 8];
        // SAFETY: reads up to 8 bytes into a live buffer; the child writes 8 at once (atomic).
        let n = unsafe { libc::read(self.reports.as_raw_fd(), bytes.as_mut_ptr().cast(), 8) };
        if n != 8 {
            let status = self.reap(Duration::from_secs(5));
            return Err(format!(
                "child {} ended ({status}) before reporting {what}",
                self.pid
            ));
        }
        let word = u64::from_ne_bytes(bytes);
        if word & FAILED != 0 {
            let step = ((word >> 32) & 0x7fff_ffff) as usize;
            let errno = std::io::Error::from_raw_os_error(word as u32 as i32);
            return Err(format!(
                "child {} failed at {} before {what}: {errno}",
                self.pid,
                STEP_NAMES.get(step).copied().unwrap_or("?")
            ));
        }
        Ok(word)
    }

    /// Lets the child go on to its next step.
    pub fn tell(&self) -> Result<(), String> {
        // SAFETY: writes one byte from a live local to our own pipe.
        let n = unsafe { libc::write(self.commands.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        if n != 1 {
            return Err(format!(
                "cannot tell child {}: {}",
                self.pid,
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// Lets the child end and checks it exits 0.
    pub fn finish(mut self) -> Result<(), String> {
        self.tell()?;
        match self.reap(Duration::from_secs(30)) {
            status if status == "exit 0" => Ok(()),
            status => Err(format!("child {} ended with {status}", self.pid)),
        }
    }

    /// Waits up to `timeout` for the child to exit (then kills it): how it ended.
    fn reap(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child, not yet reaped, without blocking.
            let n = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if n == self.pid {
                self.reaped = true;
                return if libc::WIFEXITED(status) {
                    format!("exit {}", libc::WEXITSTATUS(status))
                } else {
                    format!("signal {}", libc::WTERMSIG(status))
                };
            }
            if n < 0 || Instant::now() >= deadline {
                self.kill();
                return "killed: did not exit in time".into();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        if !self.reaped {
            // SAFETY: our own child, not reaped yet, so its pid is not reused.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let mut status = 0;
            // SAFETY: reaps our own child.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
            self.reaped = true;
        }
    }
}

impl Drop for Forked {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A JSON line's members the tests below read.
pub struct Line {
    pub value: Value,
}

impl Line {
    pub fn parse(line: &[u8]) -> Result<Line, String> {
        let text = String::from_utf8_lossy(line);
        let value = json::parse(&text)?;
        if !matches!(value, Value::Object(_)) {
            return Err(format!("not a JSON object: {text}"));
        }
        Ok(Line { value })
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.value.get(key).and_then(Value::as_str)
    }

    pub fn num(&self, key: &str) -> Option<u64> {
        self.value.get(key).and_then(Value::as_u64)
    }

    pub fn is_null(&self, key: &str) -> bool {
        self.value.get(key).is_some_and(Value::is_null)
    }
}

/// The kernel's own count of probe runs it skipped (another BPF program was running on that
/// CPU): conntrace reports it as lost with reason `skipped` at exit. A skip may have been any
/// state change, ours or another's, so it only bounds how many records it cost.
pub const SKIPPED: &str = "skipped";
/// The sockets the kernel freed without running any BPF program, which perf counted:
/// conntrace reports them as lost with reason `undelivered`. Any socket's free counts, so it
/// too only bounds how many records it cost.
pub const UNDELIVERED: &str = "undelivered";

/// The TCP sockets of process `pid`'s network namespace (its /proc/PID/net/tcp) with an end
/// on one of `ports`, by kernel state (2 SYN_SENT, 6 TIME_WAIT, ...): what the kernel still
/// holds when records are missing says whether they were late or lost.
pub fn tcp_states(
    pid: i32,
    ports: &[u16],
) -> Result<std::collections::BTreeMap<u8, usize>, String> {
    let path = format!("/proc/{pid}/net/tcp");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let port_of = |end: &str| {
        end.split_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    let mut states = std::collections::BTreeMap::new();
    for line in text.lines().skip(1) {
        let mut words = line.split_whitespace().skip(1);
        let (Some(local), Some(remote), Some(state)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let ours = [local, remote]
            .iter()
            .any(|end| port_of(end).is_some_and(|p| ports.contains(&p)));
        if let (true, Ok(state)) = (ours, u8::from_str_radix(state, 16)) {
            *states.entry(state).or_insert(0) += 1;
        }
    }
    Ok(states)
}

/// The lost counts: those of reasons [`SKIPPED`] and [`UNDELIVERED`], which the kernel
/// caused, and all others.
pub fn skipped_and_other(lost: &[(String, u64)]) -> (u64, u64) {
    lost.iter().fold((0, 0), |(skipped, other), (reason, n)| {
        if reason == SKIPPED || reason == UNDELIVERED {
            (skipped + n, other)
        } else {
            (skipped, other + n)
        }
    })
}

/// Sums the `lost` records by reason.
pub fn add_lost(line: &Line, lost: &mut Vec<(String, u64)>) {
    let reason = line.str("reason").unwrap_or("?").to_string();
    let n = line.num("count").unwrap_or(0);
    match lost.iter_mut().find(|(r, _)| *r == reason) {
        Some(entry) => entry.1 += n,
        None => lost.push((reason, n)),
    }
}

// ---------------------------------------------------------------------------------------------
// The storm: 40,000 connects in flight at once, at the default size.

/// Connects in flight at once, from at least this many processes (more where RLIMIT_NOFILE
/// cannot be raised past ~20,000).
const STORM_CONNECTS: usize = 40_000;
const STORM_PROCESSES: usize = 2;
/// Each SYN is retransmitted once: ETIMEDOUT after ~2 s (the first backoffs are linear since
/// 6.5) or ~3 s (exponential).
const STORM_SYN_RETRIES: &str = "1";

/// In a child: `n` non-blocking connects to the dropping peer's `port`, each EINPROGRESS;
/// reports `n`, then holds the sockets until told to end.
fn storm_child(
    steps: &Steps,
    ns: RawFd,
    port: u16,
    n: usize,
    fds: &mut Vec<RawFd>,
) -> Result<(), u64> {
    set_comm(b"ct-storm\0\0\0\0\0\0\0\0");
    enter(ns)?;
    let addr = sockaddr_v4(TARGET, port);
    for _ in 0..n {
        let fd = tcp4_socket(libc::SOCK_NONBLOCK);
        if fd < 0 {
            return Err(failure(STEP_SOCKET));
        }
        fds.push(fd); // reserved: no allocation
        let ret = connect_v4(fd, &addr);
        // SAFETY: reads this thread's errno.
        if ret == 0 || unsafe { *libc::__errno_location() } != libc::EINPROGRESS {
            return Err(failure(STEP_CONNECT));
        }
    }
    steps.report_and_wait(n as u64);
    Ok(())
}

/// The storm: two processes each start 20,000 non-blocking connects at once to a peer that
/// drops every SYN (`tcp_syn_retries` 1 in the client namespace, so each ends in ETIMEDOUT
/// within seconds), traced at the default size: every connect has its connect record and its
/// `failed` ETIMEDOUT record, with its owner, and nothing is lost.
pub fn storm_every_connect_in_flight_has_its_outcome() -> Result<(), String> {
    let started = Instant::now();
    let total = STORM_CONNECTS;
    let each = split(total, socket_room(total as u64 / 2 + 512)?, STORM_PROCESSES);
    let namespaces = Namespaces::create()?;
    // 64,512 local ports per destination, so the kernel never hunts for a free one.
    sysctls_in(
        &namespaces.client,
        &[
            ("net/ipv4/tcp_syn_retries", STORM_SYN_RETRIES),
            ("net/ipv4/ip_local_port_range", "1024 65535"),
        ],
    )?;
    let netns = netns_inode(&namespaces.client)?;
    let ports = own_ports(0, each.len() as u16)?;
    let port_list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    // 16 MiB of ring per CPU: room for every record of the burst, so the maps are tested.
    let (args, note) = sized(
        &[
            "--json",
            "-e",
            "connect,failed",
            "-P",
            &port_list,
            "--pages",
            "4096",
        ],
        total as u64,
        false,
    )?;
    let tracer = Tracer::attached(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let ns_path = format!("/run/netns/{}", namespaces.client);
    let ns = std::fs::File::open(&ns_path).map_err(|e| format!("{ns_path}: {e}"))?;
    let connecting = Instant::now();
    let mut children = Vec::new();
    for (&port, &n) in ports.iter().zip(&each) {
        let mut fds = Vec::with_capacity(n);
        let raw = ns.as_raw_fd();
        children.push(Forked::spawn(move |steps| {
            storm_child(steps, raw, port, n, &mut fds)
        })?);
    }
    let owners: HashMap<u16, u64> = ports
        .iter()
        .zip(&children)
        .map(|(&port, child)| (port, child.pid as u64))
        .collect();
    for child in &mut children {
        child.expect("its connects", Duration::from_secs(60))?;
    }
    let connected = connecting.elapsed();
    // Every connect has two records; nothing else is on these ports. The outcomes come
    // seconds after the connects: a quiet spell shorter than that would not do.
    wait_lines(&tracer, 2 * total, Duration::from_secs(10));
    let outcomes = connecting.elapsed();
    // Sockets the kernel still has connecting would be late, not lost.
    let in_kernel = tcp_states(children[0].pid, &ports)?;
    std::thread::sleep(Duration::from_millis(300));
    for child in children {
        child.finish()?;
    }
    let finished = tracer.interrupt()?;
    drop(namespaces);
    let stated = tracking(&finished.stderr_text())
        .ok_or_else(|| format!("no 'tracking up to' on stderr:\n{}", finished.stderr_text()))?;

    let mut connects = HashSet::new();
    let mut failed = HashSet::new();
    let mut latency_max = 0;
    let mut lost = Vec::new();
    let mut wrong = Vec::new();
    for raw in &finished.stdout {
        let line = Line::parse(raw)?;
        let event = line.str("event");
        if event == Some("lost") {
            add_lost(&line, &mut lost);
            continue;
        }
        if line.num("netns") != Some(netns) {
            continue;
        }
        let key = (
            line.num("rport").unwrap_or(0) as u16,
            line.num("lport").unwrap_or(0),
        );
        let owner = owners.get(&key.0).copied();
        let good_owner = owner.is_some() && line.num("pid") == owner;
        let good_addr =
            line.str("raddr") == Some(TARGET_TEXT) && line.str("laddr") == Some("10.200.71.1");
        match event {
            Some("connect") if good_owner && good_addr && line.is_null("error") => {
                if !connects.insert(key) {
                    wrong.push(format!("connect twice: {}", String::from_utf8_lossy(raw)));
                }
            }
            Some("failed") if good_owner && good_addr && line.str("error") == Some("ETIMEDOUT") => {
                latency_max = latency_max.max(line.num("latency_us").unwrap_or(0));
                if !failed.insert(key) {
                    wrong.push(format!("failed twice: {}", String::from_utf8_lossy(raw)));
                }
            }
            _ => wrong.push(format!("unexpected: {}", String::from_utf8_lossy(raw))),
        }
    }
    let without_outcome = connects.difference(&failed).count();
    let without_connect = failed.difference(&connects).count();
    // Records missing are at most what the kernel says it skipped; nothing else is lost.
    let (skipped, lost_other) = skipped_and_other(&lost);
    let missing = (2 * total).saturating_sub(connects.len() + failed.len()) as u64;
    let summary = format!(
        "{total} connects in flight from {} processes (tracking up to {} at \
         ~{:.1} MiB{}): {} connect and {} failed ETIMEDOUT records, lost {lost:?}; connects \
         made in {:.1} s, outcomes by {:.1} s (latency up to {:.1} s), {:.1} s in all; \
         sockets the kernel had then, by state: {in_kernel:?}",
        each.len(),
        stated.0,
        stated.2,
        note.as_deref()
            .map(|n| format!("; {n}"))
            .unwrap_or_default(),
        connects.len(),
        failed.len(),
        connected.as_secs_f64(),
        outcomes.as_secs_f64(),
        latency_max as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    if missing > skipped
        || without_outcome + without_connect > skipped as usize
        || lost_other != 0
        || !wrong.is_empty()
    {
        wrong.truncate(5);
        return Err(format!(
            "want {total} connects each with its failed ETIMEDOUT, 0 lost (but for what the \
             kernel skipped): {summary}; \
             {without_outcome} connects without an outcome, {without_connect} outcomes \
             without a connect; first wrong records: {wrong:#?}; stderr:\n{}",
            finished.stderr_text()
        ));
    }
    println!("    {summary}");
    Ok(())
}
