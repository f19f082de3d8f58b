//! conntrace's JSON records, checked field by field against what the peers did.

use std::time::{SystemTime, UNIX_EPOCH};
use vmtest::json::{self, Value};

/// The documented keys, in the documented order (the tests' own statement of the contract).
pub use vmtest::verdict::{FIELDS as KEYS, LOST_FIELDS as LOST_KEYS};

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub ts: String,
    pub event: String,
    /// The owner: null only on a close of a connection older than conntrace.
    pub pid: Option<u32>,
    pub tid: Option<u32>,
    pub uid: Option<u32>,
    pub comm: Option<String>,
    pub family: String,
    pub laddr: String,
    pub lport: u16,
    pub raddr: String,
    pub rport: u16,
    pub netns: u64,
    pub cgroup: Option<u64>,
    pub sock: String,
    pub error: Option<String>,
    pub latency_us: Option<u64>,
    pub duration_us: Option<u64>,
    pub bytes_sent: Option<u64>,
    pub bytes_received: Option<u64>,
    pub closed_by: Option<String>,
    pub cgroup_path: Option<String>,
    pub container_id: Option<String>,
    pub pod_uid: Option<String>,
}

/// Parses every stdout line of a `--json` run; any line that is not a valid event record fails,
/// and so does a lost record (the expected events may be among the lost). One exception: the
/// kernel's count of skipped probe runs (reason "skipped") counts runs of any of conntrace's
/// programs on this busy machine, which need not have been ours; the records the tests expect
/// are checked one by one, so a skip that cost one of them still fails.
pub fn parse_lines(lines: &[Vec<u8>]) -> Result<Vec<Record>, String> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| !is_skipped_runs(line))
        .map(|(n, line)| {
            let text = std::str::from_utf8(line)
                .map_err(|_| format!("stdout line {} is not UTF-8: {line:?}", n + 1))?;
            parse_record(text).map_err(|e| format!("stdout line {} {text:?}: {e}", n + 1))
        })
        .collect()
}

fn is_skipped_runs(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    text.contains("\"event\":\"lost\"") && text.contains("\"reason\":\"skipped\"")
}

pub fn parse_record(text: &str) -> Result<Record, String> {
    let Value::Object(members) = json::parse(text)? else {
        return Err("not a JSON object".into());
    };
    let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
    if keys == LOST_KEYS && members.get(1).map(|m| &m.1) == Some(&Value::String("lost".into())) {
        return Err("conntrace lost events (a lost record)".into());
    }
    if keys != KEYS {
        return Err(format!(
            "keys {keys:?}, want exactly {KEYS:?} in that order"
        ));
    }
    let field = |i: usize| &members[i].1;
    Ok(Record {
        ts: string(field(0), "ts")?,
        event: string(field(1), "event")?,
        pid: nullable(field(2), "pid", number)?,
        tid: nullable(field(3), "tid", number)?,
        uid: nullable(field(4), "uid", number)?,
        comm: nullable(field(5), "comm", string)?,
        family: string(field(6), "family")?,
        laddr: string(field(7), "laddr")?,
        lport: number(field(8), "lport")?,
        raddr: string(field(9), "raddr")?,
        rport: number(field(10), "rport")?,
        netns: number(field(11), "netns")?,
        cgroup: nullable(field(12), "cgroup", number)?,
        sock: string(field(13), "sock")?,
        error: nullable(field(14), "error", string)?,
        latency_us: nullable(field(15), "latency_us", number)?,
        duration_us: nullable(field(16), "duration_us", number)?,
        bytes_sent: nullable(field(17), "bytes_sent", number)?,
        bytes_received: nullable(field(18), "bytes_received", number)?,
        closed_by: nullable(field(19), "closed_by", string)?,
        cgroup_path: nullable(field(20), "cgroup_path", string)?,
        container_id: nullable(field(21), "container_id", string)?,
        pod_uid: nullable(field(22), "pod_uid", string)?,
    })
}

fn string(value: &Value, key: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("{key} is a {}, want a string", kind(other))),
    }
}

