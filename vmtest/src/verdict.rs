//! Decides whether conntrace reported what the scenario did, field by field, the way a host
//! test would; every failure says what was expected and what was seen instead.

use crate::console::{BackendRun, Console};
use crate::faults;
use crate::json::{self, Value};
use crate::plan::VmSpec;
use crate::runs::{self, Check, ScenarioRun};

/// The verdict for one VM boot.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VmVerdict {
    /// Failures not tied to one run (the boot, `conntrace check`).
    pub general: Vec<String>,
    pub backends: Vec<BackendVerdict>,
}

/// The verdict for one run of conntrace (a backend's, or a fault pass's).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BackendVerdict {
    /// The run's name.
    pub backend: String,
    pub failures: Vec<String>,
    /// A one-line summary of every record conntrace printed (raw lines for runs without
    /// the scenario), for failure context.
    pub seen: Vec<String>,
}

impl VmVerdict {
    pub fn passed(&self) -> bool {
        self.general.is_empty() && self.backends.iter().all(|b| b.failures.is_empty())
    }

    /// A human-readable account: one block per run, failures first, then what was seen.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.general {
            out.push_str(&format!("  FAIL {f}\n"));
        }
        for b in &self.backends {
            if b.failures.is_empty() {
                out.push_str(&format!(
                    "  run {}: PASS ({} records)\n",
                    b.backend,
                    b.seen.len()
                ));
                continue;
            }
            out.push_str(&format!(
                "  run {}: {} failure(s)\n",
                b.backend,
                b.failures.len()
            ));
            for f in &b.failures {
                out.push_str(&format!("    FAIL {f}\n"));
            }
            if b.seen.is_empty() {
                out.push_str("    seen: no records at all on conntrace's stdout\n");
            } else {
                out.push_str(&format!("    seen ({} records):\n", b.seen.len()));
                for s in &b.seen {
                    out.push_str(&format!("      {s}\n"));
                }
            }
        }
        out
    }
}

/// The keys of a `lost` record, in order.
pub const LOST_FIELDS: [&str; 5] = ["ts", "event", "cpu", "count", "reason"];

/// The record fields of the JSON contract (DESIGN.md), in order: the one statement of it the
/// tests share (VM harness, host tests, output unit tests), kept apart from the writer so a
/// change to the writer cannot quietly change what the tests expect.
pub const FIELDS: [&str; 16] = [
    "ts",
    "event",
    "pid",
    "tid",
    "uid",
    "comm",
    "family",
    "laddr",
    "lport",
    "raddr",
    "rport",
    "netns",
    "cgroup",
    "sock",
    "error",
    "latency_us",
];

/// Checks one VM's console against the plan it was booted with: every run it should make.
pub fn verify(console: &Console, spec: &VmSpec) -> VmVerdict {
    let ipv6 = spec.ipv6;
    let mut v = VmVerdict::default();
    if console.init.is_none() {
        v.general
            .push("the init never started (no `CTVM INIT` line on the console)".into());
    }
    if !console.done {
        v.general.push(
            "the init did not finish (no `CTVM DONE` line): it hung, crashed or the VM timed out"
                .into(),
        );
    }
    for line in &console.unparsed {
        v.general
            .push(format!("console line not understood: {line}"));
    }
    match console.check_exit.as_deref() {
        Some("code=0") => {}
        Some(other) => v.general.push(format!(
            "`conntrace check` exited {other}, expected code=0; it printed: {}",
            console.check_out.join(" | ")
        )),
        None => v
            .general
            .push("`conntrace check` did not report an exit status".into()),
    }
    // `check` names the hooks; on every kernel of the suite accepts have an entry probe.
    let hooks = console
        .check_out
        .iter()
        .find_map(|l| l.strip_prefix("hooks").map(str::trim));
    match hooks {
        Some(h)
            if h.contains("connect: kprobe tcp_v4_connect")
                && h.contains("kprobe tcp_connect")
                && (h.ends_with("accept: kprobe security_sock_graft")
                    || h.ends_with("accept: kprobe __inet_accept")) => {}
        other => v.general.push(format!(
            "`conntrace check` does not name an entry probe for accepts and tcp_connect for \
             connects; its hooks line: {other:?}"
        )),
    }
    for expected in runs::expected(spec) {
        let verdict = match console.backend(&expected.name) {
            Some(run) => match expected.check {
                Check::Scenario(opts) => verify_scenario(run, ipv6, opts),
                Check::Cleanup {
                    case,
                    kprobe_events_during,
                } => faults::verify_cleanup(run, case, kprobe_events_during, ipv6),
                Check::Unprivileged => faults::verify_unprivileged(run),
                Check::Storm { misses } => crate::storm::verify(run, misses),
            },
            None => BackendVerdict {
                backend: expected.name.clone(),
                failures: vec![format!("no output at all for run {}", expected.name)],
                seen: Vec::new(),
            },
        };
        v.backends.push(verdict);
    }
    v
}

