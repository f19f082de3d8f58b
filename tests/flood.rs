//! A connection flood against conntrace with its output going to a deliberately slow reader:
//! every event is either printed or reported lost (printed + lost = generated, exactly), memory
//! stays bounded (peak RSS) and flat (RSS at the end close to RSS after warm-up), and
//! conntrace keeps running and exits cleanly on SIGINT.
//!
//! `cargo test --release --test flood` runs the short CI version (10 s, as root);
//! `-- --seconds N` runs it for N seconds (scripts/soak.sh does, 60 s by default), half of
//! them through each ring.
//! The load: client threads connect to a loopback listener as fast as they can and close at
//! once with a reset (SO_LINGER 0, so no TIME_WAIT runs out the ports); a server thread
//! accepts and closes. Generated events: connect + established per successful connect, one
//! accept per accept() that returned, and two closes per connection (each end's; the server's
//! end often closes before its accept, reset by the client, and then has no owner).

#[path = "common/linger.rs"]
mod linger;
#[path = "common/root.rs"]
mod root;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const DEFAULT_SECONDS: u64 = 10;
/// Each ring's share of the seconds is at least this: the warm-up and two RSS samples.
const MIN_RING_SECONDS: u64 = 4;
const CLIENTS: usize = 2;
/// The slow reader takes this much of conntrace's output at a time...
const READ_CHUNK: usize = 4096;
/// ...and then naps this long: about 400 KB/s, far below what the flood produces.
const READ_NAP: Duration = Duration::from_millis(10);
/// Peak resident memory conntrace may reach (VmHWM).
const MAX_PEAK_KB: u64 = 16 * 1024;
/// How much RSS may grow from the sample after warm-up to the last one.
const RSS_MARGIN_KB: u64 = 512;
const WARM_UP: Duration = Duration::from_secs(2);
/// Of this many events one may be missing without a count: the kernel's, not the rings' (see
/// `flood`).
const UNDELIVERED_PER: u64 = 100_000;

