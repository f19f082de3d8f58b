//! A connection the kernel frees without showing its change to CLOSE gets its close record
//! from the destroy hook (src/bpf/state.s, destroy_program), made from its `socks` entry.
//!
//! Linux 6.18 does that now and then under storms, never on demand, so the test makes the
//! same condition: a connection reset while its process still holds the socket closes at
//! once (that close is printed and its entry freed) and is freed only when the process
//! closes it. In between the test puts the entry back into conntrace's `socks` map with
//! bpftool, as it was before the reset: the free must then print exactly one more close, the
//! same record as the state change's but for its time and duration, and free the entry.
//! The accepted end is in CLOSE_WAIT (the client shut its side first), so the entry holds a
//! state the changes after ESTABLISHED wrote (SOCK_STATE): the hash path's entry is read to
//! show it; with socket storage (tp_btf) that entry is the accept's owner alone, and the test
//! writes the start, flags and state the storage held.

use crate::held::{fdinfo_field, fdinfos};
use crate::linger::reset_on_close;
use crate::scale::Line;
use crate::tracer::Tracer;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use vmtest::json::{self, Value};

/// The `socks` entry's layout (SOCK_* in src/bpf/common.s).
const SOCK_PID: usize = 0;
const SOCK_FLAGS: usize = 12;
const SOCK_STATE: usize = 13;
const SOCK_EST: usize = 40;
const SOCK_BASE: usize = 56;
const SOCK_SIZE: usize = 64;
/// CLOSE_OWNER | CLOSE_DURATION | CLOSE_BASE: an entry a state change made, owner known.
const TRACKED: u8 = 1 | 2 | 4;
const CLOSE_WAIT: u8 = 8;
/// How a close record's JSON line says what it is.
const CLOSE: &[u8] = b"\"event\":\"close\"";
/// Payload the accepted end sends, all of it acknowledged before the reset.
const SENT: usize = 1000;

pub fn freed_without_its_change_to_close() -> Result<(), String> {
    freed_through(None)
}

pub fn freed_without_its_change_to_close_raw() -> Result<(), String> {
    freed_through(Some("raw_tracepoint"))
}

pub fn freed_without_its_change_to_close_classic() -> Result<(), String> {
    freed_through(Some("tracepoint"))
}

