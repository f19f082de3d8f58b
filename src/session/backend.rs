//! Which jobs a backend does (connect, accept, outcome), the hooks each can use, and how
//! `auto` picks a backend.

use crate::kernel::attach::{self, KprobeSupport};
use crate::kernel::sys::Sys;
use crate::session::options::BackendChoice as Choice;

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

    /// The jobs this backend's programs do, each with the hooks that can do it.
    pub fn jobs(self) -> &'static [Job] {
        match self {
            Backend::Kprobe => KPROBE_JOBS,
            Backend::Tracepoint => TRACEPOINT_JOBS,
        }
    }
}

/// What a job is needed for: `-e accept` alone loads no connect job, and the reverse.
/// The state changes are always needed: outcomes, and the close records' state, which the
/// accept side creates too and only a close frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Connect,
    Accept,
    State,
}

/// One job of a backend (the connect, the accept, the outcome): the hooks that can do it,
/// best first. Each hook is a program section of its own; attaching takes the first hook the
/// running kernel has, so the choice is made by the kernel itself, not by a version number.
#[derive(Debug)]
pub struct Job {
    pub role: Role,
    pub hooks: &'static [Hook],
    /// A job whose hooks may all be missing (IPv6 built as a module that is not loaded):
    /// its failure to attach is a warning, not an error.
    pub optional: bool,
}

/// A program section and where it goes.
#[derive(Debug)]
pub struct Hook {
    pub section: &'static str,
    /// Further tracepoints ("category/name") that take the same program.
    pub extra_tracepoints: &'static [&'static str],
    /// A return probe whose misses are lost events: it is attached where the kernel counts
    /// them (tracefs kprobe_events, with room for many calls at once) and they are reported.
    pub misses_are_losses: bool,
    /// What the user must know while this hook is the one in use.
    pub caveat: Option<&'static str>,
    /// A second program attached right after this one to the same raw tracepoint: it makes
    /// the records of the runs the kernel skips (src/bpf/state.s, `nest_rescue`).
    pub rescue: Option<&'static str>,
}

impl Hook {
    /// A tracepoint, raw or classic: present wherever the kernel has the event, no kernel
    /// function to look up.
    pub fn is_tracepoint(&self) -> bool {
        self.section.starts_with("tracepoint/") || self.section.starts_with(RAW_TRACEPOINT)
    }

    /// As the "attached" line and `conntrace check` name it: "kprobe tcp_connect",
    /// "tracepoint sock/inet_sock_set_state", "raw tracepoint inet_sock_set_state".
    pub fn describe(&self) -> String {
        match self.section.strip_prefix(RAW_TRACEPOINT) {
            Some(name) => format!("raw tracepoint {name}"),
            None => self.section.replacen('/', " ", 1),
        }
    }

    /// Its program's section, then its rescue program's.
    pub fn sections(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.section).chain(self.rescue)
    }

    /// The kernel function of a kprobe or kretprobe section, the tracepoint of a tracepoint.
    pub fn target(&self) -> &'static str {
        self.section
            .split_once('/')
            .map_or(self.section, |(_, rest)| rest)
    }
}

impl Job {
    /// Every section this job may use, best first.
    pub fn sections(&self) -> impl Iterator<Item = &'static str> {
        self.hooks.iter().flat_map(|h| h.sections())
    }
}

/// A hook that needs nothing special.
const fn hook(section: &'static str) -> Hook {
    Hook {
        section,
        extra_tracepoints: &[],
        misses_are_losses: false,
        caveat: None,
        rescue: None,
    }
}

/// Where the kernel has raw tracepoints the raw one is the only hook loaded
/// ([`hooks_with`]): it costs less per hit and closes without a grace period.
const STATE: Job = Job {
    role: Role::State,
    hooks: &[
        Hook {
            rescue: Some("raw_tracepoint.rescue/inet_sock_set_state"),
            ..hook("raw_tracepoint/inet_sock_set_state")
        },
        hook("tracepoint/sock/inet_sock_set_state"),
    ],
    optional: false,
};

static TRACEPOINT_JOBS: &[Job] = &[
    Job {
        role: Role::Connect,
        hooks: &[hook("tracepoint/syscalls/sys_enter_connect")],
        optional: false,
    },
    Job {
        role: Role::Connect,
        hooks: &[hook("tracepoint/syscalls/sys_exit_connect")],
        optional: false,
    },
    STATE,
    Job {
        role: Role::Accept,
        hooks: &[Hook {
            extra_tracepoints: &["syscalls/sys_exit_accept"],
            ..hook("tracepoint/syscalls/sys_exit_accept4")
        }],
        optional: false,
    },
];

