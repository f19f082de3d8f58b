//! `--btf none` on this host, through the real binary. Without BTF only the kprobe backend can
//! work: on a kernel without kprobes (this CI host) conntrace must refuse, exit 1, and say
//! why; on one with kprobes the built-in layout must verify and tracing start. Run as root;
//! as any other user the refusals still run and what needs bpf() is skipped.

#[path = "common/root.rs"]
mod root;

use std::process::{Command, Output};

use conntrace::kernel::attach::{kprobe_support, KprobeSupport};
use conntrace::kernel::sys::RealSys;

const NO_KPROBES: &str = "without BTF conntrace needs the kprobe backend, and this kernel has \
                          no kprobes";
const ADVICE: &str = "use a kernel with BTF or pass --btf FILE";

fn conntrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conntrace"))
        .args(args)
        .output()
        .expect("the conntrace binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn has_kprobes() -> bool {
    !matches!(kprobe_support(&RealSys), KprobeSupport::None)
}

#[test]
fn trace_without_btf_refuses_or_verifies() {
    // The refusal comes before any bpf() call; the verified start needs root.
    if has_kprobes() && !root::root_or_skip("nobtf::trace_without_btf_refuses_or_verifies") {
        return;
    }
    let out = conntrace(&["--btf", "none", "-d", "0.5"]);
    let stderr = text(&out.stderr);
    if has_kprobes() {
        assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
        assert!(
            stderr.contains("conntrace: no BTF: using the built-in sock_common layout (verified"),
            "{stderr}"
        );
        assert!(stderr.contains("conntrace: attached"), "{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
        assert!(
            stderr.starts_with(&format!("conntrace: {NO_KPROBES}")),
            "{stderr}"
        );
        assert!(stderr.trim_end().ends_with(ADVICE), "{stderr}");
        assert!(
            !stderr.contains("attached"),
            "nothing may be attached: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "no events, no header: {:?}",
            text(&out.stdout)
        );
    }
}

#[test]
fn tracepoint_backend_without_btf_is_refused() {
    let out = conntrace(&["--btf", "none", "--backend", "tracepoint", "-d", "0.5"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.starts_with("conntrace: --backend tracepoint needs BTF: "),
        "{stderr}"
    );
    assert!(stderr.contains("task_struct -> files_struct"), "{stderr}");
}

#[test]
fn check_without_btf_reports_the_fallback() {
    // check creates a map and loads programs: as another user it only reports bpf() refused.
    if !root::root_or_skip("nobtf::check_without_btf_reports_the_fallback") {
        return;
    }
    let out = conntrace(&["check", "--btf", "none"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "field offsets  from the built-in sock_common layout and tracefs formats (no BTF)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("without BTF    off: the tracepoint backend (kprobe backend only)"),
        "{stdout}"
    );
    // Only the fields the no-BTF kprobe programs use: from the built-in table, or found at
    // start-up by the layout discovery.
    for spec in [
        "sock_common.skc_dport",
        "sock_common.skc_v6_daddr",
        "sock_common.skc_prot",
        "sock_common.skc_net",
    ] {
        assert!(stdout.contains(spec), "{spec} missing: {stdout}");
    }
    for spec in conntrace::session::fields::DISCOVERED_SPECS {
        let line = format!("{spec:<32} found at start-up by the layout discovery");
        assert!(stdout.contains(&line), "{line} missing: {stdout}");
    }
    for absent in ["task_struct.files", "sock.sk_protocol", "unavailable"] {
        assert!(!stdout.contains(absent), "{absent} listed: {stdout}");
    }
    if has_kprobes() {
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(
            stdout.contains("self-test      built-in layout verified on loopback"),
            "{stdout}"
        );
    } else {
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        let last = stdout.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!("result: tracing will NOT work: {NO_KPROBES}")),
            "{last}"
        );
        assert!(last.ends_with(ADVICE), "{last}");
    }
}
