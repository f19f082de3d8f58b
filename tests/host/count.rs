//! `-c`/`--count`: a client process makes connections with known payloads and refused ones, a
//! server process accepts them, and the count table (text, then JSON lines with an interval)
//! must give exactly those numbers on the client's and the server's rows.
//!
//! Roles of the test binary (`CONNTRACE_TEST_ROLE`, dispatched by [`run_role`]):
//! - `count-server N`: listens on 127.0.0.1, an ephemeral port; prints
//!   `listening port=P pid=P`; for each of N connections reads until the client's FIN, checks it
//!   got [`CLIENT_BYTES`], answers [`SERVER_BYTES`] and closes; then prints `served n=N`.
//! - `count-client PORT REFUSED N M`: N connections to PORT (each sends [`CLIENT_BYTES`], shuts
//!   its side down, reads to the end), [`PAUSE`] apart, then M connects to REFUSED that must be
//!   refused; prints `client pid=P received=R refused=M`.

use crate::peer::{Peer, RefusingPort};
use crate::tracer::{Finished, Tracer};
use conntrace::app::output::count::FIELDS;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;
use vmtest::json::{self, Value};

pub const ALL: &[(&str, crate::cases::Test)] = &[
    ("count_table_is_exact", count_table_is_exact),
    (
        "count_json_intervals_add_up_exactly",
        count_json_intervals_add_up_exactly,
    ),
];

pub const SERVER_COMM: &str = "ct-cnt-server";
pub const CLIENT_COMM: &str = "ct-cnt-client";
pub const CLIENT_BYTES: usize = 1234;
pub const SERVER_BYTES: usize = 54_321;
const CONNECTIONS: u64 = 5;
const REFUSED: u64 = 3;
const PAUSE: Duration = Duration::from_millis(150);

// ---------------------------------------------------------------------------------------------
// Child side.