/// `hook`: a state hook kind with its state in the `socks` hash, or None for the default.
fn freed_through(hook: Option<&str>) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let env: Vec<(&str, &str)> = hook
        .map(|h| ("CONNTRACE_STATE_HOOK", h))
        .into_iter()
        .collect();
    let tracer = Tracer::attached_env(&["--json", "-e", "close", "-P", &port.to_string()], &env)?;
    let socks = socks_map(tracer.pid())?;

    let mut client =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    let (mut server, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
    server
        .write_all(&[7u8; SENT])
        .map_err(|e| format!("write: {e}"))?;
    let mut got = [0u8; SENT];
    client
        .read_exact(&mut got)
        .map_err(|e| format!("read: {e}"))?;
    client
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let hashed = hook.is_some();
    // The accepted end's entry: ours, and its byte base 0 (the SYN was the peer's; the
    // connecting end's is 1). Its owner comes from the accept hook, its state from the
    // client's FIN: wait for both.
    let pid = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(5);
    let (key, value) = loop {
        let entries = dump(socks)?;
        let ours: Vec<_> = entries
            .into_iter()
            .filter(|(_, v)| u32_at(v, SOCK_PID) == u64::from(pid) && u64_at(v, SOCK_BASE) == 0)
            .collect();
        if let [entry] = ours.as_slice() {
            if !hashed || entry.1.get(SOCK_STATE) == Some(&CLOSE_WAIT) {
                break entry.clone();
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no one entry of the accepted end in map {socks} within 5 s{}: values {:?}",
                if hashed { " in CLOSE_WAIT" } else { "" },
                ours.iter().map(|(_, v)| v).collect::<Vec<_>>()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    // The client resets: the accepted end closes now (EPIPE), but stays allocated
    // while `server` holds it.
    reset_on_close(&client)?;
    let reset_at = Instant::now();
    drop(client);
    let closes = |lines: &[Vec<u8>]| {
        lines
            .iter()
            .filter(|l| l.windows(CLOSE.len()).any(|w| w == CLOSE))
            .count()
    };
    if !tracer.wait_for(Duration::from_secs(5), |l| closes(l) >= 2) {
        return Err(format!(
            "not the two closes of the reset within 5 s: {:?}",
            text(&tracer.stdout_lines())
        ));
    }
    if dump(socks)?.iter().any(|(k, _)| *k == key) {
        return Err("the close of the reset left the accepted end's entry".into());
    }

    let mut entry = value;
    if !hashed {
        entry[SOCK_FLAGS] = TRACKED;
        entry[SOCK_STATE] = CLOSE_WAIT;
        entry[SOCK_EST..SOCK_EST + 8].copy_from_slice(&monotonic_ns()?.to_ne_bytes());
    }
    update(socks, &key, &entry)?;
    let put = Instant::now();
    drop(server);
    let seen = tracer.wait_for(Duration::from_secs(5), |l| closes(l) >= 3);
    let (within, since_reset) = (put.elapsed(), reset_at.elapsed());
    std::thread::sleep(Duration::from_millis(300));
    let left = dump(socks)?.iter().any(|(k, _)| *k == key);
    let finished = tracer.interrupt()?;
    let lines = finished.stdout;
    let records = lines
        .iter()
        .map(|l| Line::parse(l))
        .collect::<Result<Vec<_>, _>>()?;
    let accepted: Vec<&Line> = records
        .iter()
        .filter(|r| r.str("event") == Some("close") && r.num("lport") == Some(u64::from(port)))
        .collect();
    let all = text(&lines);
    if !seen || accepted.len() != 2 || records.len() != 3 {
        return Err(format!(
            "want the reset's two closes and one more at the free: {all:?}"
        ));
    }
    let (reset_close, freed) = (accepted[0], accepted[1]);
    // The entry's start: the handshake's in the hash, the test's write with storage.
    let duration_bound = match hashed {
        true => Some(reset_close.num("duration_us").unwrap_or(0) + since_reset.as_micros() as u64),
        false => Some(within.as_micros() as u64),
    };
    let same_but_time = vmtest::verdict::FIELDS
        .iter()
        .filter(|&&k| k != "ts" && k != "duration_us")
        .all(|k| freed.value.get(k) == reset_close.value.get(k));
    let wrong = [
        (
            reset_close.num("pid") != Some(u64::from(pid)),
            "the reset's owner",
        ),
        (
            reset_close.str("closed_by") != Some("remote"),
            "the reset's closed_by",
        ),
        // A reset in CLOSE_WAIT is EPIPE (tcp_reset).
        (
            reset_close.str("error") != Some("EPIPE"),
            "the reset's error",
        ),
        (
            reset_close.num("bytes_sent") != Some(SENT as u64),
            "the reset's bytes_sent",
        ),
        (
            !same_but_time,
            "the free's record, the reset's but for ts and duration_us",
        ),
        (
            freed.num("duration_us") < reset_close.num("duration_us").filter(|_| hashed)
                || freed.num("duration_us") > duration_bound,
            "the free's duration, from the entry's start",
        ),
        (left, "the entry freed"),
    ];
    let wrong: Vec<&str> = wrong
        .iter()
        .filter(|(w, _)| *w)
        .map(|(_, what)| *what)
        .collect();
    if !wrong.is_empty() {
        return Err(format!("wrong: {wrong:?}; records: {all:?}"));
    }
    Ok(())
}

fn monotonic_ns() -> Result<u64, String> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass, a live local.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return Err(format!(
            "clock_gettime: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// The id of conntrace's `socks` map (a hash of 8-byte keys and SOCK_SIZE-byte values) among
/// the maps its process holds (/proc/PID/fdinfo).
fn socks_map(pid: i32) -> Result<u32, String> {
    let mut found = Vec::new();
    for text in fdinfos(pid)? {
        let field = |key: &str| fdinfo_field(&text, key);
        let shape = (field("map_type:"), field("key_size:"), field("value_size:"));
        if shape == (Some(1), Some(8), Some(SOCK_SIZE as u64)) {
            found.extend(field("map_id:"));
        }
    }
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [id] => u32::try_from(*id).map_err(|e| e.to_string()),
        other => Err(format!(
            "want one socks map among pid {pid}'s, found ids {other:?}"
        )),
    }
}

/// A map entry: its key's bytes and its value's.
type Entry = (Vec<u8>, Vec<u8>);

/// Every entry of map `id`, read with bpftool.
fn dump(id: u32) -> Result<Vec<Entry>, String> {
    let out = bpftool(&["-j", "map", "dump", "id", &id.to_string()])?;
    let parsed = json::parse(&out)?;
    let Value::Array(entries) = parsed else {
        return Err(format!("bpftool map dump: not an array: {out}"));
    };
    let bytes = |v: Option<&Value>| -> Result<Vec<u8>, String> {
        let Some(Value::Array(items)) = v else {
            return Err(format!("bpftool map dump: no byte array in {out}"));
        };
        items
            .iter()
            .map(|b| {
                b.as_str()
                    .and_then(|s| s.strip_prefix("0x"))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bpftool map dump: not a byte: {b:?}"))
            })
            .collect()
    };
    entries
        .iter()
        .map(|e| Ok((bytes(e.get("key"))?, bytes(e.get("value"))?)))
        .collect()
}

fn update(id: u32, key: &[u8], value: &[u8]) -> Result<(), String> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>();
    let mut args = vec![
        "map".to_string(),
        "update".into(),
        "id".into(),
        id.to_string(),
    ];
    args.push("key".into());
    args.push("hex".into());
    args.extend(hex(key));
    args.push("value".into());
    args.push("hex".into());
    args.extend(hex(value));
    bpftool(&args.iter().map(String::as_str).collect::<Vec<_>>()).map(drop)
}

fn bpftool(args: &[&str]) -> Result<String, String> {
    let out = Command::new("bpftool")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run bpftool (apt-get install bpftool): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "bpftool {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn u32_at(v: &[u8], at: usize) -> u64 {
    v.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(u64::MAX, |b| u64::from(u32::from_ne_bytes(b)))
}

fn u64_at(v: &[u8], at: usize) -> u64 {
    v.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(u64::MAX, u64::from_ne_bytes)
}

fn text(lines: &[Vec<u8>]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}
