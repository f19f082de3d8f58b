//! The checks of the fault passes: nothing left behind (kprobe_events entries, BPF
//! programs), our kprobe_events entries while attached, faults set up and undone, the cleanup
//! cases' exit statuses and the unprivileged refusal.

use crate::console::{BackendRun, KprobeListing};
use crate::runs::CleanupCase;
use crate::verdict::BackendVerdict;

/// What conntrace prints when it lacks privileges (src/load, src/attach).
pub const PRIVILEGE_MESSAGE: &str = "needs root or CAP_BPF+CAP_PERFMON";
/// strerror(ENOSPC), in conntrace's message about a failed write to /dev/full.
pub const ENOSPC_TEXT: &str = "No space left on device";

/// No kprobe_events entry and no extra BPF program once conntrace has exited; and, if it
/// attached, more programs while it ran (else the count proves nothing).
pub fn check_leftovers(run: &BackendRun, failures: &mut Vec<String>) {
    match &run.kprobe_events_after {
        KprobeListing::Complete(entries) if entries.is_empty() => {}
        KprobeListing::Complete(entries) => failures.push(format!(
            "kprobe_events still lists entries after conntrace exited: {}",
            entries.join(" | ")
        )),
        KprobeListing::Partial(_) | KprobeListing::Missing => {
            failures.push("kprobe_events after the run was not reported completely".into())
        }
        KprobeListing::Unavailable(why) => failures.push(format!(
            "cannot verify kprobe_events were cleaned up: {why}"
        )),
    }
    match &run.progs {
        Some(Ok(c)) => {
            if c.after != c.before {
                failures.push(format!(
                    "{} BPF programs loaded after conntrace exited, {} before it started: it left programs behind",
                    c.after, c.before
                ));
            }
            let attached = matches!(run.attached, Some(Ok(_)));
            match c.during {
                Some(during) if during <= c.before => failures.push(format!(
                    "{during} BPF programs loaded while conntrace was attached, {} before: the count does not see conntrace's programs",
                    c.before
                )),
                None if attached => failures.push(
                    "the BPF program count while attached was not reported".into(),
                ),
                _ => {}
            }
        }
        Some(Err(why)) => failures.push(format!("cannot verify BPF programs were unloaded: {why}")),
        None => failures.push("the BPF program count after the run was not reported".into()),
    }
}

/// While attached with the tracefs method, kprobe_events lists our entries, named after
/// conntrace's pid, for every kprobe of the backend.
pub fn check_kprobe_events_during(run: &BackendRun, ipv6: bool, failures: &mut Vec<String>) {
    let entries = match &run.kprobe_events_during {
        KprobeListing::Complete(entries) => entries,
        KprobeListing::Unavailable(why) => {
            failures.push(format!(
                "kprobe_events could not be listed while attached: {why}"
            ));
            return;
        }
        KprobeListing::Partial(_) | KprobeListing::Missing => {
            failures.push("kprobe_events while attached was not reported completely".into());
            return;
        }
    };
    let Some(pid) = run.pid.as_deref() else {
        failures.push("conntrace's pid was not reported".into());
        return;
    };
    let prefix = format!("conntrace_{pid}_");
    let mut ours = Vec::new();
    for entry in entries {
        match parse_entry(entry) {
            Some((kind, name, function))
                if name
                    .strip_prefix(&prefix)
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
            {
                ours.push((kind, function))
            }
            _ => failures.push(format!(
                "kprobe_events entry while attached is not conntrace_{pid}_<n>: {entry}"
            )),
        }
    }
    let mut wanted = vec![
        ('p', "tcp_v4_connect"),
        ('r', "tcp_v4_connect"),
        ('r', "inet_csk_accept"),
    ];
    if ipv6 {
        wanted.extend([('p', "tcp_v6_connect"), ('r', "tcp_v6_connect")]);
    }
    for (kind, function) in wanted {
        if !ours.contains(&(kind, function)) {
            let what = if kind == 'r' { "kretprobe" } else { "kprobe" };
            failures.push(format!(
                "kprobe_events has no {what} entry for {function} while attached; it listed: {}",
                if entries.is_empty() {
                    "nothing".to_string()
                } else {
                    entries.join(" | ")
                }
            ));
        }
    }
}