fn main() {
    let seconds = match parse_seconds(std::env::args().skip(1)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("flood: {e}");
            std::process::exit(2);
        }
    };
    if !root::root_or_skip("flood") {
        return;
    }
    let mut failed = false;
    for (ring, name) in RINGS {
        let share = (seconds / RINGS.len() as u64).max(MIN_RING_SECONDS);
        match flood(Duration::from_secs(share), ring, name) {
            Ok(verdict) => {
                println!("flood ({share} s, {name}) ... ok\n{verdict}");
            }
            Err(e) => {
                println!(
                    "flood ({share} s, {name}) ... FAILED\n    {}",
                    e.replace('\n', "\n    ")
                );
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}

/// Each ring conntrace can send records through (CONNTRACE_RING), each flooded in turn: the
/// BPF ring buffer counts its full-ring drops only in the probes, the perf rings also in LOST
/// records.
const RINGS: [(&str, &str); 2] = [("ringbuf", "the BPF ring buffer"), ("perf", "perf rings")];

/// `--seconds N`; cargo's own flags (--nocapture, ...) and test filters are ignored.
fn parse_seconds(mut args: impl Iterator<Item = String>) -> Result<u64, String> {
    let mut seconds = DEFAULT_SECONDS;
    while let Some(arg) = args.next() {
        if arg == "--seconds" {
            let value = args.next().ok_or("--seconds needs a number")?;
            seconds = value
                .parse()
                .ok()
                .filter(|&s| s >= 3)
                .ok_or(format!("--seconds {value}: want a whole number >= 3"))?;
        }
    }
    Ok(seconds)
}

/// What the slow reader found in conntrace's JSON output.
#[derive(Debug, Default)]
struct Output {
    events: u64,
    lost: u64,
    /// Of `lost`: probe runs the kernel skipped (reason "skipped") and sockets it freed
    /// without running a program (reason "undelivered"), each of which may or may not have
    /// been one of the flood's records.
    skipped: u64,
    /// Printed records by kind, and lost ones by reason: what the verdict shows, so that a
    /// failure says where the difference lies.
    kinds: std::collections::BTreeMap<String, u64>,
    /// Lines that are neither connect, established, accept nor lost.
    other: Vec<String>,
}

fn flood(duration: Duration, ring: &str, name: &str) -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    // A deep accept queue, so the server keeps up instead of dropping handshakes.
    // SAFETY: listen on a socket we own; raising the backlog of a listening socket is allowed.
    unsafe { libc::listen(listener.as_raw_fd(), 4096) };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let port = addr.port().to_string();

    let mut conntrace = Conntrace::start(&["--json", "-P", &port, "--pages", "1"], ring)?;
    let pid = conntrace.pid();

    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let server = {
        let (stop, accepted) = (stop.clone(), accepted.clone());
        thread::spawn(move || serve(listener, &stop, &accepted))
    };
    let deadline = Instant::now() + duration;
    let clients: Vec<JoinHandle<Result<u64, String>>> = (0..CLIENTS)
        .map(|_| thread::spawn(move || connect_until(addr, deadline)))
        .collect();

    // Memory, once a second while the flood runs.
    let started = Instant::now();
    let mut rss = Vec::new();
    while Instant::now() < deadline {
        thread::sleep(Duration::from_secs(1));
        rss.push((started.elapsed(), memory_kb(pid, "VmRSS")?));
    }
    let mut connected = 0;
    for client in clients {
        connected += client.join().map_err(|_| "a client thread panicked")??;
    }
    // Let the server take what is still queued, then stop it.
    stop.store(true, Ordering::Relaxed);
    server.join().map_err(|_| "the server thread panicked")?;
    let accepted = accepted.load(Ordering::Relaxed);
    let peak_kb = memory_kb(pid, "VmHWM")?;

    let (status, output, stderr) = conntrace.interrupt()?;
    if status.code() != Some(0) {
        return Err(format!("conntrace ended with {status}; stderr:\n{stderr}"));
    }
    let (summary_events, summary_lost) = summary(&stderr)?;

    let generated = 4 * connected + accepted;
    let printed = output.events;
    let verdict = format!(
        "generated {generated} events ({connected} connects, {accepted} accepts); \
         printed {printed}, lost {} (summary: {summary_events} events, {summary_lost} lost; \
         by kind {:?}); peak RSS {peak_kb} kB; RSS each second (kB): {:?}",
        output.lost,
        output.kinds,
        rss.iter().map(|(_, kb)| kb).collect::<Vec<_>>()
    );
    let fail = |why: String| Err(format!("{why}\n{verdict}\nconntrace stderr:\n{stderr}"));
    if !stderr.contains(&format!("records through {name} (")) {
        return fail(format!("not through {name}"));
    }
    if !output.other.is_empty() {
        return fail(format!("unexpected records: {:?}", output.other));
    }
    if printed != summary_events || output.lost != summary_lost {
        return fail("the summary line disagrees with the output".into());
    }
    // Exact, but for the kernel's skipped runs and unseen frees: a skip of a state change the
    // flood did not make (another socket's) is counted too, and so is the free of a socket
    // whose records were all made, so lost may exceed what the flood lost by them. Short, but
    // for state changes the kernel ran no program for while it still ran the destroy program
    // at the socket's free (those are not counted): Linux 6.18 was seen to deliver a few in a
    // million of the flood's to no BPF program at all (docs/kernel-features.md). The allowance could hide a ring that loses one record in 100,000
    // uncounted; the readers' unit tests, the exact lower-rate host tests and detach_all's
    // test (nothing sent after the last drain) hold that. Too many is always a failure.
    let exact = output.lost - output.skipped;
    let undelivered = generated.div_ceil(UNDELIVERED_PER);
    if printed + exact > generated || printed + output.lost + undelivered < generated {
        return fail(format!(
            "printed + lost = {} ({} of them skipped runs) but {generated} events happened \
             (at most {undelivered} may be missing, undelivered by the kernel)",
            printed + output.lost,
            output.skipped
        ));
    }
    if output.lost == 0 || printed == 0 {
        return fail("the flood did not overflow the rings: the test proves nothing".into());
    }
    if peak_kb > MAX_PEAK_KB {
        return fail(format!("peak RSS {peak_kb} kB is over {MAX_PEAK_KB} kB"));
    }
    let warm = rss
        .iter()
        .find(|(t, _)| *t >= WARM_UP)
        .map(|&(_, kb)| kb)
        .ok_or("no RSS sample after warm-up")?;
    let last = rss.last().map_or(warm, |&(_, kb)| kb);
    if last > warm + RSS_MARGIN_KB {
        return fail(format!(
            "RSS grew from {warm} kB after warm-up to {last} kB (margin {RSS_MARGIN_KB} kB)"
        ));
    }
    Ok(verdict)
}

/// Connects as fast as it can until `deadline`; returns how many connects succeeded. A failed
/// connect would generate events of its own, so it fails the test instead.
fn connect_until(addr: SocketAddr, deadline: Instant) -> Result<u64, String> {
    let mut ok = 0;
    while Instant::now() < deadline {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        // A reset leaves no TIME_WAIT behind to run out the ports.
        linger::reset_on_close(&stream)?;
        ok += 1;
    }
    Ok(ok)
}

/// Accepts until `stop` is set and nothing arrived for half a second.
fn serve(listener: TcpListener, stop: &AtomicBool, accepted: &AtomicU64) {
    let mut pfd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for a socket that `listener` keeps open.
        let ready = unsafe { libc::poll(&mut pfd, 1, 500) };
        if ready == 0 && stop.load(Ordering::Relaxed) {
            return;
        }
        if ready == 1 {
            // A plain close: a reset here could reach a client still inside connect() and
            // fail it (ECONNRESET after established). The client's reset ends it either way.
            if listener.accept().is_ok() {
                accepted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A `/proc/PID/status` memory field in kB.
fn memory_kb(pid: u32, key: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
        .ok_or(format!("no {key} in /proc/{pid}/status"))
}

/// "conntrace: N events, M lost" -> (N, M).
fn summary(stderr: &str) -> Result<(u64, u64), String> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("conntrace: ")?.strip_suffix(" lost"))
        .ok_or(format!("no summary line on stderr:\n{stderr}"))?;
    let (events, lost) = line
        .split_once(" events, ")
        .ok_or(format!("summary line {line:?}"))?;
    let number = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("summary line {line:?}"))
    };
    Ok((number(events)?, number(lost)?))
}