/// The kprobe backend's accept hooks, best first (src/bpf/kprobe.s says why).
pub static ACCEPT_HOOKS: &[Hook] = &[
    hook("kprobe/security_sock_graft"),
    hook("kprobe/__inet_accept"),
    Hook {
        misses_are_losses: true,
        caveat: Some(
            "accepts by threads that were already blocked in accept() when tracing started \
             are not seen (a return probe only sees calls that begin after it)",
        ),
        ..hook("kretprobe/inet_csk_accept")
    },
];

static KPROBE_JOBS: &[Job] = &[
    Job {
        role: Role::Connect,
        hooks: &[hook("kprobe/tcp_v4_connect")],
        optional: false,
    },
    Job {
        role: Role::Connect,
        hooks: &[hook("kretprobe/tcp_v4_connect")],
        optional: false,
    },
    Job {
        role: Role::Connect,
        hooks: &[hook("kprobe/tcp_v6_connect")],
        optional: true,
    },
    Job {
        role: Role::Connect,
        hooks: &[hook("kretprobe/tcp_v6_connect")],
        optional: true,
    },
    Job {
        role: Role::Connect,
        hooks: &[hook("kprobe/tcp_connect")],
        optional: false,
    },
    STATE,
    Job {
        role: Role::Accept,
        hooks: ACCEPT_HOOKS,
        optional: false,
    },
];

/// Test and diagnostic knob: `CONNTRACE_ACCEPT_HOOK=FUNCTION` makes the kprobe backend use
/// only that one of [`ACCEPT_HOOKS`] (`inet_csk_accept` exercises the fallback on a kernel
/// that has better). Read here and nowhere else.
pub const ACCEPT_HOOK_ENV: &str = "CONNTRACE_ACCEPT_HOOK";

/// Test and diagnostic knob: `CONNTRACE_STATE_HOOK=tracepoint` takes the classic tracepoint for
/// the state changes where raw tracepoints exist too, so that fallback (kernels before 4.17)
/// is exercised on a current kernel; `raw_tracepoint` insists on the raw one; unset, empty
/// or `auto` lets the kernel's features decide. Read here and nowhere else.
pub const STATE_HOOK_ENV: &str = "CONNTRACE_STATE_HOOK";

const RAW_TRACEPOINT: &str = "raw_tracepoint/";

/// The hooks `job` may use on a kernel with or without raw tracepoints: all of them, the one
/// [`ACCEPT_HOOK_ENV`] names, or the kind [`STATE_HOOK_ENV`] names.
pub fn hooks_of(job: &Job, raw_tracepoints: bool) -> Result<Vec<&'static Hook>, String> {
    let accept = std::env::var(ACCEPT_HOOK_ENV).ok();
    let state = std::env::var(STATE_HOOK_ENV).ok();
    let hooks = hooks_with(job, accept.as_deref())?;
    by_kind(hooks, raw_tracepoints, state.as_deref())
}

/// Of a job that has a raw tracepoint hook: only that one where the kernel has raw
/// tracepoints (so its classic twin is not loaded for nothing), the others where it has not,
/// or the kind `forced` names. Other jobs keep their hooks.
fn by_kind(
    hooks: Vec<&'static Hook>,
    raw_tracepoints: bool,
    forced: Option<&str>,
) -> Result<Vec<&'static Hook>, String> {
    if !hooks.iter().any(|h| h.section.starts_with(RAW_TRACEPOINT)) {
        return Ok(hooks);
    }
    let raw = match forced.filter(|f| !f.is_empty()) {
        None | Some("auto") => raw_tracepoints,
        Some("raw_tracepoint") => true,
        Some("tracepoint") => false,
        Some(other) => {
            return Err(format!(
                "{STATE_HOOK_ENV}={other:?} is not a kind of state hook: use raw_tracepoint, \
                 tracepoint or auto, or unset it"
            ))
        }
    };
    Ok(hooks
        .into_iter()
        .filter(|h| h.section.starts_with(RAW_TRACEPOINT) == raw)
        .collect())
}