/// Runs a `count-*` role; returns the exit status.
pub fn run_role(role: &str) -> i32 {
    let args: Vec<&str> = role.split(' ').filter(|a| !a.is_empty()).collect();
    let result = match args.as_slice() {
        ["count-server", n] => server(n),
        ["count-client", port, refused, n, m] => client(port, refused, n, m),
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

fn set_comm(name: &str) {
    let mut buf = [0u8; 16];
    buf[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: PR_SET_NAME reads at most 16 bytes from a pointer to a live, NUL-terminated buffer.
    unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn number(s: &str) -> Result<u64, String> {
    s.parse().map_err(|_| format!("bad number {s:?}"))
}

fn server(n: &str) -> Result<(), String> {
    let n = number(n)?;
    set_comm(SERVER_COMM);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    say(&format!("listening port={port} pid={}", std::process::id()));
    for _ in 0..n {
        let (mut stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        let mut got = Vec::new();
        stream
            .read_to_end(&mut got)
            .map_err(|e| format!("read: {e}"))?;
        if got.len() != CLIENT_BYTES {
            return Err(format!("got {} bytes, want {CLIENT_BYTES}", got.len()));
        }
        stream
            .write_all(&[b's'; SERVER_BYTES])
            .map_err(|e| format!("write: {e}"))?;
    }
    say(&format!("served n={n}"));
    Ok(())
}

fn client(port: &str, refused: &str, n: &str, m: &str) -> Result<(), String> {
    let (port, refused, n, m) = (number(port)?, number(refused)?, number(n)?, number(m)?);
    set_comm(CLIENT_COMM);
    let mut received = 0;
    for i in 0..n {
        if i > 0 {
            std::thread::sleep(PAUSE);
        }
        let mut stream =
            TcpStream::connect(("127.0.0.1", port as u16)).map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(&[b'c'; CLIENT_BYTES])
            .map_err(|e| format!("write: {e}"))?;
        stream
            .shutdown(Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))?;
        let mut got = Vec::new();
        stream
            .read_to_end(&mut got)
            .map_err(|e| format!("read: {e}"))?;
        received += got.len();
    }
    for _ in 0..m {
        match TcpStream::connect(("127.0.0.1", refused as u16)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            other => return Err(format!("connect to {refused}: {other:?}, want refused")),
        }
    }
    say(&format!(
        "client pid={} received={received} refused={m}",
        std::process::id()
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Parent side.

/// What a run must count: the client's two rows and the server's one.
struct Run {
    port: u16,
    refused: u16,
    client_pid: u64,
    server_pid: u64,
}

/// Starts the server, conntrace with `args` (plus the tracepoint backend and our two ports),
/// the client; stops conntrace once both peers are done.
fn run(args: &[&str]) -> Result<(Run, Finished), String> {
    let mut server = Peer::spawn(&format!("count-server {CONNECTIONS}"))?;
    let listening = server.expect("listening")?;
    let port = listening.u16("port");
    let refusing = RefusingPort::new("4")?;
    let ports = format!("{port},{}", refusing.port);
    let mut full = args.to_vec();
    full.extend(["--backend", "tracepoint", "-P", &ports]);
    let tracer = Tracer::attached(&full)?;
    let mut client = Peer::spawn(&format!(
        "count-client {port} {} {CONNECTIONS} {REFUSED}",
        refusing.port
    ))?;
    let done = client.expect("client")?;
    let want = CONNECTIONS * SERVER_BYTES as u64;
    if done.get("received") != want || done.get("refused") != REFUSED {
        return Err(format!("client: {done:?}, want received={want}"));
    }
    client.finish()?;
    server.expect("served")?;
    server.finish()?;
    // The last close (the server's, from LAST_ACK) is in the rings by now; the stop drains them.
    std::thread::sleep(Duration::from_millis(200));
    let finished = tracer.interrupt()?;
    Ok((
        Run {
            port,
            refused: refusing.port,
            client_pid: done.get("pid"),
            server_pid: listening.get("pid"),
        },
        finished,
    ))
}

fn text(finished: &Finished) -> String {
    finished
        .stdout
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

const HEADER: [&str; 16] = [
    "SIDE", "PID", "COMM", "RADDR", "LPORT", "RPORT", "CONN", "EST", "FAIL", "ACC", "CLOSE",
    "TX_B", "RX_B", "P50(ms)", "P99(ms)", "ERRORS",
];

pub fn count_table_is_exact() -> Result<(), String> {
    let (run, finished) = run(&["-c"])?;
    let out = text(&finished);
    let lines: Vec<&str> = out.lines().collect();
    let context = || format!("conntrace -c printed:\n{out}");
    // One table, at exit: its title, the header, the rows.
    let titles: Vec<&&str> = lines.iter().filter(|l| l.starts_with("--- ")).collect();
    if titles.len() != 1 || !lines[0].starts_with("--- ") || !lines[0].ends_with(" (at exit)") {
        return Err(format!("want one table, at exit; {}", context()));
    }
    let header: Vec<&str> = lines.get(1).unwrap_or(&"").split_whitespace().collect();
    if header != HEADER {
        return Err(format!("header {header:?}; {}", context()));
    }
    // Columns start where the header's do.
    let starts: Vec<usize> = HEADER.iter().map(|h| lines[1].find(h).unwrap()).collect();
    let mut ours = BTreeMap::new();
    for line in &lines[2..] {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.len() != HEADER.len() {
            return Err(format!(
                "row {line:?} has {} cells; {}",
                cells.len(),
                context()
            ));
        }
        // Each cell (past the first) starts at its column; COMM is plain here, so no cell
        // holds a space.
        let mut at = 0;
        for (cell, &start) in cells.iter().zip(&starts) {
            let found = line[at..].find(cell).map(|i| i + at);
            if found != Some(start) {
                return Err(format!("{cell:?} not at column {start} in {line:?}"));
            }
            at = start + cell.len();
        }
        let pid: u64 = cells[1].parse().unwrap_or(0);
        if pid == run.client_pid || pid == run.server_pid {
            let key = (
                cells[0].to_string(),
                cells[4].to_string(),
                cells[5].to_string(),
            );
            if ours.insert(key, cells.clone()).is_some() {
                return Err(format!("two rows for {line:?}; {}", context()));
            }
        }
    }
    let (port, refused) = (run.port.to_string(), run.refused.to_string());
    let n = CONNECTIONS.to_string();
    let (sent, received) = (
        (CONNECTIONS * CLIENT_BYTES as u64).to_string(),
        (CONNECTIONS * SERVER_BYTES as u64).to_string(),
    );
    let client_pid = run.client_pid.to_string();
    let server_pid = run.server_pid.to_string();
    let row = |side: &str, lport: &str, rport: &str| {
        ours.get(&(side.to_string(), lport.to_string(), rport.to_string()))
            .ok_or_else(|| format!("no {side} row {lport}/{rport}; {}", context()))
    };
    let good = row("connect", "-", &port)?;
    let want = [
        "connect",
        &client_pid,
        CLIENT_COMM,
        "127.0.0.1",
        "-",
        &port,
        &n,
        &n,
        "0",
        "-",
        &n,
        &sent,
        &received,
    ];
    if good[..13] != want || good[15] != "-" {
        return Err(format!(
            "client's row {good:?}, want {want:?} ... -; {}",
            context()
        ));
    }
    let ms = |s: &str| s.parse::<f64>().map_err(|_| format!("latency {s:?}"));
    let (p50, p99) = (ms(good[13])?, ms(good[14])?);
    if !(p50 <= p99 && p99 < 1000.0) {
        return Err(format!("latency p50 {p50} p99 {p99}; {}", context()));
    }
    let bad = row("connect", "-", &refused)?;
    let want = [
        "connect",
        &client_pid,
        CLIENT_COMM,
        "127.0.0.1",
        "-",
        &refused,
        "3",
        "0",
        "3",
        "-",
        "0",
        "0",
        "0",
        "-",
        "-",
        "ECONNREFUSED:3",
    ];
    if bad[..] != want {
        return Err(format!("refused row {bad:?}, want {want:?}; {}", context()));
    }
    let served = row("accept", &port, "-")?;
    let want = [
        "accept",
        &server_pid,
        SERVER_COMM,
        "127.0.0.1",
        &port,
        "-",
        "-",
        "-",
        "-",
        &n,
        &n,
        &received,
        &sent,
        "-",
        "-",
        "-",
    ];
    if served[..] != want {
        return Err(format!(
            "server's row {served:?}, want {want:?}; {}",
            context()
        ));
    }
    if ours.len() != 3 {
        return Err(format!(
            "{} rows of our peers, want 3; {}",
            ours.len(),
            context()
        ));
    }
    Ok(())
}

/// Sums of one row key over every table.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sums {
    counts: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
    /// Tables the row was in, and in how many of them it had latencies.
    tables: u64,
    latencies: u64,
}

const COUNTED: [&str; 9] = [
    "connects",
    "established",
    "failed",
    "accepts",
    "closes",
    "bytes_sent",
    "bytes_received",
    "sent_unknown",
    "folded_rows",
];

pub fn count_json_intervals_add_up_exactly() -> Result<(), String> {
    // Tables every 0.2 s: the client's connections, 150 ms apart, span several of them.
    let (run, finished) = run(&["-c", "0.2", "--json"])?;
    let out = text(&finished);
    let context = || format!("conntrace -c 0.2 --json printed:\n{out}");
    let mut sums: BTreeMap<(String, u64, u64, u64), Sums> = BTreeMap::new();
    let mut tables: Vec<(String, u64)> = Vec::new(); // (ts, rows)
    let mut ranks = 0;
    let mut last_seen = false;
    for line in out.lines() {
        let v = json::parse(line).map_err(|e| format!("{e}: {line}"))?;
        let keys: Vec<&str> = match &v {
            Value::Object(m) => m.iter().map(|(k, _)| k.as_str()).collect(),
            _ => vec![],
        };
        if keys != FIELDS {
            return Err(format!("keys {keys:?}, want {FIELDS:?}; {line}"));
        }
        let str_of = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
        let num = |k: &str| v.get(k).and_then(Value::as_u64);
        if str_of("event") != "count" || last_seen {
            return Err(format!(
                "not a count row, or a row after the last table: {line}"
            ));
        }
        // Rows of one table are consecutive, ranked 1..=rows.
        let ts = str_of("ts").to_string();
        let rows = num("rows").unwrap_or(0);
        if tables.last().map(|t| &t.0) != Some(&ts) {
            if ranks != tables.last().map_or(0, |t| t.1) {
                return Err(format!("a table ended at rank {ranks}; {}", context()));
            }
            tables.push((ts, rows));
            ranks = 0;
        }
        ranks += 1;
        if num("rank") != Some(ranks) || Some(&rows) != tables.last().map(|t| &t.1) {
            return Err(format!("rank/rows wrong in {line}"));
        }
        if v.get("last") == Some(&Value::Bool(true)) && ranks == rows {
            last_seen = true;
        }
        let pid = num("pid").unwrap_or(0);
        if pid != run.client_pid && pid != run.server_pid {
            continue;
        }
        let side = str_of("side").to_string();
        let key = (
            side.clone(),
            pid,
            num("lport").unwrap_or(0),
            num("rport").unwrap_or(0),
        );
        let s = sums.entry(key).or_default();
        s.tables += 1;
        for k in COUNTED {
            match (v.get(k), num(k)) {
                (Some(Value::Null), _) => {}
                (_, Some(n)) => *s.counts.entry(k).or_default() += n,
                _ => return Err(format!("{k} is neither null nor a count: {line}")),
            }
        }
        match v.get("errors") {
            Some(Value::Object(m)) => {
                for (name, n) in m {
                    *s.errors.entry(name.clone()).or_default() += n.as_u64().unwrap_or(0);
                }
            }
            Some(Value::Null) if side == "accept" => {}
            other => return Err(format!("errors {other:?} in {line}")),
        }
        if let (Some(p50), Some(p99)) = (num("latency_p50_us"), num("latency_p99_us")) {
            if p50 > p99 {
                return Err(format!("p50 above p99: {line}"));
            }
            s.latencies += 1;
        } else if !v.get("latency_p50_us").is_some_and(Value::is_null) {
            return Err(format!("latency_p50_us neither null nor a number: {line}"));
        }
    }
    let n = CONNECTIONS;
    let (sent, received) = (n * CLIENT_BYTES as u64, n * SERVER_BYTES as u64);
    let counts = |list: &[(&'static str, u64)]| list.iter().copied().collect::<BTreeMap<_, _>>();
    let pick = |side: &str, pid, lport, rport| {
        sums.get(&(side.to_string(), pid, lport, rport))
            .ok_or_else(|| format!("no {side} rows for {lport}/{rport}; {}", context()))
    };
    let good = pick("connect", run.client_pid, 0, u64::from(run.port))?;
    let want = counts(&[
        ("connects", n),
        ("established", n),
        ("failed", 0),
        ("closes", n),
        ("bytes_sent", sent),
        ("bytes_received", received),
        ("sent_unknown", 0),
    ]);
    if good.counts != want || !good.errors.is_empty() {
        return Err(format!(
            "client's sums {good:?}, want {want:?}; {}",
            context()
        ));
    }
    if good.tables < 2 {
        return Err(format!(
            "the client's connections, {PAUSE:?} apart, in {} table(s) of 0.2 s; {}",
            good.tables,
            context()
        ));
    }
    if good.latencies == 0 {
        return Err(format!("no latencies on the client's rows; {}", context()));
    }
    let bad = pick("connect", run.client_pid, 0, u64::from(run.refused))?;
    let want = counts(&[
        ("connects", REFUSED),
        ("established", 0),
        ("failed", REFUSED),
        ("closes", 0),
        ("bytes_sent", 0),
        ("bytes_received", 0),
        ("sent_unknown", 0),
    ]);
    let errors: BTreeMap<String, u64> = [("ECONNREFUSED".to_string(), REFUSED)].into();
    if bad.counts != want || bad.errors != errors || bad.latencies != 0 {
        return Err(format!(
            "refused sums {bad:?}, want {want:?}; {}",
            context()
        ));
    }
    let served = pick("accept", run.server_pid, u64::from(run.port), 0)?;
    let want = counts(&[
        ("accepts", n),
        ("closes", n),
        ("bytes_sent", received),
        ("bytes_received", sent),
        ("sent_unknown", 0),
    ]);
    if served.counts != want || served.latencies != 0 {
        return Err(format!(
            "server's sums {served:?}, want {want:?}; {}",
            context()
        ));
    }
    if sums.len() != 3 {
        return Err(format!(
            "{} row keys of our peers, want 3: {sums:?}",
            sums.len()
        ));
    }
    Ok(())
}
