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

/// Who a record names: (pid, tid, uid, comm).
type Who = (u64, u64, u64, &'static str);
const CL: Who = (91, 93, 1000, "ct-client");
const SV: Who = (90, 90, 2000, "ct-server");
const OS: Who = (95, 95, 3000, "ct-old-server");
const LIFE_PORT: u64 = 4202;
const OLD_PORT: u64 = 4203;

/// One record, spelled out field group by field group.
struct Rec {
    event: &'static str,
    fam: &'static str,
    /// None: a close whose owner conntrace never saw.
    who: Option<Who>,
    l: (&'static str, u64),
    r: (&'static str, u64),
    sock: u64,
    err: &'static str,
    lat: &'static str,
    /// A close's duration_us, bytes_sent, bytes_received and closed_by, as JSON.
    close: Option<(&'static str, String, u64, &'static str)>,
}

impl Rec {
    fn new(
        event: &'static str,
        fam: &'static str,
        who: Option<Who>,
        l: (&'static str, u64),
        r: (&'static str, u64),
        sock: u64,
    ) -> Rec {
        Rec {
            event,
            fam,
            who,
            l,
            r,
            sock,
            err: "null",
            lat: "null",
            close: None,
        }
    }

    fn closed(
        mut self,
        dur: &'static str,
        sent: Option<u64>,
        received: u64,
        by: &'static str,
    ) -> Rec {
        self.event = "close";
        let sent = sent.map_or("null".to_string(), |n| n.to_string());
        self.close = Some((dur, sent, received, by));
        self
    }

    fn line(&self) -> String {
        let (pid, tid, uid, comm, cgroup, path) = match self.who {
            Some((p, t, u, c)) => (
                p.to_string(),
                t.to_string(),
                u.to_string(),
                format!("\"{c}\""),
                "1",
                "\"/\"",
            ),
            None => (
                "null".into(),
                "null".into(),
                "null".into(),
                "null".into(),
                "null",
                "null",
            ),
        };
        let (dur, sent, recv, by) = match &self.close {
            Some((d, s, r, b)) => (d.to_string(), s.clone(), r.to_string(), format!("\"{b}\"")),
            None => ("null".into(), "null".into(), "null".into(), "null".into()),
        };
        format!(
            "CTVM EVENT kprobe {{\"ts\":\"2026-11-28T02:30:00.123456Z\",\"event\":\"{}\",\"pid\":{pid},\"tid\":{tid},\"uid\":{uid},\"comm\":{comm},\"family\":\"{}\",\"laddr\":\"{}\",\"lport\":{},\"raddr\":\"{}\",\"rport\":{},\"netns\":4026531840,\"cgroup\":{cgroup},\"sock\":\"{:016x}\",\"error\":{},\"latency_us\":{},\"duration_us\":{dur},\"bytes_sent\":{sent},\"bytes_received\":{recv},\"closed_by\":{by},\"cgroup_path\":{path},\"container_id\":null,\"pod_uid\":null}}",
            self.event, self.fam, self.l.0, self.l.1, self.r.0, self.r.1, self.sock, self.err, self.lat
        )
    }
}

/// The lifecycle cases as the init plays them, in its order: (name, closed_by of the client,
/// its error, closed_by of the server, its error).
const CASES: [(&str, &str, &str, &str, &str); 4] = [
    ("cfirst", "local", "null", "remote", "null"),
    ("sfirst", "remote", "null", "local", "null"),
    ("creset", "local", "null", "remote", "\"ECONNRESET\""),
    ("sreset", "remote", "\"ECONNRESET\"", "local", "null"),
];

/// Case `i` of a family: the client's local port and both ends' payload sizes.
fn life(v6: bool, i: u64) -> (u64, u64, u64) {
    let extra = if v6 { 1000 } else { 0 };
    (
        41001 + i + 1000 * u64::from(v6),
        1000 + 100 * i + extra,
        501 + 100 * i + extra,
    )
}

fn expect_line() -> String {
    let mut facts = vec![
        "CTVM EXPECT kprobe ipv6=1 port=4200 closed_port=4201 life_port=4202 old_port=4203 netns=4026531840".to_string(),
        "server_pid=90 server_tid=90 server_uid=2000 server_comm=ct-server".into(),
        "client_pid=91 client_tid=93 client_uid=1000 client_comm=ct-client".into(),
        "old_server_pid=95 old_server_tid=95 old_server_uid=3000 old_server_comm=ct-old-server".into(),
        "v4_lport=40001 v4_peer_port=40001 v6_lport=40002 v6_peer_port=40002".into(),
    ];
    let names = ["cfirst", "sfirst", "creset", "sreset", "old", "late"];
    for (v, v6) in [("v4", false), ("v6", true)] {
        for (i, name) in names.iter().enumerate() {
            let (port, c, s) = life(v6, i as u64);
            facts.push(format!(
                "{v}_{name}_client={port}:{c}:{s} {v}_{name}_server={port}:{s}:{c}"
            ));
        }
    }
    facts.join(" ")
}

/// Every record of the scenario, as conntrace prints them on an x86_64 6.1 kernel.
fn records() -> Vec<Rec> {
    let mut recs = Vec::new();
    for (fam, lo, n) in [("ipv4", "127.0.0.1", 1u64), ("ipv6", "::1", 2)] {
        let (cl, sv) = ((lo, 40000 + n), (lo, 4200));
        let (a, b) = (0xa0 + n, 0xb0 + n);
        recs.push(Rec::new("connect", fam, Some(CL), cl, sv, a));
        recs.push(Rec {
            lat: if n == 1 { "35" } else { "0" },
            ..Rec::new("established", fam, Some(CL), cl, sv, a)
        });
        recs.push(Rec::new("accept", fam, Some(SV), sv, cl, b));
    }
    recs.push(Rec::new(
        "connect",
        "ipv4",
        Some(CL),
        ("127.0.0.1", 40003),
        ("127.0.0.1", 4201),
        0xa3,
    ));
    recs.push(Rec {
        err: "\"ECONNREFUSED\"",
        lat: "12",
        ..Rec::new(
            "failed",
            "ipv4",
            Some(CL),
            ("127.0.0.1", 40003),
            ("127.0.0.1", 4201),
            0xa3,
        )
    });
    // The flows' ends close as their processes exit: here the server's first.
    for (lo, n) in [("127.0.0.1", 1u64), ("::1", 2)] {
        let fam = if n == 1 { "ipv4" } else { "ipv6" };
        let (cl, sv) = ((lo, 40000 + n), (lo, 4200));
        recs.push(Rec::new("", fam, Some(SV), sv, cl, 0xb0 + n).closed("700", Some(0), 0, "local"));
        recs.push(Rec::new("", fam, Some(CL), cl, sv, 0xa0 + n).closed(
            "800",
            Some(0),
            0,
            "remote",
        ));
    }
    for (fam, lo, v6) in [("ipv4", "127.0.0.1", false), ("ipv6", "::1", true)] {
        let base = 0x1000 * (1 + u64::from(v6));
        for (i, (_, cby, cerr, sby, serr)) in CASES.iter().enumerate() {
            let i = i as u64;
            let (port, c, s) = life(v6, i);
            let (cl, sv) = ((lo, port), (lo, LIFE_PORT));
            let (a, b) = (base + 2 * i, base + 2 * i + 1);
            recs.push(Rec::new("connect", fam, Some(CL), cl, sv, a));
            recs.push(Rec {
                lat: "40",
                ..Rec::new("established", fam, Some(CL), cl, sv, a)
            });
            recs.push(Rec::new("accept", fam, Some(SV), sv, cl, b));
            recs.push(Rec {
                err: cerr,
                ..Rec::new("", fam, Some(CL), cl, sv, a).closed("900", Some(c), s, cby)
            });
            recs.push(Rec {
                err: serr,
                ..Rec::new("", fam, Some(SV), sv, cl, b).closed("901", Some(s), c, sby)
            });
        }
        // Connected and accepted before conntrace started.
        let (port, c, s) = life(v6, 4);
        let (cl, sv) = ((lo, port), (lo, OLD_PORT));
        recs.push(Rec::new("", fam, None, cl, sv, base + 0x10).closed("null", None, s, "local"));
        recs.push(Rec::new("", fam, None, sv, cl, base + 0x11).closed("null", None, c, "remote"));
        // Connected before, accepted while conntrace ran.
        let (port, c, s) = life(v6, 5);
        let (cl, sv) = ((lo, port), (lo, OLD_PORT));
        recs.push(Rec::new("accept", fam, Some(OS), sv, cl, base + 0x12));
        recs.push(Rec::new("", fam, Some(OS), sv, cl, base + 0x12).closed(
            "null",
            Some(s),
            c,
            "local",
        ));
        recs.push(Rec::new("", fam, None, cl, sv, base + 0x13).closed("null", None, s, "remote"));
    }
    recs
}

/// How many records a complete run prints: per family a flow (5) and the lifecycle cases
/// (4 x 5, old 2, late 3), and the refused connect (2).
const RECORDS: usize = 2 * (5 + 4 * 5 + 2 + 3) + 2;

fn good_console() -> String {
    let mut lines = vec![
        "CTVM INIT uptime=1.2".to_string(),
        "CTVM BTF present".into(),
        "CTVM KPROBE_EVENTS_BEFORE kprobe end".into(),
        "CTVM ATTACHED kprobe 0.3".into(),
    ];
    lines.extend(records().iter().map(Rec::line));
    lines.extend([
        "CTVM STDERR kprobe conntrace: attached 7 probes (kprobe; state: BTF tracepoint inet_sock_set_state, BTF tracepoint tcp_destroy_sock); records through the BPF ring buffer (2 MiB)".to_string(),
        "CTVM STDERR kprobe conntrace: 9 events".into(),
        "CTVM EXIT kprobe code=0".into(),
        expect_line(),
        "CTVM KPROBE_EVENTS_AFTER kprobe end".into(),
        "CTVM PROGS kprobe before=0 during=6 after=0".into(),
        "CTVM CHECK_OUT hooks          connect: kprobe tcp_v4_connect, kretprobe tcp_v4_connect, kprobe tcp_v6_connect, kretprobe tcp_v6_connect, kprobe tcp_connect; accept: kprobe security_sock_graft; state: BTF tracepoint inet_sock_set_state, BTF tracepoint tcp_destroy_sock".into(),
        "CTVM CHECK_EXIT code=0".into(),
        "CTVM DONE".into(),
    ]);
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
    assert!(
        v.render()
            .contains(&format!("run kprobe: PASS ({RECORDS} records)")),
        "{}",
        v.render()
    );
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
    assert_eq!(f.len(), RECORDS, "{f:#?}");
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
    // The first of the server's records: the IPv4 flow's accept.
    let text = good_console()
        .replacen(
            "\"pid\":90,\"tid\":90,\"uid\":2000,\"comm\":\"ct-server\",\"family\":\"ipv4\"",
            "\"pid\":7,\"tid\":90,\"uid\":2000,\"comm\":\"swapper/0\",\"family\":\"ipv4\"",
            1,
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
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(f[0].starts_with("missing established ipv4"), "{f:#?}");
    // Nothing else stands for the record of another socket.
    assert!(
        f[1].starts_with("a record the scenario did not make: established ipv4 127.0.0.1:40001"),
        "{f:#?}"
    );
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
        .replace("CTVM STDERR kprobe conntrace: attached 7 probes (kprobe; state: BTF tracepoint inet_sock_set_state, BTF tracepoint tcp_destroy_sock); records through the BPF ring buffer (2 MiB)", "CTVM STDERR kprobe oops")
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
    // 5.10 with BTF has no socket storage for tp_btf: the raw tracepoints there.
    let mut v510 = spec(&["kprobe"], &[], true);
    v510.kernel = KernelSeries::V5_10;
    assert!(!verify(&console::parse(&good_console()), &v510).passed());
    let raw = good_console().replace("BTF tracepoint", "raw tracepoint");
    assert!(verify(&console::parse(&raw), &v510).passed());
    // 5.10 without BTF: raw tracepoints, and no BTF.
    let absent = good_console()
        .replace("CTVM BTF present", "CTVM BTF absent")
        .replace("BTF tracepoint", "raw tracepoint");
    assert!(verify(&console::parse(&absent), &nobtf).passed());
    let absent = good_console().replace("CTVM BTF present", "CTVM BTF absent");
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
    // Without BTF: no tp_btf, so the raw tracepoints.
    let as_run = |name: &str| {
        as_run(name).replace(
            "state: BTF tracepoint inet_sock_set_state, BTF tracepoint tcp_destroy_sock)",
            "state: raw tracepoint inet_sock_set_state, raw tracepoint tcp_destroy_sock)",
        )
    };
    let v = verify(&console::parse(&as_run("kprobe-nobtf")), &nobtf);
    assert!(v.passed(), "{}", v.render());
    let btf = verify(
        &console::parse(&super::tests::as_run("kprobe-nobtf")),
        &nobtf,
    );
    assert!(!btf.passed(), "the tp_btf hooks with --btf none");
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
    // And every close as exact: its byte counts (tcp_sock.bytes_acked, bytes_received) and
    // who closed (sock_common.skc_flags) come from the layout discovery there.
    let text = as_run("kprobe-nobtf")
        .replacen("\"bytes_sent\":1000,", "\"bytes_sent\":null,", 1)
        .replacen("\"bytes_received\":1000,", "\"bytes_received\":1001,", 1)
        .replacen("\"closed_by\":\"local\"", "\"closed_by\":\"remote\"", 1);
    let f = failures(&verify(&console::parse(&text), &nobtf));
    assert_eq!(f.len(), 3, "{f:#?}");
    // The first local close is the IPv4 flow's server end, whose order the scenario does not
    // set: but with the client's, both now say the other closed first.
    assert!(
        f[0].ends_with("both say closed_by remote, yet one end closed first"),
        "{f:#?}"
    );
    assert!(f[1].contains("bytes_sent is null, expected 1000"), "{f:#?}");
    assert!(
        f[2].contains("bytes_received is 1001, expected 1000"),
        "{f:#?}"
    );
    // With BTF a null netns is a failure.
    let text = good_console().replace("\"netns\":4026531840", "\"netns\":null");
    let f = failures(&verdict_of(&text, true));
    assert_eq!(f.len(), RECORDS, "{f:#?}");
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
        [
            "conntrace's \"attached\" line does not name the tracepoint \
             sock/inet_sock_set_state, raw tracepoint tcp_destroy_sock as the state hook: \
             conntrace: attached 7 probes (kprobe; state: BTF tracepoint inet_sock_set_state, BTF tracepoint tcp_destroy_sock); records through the BPF ring buffer (2 MiB)",
            "conntrace's \"attached\" line does not name perf rings as where records go: \
             conntrace: attached 7 probes (kprobe; state: BTF tracepoint inet_sock_set_state, BTF tracepoint tcp_destroy_sock); records through the BPF ring buffer (2 MiB)",
            "kprobe_events while attached was not reported completely"
        ],
        "the PMU run has no listing while attached, nor the classic tracepoint, nor the perf rings"
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
    let classic = as_run("kprobe-tracefs")
        .replace(
            "state: BTF tracepoint inet_sock_set_state, BTF tracepoint tcp_destroy_sock)",
            "state: tracepoint sock/inet_sock_set_state, raw tracepoint tcp_destroy_sock)",
        )
        .replace(
            "records through the BPF ring buffer (2 MiB)",
            "records through perf rings (2 x 1 MiB)",
        );
    let text = format!("{classic}\n{listing}");
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
    assert!(v
        .render()
        .contains(&format!("run kprobe: PASS ({RECORDS} records)")));
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
fn closes_are_checked_field_by_field() {
    // The client's end of the IPv4 cfirst case, its close record as conntrace prints it.
    let good = good_console();
    let line = good
        .lines()
        .find(|l| l.contains("\"event\":\"close\"") && l.contains("\"lport\":41001,"))
        .unwrap()
        .to_string();
    let judge = |bad: &str| failures(&verdict_of(&good.replace(&line, bad), true));
    let f = judge(
        &line
            .replace("\"bytes_sent\":1000", "\"bytes_sent\":1001")
            .replace("\"duration_us\":900", "\"duration_us\":null")
            .replace("\"closed_by\":\"local\"", "\"closed_by\":\"remote\""),
    );
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(
        f[0].starts_with("close ipv4 [127.0.0.1]:41001 -> [127.0.0.1]:4202 (cfirst case) by ct-client (pid 91 tid 93) (same sock as its connect): \
             duration_us is null, expected an integer >= 0; bytes_sent is 1001, expected 1000; closed_by is \"remote\", expected \"local\""),
        "{f:#?}"
    );
    assert!(f[1].contains("both say closed_by remote"), "{f:#?}");
    // The owner is the connecting process, whatever task ran the state change.
    let f = judge(&line.replace(
        "\"pid\":91,\"tid\":93,\"uid\":1000,\"comm\":\"ct-client\"",
        "\"pid\":0,\"tid\":0,\"uid\":0,\"comm\":\"swapper/1\"",
    ));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].contains("pid is 0, expected 91; tid is 0, expected 93; uid is 0, expected 1000; comm is \"swapper/1\", expected \"ct-client\""),
        "{f:#?}"
    );
    // A close with another socket's id is not this connection's.
    let f = judge(&line.replace(
        "\"sock\":\"0000000000001000\"",
        "\"sock\":\"0000000000001001\"",
    ));
    assert_eq!(f.len(), 3, "{f:#?}");
    assert!(
        f[0].starts_with("missing close ipv4 [127.0.0.1]:41001"),
        "{f:#?}"
    );
    assert!(
        f[1].starts_with("2 records for close ipv4 [127.0.0.1]:4202 <- [127.0.0.1]:41001"),
        "{f:#?}"
    );
    // A missing close is named.
    let f = judge("");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].starts_with("missing close ipv4 [127.0.0.1]:41001"),
        "{f:#?}"
    );
}

#[test]
fn resets_and_old_connections_are_checked() {
    let good = good_console();
    // The server's end of the IPv4 creset case must carry ECONNRESET.
    let text = good.replace(
        "\"error\":\"ECONNRESET\",\"latency_us\":null,\"duration_us\":901,\"bytes_sent\":701,",
        "\"error\":null,\"latency_us\":null,\"duration_us\":901,\"bytes_sent\":701,",
    );
    let f = failures(&verdict_of(&text, true));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].starts_with(
            "close ipv4 [127.0.0.1]:4202 <- [127.0.0.1]:41003 (creset case) by ct-server"
        ) && f[0].contains("error is null, expected \"ECONNRESET\""),
        "{f:#?}"
    );
    // A connection older than conntrace has no owner, no duration and no bytes_sent.
    let old = good
        .lines()
        .find(|l| l.contains("\"lport\":41005,") && l.contains("\"close\""))
        .unwrap();
    let bad = old
        .replace("\"pid\":null", "\"pid\":1")
        .replace("\"duration_us\":null", "\"duration_us\":5")
        .replace("\"bytes_sent\":null", "\"bytes_sent\":1400");
    let f = failures(&verdict_of(&good.replace(old, &bad), true));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].contains("(old case), connected before conntrace started: pid is 1, expected null; duration_us is 5, expected null; bytes_sent is 1400, expected null"),
        "{f:#?}"
    );
    // Accepted while conntrace ran: the accepting process owns it and its bytes_sent is known.
    let late = good
        .lines()
        .find(|l| l.contains("\"rport\":41006,") && l.contains("\"close\""))
        .unwrap();
    let bad = late.replace("\"bytes_sent\":1001", "\"bytes_sent\":null");
    let f = failures(&verdict_of(&good.replace(late, &bad), true));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].contains("(late case) by ct-old-server (pid 95 tid 95) (same sock as its accept): bytes_sent is null, expected 1001"),
        "{f:#?}"
    );
}

#[test]
fn the_scenarios_own_reports_must_add_up() {
    let text = good_console().replace(
        "v4_sfirst_server=41002:601:1100",
        "v4_sfirst_server=41002:601:1099",
    );
    let f = failures(&verdict_of(&text, true));
    assert!(
        f.iter()
            .any(|l| l.starts_with("scenario: the ipv4 sfirst case's ends disagree")),
        "{f:#?}"
    );
    let text = good_console().replace(" v6_late_server=42006:2001:2500", "");
    let f = failures(&verdict_of(&text, true));
    assert_eq!(
        f,
        ["cannot check records: the scenario did not report v6_late_server"]
    );
}

#[test]
fn a_hooks_line_without_the_state_tracepoint_fails() {
    let text = good_console().replace(
        "; state: BTF tracepoint inet_sock_set_state, BTF tracepoint tcp_destroy_sock\n",
        "\n",
    );
    let f = failures(&verdict_of(&text, true));
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].starts_with("`conntrace check` does not name"),
        "{f:#?}"
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
