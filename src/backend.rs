//! Which probes a backend uses, where each is attached, and how `auto` picks a backend.

use crate::attach::{self, KprobeSupport};
use crate::cli::Backend as Choice;
use crate::sys::Sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Kprobe,
    Tracepoint,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Kprobe => "kprobe",
            Backend::Tracepoint => "tracepoint",
        }
    }

    /// The program sections this backend loads, each with the events it produces.
    pub fn probes(self) -> &'static [Probe] {
        match self {
            Backend::Kprobe => KPROBE_PROBES,
            Backend::Tracepoint => TRACEPOINT_PROBES,
        }
    }
}

/// What a probe is needed for: `-e accept` alone loads no connect probe, and the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Connect,
    Accept,
}

/// One program section and the tracepoints it is attached to (for kprobe sections, the
/// section name says it all and `extra_tracepoints` is empty).
#[derive(Debug)]
pub struct Probe {
    pub section: &'static str,
    pub role: Role,
    /// Further tracepoints ("category/name") that take the same program.
    pub extra_tracepoints: &'static [&'static str],
    /// A probe whose hook may be missing (IPv6 built as a module that is not loaded): its
    /// failure to attach is a warning, not an error.
    pub optional: bool,
}

const STATE: Probe = Probe {
    section: "tracepoint/sock/inet_sock_set_state",
    role: Role::Connect,
    extra_tracepoints: &[],
    optional: false,
};

static TRACEPOINT_PROBES: &[Probe] = &[
    Probe {
        section: "tracepoint/syscalls/sys_enter_connect",
        role: Role::Connect,
        extra_tracepoints: &[],
        optional: false,
    },
    Probe {
        section: "tracepoint/syscalls/sys_exit_connect",
        role: Role::Connect,
        extra_tracepoints: &[],
        optional: false,
    },
    STATE,
    Probe {
        section: "tracepoint/syscalls/sys_exit_accept4",
        role: Role::Accept,
        extra_tracepoints: &["syscalls/sys_exit_accept"],
        optional: false,
    },
];

static KPROBE_PROBES: &[Probe] = &[
    Probe {
        section: "kprobe/tcp_v4_connect",
        role: Role::Connect,
        extra_tracepoints: &[],
        optional: false,
    },
    Probe {
        section: "kretprobe/tcp_v4_connect",
        role: Role::Connect,
        extra_tracepoints: &[],
        optional: false,
    },
    Probe {
        section: "kprobe/tcp_v6_connect",
        role: Role::Connect,
        extra_tracepoints: &[],
        optional: true,
    },
    Probe {
        section: "kretprobe/tcp_v6_connect",
        role: Role::Connect,
        extra_tracepoints: &[],
        optional: true,
    },
    STATE,
    Probe {
        section: "kretprobe/inet_csk_accept",
        role: Role::Accept,
        extra_tracepoints: &[],
        optional: false,
    },
];

/// Test and diagnostic knob: `CONNTRACE_KPROBE_METHOD=tracefs` attaches kprobes through
/// tracefs `kprobe_events` even where the kprobe PMU exists, so that fallback (the only way on
/// kernels before 4.17) can be exercised, and diagnosed, on a current kernel. `pmu` insists
/// on the PMU; unset, empty or `auto` lets conntrace pick. Read here and nowhere else.
pub const KPROBE_METHOD_ENV: &str = "CONNTRACE_KPROBE_METHOD";

/// Why the tracepoint backend needs BTF, for the messages that refuse it.
const TRACEPOINT_NEEDS_BTF: &str = "the tracepoint backend finds sockets by walking \
    task_struct -> files_struct -> fdtable -> file -> socket, layouts that vary with every \
    kernel config and only BTF gives";

/// The backend to use, and a sentence saying why, for stderr. Without BTF (`has_btf` false)
/// only the kprobe backend can work.
pub fn choose(
    sys: &dyn Sys,
    choice: Choice,
    has_btf: bool,
) -> Result<(Backend, KprobeSupport, String), String> {
    let forced = std::env::var(KPROBE_METHOD_ENV).ok();
    choose_with(sys, choice, has_btf, forced.as_deref())
}

