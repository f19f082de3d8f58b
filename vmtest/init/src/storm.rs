//! Accepts and connects at once, the way servers and retry storms make them: a server whose
//! threads are already blocked in accept() when conntrace starts (one on the first port,
//! forty on the second), and a client whose forty threads connect at the same moment.
//!
//! `ct-acceptor` and `ct-storm-client` are this same binary; they report every accept and
//! connect as `acc=TID:LPORT:PEERPORT` and `con=TID:LPORT:RPORT` facts for the EXPECT line.

use crate::lines::{finish_child, Lines, Next};
use crate::report::{one_line, say};
use crate::system::gettid;
use crate::tracer::{self, Finish, Launch, Stdout};
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

pub const ACCEPTOR_COMM: &str = "ct-acceptor";
pub const CLIENT_COMM: &str = "ct-storm-client";
/// Threads blocked on the second port (the first has one).
pub const THREADS: usize = 40;
/// Generous under TCG emulation, but bounded.
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// The kprobe fallback forced, with room for one call at once: the other accepts are
/// misses the kernel counts, which conntrace must report as lost.
pub const FORCE_MISSES: [(&str, &str); 2] = [
    ("CONNTRACE_ACCEPT_HOOK", "inet_csk_accept"),
    ("CONNTRACE_KRETPROBE_MAXACTIVE", "1"),
];

/// `storm-BACKEND`: the server blocks first, then conntrace starts, then the client storms.
pub fn blocked_before(backend: &str, port: u16) {
    let run = format!("storm-{backend}");
    let server = match start_acceptor(port, 1) {
        Ok(s) => s,
        Err(e) => return say("SCENARIO_ERROR", &format!("{run} {}", one_line(&e))),
    };
    let args = ["--json", "--backend", backend, "-P", &ports(port)];
    let launch = Launch {
        run: &run,
        args: &args,
        env: &[],
        stdout: Stdout::Pipe,
        uid: None,
        list_kprobes_while_attached: false,
    };
    let running = tracer::launch(&launch);
    report(
        &run,
        port,
        run_client(port, 1).and_then(|c| server.finish(c)),
    );
    if let Some(r) = running {
        r.finish(Finish::Signal(libc::SIGINT), &|| {});
    }
}

/// `storm-kprobe-misses`: conntrace first (so every accept call enters after the return
/// probe is registered), then forty blocked threads, then forty clients.
pub fn forced_misses(port: u16) {
    let run = "storm-kprobe-misses";
    let args = ["--json", "--backend", "kprobe", "-P", &ports(port)];
    let launch = Launch {
        run,
        args: &args,
        env: &FORCE_MISSES,
        stdout: Stdout::Pipe,
        uid: None,
        list_kprobes_while_attached: false,
    };
    let running = tracer::launch(&launch);
    let facts = start_acceptor(port, 0)
        .and_then(|server| run_client(port, 0).and_then(|c| server.finish(c)));
    report(run, port, facts);
    if let Some(r) = running {
        r.finish(Finish::Signal(libc::SIGINT), &|| {});
    }
}

fn ports(port: u16) -> String {
    format!("{port},{}", port + 1)
}

fn report(run: &str, port: u16, facts: Result<Vec<String>, String>) {
    match facts {
        Ok(facts) => say(
            "EXPECT",
            &format!("{run} port={port} threads={THREADS} {}", facts.join(" ")),
        ),
        Err(e) => say("SCENARIO_ERROR", &format!("{run} {}", one_line(&e))),
    }
}

struct Acceptor {
    child: Child,
    out: Lines,
}