/// Who did what in the scenario, from the init's EXPECT line.
struct Scenario {
    port: u64,
    closed_port: u64,
    netns: u64,
    server: Actor,
    client: Actor,
    /// (family, loopback address, client's local port, the port the server saw)
    flows: Vec<(&'static str, &'static str, u64, u64)>,
    /// Built-in offsets without BTF: netns may be null, and error on failed records.
    nobtf: bool,
}

struct Actor {
    pid: u64,
    tid: u64,
    uid: u64,
    comm: String,
}

fn scenario(run: &BackendRun, ipv6: bool, nobtf: bool) -> Result<Scenario, String> {
    let num = |key: &str| -> Result<u64, String> {
        let text = run
            .expect_value(key)
            .ok_or_else(|| format!("the scenario did not report {key}"))?;
        text.parse()
            .map_err(|_| format!("the scenario reported {key}={text}, not a number"))
    };
    let text = |key: &str| -> Result<String, String> {
        run.expect_value(key)
            .map(str::to_string)
            .ok_or_else(|| format!("the scenario did not report {key}"))
    };
    let actor = |who: &str| -> Result<Actor, String> {
        Ok(Actor {
            pid: num(&format!("{who}_pid"))?,
            tid: num(&format!("{who}_tid"))?,
            uid: num(&format!("{who}_uid"))?,
            comm: text(&format!("{who}_comm"))?,
        })
    };
    let mut flows = vec![("ipv4", "127.0.0.1", num("v4_lport")?, num("v4_peer_port")?)];
    if ipv6 {
        flows.push(("ipv6", "::1", num("v6_lport")?, num("v6_peer_port")?));
    }
    Ok(Scenario {
        port: num("port")?,
        closed_port: num("closed_port")?,
        netns: num("netns")?,
        server: actor("server")?,
        client: actor("client")?,
        flows,
        nobtf,
    })
}