fn hooks_with(job: &Job, forced: Option<&str>) -> Result<Vec<&'static Hook>, String> {
    match forced.filter(|f| !f.is_empty()) {
        Some(function) if std::ptr::eq(job.hooks.as_ptr(), ACCEPT_HOOKS.as_ptr()) => {
            match ACCEPT_HOOKS.iter().find(|h| h.target() == function) {
                Some(h) => Ok(vec![h]),
                None => {
                    let names: Vec<_> = ACCEPT_HOOKS.iter().map(Hook::target).collect();
                    Err(format!(
                        "{ACCEPT_HOOK_ENV}={function:?} is not an accept hook: use one of {}, \
                         or unset it",
                        names.join(", ")
                    ))
                }
            }
        }
        _ => Ok(job.hooks.iter().collect()),
    }
}

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
    use crate::kernel::probe_object::ProgramKind;

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
    use crate::kernel::sys::fake::FakeSys;

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
    fn accept_hooks_prefer_entry_probes_and_the_knob_forces_one() {
        let accept = Backend::Kprobe
            .jobs()
            .iter()
            .find(|p| p.role == Role::Accept)
            .unwrap();
        let all: Vec<_> = hooks_with(accept, None)
            .unwrap()
            .iter()
            .map(|h| h.section)
            .collect();
        assert_eq!(
            all,
            [
                "kprobe/security_sock_graft",
                "kprobe/__inet_accept",
                "kretprobe/inet_csk_accept"
            ]
        );
        // Only the last resort is a return probe, and only it counts misses and has a caveat.
        for h in hooks_with(accept, None).unwrap() {
            let ret = h.section.starts_with("kretprobe/");
            assert_eq!(
                (h.misses_are_losses, h.caveat.is_some()),
                (ret, ret),
                "{h:?}"
            );
        }
        let forced = hooks_with(accept, Some("inet_csk_accept")).unwrap();
        assert_eq!(forced.len(), 1);
        assert_eq!(forced[0].section, "kretprobe/inet_csk_accept");
        assert_eq!(hooks_with(accept, Some("")).unwrap().len(), 3);
        let err = hooks_with(accept, Some("tcp_accept")).unwrap_err();
        assert_eq!(
            err,
            "CONNTRACE_ACCEPT_HOOK=\"tcp_accept\" is not an accept hook: use one of \
             security_sock_graft, __inet_accept, inet_csk_accept, or unset it"
        );
        // The knob leaves every other probe alone.
        for p in Backend::Kprobe
            .jobs()
            .iter()
            .filter(|p| p.role != Role::Accept)
        {
            assert_eq!(
                hooks_with(p, Some("inet_csk_accept")).unwrap().len(),
                p.hooks.len()
            );
        }
    }

    /// Each backend's state job.
    fn state_jobs() -> impl Iterator<Item = &'static Job> {
        [Backend::Kprobe, Backend::Tracepoint]
            .into_iter()
            .map(|b| b.jobs().iter().find(|j| j.role == Role::State).unwrap())
    }

    #[test]
    fn the_raw_state_hook_loads_its_rescue_program_after_it_and_the_classic_none() {
        for state in state_jobs() {
            let sections: Vec<_> = state.sections().collect();
            assert_eq!(
                sections,
                [
                    "raw_tracepoint/inet_sock_set_state",
                    "raw_tracepoint.rescue/inet_sock_set_state",
                    "tracepoint/sock/inet_sock_set_state"
                ]
            );
            let rescue = state.hooks[0].rescue.unwrap();
            assert_eq!(
                ProgramKind::from_section(rescue),
                Ok(ProgramKind::RawTracepoint {
                    name: "inet_sock_set_state".into()
                }),
                "the same raw tracepoint"
            );
        }
    }

    #[test]
    fn the_state_job_loads_one_kind_of_tracepoint_as_the_kernel_or_the_knob_says() {
        for state in state_jobs() {
            let kinds = |raw, forced| -> Result<Vec<&str>, String> {
                let hooks = by_kind(hooks_with(state, None)?, raw, forced)?;
                Ok(hooks.iter().map(|h| h.section).collect())
            };
            let raw = ["raw_tracepoint/inet_sock_set_state"];
            let classic = ["tracepoint/sock/inet_sock_set_state"];
            assert_eq!(kinds(true, None).unwrap(), raw);
            assert_eq!(kinds(false, None).unwrap(), classic);
            assert_eq!(kinds(true, Some("auto")).unwrap(), raw);
            assert_eq!(kinds(false, Some("")).unwrap(), classic);
            assert_eq!(kinds(true, Some("tracepoint")).unwrap(), classic);
            assert_eq!(kinds(false, Some("raw_tracepoint")).unwrap(), raw);
            assert_eq!(
                kinds(true, Some("perf")).unwrap_err(),
                "CONNTRACE_STATE_HOOK=\"perf\" is not a kind of state hook: use raw_tracepoint, \
                 tracepoint or auto, or unset it"
            );
        }
        // Jobs without a raw tracepoint hook keep theirs, whatever the kernel or the knob.
        for job in Backend::Tracepoint
            .jobs()
            .iter()
            .filter(|j| j.role != Role::State)
        {
            let kept = by_kind(
                hooks_with(job, None).unwrap(),
                false,
                Some("raw_tracepoint"),
            );
            assert_eq!(kept.unwrap().len(), job.hooks.len());
        }
    }

    #[test]
    fn no_connect_is_reported_from_a_return_probe_alone() {
        // The connect record comes from tcp_connect's entry: a kretprobe's instance limit
        // cannot lose it. The return probes only add refusals before the SYN.
        let sections: Vec<_> = Backend::Kprobe
            .jobs()
            .iter()
            .flat_map(|p| p.sections())
            .collect();
        assert!(sections.contains(&"kprobe/tcp_connect"), "{sections:?}");
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
