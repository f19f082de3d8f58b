//! The checks of the fault passes: nothing left behind (kprobe_events entries, BPF
//! programs), our kprobe_events entries while attached, faults set up and undone, the cleanup
//! cases' exit statuses and the unprivileged refusal.

use crate::console::{BackendRun, KprobeListing};
use crate::runs::{CleanupCase, Fault};
use crate::verdict::BackendVerdict;

/// What conntrace prints when it lacks privileges (src/kernel/load, src/kernel/attach).
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
        ('p', "tcp_connect"),
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
    // Every kernel of the suite has an entry hook for accepts: the return probe of
    // inet_csk_accept, which misses accepts, is only a last resort.
    if !ours
        .iter()
        .any(|&(k, f)| k == 'p' && ACCEPT_ENTRY_HOOKS.contains(&f))
    {
        failures.push(format!(
            "kprobe_events has no entry probe for accepts ({}) while attached; it listed: {}",
            ACCEPT_ENTRY_HOOKS.join(" or "),
            entries.join(" | ")
        ));
    }
}

/// The kprobe backend's entry probes for accepts (src/session/backend.rs, ACCEPT_HOOKS).
const ACCEPT_ENTRY_HOOKS: [&str; 2] = ["security_sock_graft", "__inet_accept"];

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