fn number<T: std::str::FromStr>(value: &Value, key: &str) -> Result<T, String> {
    match value {
        Value::Number(text) => text.parse().map_err(|_| {
            format!(
                "{key} is {text}, want an integer of type {}",
                std::any::type_name::<T>()
            )
        }),
        other => Err(format!("{key} is a {}, want a number", kind(other))),
    }
}

fn nullable<T>(
    value: &Value,
    key: &str,
    read: fn(&Value, &str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match value {
        Value::Null => Ok(None),
        other => read(other, key).map(Some),
    }
}

/// Who made a record: the identity fields every record carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub comm: String,
}

/// One record a test expects, complete except for sock, ts and latency (checked by rule).
#[derive(Debug, Clone)]
pub struct Expected {
    pub event: &'static str,
    pub task: Task,
    pub family: &'static str,
    pub laddr: &'static str,
    pub lport: u16,
    pub raddr: &'static str,
    pub rport: u16,
    pub error: Option<&'static str>,
    /// For a close: what it must say.
    pub close: Option<CloseWant>,
}

/// A close record's own fields, as the test's peers made them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CloseWant {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// "local" or "remote"; None where the test leaves the race between the peers open.
    pub closed_by: Option<&'static str>,
}

impl Expected {
    fn is_outcome(&self) -> bool {
        matches!(self.event, "established" | "failed")
    }

    /// The connect or accept a close belongs to: same owner and ends.
    fn opens(&self, close: &Expected) -> bool {
        matches!(self.event, "connect" | "accept")
            && close.event == "close"
            && self.task.pid == close.task.pid
            && self.lport == close.lport
            && self.rport == close.rport
    }

    fn describe(&self) -> String {
        format!(
            "{} by pid {} ({:?}) {}:{} -> {}:{}",
            self.event,
            self.task.pid,
            self.task.comm,
            self.laddr,
            self.lport,
            self.raddr,
            self.rport
        )
    }
}

/// What every record of this machine must show: the test's network namespace and cgroup.
pub struct Host {
    pub netns: u64,
    /// The cgroup v2 id of the peers, when cgroup2 is mounted; else only "non-zero" is checked.
    pub cgroup: Option<u64>,
    /// The peers' cgroup v2 path, when cgroup2 is mounted; None: not checked.
    pub cgroup_path: Option<String>,
    /// The container id and pod UID the peers' cgroup names; None: not checked.
    pub owner: Option<(Option<String>, Option<String>)>,
    /// Wall-clock window of the test, in microseconds since the epoch.
    pub window_us: (u64, u64),
}

/// Checks that `records` are exactly `expected` (in any order, but each connect before its
/// outcome), every field of every record, and the sock ids between a connect and its outcome.
pub fn check_exact(records: &[Record], expected: &[Expected], host: &Host) -> Result<(), String> {
    let mut used = vec![false; records.len()];
    let mut found = Vec::new();
    for want in expected {
        let candidates: Vec<usize> = (0..records.len())
            .filter(|&i| {
                !used[i] && records[i].event == want.event && records[i].pid == Some(want.task.pid)
            })
            .filter(|&i| records[i].lport == want.lport && records[i].rport == want.rport)
            .collect();
        let index = match candidates.as_slice() {
            [one] => *one,
            [] => {
                return Err(format!(
                    "missing record: {}\nall records:\n{}",
                    want.describe(),
                    show(records)
                ))
            }
            _ => {
                return Err(format!(
                    "more than one record for {}:\n{}",
                    want.describe(),
                    show(records)
                ))
            }
        };
        used[index] = true;
        check_fields(&records[index], want, host)
            .map_err(|e| format!("record {:?}: {e}", records[index]))?;
        found.push(index);
    }
    if let Some(extra) = used.iter().position(|u| !u) {
        return Err(format!(
            "unexpected record {:?}\nall records:\n{}",
            records[extra],
            show(records)
        ));
    }
    check_socket_ids(records, expected, &found)?;
    check_time_order(records)
}