/// [`choose`] with the knob's value passed in, so tests need not touch the environment.
fn choose_with(
    sys: &dyn Sys,
    choice: Choice,
    has_btf: bool,
    forced_method: Option<&str>,
) -> Result<(Backend, KprobeSupport, String), String> {
    let (support, note) = kprobe_support(sys, forced_method)?;
    let has_kprobes = !matches!(support, KprobeSupport::None);
    let (backend, mut why) = pick(choice, has_kprobes, has_btf)?;
    if backend == Backend::Kprobe {
        why.push_str(note);
    }
    Ok((backend, support, why))
}

fn pick(choice: Choice, has_kprobes: bool, has_btf: bool) -> Result<(Backend, String), String> {
    match choice {
        Choice::Tracepoint if !has_btf => Err(format!(
            "--backend tracepoint needs BTF: {TRACEPOINT_NEEDS_BTF}; use the kprobe backend \
             or pass --btf FILE"
        )),
        Choice::Tracepoint => Ok((Backend::Tracepoint, "tracepoint backend (as asked)".into())),
        Choice::Kprobe if has_kprobes => Ok((Backend::Kprobe, "kprobe backend (as asked)".into())),
        Choice::Auto | Choice::Kprobe if !has_btf && !has_kprobes => Err(format!(
            "without BTF conntrace needs the kprobe backend, and this kernel has no kprobes \
             (no kprobe PMU and no tracefs kprobe_events); {TRACEPOINT_NEEDS_BTF}: use a \
             kernel with BTF or pass --btf FILE"
        )),
        Choice::Kprobe => Err("kernel has no kprobes (no kprobe PMU and no tracefs kprobe_events): use --backend tracepoint".into()),
        Choice::Auto if has_kprobes => Ok((Backend::Kprobe, "kprobe backend (auto: the kernel has kprobes)".into())),
        Choice::Auto => Ok((Backend::Tracepoint, "tracepoint backend (auto: the kernel has no kprobes)".into())),
    }
}