/// Starts the server and waits until every one of its threads is blocked in accept().
fn start_acceptor(port: u16, first: usize) -> Result<Acceptor, String> {
    let mut child = Command::new("/proc/self/exe")
        .args([ACCEPTOR_COMM, &port.to_string(), &first.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the acceptor: {e}"))?;
    let pipe = child.stdout.take().ok_or("the acceptor has no stdout")?;
    let mut out = Lines::spawn(pipe);
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        match out.next_until(deadline) {
            Next::Line(l) if l == "ready" => break,
            Next::Line(_) => {}
            Next::Eof | Next::Timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the acceptor did not get ready; it said: {}",
                    out.seen.join(" | ")
                ));
            }
        }
    }
    // Blocked means in accept4 right now, for every thread but the main one.
    let pid = child.id();
    let want = first + THREADS;
    loop {
        let blocked = threads_in_accept(pid);
        if blocked == want {
            return Ok(Acceptor { child, out });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "only {blocked} of {want} acceptor threads blocked in accept()"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many threads of `pid` are inside accept4 (from /proc/PID/task/TID/syscall).
fn threads_in_accept(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| {
            std::fs::read_to_string(t.path().join("syscall"))
                .is_ok_and(|s| s.split_whitespace().next() == Some(&libc::SYS_accept4.to_string()))
        })
        .count()
}

impl Acceptor {
    /// Waits for every accept to be reported; the facts of both sides together.
    fn finish(self, client: Vec<String>) -> Result<Vec<String>, String> {
        let Acceptor { mut child, out } = self;
        let (status, lines) = finish_child(&mut child, out, STEP_LIMIT);
        match status {
            Some(s) if s.success() => Ok(lines
                .into_iter()
                .filter(|l| l.contains('='))
                .chain(client)
                .collect()),
            _ => Err(format!(
                "the acceptor failed or hung; it said: {}",
                lines.join(" | ")
            )),
        }
    }
}

fn run_client(port: u16, first: usize) -> Result<Vec<String>, String> {
    let mut child = Command::new("/proc/self/exe")
        .args([CLIENT_COMM, &port.to_string(), &first.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the storm client: {e}"))?;
    let out = Lines::spawn(
        child
            .stdout
            .take()
            .ok_or("the storm client has no stdout")?,
    );
    let (status, lines) = finish_child(&mut child, out, STEP_LIMIT);
    match status {
        Some(s) if s.success() => Ok(lines.into_iter().filter(|l| l.contains('=')).collect()),
        _ => Err(format!(
            "the storm client failed or hung; it said: {}",
            lines.join(" | ")
        )),
    }
}

fn emit(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn name_thread(comm: &str) -> io::Result<()> {
    let name = std::ffi::CString::new(comm).map_err(|_| io::Error::other("NUL in comm"))?;
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes; name is one.
    if unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn arg(args: &[String], i: usize) -> io::Result<u16> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| io::Error::other(format!("missing or bad argument {i}")))
}

/// `ct-acceptor PORT FIRST`: FIRST threads accept once on PORT, THREADS threads once on
/// PORT+1; each reports `acc=TID:LPORT:PEERPORT`.
pub fn acceptor_main(args: &[String]) -> io::Result<()> {
    let port = arg(args, 0)?;
    let first = usize::from(arg(args, 1)?);
    name_thread(ACCEPTOR_COMM)?;
    let one = Arc::new(TcpListener::bind(("127.0.0.1", port))?);
    let many = Arc::new(TcpListener::bind(("127.0.0.1", port + 1))?);
    emit(&format!("acceptor_pid={}", std::process::id()));
    let mut threads = Vec::new();
    for i in 0..first + THREADS {
        let listener = Arc::clone(if i < first { &one } else { &many });
        // No Builder::name: that would rename the thread and change its comm.
        threads.push(std::thread::spawn(move || -> io::Result<String> {
            let tid = gettid();
            let (conn, peer) = listener.accept()?;
            let local = conn.local_addr()?.port();
            Ok(format!("acc={tid}:{local}:{}", peer.port()))
        }));
    }
    emit("ready");
    for t in threads {
        let fact = t
            .join()
            .map_err(|_| io::Error::other("acceptor thread panicked"))??;
        emit(&fact);
    }
    Ok(())
}

/// `ct-storm-client PORT FIRST`: FIRST connects to PORT, then THREADS threads connect to
/// PORT+1 at the same moment; each reports `con=TID:LPORT:RPORT`.
pub fn client_main(args: &[String]) -> io::Result<()> {
    let port = arg(args, 0)?;
    let first = usize::from(arg(args, 1)?);
    name_thread(CLIENT_COMM)?;
    emit(&format!("storm_client_pid={}", std::process::id()));
    let connect = |to: u16| -> io::Result<(String, TcpStream)> {
        let c = TcpStream::connect(("127.0.0.1", to))?;
        Ok((
            format!("con={}:{}:{to}", gettid(), c.local_addr()?.port()),
            c,
        ))
    };
    let mut open = Vec::new();
    for _ in 0..first {
        let (fact, c) = connect(port)?;
        emit(&fact);
        open.push(c);
    }
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                connect(port + 1)
            })
        })
        .collect();
    for t in threads {
        let (fact, c) = t
            .join()
            .map_err(|_| io::Error::other("client thread panicked"))??;
        emit(&fact);
        open.push(c);
    }
    Ok(())
}