fn show(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| format!("  {r:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_fields(got: &Record, want: &Expected, host: &Host) -> Result<(), String> {
    let mut wrong = Vec::new();
    let mut compare = |name: &str, got: String, want: String| {
        if got != want {
            wrong.push(format!("{name} is {got}, want {want}"));
        }
    };
    compare(
        "tid",
        format!("{:?}", got.tid),
        format!("{:?}", Some(want.task.tid)),
    );
    compare(
        "uid",
        format!("{:?}", got.uid),
        format!("{:?}", Some(want.task.uid)),
    );
    compare(
        "comm",
        format!("{:?}", got.comm),
        format!("{:?}", Some(&want.task.comm)),
    );
    compare("family", got.family.clone(), want.family.into());
    compare("laddr", got.laddr.clone(), want.laddr.into());
    compare("raddr", got.raddr.clone(), want.raddr.into());
    compare("netns", got.netns.to_string(), host.netns.to_string());
    compare(
        "error",
        format!("{:?}", got.error),
        format!("{:?}", want.error.map(String::from)),
    );
    if let Some(cgroup) = host.cgroup {
        compare(
            "cgroup",
            format!("{:?}", got.cgroup),
            format!("{:?}", Some(cgroup)),
        );
    }
    if let Some(path) = &host.cgroup_path {
        compare(
            "cgroup_path",
            format!("{:?}", got.cgroup_path),
            format!("{:?}", Some(path)),
        );
    }
    if let Some((container, pod)) = &host.owner {
        compare(
            "container_id",
            format!("{:?}", got.container_id),
            format!("{container:?}"),
        );
        compare("pod_uid", format!("{:?}", got.pod_uid), format!("{pod:?}"));
    }
    if got.cgroup.unwrap_or(0) == 0 {
        wrong.push(format!("cgroup is {:?}", got.cgroup));
    }
    check_close_fields(got, want, host, &mut wrong);
    if got.sock.len() != 16 || !got.sock.bytes().all(|b| b.is_ascii_hexdigit()) {
        wrong.push(format!("sock {:?} is not 16 hex digits", got.sock));
    }
    match (want.is_outcome(), got.latency_us) {
        (false, None) => {}
        (false, Some(l)) => wrong.push(format!("latency_us is {l}, want null for {}", want.event)),
        (true, None) => wrong.push(format!(
            "latency_us is null, want a number for {}",
            want.event
        )),
        (true, Some(l)) if l >= 10_000_000 => wrong.push(format!("latency_us {l} is not < 10 s")),
        (true, Some(l)) if l > host.window_us.1 - host.window_us.0 => {
            wrong.push(format!("latency_us {l} is longer than the whole test"))
        }
        (true, Some(_)) => {}
    }
    match parse_ts(&got.ts) {
        Err(e) => wrong.push(e),
        // The kernel clock and ours may round differently: allow a second either side.
        Ok(us) if us + 1_000_000 < host.window_us.0 || us > host.window_us.1 + 1_000_000 => {
            wrong.push(format!("ts {} is outside the test's run time", got.ts))
        }
        Ok(_) => {}
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// A close's duration and bytes as `want` says; every other record has them null.
fn check_close_fields(got: &Record, want: &Expected, host: &Host, wrong: &mut Vec<String>) {
    let window = host.window_us.1 - host.window_us.0;
    let Some(close) = want.close else {
        let close_keys = [
            ("duration_us", got.duration_us),
            ("bytes_sent", got.bytes_sent),
            ("bytes_received", got.bytes_received),
        ];
        for (key, value) in close_keys {
            if let Some(v) = value {
                wrong.push(format!("{key} is {v}, want null for {}", want.event));
            }
        }
        if let Some(by) = &got.closed_by {
            wrong.push(format!("closed_by is {by}, want null for {}", want.event));
        }
        return;
    };
    match got.duration_us {
        None => wrong.push("duration_us is null, want the connection's lifetime".into()),
        Some(d) if d > window => wrong.push(format!("duration_us {d} is longer than the test")),
        Some(_) => {}
    }
    if got.bytes_sent != Some(close.bytes_sent) {
        wrong.push(format!(
            "bytes_sent is {:?}, want {}",
            got.bytes_sent, close.bytes_sent
        ));
    }
    if got.bytes_received != Some(close.bytes_received) {
        wrong.push(format!(
            "bytes_received is {:?}, want {}",
            got.bytes_received, close.bytes_received
        ));
    }
    match (close.closed_by, got.closed_by.as_deref()) {
        (Some(want), Some(got)) if want == got => {}
        (None, Some("local" | "remote")) => {}
        (want, got) => wrong.push(format!("closed_by is {got:?}, want {want:?}")),
    }
}

/// A connect and its outcome share one sock id and the connect comes first; different
/// connections have different ids. A close has the id of its connect or accept.
fn check_socket_ids(
    records: &[Record],
    expected: &[Expected],
    found: &[usize],
) -> Result<(), String> {
    for (i, want) in expected.iter().enumerate() {
        if want.event == "close" {
            let opened = expected.iter().zip(found).find(|(o, _)| o.opens(want));
            if let Some((_, &open_index)) = opened {
                let (close, open) = (&records[found[i]], &records[open_index]);
                if close.sock != open.sock {
                    return Err(format!(
                        "sock differs between {open:?} and its close {close:?}"
                    ));
                }
            }
            continue;
        }
        if !want.is_outcome() {
            continue;
        }
        let connect = expected.iter().zip(found).find(|(c, _)| {
            c.event == "connect"
                && c.task.pid == want.task.pid
                && c.lport == want.lport
                && c.rport == want.rport
        });
        let Some((_, &connect_index)) = connect else {
            continue;
        };
        let (outcome, connect) = (&records[found[i]], &records[connect_index]);
        if outcome.sock != connect.sock {
            return Err(format!(
                "sock differs between {connect:?} and its outcome {outcome:?}"
            ));
        }
        if connect_index > found[i] {
            return Err(format!(
                "outcome {outcome:?} printed before its connect {connect:?}"
            ));
        }
    }
    for (i, a) in records.iter().enumerate() {
        for b in &records[i + 1..] {
            // One socket: the same two ends seen from the same side.
            let same_socket = a.lport == b.lport && a.rport == b.rport;
            if a.sock == b.sock && !same_socket {
                return Err(format!("two sockets share the sock id: {a:?} and {b:?}"));
            }
        }
    }
    Ok(())
}

/// Records come from per-CPU rings, so output order is only roughly time order.
fn check_time_order(records: &[Record]) -> Result<(), String> {
    let mut latest = 0;
    for record in records {
        let ts = parse_ts(&record.ts)?;
        if ts + 1_000_000 < latest {
            return Err(format!(
                "ts {} is more than 1 s before an earlier record's",
                record.ts
            ));
        }
        latest = latest.max(ts);
    }
    Ok(())
}

/// "2026-11-28T02:30:00.123456Z" -> microseconds since the epoch.
pub fn parse_ts(ts: &str) -> Result<u64, String> {
    let bad =
        || format!("ts {ts:?} is not RFC 3339 UTC with microseconds (2026-11-28T02:30:00.123456Z)");
    let b = ts.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
    if b.len() != shape.len()
        || !b.iter().zip(shape).all(|(c, s)| {
            if *s == b'd' {
                c.is_ascii_digit()
            } else {
                c == s
            }
        })
    {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| ts[range].parse::<u64>().map_err(|_| bad());
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second, micros) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let seconds = days as u64 * 86_400 + hour * 3600 + minute * 60 + second;
    Ok(seconds * 1_000_000 + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

/// Checks of the timestamp reader, run by `host --self-check`.
pub fn self_check() -> Result<(), String> {
    for (ts, want) in [
        ("1970-01-01T00:00:00.000000Z", 0),
        ("2000-03-01T00:00:01.000002Z", 951_868_801_000_002),
        ("2026-11-28T02:30:00.123456Z", 1_795_833_000_123_456),
    ] {
        if parse_ts(ts)? != want {
            return Err(format!("parse_ts({ts}) = {:?}, want {want}", parse_ts(ts)));
        }
    }
    for bad in [
        "2026-11-28T02:30:00Z",
        "2026-11-28 02:30:00.123456Z",
        "2026-11-28T02:30:00.123456+00:00",
    ] {
        if parse_ts(bad).is_ok() {
            return Err(format!("parse_ts accepted {bad}"));
        }
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
