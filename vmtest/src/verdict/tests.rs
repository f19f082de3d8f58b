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
        "CTVM EVENT kprobe {{\"ts\":\"2026-11-28T02:30:00.123456Z\",\"event\":\"{event}\",\"pid\":{},\"tid\":{},\"uid\":{},\"comm\":\"{}\",\"family\":\"{fam}\",\"laddr\":\"{}\",\"lport\":{},\"raddr\":\"{}\",\"rport\":{},\"netns\":4026531840,\"cgroup\":1,\"sock\":\"{sock}\",\"error\":{err},\"latency_us\":{lat},\"cgroup_path\":\"/\",\"container_id\":null,\"pod_uid\":null}}",
        who.0, who.1, who.2, who.3, l.0, l.1, r.0, r.1
    )
}

fn good_console() -> String {
    let cl = (91, 93, 1000, "ct-client");
    let sv = (90, 90, 2000, "ct-server");
    let lines = vec![
        "CTVM INIT uptime=1.2".to_string(),
        "CTVM BTF present".into(),
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
        f.iter()
            .any(|l| l.starts_with("missing accept ipv6 [::1]:4200 <- [::1]:40002 by ct-server")),
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
fn btf_must_be_as_the_kernel_promises() {
    assert!(verdict_of(&good_console(), true).passed());
    let mut nobtf = spec(&["kprobe"], &[], true);
    nobtf.kernel = KernelSeries::V5_10NoBtf;
    let f = failures(&verify(&console::parse(&good_console()), &nobtf));
    assert!(
        f.iter()
            .any(|l| l == "the 5.10-nobtf kernel has /sys/kernel/btf/vmlinux, expected it absent"),
        "{f:#?}"
    );
    let absent = good_console().replace("CTVM BTF present", "CTVM BTF absent");
    assert!(verify(&console::parse(&absent), &nobtf).passed());
    let f = failures(&verdict_of(&absent, true));
    assert!(
        f.iter()
            .any(|l| l == "the 6.1 kernel lacks /sys/kernel/btf/vmlinux, expected it present"),
        "{f:#?}"
    );
    let f = failures(&verdict_of(
        &good_console().replace("CTVM BTF present", ""),
        true,
    ));
    assert!(f.iter().any(|l| l.contains("no `CTVM BTF` line")), "{f:#?}");
}

#[test]
fn a_missing_backend_or_scenario_report_is_a_failure() {
    let v = verify(
        &console::parse("CTVM INIT x\nCTVM CHECK_EXIT code=0\nCTVM DONE\nCTVM ATTACHED kprobe 1"),
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
fn nobtf_is_as_exact_as_btf() {
    let nobtf = spec(&[], &[Pass::NoBtf], true);
    let v = verify(&console::parse(&as_run("kprobe-nobtf")), &nobtf);
    assert!(v.passed(), "{}", v.render());
    // Without BTF a null netns or a null error is a failure, as with BTF.
    let text = as_run("kprobe-nobtf")
        .replacen("\"netns\":4026531840", "\"netns\":null", 1)
        .replace("\"error\":\"ECONNREFUSED\"", "\"error\":null");
    let f = failures(&verify(&console::parse(&text), &nobtf));
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(
        f[0].contains("netns is null, expected 4026531840"),
        "{f:#?}"
    );
    assert!(
        f[1].contains("error is null, expected \"ECONNREFUSED\""),
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
