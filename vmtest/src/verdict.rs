//! Decides whether conntrace reported what the scenario did, field by field, the way a host
//! test would; every failure says what was expected and what was seen instead.
//!
//! Here: the verdict types and the checks of a run as a whole. `scenario` reads who did what,
//! `records` holds the table of records that must follow, `fields` checks one record.

mod fields;
mod records;
mod scenario;

use crate::console::{BackendRun, Console};
use crate::faults;
use crate::json::{self, Value};
use crate::plan::VmSpec;
use crate::runs::{self, Check, ScenarioRun};
#[cfg(test)]
use fields::is_timestamp;
use fields::summary;

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
    /// What passed but is worth a look (printed with the run's PASS line too).
    pub notes: Vec<String>,
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
                for n in &b.notes {
                    out.push_str(&format!("    note: {n}\n"));
                }
                continue;
            }
            for n in &b.notes {
                out.push_str(&format!("    note: {n}\n"));
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

/// The record fields of the JSON contract (the README's "What it prints"), in order: the one
/// statement of it the tests share (VM harness, host tests, output unit tests), kept apart
/// from the writer so a change to the writer cannot quietly change what the tests expect.
pub const FIELDS: [&str; 23] = [
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
    "duration_us",
    "bytes_sent",
    "bytes_received",
    "closed_by",
    "cgroup_path",
    "container_id",
    "pod_uid",
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
    // The no-BTF kernel is only worth booting if it really has no BTF.
    let want_btf = spec.kernel.has_btf();
    let where_ = "/sys/kernel/btf/vmlinux";
    match console.btf {
        _ if console.init.is_none() => {}
        Some(have) if have == want_btf => {}
        Some(have) => v.general.push(format!(
            "the {} kernel {} {where_}, expected it {}",
            spec.kernel,
            if have { "has" } else { "lacks" },
            if want_btf { "present" } else { "absent" }
        )),
        None => v.general.push(format!(
            "the init did not report whether {where_} exists (no `CTVM BTF` line)"
        )),
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
    // `check` names the hooks per job (`connect: ...; accept: ...; state: ...`); on every
    // kernel of the suite accepts have an entry probe, and the state changes (outcomes and
    // closes) their tracepoint.
    let hooks = console
        .check_out
        .iter()
        .find_map(|l| l.strip_prefix("hooks").map(str::trim));
    let job = |h: &str, name: &str| {
        h.split("; ")
            .find_map(|j| j.strip_prefix(name)?.strip_prefix(": "))
            .map(str::to_string)
    };
    match hooks {
        Some(h)
            if job(h, "connect").is_some_and(|c| {
                c.starts_with("kprobe tcp_v4_connect") && c.contains("kprobe tcp_connect")
            }) && job(h, "accept").is_some_and(|a| {
                a == "kprobe security_sock_graft" || a == "kprobe __inet_accept"
            }) && job(h, "state") == Some(state_hooks(spec, false, false)) => {}
        other => v.general.push(format!(
            "`conntrace check` does not name an entry probe for accepts, tcp_connect for \
             connects and the state tracepoint; its hooks line: {other:?}"
        )),
    }
    for expected in runs::expected(spec) {
        let verdict = match console.backend(&expected.name) {
            Some(run) => match expected.check {
                Check::Scenario(opts) => verify_scenario(run, spec, ipv6, opts),
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
                notes: Vec::new(),
            },
        };
        v.backends.push(verdict);
    }
    v
}

/// How a run's start went wrong: conntrace did not attach, or the workload itself failed.
pub fn attach_and_scenario_failures(run: &BackendRun) -> Vec<String> {
    let mut failures = Vec::new();
    match &run.attached {
        Some(Ok(_)) => {}
        Some(Err(why)) => failures.push(format!("conntrace did not attach: {why}")),
        None => failures.push("no report of conntrace attaching or failing to".into()),
    }
    for e in &run.scenario_errors {
        failures.push(format!("scenario: {e}"));
    }
    failures
}

/// A run around the scenario: every record it must have printed, its exit, what it left.
/// The state job's hooks as the "attached" line and `conntrace check` name them: the tp_btf
/// pair where the kernel lets tp_btf use socket storage (and BTF is used), else the raw
/// tracepoints; the classic state tracepoint where a run forces it (the way of a kernel
/// before 4.17), with the raw destroy hook.
fn state_hooks(spec: &VmSpec, classic: bool, no_btf: bool) -> String {
    if classic {
        "tracepoint sock/inet_sock_set_state, raw tracepoint tcp_destroy_sock".into()
    } else if spec.kernel.has_tracing_sk_storage() && !no_btf {
        "BTF tracepoint inet_sock_set_state, BTF tracepoint tcp_destroy_sock".into()
    } else {
        "raw tracepoint inet_sock_set_state, raw tracepoint tcp_destroy_sock".into()
    }
}

fn verify_scenario(
    run: &BackendRun,
    spec: &VmSpec,
    ipv6: bool,
    opts: ScenarioRun,
) -> BackendVerdict {
    let mut failures = attach_and_scenario_failures(run);
    let mut records = Vec::new();
    for (i, line) in run.events.iter().enumerate() {
        match json::parse(line) {
            Ok(rec) => {
                if rec.get("event").and_then(Value::as_str) == Some("lost") {
                    // The kernel's count of skipped probe runs is reported, not a failure of
                    // its own: a record it cost is missing, and `records::check` says so.
                    let reason = rec.get("reason").and_then(Value::as_str);
                    if reason != Some("skipped") {
                        failures.push(format!("conntrace lost records: {line}"));
                    }
                } else {
                    check_schema(&mut failures, i + 1, line, &rec);
                    records.push(rec);
                }
            }
            Err(err) => failures.push(format!("stdout line {} is not JSON ({err}): {line}", i + 1)),
        }
    }
    let seen = records.iter().map(summary).collect();
    match scenario::scenario(run, ipv6) {
        Ok(s) => records::check(&mut failures, &s, &records),
        Err(why) => failures.push(format!("cannot check records: {why}")),
    }
    match run.exit.as_deref() {
        Some("code=0") => {}
        Some(other) => failures.push(format!(
            "conntrace exited {other} after SIGINT, expected code=0"
        )),
        None => failures.push("conntrace's exit status was not reported".into()),
    }
    let state = state_hooks(spec, opts.classic_state, opts.no_btf);
    let attached = run
        .stderr
        .iter()
        .find(|l| l.starts_with("conntrace: attached"));
    if let Some(line) = attached.filter(|l| !l.contains(&format!("state: {state})"))) {
        failures.push(format!(
            "conntrace's \"attached\" line does not name the {state} as the state hook: {line}"
        ));
    }
    let ring = if opts.perf_rings || !spec.kernel.has_bpf_ring_buffer() {
        "perf rings"
    } else {
        "the BPF ring buffer"
    };
    if let Some(line) = attached.filter(|l| !l.contains(&format!("; records through {ring} ("))) {
        failures.push(format!(
            "conntrace's \"attached\" line does not name {ring} as where records go: {line}"
        ));
    }
    if attached.is_none() {
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
    // Where the kernel counts them, skipped runs of conntrace's programs explain a missing
    // record (and are worth knowing about when nothing is missing).
    let notes = match run.recursion_misses {
        Some(Ok(n)) if n > 0 => vec![format!(
            "the kernel skipped {n} runs of conntrace's programs, nested in another BPF program \
             on the CPU: their records were never made"
        )],
        _ => Vec::new(),
    };
    BackendVerdict {
        backend: run.name.clone(),
        failures,
        seen,
        notes,
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

#[cfg(test)]
mod tests;