/// What a field must hold.
#[derive(Clone)]
enum Want<'a> {
    Str(&'a str),
    Int(u64),
    Null,
    /// The integer, or null (a field the no-BTF fallback may not know).
    IntOrNull(u64),
    /// The string, or null.
    StrOrNull(&'a str),
    /// A non-zero integer (a port we could not learn in advance).
    NonZero,
    /// Any unsigned integer (cgroup id).
    AnyInt,
    /// A latency: an integer >= 0.
    Latency,
    /// 16 lowercase hex digits (the opaque socket id).
    SockId,
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`
    Timestamp,
}

fn field_problem(rec: &Value, field: &str, want: &Want<'_>) -> Option<String> {
    let Some(got) = rec.get(field) else {
        return Some(format!("{field} is absent"));
    };
    let ok = match want {
        Want::Str(s) => got.as_str() == Some(*s),
        Want::Int(n) => got.as_u64() == Some(*n),
        Want::Null => got.is_null(),
        Want::IntOrNull(n) => got.is_null() || got.as_u64() == Some(*n),
        Want::StrOrNull(s) => got.is_null() || got.as_str() == Some(*s),
        Want::NonZero => got.as_u64().is_some_and(|n| n != 0),
        Want::AnyInt | Want::Latency => got.as_u64().is_some(),
        Want::SockId => got.as_str().is_some_and(|s| {
            s.len() == 16
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }),
        Want::Timestamp => got.as_str().is_some_and(is_timestamp),
    };
    if ok {
        return None;
    }
    let wanted = match want {
        Want::Str(s) => format!("\"{s}\""),
        Want::Int(n) => n.to_string(),
        Want::Null => "null".into(),
        Want::IntOrNull(n) => format!("{n} or null"),
        Want::StrOrNull(s) => format!("\"{s}\" or null"),
        Want::NonZero => "a non-zero integer".into(),
        Want::AnyInt => "an unsigned integer".into(),
        Want::Latency => "an integer >= 0".into(),
        Want::SockId => "16 lowercase hex digits".into(),
        Want::Timestamp => "a UTC timestamp like 2026-11-28T02:30:00.123456Z".into(),
    };
    Some(format!("{field} is {}, expected {wanted}", show(got)))
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digit_at = |i: &[usize]| i.iter().all(|&i| b.get(i).is_some_and(u8::is_ascii_digit));
    b.len() == 27
        && digit_at(&[
            0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25,
        ])
        && b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && b.get(10) == Some(&b'T')
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':')
        && b.get(19) == Some(&b'.')
        && b.get(26) == Some(&b'Z')
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.clone(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// One line summary of a record: what a person scanning a failure wants to see.
fn summary(rec: &Value) -> String {
    let f = |k: &str| rec.get(k).map(show).unwrap_or_else(|| "-".into());
    let addr = |a: &str, p: &str| {
        let addr = rec.get(a).and_then(Value::as_str).unwrap_or("-");
        if addr.contains(':') {
            format!("[{addr}]:{}", f(p))
        } else {
            format!("{addr}:{}", f(p))
        }
    };
    format!(
        "{} {} {} -> {} pid={} tid={} uid={} comm={} sock={} error={} latency_us={}",
        rec.get("event").and_then(Value::as_str).unwrap_or("?"),
        rec.get("family").and_then(Value::as_str).unwrap_or("?"),
        addr("laddr", "lport"),
        addr("raddr", "rport"),
        f("pid"),
        f("tid"),
        f("uid"),
        f("comm"),
        f("sock"),
        f("error"),
        f("latency_us"),
    )
}

fn str_of<'a>(rec: &'a Value, key: &str) -> Option<&'a str> {
    rec.get(key).and_then(Value::as_str)
}

fn u64_of(rec: &Value, key: &str) -> Option<u64> {
    rec.get(key).and_then(Value::as_u64)
}

/// Checks a record against a list of wants, adding "<what>: <problem>" per mismatch.
fn check_fields(failures: &mut Vec<String>, what: &str, rec: &Value, wants: &[(&str, Want<'_>)]) {
    let problems: Vec<String> = wants
        .iter()
        .filter_map(|(field, want)| field_problem(rec, field, want))
        .collect();
    if !problems.is_empty() {
        failures.push(format!(
            "{what}: {} (record: {})",
            problems.join("; "),
            summary(rec)
        ));
    }
}

/// Exactly one record expected; complains about none or several. Returns the first.
fn one<'a>(failures: &mut Vec<String>, what: &str, found: Vec<&'a Value>) -> Option<&'a Value> {
    match found.len() {
        0 => failures.push(format!("missing {what}")),
        1 => {}
        n => failures.push(format!("{n} records for {what}, expected exactly one")),
    }
    found.first().copied()
}

/// A run around the scenario: every record it must have printed, its exit, what it left.
fn verify_scenario(run: &BackendRun, ipv6: bool, opts: ScenarioRun) -> BackendVerdict {
    let mut failures = Vec::new();
    let mut records = Vec::new();
    match &run.attached {
        Some(Ok(_)) => {}
        Some(Err(why)) => failures.push(format!("conntrace did not attach: {why}")),
        None => failures.push("no report of conntrace attaching or failing to".into()),
    }
    for e in &run.scenario_errors {
        failures.push(format!("scenario: {e}"));
    }
    for (i, line) in run.events.iter().enumerate() {
        match json::parse(line) {
            Ok(rec) => {
                if rec.get("event").and_then(Value::as_str) == Some("lost") {
                    failures.push(format!("conntrace lost records: {line}"));
                } else {
                    check_schema(&mut failures, i + 1, line, &rec);
                    records.push(rec);
                }
            }
            Err(err) => failures.push(format!("stdout line {} is not JSON ({err}): {line}", i + 1)),
        }
    }
    let seen = records.iter().map(summary).collect();
    match scenario(run, ipv6, opts.nobtf) {
        Ok(s) => check_records(&mut failures, &s, &records),
        Err(why) => failures.push(format!("cannot check records: {why}")),
    }
    match run.exit.as_deref() {
        Some("code=0") => {}
        Some(other) => failures.push(format!(
            "conntrace exited {other} after SIGINT, expected code=0"
        )),
        None => failures.push("conntrace's exit status was not reported".into()),
    }
    if !run
        .stderr
        .iter()
        .any(|l| l.starts_with("conntrace: attached"))
    {
        failures.push(format!(
            "conntrace's stderr has no \"conntrace: attached\" line; it said: {}",
            if run.stderr.is_empty() {
                "nothing".to_string()
            } else {
                run.stderr.join(" | ")
            }
        ));
    }
    if opts.kprobe_events_during {
        faults::check_kprobe_events_during(run, ipv6, &mut failures);
    }
    if let Some(fault) = opts.fault {
        faults::check_fault(run, fault, &mut failures);
    }
    faults::check_leftovers(run, &mut failures);
    BackendVerdict {
        backend: run.name.clone(),
        failures,
        seen,
    }
}

/// Every non-lost record has exactly the contract's fields, in any order.
fn check_schema(failures: &mut Vec<String>, n: usize, line: &str, rec: &Value) {
    let Value::Object(members) = rec else {
        failures.push(format!("stdout line {n} is not a JSON object: {line}"));
        return;
    };
    let names: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
    let missing: Vec<&str> = FIELDS
        .iter()
        .copied()
        .filter(|f| !names.contains(f))
        .collect();
    let extra: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !FIELDS.contains(n))
        .collect();
    let dup = names.len()
        != members
            .iter()
            .map(|(k, _)| k)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
    if !missing.is_empty() || !extra.is_empty() || dup {
        failures.push(format!(
            "stdout line {n} does not have exactly the contract's fields (missing: {missing:?}, unexpected: {extra:?}, duplicates: {dup}): {line}"
        ));
    }
}

fn check_records(failures: &mut Vec<String>, s: &Scenario, records: &[Value]) {
    let by = |event: &str, family: &str, lport: Option<u64>, rport: u64| -> Vec<&Value> {
        records
            .iter()
            .filter(|r| {
                str_of(r, "event") == Some(event)
                    && str_of(r, "family") == Some(family)
                    && u64_of(r, "rport") == Some(rport)
                    && lport.is_none_or(|p| u64_of(r, "lport") == Some(p))
            })
            .collect()
    };
    let outcomes_of = |sock: Option<&str>| -> Vec<&Value> {
        records
            .iter()
            .filter(|r| {
                matches!(str_of(r, "event"), Some("established" | "failed"))
                    && sock.is_some()
                    && str_of(r, "sock") == sock
            })
            .collect()
    };
    let c = &s.client;
    let srv = &s.server;
    let netns: Want<'static> = if s.nobtf {
        Want::IntOrNull(s.netns)
    } else {
        Want::Int(s.netns)
    };

    for &(family, lo, cport, peer_port) in &s.flows {
        if cport != peer_port {
            failures.push(format!(
                "scenario: the {family} client's local port {cport} differs from the port the server saw ({peer_port})"
            ));
        }
        let client_side = |event: &'static str,
                           lport: Want<'static>,
                           rport: u64|
         -> Vec<(&'static str, Want<'static>)> {
            vec![
                ("ts", Want::Timestamp),
                ("event", Want::Str(event)),
                ("pid", Want::Int(c.pid)),
                ("tid", Want::Int(c.tid)),
                ("uid", Want::Int(c.uid)),
                ("family", Want::Str(family)),
                ("laddr", Want::Str(lo)),
                ("lport", lport),
                ("raddr", Want::Str(lo)),
                ("rport", Want::Int(rport)),
                ("netns", netns.clone()),
                ("cgroup", Want::AnyInt),
                ("sock", Want::SockId),
            ]
        };
        let what = format!(
            "connect {family} [{lo}]:{cport} -> [{lo}]:{} by {} (pid {} tid {})",
            s.port, c.comm, c.pid, c.tid
        );
        let connect = one(failures, &what, by("connect", family, Some(cport), s.port));
        if let Some(rec) = connect {
            let mut wants = client_side("connect", Want::Int(cport), s.port);
            wants.extend([
                ("comm", Want::Str(&c.comm)),
                ("error", Want::Null),
                ("latency_us", Want::Null),
            ]);
            check_fields(failures, &what, rec, &wants);
        }
        let what = format!(
            "established {family} [{lo}]:{cport} -> [{lo}]:{} (same sock as its connect)",
            s.port
        );
        let found = match connect {
            Some(rec) => outcomes_of(str_of(rec, "sock")),
            None => by("established", family, Some(cport), s.port),
        };
        if let Some(rec) = one(failures, &what, found) {
            let mut wants = client_side("established", Want::Int(cport), s.port);
            wants.extend([
                ("comm", Want::Str(&c.comm)),
                ("error", Want::Null),
                ("latency_us", Want::Latency),
            ]);
            check_fields(failures, &what, rec, &wants);
        }
        let what = format!(
            "accept {family} [{lo}]:{} <- [{lo}]:{peer_port} by {} (pid {} tid {})",
            s.port, srv.comm, srv.pid, srv.tid
        );
        if let Some(rec) = one(
            failures,
            &what,
            by("accept", family, Some(s.port), peer_port),
        ) {
            let wants = [
                ("ts", Want::Timestamp),
                ("event", Want::Str("accept")),
                ("pid", Want::Int(srv.pid)),
                ("tid", Want::Int(srv.tid)),
                ("uid", Want::Int(srv.uid)),
                ("comm", Want::Str(&srv.comm)),
                ("family", Want::Str(family)),
                ("laddr", Want::Str(lo)),
                ("lport", Want::Int(s.port)),
                ("raddr", Want::Str(lo)),
                ("rport", Want::Int(peer_port)),
                ("netns", netns.clone()),
                ("cgroup", Want::AnyInt),
                ("sock", Want::SockId),
                ("error", Want::Null),
                ("latency_us", Want::Null),
            ];
            check_fields(failures, &what, rec, &wants);
            let client_sock = connect.and_then(|r| str_of(r, "sock"));
            if client_sock.is_some() && str_of(rec, "sock") == client_sock {
                failures.push(format!("{what}: has the same sock id as the client's socket; they are different sockets"));
            }
        }
    }

    // The refused connect: its local port is gone by the time the client could ask, so it is
    // only required to be non-zero and the same on both records.
    let what = format!(
        "connect ipv4 -> 127.0.0.1:{} (closed port) by {} (pid {} tid {})",
        s.closed_port, c.comm, c.pid, c.tid
    );
    let connect = one(failures, &what, by("connect", "ipv4", None, s.closed_port));
    let refused_wants = |event: &'static str,
                         lport: Want<'static>,
                         error: Want<'static>,
                         latency: Want<'static>| {
        vec![
            ("ts", Want::Timestamp),
            ("event", Want::Str(event)),
            ("pid", Want::Int(c.pid)),
            ("tid", Want::Int(c.tid)),
            ("uid", Want::Int(c.uid)),
            ("family", Want::Str("ipv4")),
            ("laddr", Want::Str("127.0.0.1")),
            ("lport", lport),
            ("raddr", Want::Str("127.0.0.1")),
            ("rport", Want::Int(s.closed_port)),
            ("netns", netns.clone()),
            ("cgroup", Want::AnyInt),
            ("sock", Want::SockId),
            ("error", error),
            ("latency_us", latency),
        ]
    };
    if let Some(rec) = connect {
        let mut wants = refused_wants("connect", Want::NonZero, Want::Null, Want::Null);
        wants.push(("comm", Want::Str(&c.comm)));
        check_fields(failures, &what, rec, &wants);
    }
    let what = format!(
        "failed ipv4 -> 127.0.0.1:{} with ECONNREFUSED (same sock as its connect)",
        s.closed_port
    );
    let found = match connect {
        Some(rec) => outcomes_of(str_of(rec, "sock")),
        None => by("failed", "ipv4", None, s.closed_port),
    };
    if let Some(rec) = one(failures, &what, found) {
        let lport = match connect.and_then(|r| u64_of(r, "lport")) {
            Some(p) => Want::Int(p),
            None => Want::NonZero,
        };
        let error = if s.nobtf {
            Want::StrOrNull("ECONNREFUSED")
        } else {
            Want::Str("ECONNREFUSED")
        };
        let mut wants = refused_wants("failed", lport, error, Want::Latency);
        wants.push(("comm", Want::Str(&c.comm)));
        check_fields(failures, &what, rec, &wants);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console;
    use crate::plan::{Arch, KernelSeries, Pass};

    /// A VM spec with these backends (and passes) only.
    pub(crate) fn spec(backends: &[&str], passes: &[Pass], ipv6: bool) -> VmSpec {
        VmSpec {
            arch: Arch::X86_64,
            kernel: KernelSeries::V6_1,
            ipv6,
            backends: backends.iter().map(|b| b.to_string()).collect(),
            passes: passes.to_vec(),
        }
    }

    const EXPECT: &str = "CTVM EXPECT kprobe ipv6=1 port=4200 closed_port=4201 netns=4026531840 \
        server_pid=90 server_tid=90 server_uid=2000 server_comm=ct-server \
        client_pid=91 client_tid=93 client_uid=1000 client_comm=ct-client \
        v4_lport=40001 v4_peer_port=40001 v6_lport=40002 v6_peer_port=40002";

    // One record spelled out field group by field group reads better than a builder here.
    #[allow(clippy::too_many_arguments)]
    fn rec(
        event: &str,
        fam: &str,
        who: (u64, u64, u64, &str),
        l: (&str, u64),
        r: (&str, u64),
        sock: &str,
        err: &str,
        lat: &str,
    ) -> String {
        format!(
            "CTVM EVENT kprobe {{\"ts\":\"2026-11-28T02:30:00.123456Z\",\"event\":\"{event}\",\"pid\":{},\"tid\":{},\"uid\":{},\"comm\":\"{}\",\"family\":\"{fam}\",\"laddr\":\"{}\",\"lport\":{},\"raddr\":\"{}\",\"rport\":{},\"netns\":4026531840,\"cgroup\":1,\"sock\":\"{sock}\",\"error\":{err},\"latency_us\":{lat}}}",
            who.0, who.1, who.2, who.3, l.0, l.1, r.0, r.1
        )
    }

    fn good_console() -> String {
        let cl = (91, 93, 1000, "ct-client");
        let sv = (90, 90, 2000, "ct-server");
        let lines = vec![
            "CTVM INIT uptime=1.2".to_string(),
            "CTVM KPROBE_EVENTS_BEFORE kprobe end".into(),
            "CTVM ATTACHED kprobe 0.3".into(),
            rec(
                "connect",
                "ipv4",
                cl,
                ("127.0.0.1", 40001),
                ("127.0.0.1", 4200),
                "00000000000000a1",
                "null",
                "null",
            ),
            rec(
                "established",
                "ipv4",
                cl,
                ("127.0.0.1", 40001),
                ("127.0.0.1", 4200),
                "00000000000000a1",
                "null",
                "35",
            ),
            rec(
                "accept",
                "ipv4",
                sv,
                ("127.0.0.1", 4200),
                ("127.0.0.1", 40001),
                "00000000000000b1",
                "null",
                "null",
            ),
            rec(
                "connect",
                "ipv6",
                cl,
                ("::1", 40002),
                ("::1", 4200),
                "00000000000000a2",
                "null",
                "null",
            ),
            rec(
                "established",
                "ipv6",
                cl,
                ("::1", 40002),
                ("::1", 4200),
                "00000000000000a2",
                "null",
                "0",
            ),
            rec(
                "accept",
                "ipv6",
                sv,
                ("::1", 4200),
                ("::1", 40002),
                "00000000000000b2",
                "null",
                "null",
            ),
            rec(
                "connect",
                "ipv4",
                cl,
                ("127.0.0.1", 40003),
                ("127.0.0.1", 4201),
                "00000000000000a3",
                "null",
                "null",
            ),
            rec(
                "failed",
                "ipv4",
                cl,
                ("127.0.0.1", 40003),
                ("127.0.0.1", 4201),
                "00000000000000a3",
                "\"ECONNREFUSED\"",
                "12",
            ),
            "CTVM STDERR kprobe conntrace: attached 7 probes (kprobe)".into(),
            "CTVM STDERR kprobe conntrace: 9 events".into(),
            "CTVM EXIT kprobe code=0".into(),
            EXPECT.into(),
            "CTVM KPROBE_EVENTS_AFTER kprobe end".into(),
            "CTVM PROGS kprobe before=0 during=6 after=0".into(),
            "CTVM CHECK_OUT hooks          connect: kprobe tcp_v4_connect, kprobe tcp_connect; accept: kprobe security_sock_graft".into(),
            "CTVM CHECK_EXIT code=0".into(),
            "CTVM DONE".into(),
        ];
        lines.join("\n")
    }

    fn verdict_of(text: &str, ipv6: bool) -> VmVerdict {
        verify(&console::parse(text), &spec(&["kprobe"], &[], ipv6))
    }

    fn failures(v: &VmVerdict) -> Vec<String> {
        v.general
            .iter()
            .chain(v.backends.iter().flat_map(|b| b.failures.iter()))
            .cloned()
            .collect()
    }

    #[test]
    fn a_complete_run_passes() {
        let v = verdict_of(&good_console(), true);
        assert!(v.passed(), "{}", v.render());
        assert!(v.render().contains("run kprobe: PASS (8 records)"));
    }

    #[test]
    fn without_ipv6_the_ipv6_records_are_not_required() {
        let text: Vec<&str> = good_console()
            .leak()
            .lines()
            .filter(|l| !l.contains("ipv6\""))
            .collect();
        let v = verdict_of(&text.join("\n").replace("ipv6=1", "ipv6=0"), false);
        assert!(v.passed(), "{}", v.render());
    }

    #[test]
    fn an_empty_stdout_lists_every_missing_record() {
        let text: Vec<&str> = good_console()
            .leak()
            .lines()
            .filter(|l| !l.starts_with("CTVM EVENT"))
            .collect();
        let v = verdict_of(&text.join("\n"), true);
        let f = failures(&v);
        assert_eq!(f.len(), 8, "{f:#?}");
        assert!(f.iter().any(|l| l.starts_with("missing connect ipv4 [127.0.0.1]:40001 -> [127.0.0.1]:4200 by ct-client (pid 91 tid 93)")), "{f:#?}");
        assert!(
            f.iter().any(
                |l| l.starts_with("missing accept ipv6 [::1]:4200 <- [::1]:40002 by ct-server")
            ),
            "{f:#?}"
        );
        assert!(
            f.iter()
                .any(|l| l.starts_with("missing failed ipv4 -> 127.0.0.1:4201 with ECONNREFUSED")),
            "{f:#?}"
        );
        assert!(v.render().contains("seen: no records at all"));
    }

    #[test]
    fn wrong_fields_are_named_with_both_values() {
        let text = good_console()
            .replace(
                "\"pid\":90,\"tid\":90,\"uid\":2000,\"comm\":\"ct-server\",\"family\":\"ipv4\"",
                "\"pid\":7,\"tid\":90,\"uid\":2000,\"comm\":\"swapper/0\",\"family\":\"ipv4\"",
            )
            .replace(
                "\"ECONNREFUSED\",\"latency_us\":12",
                "\"ETIMEDOUT\",\"latency_us\":12",
            );
        let f = failures(&verdict_of(&text, true));
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(
            f[0].contains("pid is 7, expected 90; comm is \"swapper/0\", expected \"ct-server\""),
            "{f:#?}"
        );
        assert!(
            f[1].contains("error is \"ETIMEDOUT\", expected \"ECONNREFUSED\""),
            "{f:#?}"
        );
    }

    #[test]
    fn established_needs_a_latency_and_the_connects_sock() {
        let text = good_console().replace(
            "\"00000000000000a1\",\"error\":null,\"latency_us\":35",
            "\"00000000000000ff\",\"error\":null,\"latency_us\":null",
        );
        let f = failures(&verdict_of(&text, true));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].starts_with("missing established ipv4"), "{f:#?}");
        let text = good_console().replace("\"latency_us\":35", "\"latency_us\":-1");
        let f = failures(&verdict_of(&text, true));
        assert!(
            f[0].contains("latency_us is -1, expected an integer >= 0"),
            "{f:#?}"
        );
    }

    #[test]
    fn duplicates_schema_errors_and_lost_records_fail() {
        let good = good_console();
        let dup_line = good
            .lines()
            .find(|l| l.contains("\"accept\""))
            .unwrap()
            .to_string();
        let text = format!(
            "{good}\n{dup_line}\nCTVM EVENT kprobe {{\"ts\":\"x\",\"event\":\"lost\",\"cpu\":1,\"count\":3}}\nCTVM EVENT kprobe not json\nCTVM EVENT kprobe {{\"event\":\"connect\",\"extra\":1}}"
        );
        let f = failures(&verdict_of(&text, true));
        assert!(
            f.iter().any(|l| l.starts_with("2 records for accept ipv4")),
            "{f:#?}"
        );
        assert!(
            f.iter().any(|l| l.starts_with("conntrace lost records")),
            "{f:#?}"
        );
        assert!(f.iter().any(|l| l.contains("is not JSON")), "{f:#?}");
        assert!(
            f.iter().any(|l| l.contains("unexpected: [\"extra\"]")),
            "{f:#?}"
        );
    }

    #[test]
    fn exit_status_leftover_kprobes_check_and_attach_are_checked() {
        let text = good_console()
            .replace("CTVM EXIT kprobe code=0", "CTVM EXIT kprobe signal=9")
            .replace("CTVM KPROBE_EVENTS_AFTER kprobe end", "CTVM KPROBE_EVENTS_AFTER kprobe entry p:kprobes/ct_1 tcp_v4_connect\nCTVM KPROBE_EVENTS_AFTER kprobe end")
            .replace("CTVM CHECK_EXIT code=0", "CTVM CHECK_EXIT code=1")
            .replace("accept: kprobe security_sock_graft", "accept: kretprobe inet_csk_accept")
            .replace("CTVM ATTACHED kprobe 0.3", "CTVM ATTACH_FAILED kprobe exited code=0 before attaching")
            .replace("CTVM STDERR kprobe conntrace: attached 7 probes (kprobe)", "CTVM STDERR kprobe oops")
            .replace("CTVM DONE", "");
        let f = failures(&verdict_of(&text, true));
        for needle in [
            "conntrace exited signal=9 after SIGINT",
            "kprobe_events still lists entries after conntrace exited: p:kprobes/ct_1 tcp_v4_connect",
            "`conntrace check` exited code=1",
            "`conntrace check` does not name an entry probe for accepts",
            "conntrace did not attach: exited code=0 before attaching",
            "no \"conntrace: attached\" line; it said: oops | conntrace: 9 events",
            "the init did not finish",
        ] {
            assert!(f.iter().any(|l| l.contains(needle)), "{needle}: {f:#?}");
        }
    }

    #[test]
    fn a_missing_backend_or_scenario_report_is_a_failure() {
        let v = verify(
            &console::parse(
                "CTVM INIT x\nCTVM CHECK_EXIT code=0\nCTVM DONE\nCTVM ATTACHED kprobe 1",
            ),
            &spec(&["kprobe", "tracepoint"], &[], true),
        );
        let f = failures(&v);
        assert!(
            f.iter().any(|l| l == "no output at all for run tracepoint"),
            "{f:#?}"
        );
        assert!(
            f.iter()
                .any(|l| l == "cannot check records: the scenario did not report v4_lport"),
            "{f:#?}"
        );
    }

    /// The good console as the named run of a fault pass.
    fn as_run(name: &str) -> String {
        good_console()
            .lines()
            .map(|l| match l.starts_with("CTVM CHECK_OUT") {
                true => l.to_string(),
                false => l.replace(" kprobe ", &format!(" {name} ")),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn nobtf_accepts_null_netns_and_null_error_on_failed_only() {
        let nobtf = spec(&[], &[Pass::NoBtf], true);
        let text = as_run("kprobe-nobtf")
            .replace("\"netns\":4026531840", "\"netns\":null")
            .replace("\"error\":\"ECONNREFUSED\"", "\"error\":null");
        let v = verify(&console::parse(&text), &nobtf);
        assert!(v.passed(), "{}", v.render());
        // Everything else stays exact: a wrong netns, a wrong error, a wrong pid.
        let text = as_run("kprobe-nobtf")
            .replacen("\"netns\":4026531840", "\"netns\":7", 1)
            .replace("\"error\":\"ECONNREFUSED\"", "\"error\":\"ETIMEDOUT\"")
            .replacen("\"pid\":91", "\"pid\":92", 1);
        let f = failures(&verify(&console::parse(&text), &nobtf));
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(
            f[0].contains("pid is 92, expected 91; netns is 7, expected 4026531840 or null"),
            "{f:#?}"
        );
        assert!(
            f[1].contains("error is \"ETIMEDOUT\", expected \"ECONNREFUSED\" or null"),
            "{f:#?}"
        );
        // With BTF a null netns is a failure.
        let text = good_console().replace("\"netns\":4026531840", "\"netns\":null");
        let f = failures(&verdict_of(&text, true));
        assert_eq!(f.len(), 8, "{f:#?}");
        assert!(
            f.iter()
                .all(|l| l.contains("netns is null, expected 4026531840")),
            "{f:#?}"
        );
    }

    #[test]
    fn fault_passes_add_their_checks_to_the_scenario() {
        let tracefs = spec(&[], &[Pass::TracefsMethod], true);
        let f = failures(&verify(
            &console::parse(&as_run("kprobe-tracefs")),
            &tracefs,
        ));
        assert_eq!(
            f,
            ["kprobe_events while attached was not reported completely"],
            "the PMU run has no listing while attached"
        );
        let listing: String = [
            "CTVM PID kprobe-tracefs 50",
            "CTVM KPROBE_EVENTS_DURING kprobe-tracefs entry p:kprobes/conntrace_50_0 tcp_v4_connect",
            "CTVM KPROBE_EVENTS_DURING kprobe-tracefs entry r10:kprobes/conntrace_50_1 tcp_v4_connect",
            "CTVM KPROBE_EVENTS_DURING kprobe-tracefs entry p:kprobes/conntrace_50_2 tcp_v6_connect",
            "CTVM KPROBE_EVENTS_DURING kprobe-tracefs entry r10:kprobes/conntrace_50_3 tcp_v6_connect",
            "CTVM KPROBE_EVENTS_DURING kprobe-tracefs entry p:kprobes/conntrace_50_4 tcp_connect",
            "CTVM KPROBE_EVENTS_DURING kprobe-tracefs entry p:kprobes/conntrace_50_5 security_sock_graft",
            "CTVM KPROBE_EVENTS_DURING kprobe-tracefs end",
        ]
        .join("\n");
        let text = format!("{}\n{listing}", as_run("kprobe-tracefs"));
        let v = verify(&console::parse(&text), &tracefs);
        assert!(v.passed(), "{}", v.render());

        let cpu = spec(&[], &[Pass::CpuOffline], true);
        let f = failures(&verify(&console::parse(&as_run("kprobe-cpu1off")), &cpu));
        assert_eq!(
            f,
            [
                "no report that the fault was set up",
                "no report that the fault was undone"
            ]
        );
        let text = format!(
            "{}\nCTVM SETUP kprobe-cpu1off ok online=0\nCTVM RESTORE kprobe-cpu1off ok online=0-1",
            as_run("kprobe-cpu1off")
        );
        assert!(verify(&console::parse(&text), &cpu).passed());
    }

    #[test]
    fn every_run_of_every_pass_is_required() {
        let all = spec(
            &["kprobe"],
            &[
                Pass::CleanupKprobe,
                Pass::CleanupTracepoint,
                Pass::Unprivileged,
                Pass::NoTracefs,
            ],
            true,
        );
        let v = verify(&console::parse(&good_console()), &all);
        let f = failures(&v);
        assert_eq!(f.len(), 12 + 1 + 1, "{f:#?}");
        assert!(f.contains(&"no output at all for run cleanup-kprobe-sigpipe".to_string()));
        assert!(f.contains(&"no output at all for run cleanup-tracepoint-write-error".to_string()));
        assert!(f.contains(&"no output at all for run unprivileged".to_string()));
        assert!(f.contains(&"no output at all for run tracepoint-notracefs".to_string()));
        assert!(v.render().contains("run kprobe: PASS (8 records)"));
    }

    #[test]
    fn a_scenario_run_that_leaves_programs_fails() {
        let text = good_console().replace("after=0", "after=2");
        assert_eq!(
            failures(&verdict_of(&text, true)),
            ["2 BPF programs loaded after conntrace exited, 0 before it started: it left programs behind"]
        );
    }

    #[test]
    fn timestamps_are_checked_for_shape() {
        assert!(is_timestamp("2026-11-28T02:30:00.123456Z"));
        for bad in [
            "2026-11-28T02:30:00Z",
            "2026-11-28 02:30:00.123456Z",
            "2026-11-28T02:30:00.123456",
            "",
            "2026-1a-28T02:30:00.123456Z",
        ] {
            assert!(!is_timestamp(bad), "{bad}");
        }
    }
}