/// How kprobes will be attached, honouring [`KPROBE_METHOD_ENV`]; with a note for the
/// "attached" line when the method was forced.
fn kprobe_support(
    sys: &dyn Sys,
    forced_method: Option<&str>,
) -> Result<(KprobeSupport, &'static str), String> {
    match forced_method.unwrap_or("") {
        "" | "auto" => Ok((attach::kprobe_support(sys), "")),
        "tracefs" if attach::has_kprobe_events(sys) => Ok((
            KprobeSupport::TracefsOnly,
            "; kprobes through tracefs kprobe_events (CONNTRACE_KPROBE_METHOD=tracefs)",
        )),
        "tracefs" => Err(format!(
            "{KPROBE_METHOD_ENV}=tracefs, but tracefs kprobe_events is not available \
             (tracefs not mountable or kernel without CONFIG_KPROBE_EVENTS): unset {KPROBE_METHOD_ENV}"
        )),
        "pmu" => match attach::kprobe_support(sys) {
            pmu @ KprobeSupport::Pmu { .. } => Ok((pmu, "; kprobes through the kprobe PMU (CONNTRACE_KPROBE_METHOD=pmu)")),
            _ => Err(format!(
                "{KPROBE_METHOD_ENV}=pmu, but this kernel has no kprobe PMU \
                 (/sys/bus/event_source/devices/kprobe; Linux 4.17+): unset {KPROBE_METHOD_ENV}"
            )),
        },
        other => Err(format!(
            "{KPROBE_METHOD_ENV}={other:?} is not a kprobe method: use tracefs, pmu or auto, or unset it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_btf_auto_prefers_kprobes() {
        assert_eq!(pick(Choice::Auto, true, true).unwrap().0, Backend::Kprobe);
        assert_eq!(
            pick(Choice::Auto, false, true).unwrap().0,
            Backend::Tracepoint
        );
        assert_eq!(
            pick(Choice::Tracepoint, true, true).unwrap().0,
            Backend::Tracepoint
        );
        assert!(pick(Choice::Kprobe, false, true).is_err());
    }

    #[test]
    fn without_btf_only_kprobes() {
        assert_eq!(pick(Choice::Auto, true, false).unwrap().0, Backend::Kprobe);
        assert_eq!(
            pick(Choice::Kprobe, true, false).unwrap().0,
            Backend::Kprobe
        );
        for choice in [Choice::Auto, Choice::Kprobe] {
            let e = pick(choice, false, false).unwrap_err();
            assert!(
                e.starts_with("without BTF conntrace needs the kprobe backend"),
                "{e}"
            );
            assert!(
                e.ends_with("use a kernel with BTF or pass --btf FILE"),
                "{e}"
            );
        }
        for kprobes in [true, false] {
            let e = pick(Choice::Tracepoint, kprobes, false).unwrap_err();
            assert!(e.starts_with("--backend tracepoint needs BTF"), "{e}");
        }
    }
    use crate::sys::fake::FakeSys;

    const TRACING: &str = "/sys/kernel/tracing";

    /// A kernel with the kprobe PMU and, optionally, a mounted tracefs with kprobe_events.
    fn kernel(pmu: bool, kprobe_events: bool) -> FakeSys {
        let fake = FakeSys::new();
        if pmu {
            fake.set_file("/sys/bus/event_source/devices/kprobe/type", "6\n");
            fake.set_file(
                "/sys/bus/event_source/devices/kprobe/format/retprobe",
                "config:0\n",
            );
        }
        fake.set_file(format!("{TRACING}/events/header_page"), "x");
        if kprobe_events {
            fake.set_file(format!("{TRACING}/kprobe_events"), "");
        }
        fake
    }

    #[test]
    fn without_the_knob_the_pmu_is_preferred() {
        for forced in [None, Some(""), Some("auto")] {
            let (backend, support, why) =
                choose_with(&kernel(true, true), Choice::Kprobe, true, forced).unwrap();
            assert_eq!(backend, Backend::Kprobe);
            assert!(
                matches!(support, KprobeSupport::Pmu { perf_type: 6, .. }),
                "{support:?}"
            );
            assert_eq!(why, "kprobe backend (as asked)");
        }
    }

    #[test]
    fn tracefs_knob_forces_kprobe_events_and_says_so() {
        let (backend, support, why) =
            choose_with(&kernel(true, true), Choice::Auto, true, Some("tracefs")).unwrap();
        assert_eq!(backend, Backend::Kprobe);
        assert_eq!(support, KprobeSupport::TracefsOnly);
        assert!(
            why.ends_with(
                "kprobes through tracefs kprobe_events (CONNTRACE_KPROBE_METHOD=tracefs)"
            ),
            "{why}"
        );
        // Without BTF (kprobe backend only) the knob works the same.
        let (backend, support, _) =
            choose_with(&kernel(true, true), Choice::Auto, false, Some("tracefs")).unwrap();
        assert_eq!(
            (backend, support),
            (Backend::Kprobe, KprobeSupport::TracefsOnly)
        );
        // The tracepoint backend attaches no kprobes: no note about them.
        let (_, _, why) = choose_with(
            &kernel(true, true),
            Choice::Tracepoint,
            true,
            Some("tracefs"),
        )
        .unwrap();
        assert_eq!(why, "tracepoint backend (as asked)");
    }

    #[test]
    fn an_impossible_or_unknown_method_is_an_error_saying_what_to_do() {
        let err =
            choose_with(&kernel(true, false), Choice::Kprobe, true, Some("tracefs")).unwrap_err();
        assert!(
            err.contains("tracefs kprobe_events is not available"),
            "{err}"
        );
        assert!(err.ends_with("unset CONNTRACE_KPROBE_METHOD"), "{err}");
        let err = choose_with(&kernel(false, true), Choice::Kprobe, true, Some("pmu")).unwrap_err();
        assert!(err.contains("no kprobe PMU"), "{err}");
        let (_, support, _) =
            choose_with(&kernel(true, true), Choice::Kprobe, true, Some("pmu")).unwrap();
        assert!(matches!(support, KprobeSupport::Pmu { .. }));
        let err =
            choose_with(&kernel(true, true), Choice::Kprobe, true, Some("ftrace")).unwrap_err();
        assert_eq!(
            err,
            "CONNTRACE_KPROBE_METHOD=\"ftrace\" is not a kprobe method: use tracefs, pmu or auto, or unset it"
        );
    }

    #[test]
    fn auto_falls_back_to_tracepoints_without_kprobes() {
        let (backend, support, why) =
            choose_with(&kernel(false, false), Choice::Auto, true, None).unwrap();
        assert_eq!(backend, Backend::Tracepoint);
        assert_eq!(support, KprobeSupport::None);
        assert_eq!(why, "tracepoint backend (auto: the kernel has no kprobes)");
        let err = choose_with(&kernel(false, false), Choice::Kprobe, true, None).unwrap_err();
        assert!(err.contains("use --backend tracepoint"), "{err}");
    }
}
