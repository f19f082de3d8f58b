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
    /// A tracepoint, classic, raw or BTF-typed: present wherever the kernel has the event,
    /// no kernel function to look up.
    pub fn is_tracepoint(&self) -> bool {
        StateHook::of(self).is_some()
    }

    /// As the "attached" line and `conntrace check` name it: "kprobe tcp_connect",
    /// "tracepoint sock/inet_sock_set_state", "raw tracepoint inet_sock_set_state",
    /// "BTF tracepoint inet_sock_set_state".
    pub fn describe(&self) -> String {
        if let Some(name) = self.section.strip_prefix(RAW_TRACEPOINT) {
            format!("raw tracepoint {name}")
        } else if let Some(name) = self.section.strip_prefix(TP_BTF) {
            format!("BTF tracepoint {name}")
        } else {
            self.section.replacen('/', " ", 1)
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

/// One kind of state hook is loaded, the best the kernel has ([`StateHook::choose`]): the
/// `tp_btf` one keeps each socket's state in the socket itself, the raw one costs less per
/// hit than the classic one and closes without a grace period.
const STATE: Job = Job {
    role: Role::State,
    hooks: &[
        Hook {
            rescue: Some("tp_btf.rescue/inet_sock_set_state"),
            ..hook("tp_btf/inet_sock_set_state")
        },
        Hook {
            rescue: Some("raw_tracepoint.rescue/inet_sock_set_state"),
            ..hook("raw_tracepoint/inet_sock_set_state")
        },
        hook("tracepoint/sock/inet_sock_set_state"),
    ],
    optional: false,
};

/// The socket's end (src/bpf/state.s says why): outcomes of connects, and closes of
/// connections, whose state change the kernel made without the state tracepoint; of the kind that
/// reads the state program's state (tp_btf with socket storage, else raw). Raw tracepoints
/// only (4.17+): optional.
const DESTROY: Job = Job {
    role: Role::State,
    hooks: &[
        hook("tp_btf/tcp_destroy_sock"),
        hook("raw_tracepoint/tcp_destroy_sock"),
    ],
    optional: true,
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
    DESTROY,
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
    DESTROY,
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

/// Test and diagnostic knob: `CONNTRACE_STATE_HOOK=KIND` takes that kind of hook for the
/// state changes (`tp_btf`, `raw_tracepoint` or `tracepoint`) where the kernel has a better
/// one too, so each fallback is exercised on a current kernel; unset, empty or `auto` lets
/// the kernel's features decide. Read here and nowhere else.
pub const STATE_HOOK_ENV: &str = "CONNTRACE_STATE_HOOK";

const TRACEPOINT: &str = "tracepoint/";
const RAW_TRACEPOINT: &str = "raw_tracepoint/";
const TP_BTF: &str = "tp_btf/";

/// The kinds of hook the state job has, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateHook {
    /// `tp_btf` with socket-local storage (5.11 with BTF).
    TpBtf,
    /// A raw tracepoint (4.17) with hash maps.
    Raw,
    /// A classic tracepoint through a perf event.
    Classic,
}

impl StateHook {
    const KNOB: [(&'static str, StateHook); 3] = [
        ("tp_btf", StateHook::TpBtf),
        ("raw_tracepoint", StateHook::Raw),
        ("tracepoint", StateHook::Classic),
    ];

    /// The kind of a tracepoint hook (of any job: a syscall tracepoint is classic); None for
    /// a kprobe's.
    pub fn of(hook: &Hook) -> Option<StateHook> {
        let s = hook.section;
        if s.starts_with(TP_BTF) {
            Some(StateHook::TpBtf)
        } else if s.starts_with(RAW_TRACEPOINT) {
            Some(StateHook::Raw)
        } else if s.starts_with(TRACEPOINT) {
            Some(StateHook::Classic)
        } else {
            None
        }
    }

    /// The best the kernel has (`sk_storage`: socket-local storage from `tp_btf`; `raw`: raw
    /// tracepoints), or the kind `forced` names.
    pub fn choose(sk_storage: bool, raw: bool, forced: Option<&str>) -> Result<StateHook, String> {
        match forced.filter(|f| !f.is_empty() && *f != "auto") {
            None if sk_storage => Ok(StateHook::TpBtf),
            None if raw => Ok(StateHook::Raw),
            None => Ok(StateHook::Classic),
            Some(name) => StateHook::KNOB
                .iter()
                .find(|(n, _)| *n == name)
                .map(|&(_, kind)| kind)
                .ok_or_else(|| {
                    format!(
                        "{STATE_HOOK_ENV}={name:?} is not a kind of state hook: use tp_btf, \
                         raw_tracepoint, tracepoint or auto, or unset it"
                    )
                }),
        }
    }
}

/// The state hook kind this session takes: [`StateHook::choose`] with [`STATE_HOOK_ENV`].
pub fn state_hook(sk_storage: bool, raw: bool) -> Result<StateHook, String> {
    let forced = std::env::var(STATE_HOOK_ENV).ok();
    StateHook::choose(sk_storage, raw, forced.as_deref())
}

/// The hooks `job` may use: all of them or the one [`ACCEPT_HOOK_ENV`] names; of the state
/// job only those of the kind `state`.
pub fn hooks_of(job: &Job, state: StateHook) -> Result<Vec<&'static Hook>, String> {
    let accept = std::env::var(ACCEPT_HOOK_ENV).ok();
    let hooks = hooks_with(job, accept.as_deref())?;
    Ok(by_kind(hooks, state))
}

/// Of a job with tracepoint hooks: only those of kind `state`, else of the best kind below
/// it that the job has (the destroy job has no classic hook), so twins are not loaded for
/// nothing; a tp_btf hook goes only with the tp_btf state program, whose storage it reads.
/// Jobs without tracepoint hooks keep theirs.
fn by_kind(hooks: Vec<&'static Hook>, state: StateHook) -> Vec<&'static Hook> {
    let order = match state {
        StateHook::TpBtf => &[StateHook::TpBtf, StateHook::Raw, StateHook::Classic][..],
        StateHook::Raw => &[StateHook::Raw, StateHook::Classic][..],
        StateHook::Classic => &[StateHook::Classic, StateHook::Raw][..],
    };
    for &kind in order {
        if hooks.iter().any(|h| StateHook::of(h) == Some(kind)) {
            return hooks
                .into_iter()
                .filter(|h| StateHook::of(h) == Some(kind))
                .collect();
        }
    }
    hooks
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
                    "tp_btf/inet_sock_set_state",
                    "tp_btf.rescue/inet_sock_set_state",
                    "raw_tracepoint/inet_sock_set_state",
                    "raw_tracepoint.rescue/inet_sock_set_state",
                    "tracepoint/sock/inet_sock_set_state"
                ]
            );
            let name = "inet_sock_set_state".to_string();
            assert_eq!(
                ProgramKind::from_section(state.hooks[0].rescue.unwrap()),
                Ok(ProgramKind::TpBtf { name: name.clone() }),
                "the same BTF tracepoint"
            );
            assert_eq!(
                ProgramKind::from_section(state.hooks[1].rescue.unwrap()),
                Ok(ProgramKind::RawTracepoint { name }),
                "the same raw tracepoint"
            );
        }
    }

    #[test]
    fn the_state_job_loads_one_kind_of_tracepoint_as_the_kernel_or_the_knob_says() {
        let choose = |storage, raw, forced| StateHook::choose(storage, raw, forced);
        assert_eq!(choose(true, true, None), Ok(StateHook::TpBtf));
        assert_eq!(choose(false, true, None), Ok(StateHook::Raw));
        assert_eq!(choose(false, false, None), Ok(StateHook::Classic));
        assert_eq!(choose(true, true, Some("auto")), Ok(StateHook::TpBtf));
        assert_eq!(choose(false, false, Some("")), Ok(StateHook::Classic));
        assert_eq!(
            choose(true, true, Some("tracepoint")),
            Ok(StateHook::Classic)
        );
        assert_eq!(
            choose(true, true, Some("raw_tracepoint")),
            Ok(StateHook::Raw)
        );
        assert_eq!(choose(false, false, Some("tp_btf")), Ok(StateHook::TpBtf));
        assert_eq!(
            choose(true, true, Some("perf")).unwrap_err(),
            "CONNTRACE_STATE_HOOK=\"perf\" is not a kind of state hook: use tp_btf, \
             raw_tracepoint, tracepoint or auto, or unset it"
        );
        for state in state_jobs() {
            let kind = |kind| -> Vec<&str> {
                let hooks = by_kind(hooks_with(state, None).unwrap(), kind);
                hooks.iter().map(|h| h.section).collect()
            };
            assert_eq!(kind(StateHook::TpBtf), ["tp_btf/inet_sock_set_state"]);
            assert_eq!(kind(StateHook::Raw), ["raw_tracepoint/inet_sock_set_state"]);
            assert_eq!(
                kind(StateHook::Classic),
                ["tracepoint/sock/inet_sock_set_state"]
            );
        }
        // Jobs without a raw tracepoint hook keep theirs, whatever the kind.
        for job in Backend::Tracepoint
            .jobs()
            .iter()
            .filter(|j| j.role != Role::State)
        {
            let kept = by_kind(hooks_with(job, None).unwrap(), StateHook::Raw);
            assert_eq!(kept.len(), job.hooks.len());
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