/// The binary under test; CONNTRACE_TEST_BIN points at another build of it.
fn binary() -> String {
    std::env::var("CONNTRACE_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_conntrace").into())
}

/// conntrace with a slow reader on stdout and a collector on stderr.
struct Conntrace {
    child: Child,
    reader: Option<JoinHandle<Output>>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Conntrace {
    fn start(args: &[&str], ring: &str) -> Result<Conntrace, String> {
        let mut child = Command::new(binary())
            .args(args)
            .env("CONNTRACE_RING", ring)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary()))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let stderr_pipe = child.stderr.take().ok_or("no stderr pipe")?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = {
            let stderr = stderr.clone();
            thread::spawn(move || {
                for line in BufReader::new(stderr_pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut all = stderr.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            })
        };
        let mut conntrace = Conntrace {
            child,
            reader: Some(thread::spawn(move || read_slowly(stdout))),
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !conntrace
            .stderr
            .lock()
            .unwrap()
            .contains("conntrace: attached")
        {
            if let Ok(Some(status)) = conntrace.child.try_wait() {
                thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "conntrace exited ({status}) before attaching; stderr:\n{}",
                    conntrace.stderr.lock().unwrap()
                ));
            }
            if Instant::now() > deadline {
                return Err("conntrace did not attach within 20 s".into());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(conntrace)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, then wait (the slow reader still has to take the rest) up to a minute.
    fn interrupt(&mut self) -> Result<(std::process::ExitStatus, Output, String), String> {
        // SAFETY: kill() on our own child, not yet reaped, so the pid is not reused.
        unsafe { libc::kill(self.pid() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "conntrace still running 60 s after SIGINT; stderr:\n{}",
                    self.stderr.lock().unwrap()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        };
        let output = self
            .reader
            .take()
            .ok_or("already interrupted")?
            .join()
            .map_err(|_| "the stdout reader panicked")?;
        if let Some(r) = self.stderr_reader.take() {
            let _ = r.join();
        }
        let stderr = self.stderr.lock().unwrap().clone();
        Ok((status, output, stderr))
    }
}

impl Drop for Conntrace {
    fn drop(&mut self) {
        // A failed test must not leave a tracer attached.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Takes READ_CHUNK bytes, naps, and so on to the end; counts what the lines say.
fn read_slowly(mut stdout: impl Read) -> Output {
    let mut output = Output::default();
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = match stdout.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            count_line(&String::from_utf8_lossy(&line), &mut output);
        }
        thread::sleep(READ_NAP);
    }
    if !pending.is_empty() {
        count_line(&String::from_utf8_lossy(&pending), &mut output);
    }
    output
}

fn count_line(line: &str, output: &mut Output) {
    let line = line.trim_end();
    let kind = line
        .split_once("\"event\":\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(kind, _)| kind);
    let mut tally = |key: &str, n: u64| *output.kinds.entry(key.to_string()).or_default() += n;
    match kind {
        Some(kind @ ("connect" | "established" | "accept")) if line.contains("\"error\":null") => {
            tally(kind, 1);
            output.events += 1
        }
        // Either end may be the one reset (ECONNRESET) or the one that reset (null).
        Some("close") => {
            tally("close", 1);
            output.events += 1
        }
        Some("lost") => {
            let count = line
                .split_once("\"count\":")
                .and_then(|(_, rest)| rest.split([',', '}']).next()?.parse::<u64>().ok());
            let reason = line
                .split_once("\"reason\":\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map_or("?", |(reason, _)| reason);
            match count {
                Some(n) => {
                    tally(&format!("lost {reason}"), n);
                    output.lost += n;
                    if line.contains("\"reason\":\"skipped\"")
                        || line.contains("\"reason\":\"undelivered\"")
                    {
                        output.skipped += n;
                    }
                }
                None => output.other.push(line.to_string()),
            }
        }
        _ => output.other.push(line.to_string()),
    }
}