/// The fault was set up before the run and undone after (for a CPU: the online lists show
/// it went and came back).
pub fn check_fault(run: &BackendRun, fault: Fault, failures: &mut Vec<String>) {
    let (setup_text, restore_text) = match fault {
        Fault::NoTracefs => (None, None),
        Fault::Cpu1Offline => (Some("online=0"), Some("online=0-1")),
    };
    for (what, result, wanted) in [
        ("set up", &run.setup, setup_text),
        ("undone", &run.restore, restore_text),
    ] {
        match result {
            Some(Ok(text)) => {
                if let Some(wanted) = wanted.filter(|w| text != w) {
                    failures.push(format!(
                        "the fault was {what} but the CPUs are {text}, expected {wanted}"
                    ));
                }
            }
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
        notes: Vec::new(),
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
        notes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console;

    const CONNECT: &str = r#"{"ts":"2026-11-28T03:25:13.239835Z","event":"connect","pid":1,"tid":1,"uid":0,"comm":"init","family":"ipv4","laddr":"127.0.0.1","lport":47314,"raddr":"127.0.0.1","rport":4900,"netns":4026531840,"cgroup":1,"sock":"c8d966e90a7084c7","error":null,"latency_us":null,"cgroup_path":"/","container_id":null,"pod_uid":null}"#;

    /// A cleanup run as the init reports it (lines taken from an x86_64 6.1 console), with
    /// `records` stdout lines, an extra stderr line and an exit status.
    fn cleanup_console(run: &str, records: usize, stderr: &str, exit: &str) -> String {
        let mut lines = vec![
            format!("CTVM KPROBE_EVENTS_BEFORE {run} end"),
            format!("CTVM PID {run} 118"),
            format!("CTVM ATTACHED {run} 0.24"),
        ];
        for (i, entry) in [
            "p:kprobes/conntrace_118_0 tcp_v4_connect",
            "r10:kprobes/conntrace_118_1 tcp_v4_connect",
            "p:kprobes/conntrace_118_2 tcp_v6_connect",
            "r10:kprobes/conntrace_118_3 tcp_v6_connect",
            "p:kprobes/conntrace_118_4 tcp_connect",
            "p:kprobes/conntrace_118_5 security_sock_graft",
        ]
        .iter()
        .enumerate()
        {
            lines.push(format!("CTVM KPROBE_EVENTS_DURING {run} entry {entry}"));
            assert!(entry.contains(&format!("_118_{i} ")));
        }
        lines.push(format!("CTVM KPROBE_EVENTS_DURING {run} end"));
        for _ in 0..records {
            lines.push(format!("CTVM EVENT {run} {CONNECT}"));
        }
        lines.push(format!("CTVM STDERR {run} conntrace: attached 6 probes: kprobe backend (as asked); Ctrl-C to stop"));
        if !stderr.is_empty() {
            lines.push(format!("CTVM STDERR {run} {stderr}"));
        }
        lines.push(format!("CTVM EXIT {run} {exit}"));
        lines.push(format!("CTVM KPROBE_EVENTS_AFTER {run} end"));
        lines.push(format!("CTVM PROGS {run} before=0 during=6 after=0"));
        lines.join("\n")
    }

    fn cleanup_failures(text: &str, case: CleanupCase, ipv6: bool) -> Vec<String> {
        let c = console::parse(text);
        let run = c.backends.first().expect("one run");
        verify_cleanup(run, case, true, ipv6).failures
    }

    #[test]
    fn every_case_passes_as_the_init_reports_it() {
        for (case, records, stderr, exit) in [
            (CleanupCase::Sigint, 2, "", "code=0"),
            (CleanupCase::Sigterm, 1, "", "code=0"),
            (CleanupCase::Sigpipe, 1, "", "code=0"),
            (CleanupCase::Duration, 0, "", "code=0"),
            (CleanupCase::MaxEvents, 2, "", "code=0"),
            (
                CleanupCase::WriteError,
                0,
                "conntrace: cannot write the output: No space left on device (os error 28)",
                "code=1",
            ),
        ] {
            let text = cleanup_console("cleanup-kprobe-x", records, stderr, exit);
            let f = cleanup_failures(&text, case, true);
            assert!(f.is_empty(), "{}: {f:#?}", case.name());
        }
    }

    #[test]
    fn wrong_exit_status_or_record_count_is_named() {
        let text = cleanup_console("r", 2, "", "signal=13");
        let f = cleanup_failures(&text, CleanupCase::Sigpipe, true);
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(f[0].starts_with("conntrace exited signal=13 after its stdout pipe was closed, expected code=0; stderr: conntrace: attached"), "{f:#?}");
        assert_eq!(
            f[1],
            "the init read 2 lines before closing the pipe, expected 1"
        );

        let f = cleanup_failures(
            &cleanup_console("r", 3, "", "code=0"),
            CleanupCase::MaxEvents,
            true,
        );
        assert_eq!(f, ["3 records printed with -n 2, expected 2"]);
        let f = cleanup_failures(
            &cleanup_console("r", 0, "", "code=0"),
            CleanupCase::Sigterm,
            true,
        );
        assert_eq!(
            f,
            ["no record arrived before the signal, expected at least one"]
        );

        // A write error that exits 0, or says nothing about ENOSPC, fails.
        let f = cleanup_failures(
            &cleanup_console("r", 0, "", "code=0"),
            CleanupCase::WriteError,
            true,
        );
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(
            f[0].contains("with stdout on /dev/full, expected code=1"),
            "{f:#?}"
        );
        assert!(
            f[1].starts_with("no \"conntrace: ...No space left on device\" message"),
            "{f:#?}"
        );
    }

    #[test]
    fn leftovers_are_failures() {
        let good = cleanup_console("r", 1, "", "code=0");
        let text = good
            .replace(
                "CTVM KPROBE_EVENTS_AFTER r end",
                "CTVM KPROBE_EVENTS_AFTER r entry p:kprobes/conntrace_118_0 tcp_v4_connect\nCTVM KPROBE_EVENTS_AFTER r end",
            )
            .replace("after=0", "after=6");
        let f = cleanup_failures(&text, CleanupCase::Sigint, true);
        assert_eq!(
            f,
            [
                "kprobe_events still lists entries after conntrace exited: p:kprobes/conntrace_118_0 tcp_v4_connect",
                "6 BPF programs loaded after conntrace exited, 0 before it started: it left programs behind",
            ]
        );
        // A counter that does not see conntrace's programs proves nothing.
        let f = cleanup_failures(
            &good.replace("during=6", "during=0"),
            CleanupCase::Sigint,
            true,
        );
        assert!(
            f[0].contains("the count does not see conntrace's programs"),
            "{f:#?}"
        );
        let f = cleanup_failures(
            &good.replace("during=6", "during=-"),
            CleanupCase::Sigint,
            true,
        );
        assert_eq!(f, ["the BPF program count while attached was not reported"]);
        let f = cleanup_failures(
            &good.replace(
                "CTVM PROGS r before=0 during=6 after=0",
                "CTVM PROGS r unavailable EPERM",
            ),
            CleanupCase::Sigint,
            true,
        );
        assert_eq!(f, ["cannot verify BPF programs were unloaded: EPERM"]);
        let f = cleanup_failures(
            &good.replace("CTVM KPROBE_EVENTS_AFTER r end", ""),
            CleanupCase::Sigint,
            true,
        );
        assert_eq!(
            f,
            ["kprobe_events after the run was not reported completely"]
        );
    }

    #[test]
    fn kprobe_entries_while_attached_must_be_ours_and_complete() {
        let good = cleanup_console("r", 1, "", "code=0");
        let text = good
            .replace(
                "conntrace_118_0 tcp_v4_connect",
                "conntrace_77_0 tcp_v4_connect",
            )
            .replace(
                "CTVM KPROBE_EVENTS_DURING r entry p:kprobes/conntrace_118_5 security_sock_graft\n",
                "",
            );
        let f = cleanup_failures(&text, CleanupCase::Sigint, true);
        assert_eq!(f.len(), 3, "{f:#?}");
        assert_eq!(
            f[0],
            "kprobe_events entry while attached is not conntrace_118_<n>: p:kprobes/conntrace_77_0 tcp_v4_connect"
        );
        assert!(
            f[1].starts_with("kprobe_events has no kprobe entry for tcp_v4_connect"),
            "{f:#?}"
        );
        assert!(
            f[2].starts_with(
                "kprobe_events has no entry probe for accepts (security_sock_graft or __inet_accept)"
            ),
            "{f:#?}"
        );
        // The return probe alone is not enough on the suite's kernels.
        let text = good.replace(
            "p:kprobes/conntrace_118_5 security_sock_graft",
            "r10:kprobes/conntrace_118_5 inet_csk_accept",
        );
        let f = cleanup_failures(&text, CleanupCase::Sigint, true);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(
            f[0].starts_with("kprobe_events has no entry probe for accepts"),
            "{f:#?}"
        );

        // Without IPv6 the tcp_v6_connect entries are not required.
        let text = good.replace("tcp_v6_connect", "tcp_v4_connect");
        assert!(cleanup_failures(&text, CleanupCase::Sigint, false).is_empty());
        assert_eq!(cleanup_failures(&text, CleanupCase::Sigint, true).len(), 2);
        assert_eq!(
            parse_entry("r16:kprobes/conntrace_9_1 inet_csk_accept+0 arg1=%ax"),
            Some(('r', "conntrace_9_1", "inet_csk_accept"))
        );
        assert_eq!(parse_entry("garbage"), None);
    }

    #[test]
    fn unprivileged_must_refuse_with_the_message() {
        let refused = "CTVM KPROBE_EVENTS_BEFORE unprivileged end\n\
            CTVM PID unprivileged 161\n\
            CTVM ATTACH_FAILED unprivileged conntrace closed stderr (code=1) before printing \"conntrace: attached\"\n\
            CTVM STDERR unprivileged conntrace: creating BPF map `events`: bpf(BPF_MAP_CREATE) failed: Operation not permitted (EPERM): conntrace needs root or CAP_BPF+CAP_PERFMON\n\
            CTVM EXIT unprivileged code=1\n\
            CTVM KPROBE_EVENTS_AFTER unprivileged end\n\
            CTVM PROGS unprivileged before=0 during=- after=0";
        let verdict = |text: &str| verify_unprivileged(&console::parse(text).backends[0]).failures;
        assert!(verdict(refused).is_empty(), "{:#?}", verdict(refused));
        let f = verdict(
            &refused
                .replace("code=1\n", "code=0\n")
                .replace("CAP_BPF+CAP_PERFMON", "privileges"),
        );
        assert_eq!(f.len(), 2, "{f:#?}");
        assert!(
            f[0].starts_with("conntrace exited code=0 as uid 1000, expected code=1"),
            "{f:#?}"
        );
        assert!(
            f[1].starts_with("no message containing \"needs root or CAP_BPF+CAP_PERFMON\""),
            "{f:#?}"
        );
        let f = verdict(&refused.replace(
            "CTVM ATTACH_FAILED unprivileged conntrace closed stderr (code=1) before printing \"conntrace: attached\"",
            "CTVM ATTACHED unprivileged 0.2",
        ));
        assert!(
            f.contains(&"conntrace attached as uid 1000 without capabilities".to_string()),
            "{f:#?}"
        );
    }

    #[test]
    fn faults_must_be_set_up_and_undone() {
        let check = |text: &str, fault| {
            let mut failures = Vec::new();
            check_fault(&console::parse(text).backends[0], fault, &mut failures);
            failures
        };
        let cpu = "CTVM SETUP c ok online=0\nCTVM RESTORE c ok online=0-1";
        assert!(check(cpu, Fault::Cpu1Offline).is_empty());
        assert_eq!(
            check(
                &cpu.replace("ok online=0\n", "ok online=0-1\n"),
                Fault::Cpu1Offline
            ),
            ["the fault was set up but the CPUs are online=0-1, expected online=0"]
        );
        assert_eq!(
            check("CTVM SETUP t failed umount: EBUSY", Fault::NoTracefs),
            [
                "the fault could not be set up: umount: EBUSY",
                "no report that the fault was undone"
            ]
        );
        assert!(check(
            "CTVM SETUP t ok unmounted\nCTVM RESTORE t ok mounted by conntrace",
            Fault::NoTracefs
        )
        .is_empty());
    }
}