/// "r16:kprobes/conntrace_9_1 inet_csk_accept+0" -> ('r', "conntrace_9_1", "inet_csk_accept").
fn parse_entry(entry: &str) -> Option<(char, &str, &str)> {
    let mut words = entry.split_whitespace();
    let head = words.next()?;
    let function = words.next()?.split('+').next()?;
    let kind = head.chars().next()?;
    let (_, group_and_name) = head.split_once(':')?;
    let name = group_and_name.rsplit('/').next()?;
    Some((kind, name, function))
}

/// The fault was set up before the run and undone after.
pub fn check_fault(run: &BackendRun, failures: &mut Vec<String>) {
    for (what, result) in [("set up", &run.setup), ("undone", &run.restore)] {
        match result {
            Some(Ok(_)) => {}
            Some(Err(why)) => failures.push(format!("the fault could not be {what}: {why}")),
            None => failures.push(format!("no report that the fault was {what}")),
        }
    }
}

fn stderr_text(run: &BackendRun) -> String {
    if run.stderr.is_empty() {
        "nothing".into()
    } else {
        run.stderr.join(" | ")
    }
}

/// One way of ending conntrace: the exit status it must give, the output it may give, and
/// nothing left behind.
pub fn verify_cleanup(
    run: &BackendRun,
    case: CleanupCase,
    kprobe_events_during: bool,
    ipv6: bool,
) -> BackendVerdict {
    let mut failures = Vec::new();
    match &run.attached {
        Some(Ok(_)) => {}
        Some(Err(why)) => failures.push(format!("conntrace did not attach: {why}")),
        None => failures.push("no report of conntrace attaching or failing to".into()),
    }
    match run.exit.as_deref() {
        Some(exit) if exit == case.exit() => {}
        Some(other) => failures.push(format!(
            "conntrace exited {other} {}, expected {}; stderr: {}",
            case.describe(),
            case.exit(),
            stderr_text(run)
        )),
        None => failures.push("conntrace's exit status was not reported".into()),
    }
    let lines = run.events.len();
    let events_problem = match case {
        // The init waited for a record before signalling: the rings were live.
        CleanupCase::Sigint | CleanupCase::Sigterm if lines == 0 => {
            Some("no record arrived before the signal, expected at least one".to_string())
        }
        // The init reads one line, then closes the pipe.
        CleanupCase::Sigpipe if lines != 1 => Some(format!(
            "the init read {lines} lines before closing the pipe, expected 1"
        )),
        CleanupCase::MaxEvents if lines != 2 => {
            Some(format!("{lines} records printed with -n 2, expected 2"))
        }
        _ => None,
    };
    failures.extend(events_problem);
    if case == CleanupCase::WriteError
        && !run
            .stderr
            .iter()
            .any(|l| l.starts_with("conntrace: ") && l.contains(ENOSPC_TEXT))
    {
        failures.push(format!(
            "no \"conntrace: ...{ENOSPC_TEXT}\" message on stderr; it said: {}",
            stderr_text(run)
        ));
    }
    if kprobe_events_during {
        check_kprobe_events_during(run, ipv6, &mut failures);
    }
    check_leftovers(run, &mut failures);
    BackendVerdict {
        backend: run.name.clone(),
        failures,
        seen: run.events.clone(),
    }
}

/// Without privileges conntrace refuses, says why, and leaves nothing behind.
pub fn verify_unprivileged(run: &BackendRun) -> BackendVerdict {
    let mut failures = Vec::new();
    if let Some(Ok(_)) = run.attached {
        failures.push("conntrace attached as uid 1000 without capabilities".into());
    }
    match run.exit.as_deref() {
        Some("code=1") => {}
        Some(other) => failures.push(format!(
            "conntrace exited {other} as uid 1000, expected code=1; stderr: {}",
            stderr_text(run)
        )),
        None => failures.push("conntrace's exit status was not reported".into()),
    }
    if !run.stderr.iter().any(|l| l.contains(PRIVILEGE_MESSAGE)) {
        failures.push(format!(
            "no message containing \"{PRIVILEGE_MESSAGE}\" on stderr; it said: {}",
            stderr_text(run)
        ));
    }
    check_leftovers(run, &mut failures);
    BackendVerdict {
        backend: run.name.clone(),
        failures,
        seen: run.events.clone(),
    }
}
