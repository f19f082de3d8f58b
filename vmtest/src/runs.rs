//! The runs of conntrace a VM makes, by the names the init gives them on the console, and
//! what each must show. The names are a contract with vmtest/init/src/{passes,cleanup}.rs.

use crate::plan::{Pass, VmSpec};

/// One expected run and how to judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub name: String,
    pub check: Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// conntrace around the TCP scenario: every record checked.
    Scenario(ScenarioRun),
    /// conntrace ended one way; only what it left behind and how it exited are checked.
    Cleanup {
        case: CleanupCase,
        /// The kprobe backend runs with the tracefs method: its entries must show while
        /// attached, or the "nothing left" check would prove nothing.
        kprobe_events_during: bool,
    },
    /// conntrace as uid 1000 without capabilities.
    Unprivileged,
    /// The accept/connect storm: every accept and connect reported, or (with `misses`, the
    /// kprobe fallback forced to miss) every one printed or counted as lost.
    Storm { misses: bool },
}

/// What a scenario run adds to the usual checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScenarioRun {
    /// kprobe_events must list our entries while attached (tracefs method).
    pub kprobe_events_during: bool,
    /// The state changes through the classic tracepoint, forced (CONNTRACE_STATE_HOOK): the
    /// way of a kernel before 4.17. Otherwise the raw tracepoint every VM kernel has.
    pub classic_state: bool,
    /// Records through the perf rings, forced (CONNTRACE_RING): the way of a kernel before
    /// 5.8. Otherwise the BPF ring buffer every VM kernel has.
    pub perf_rings: bool,
    /// Traced with `--btf none`: the programs for kernels without BTF (no tp_btf).
    pub no_btf: bool,
    /// A fault set up before the run (SETUP) and undone after it (RESTORE).
    pub fault: Option<Fault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// tracefs unmounted: conntrace must mount it itself.
    NoTracefs,
    /// CPU 1 offline: SETUP must report `online=0` and RESTORE `online=0-1`.
    Cpu1Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupCase {
    Sigint,
    Sigterm,
    /// stdout is a pipe the init closes after one line.
    Sigpipe,
    /// `-d 1`
    Duration,
    /// `-n 2`
    MaxEvents,
    /// stdout is /dev/full.
    WriteError,
}

pub const CLEANUP_CASES: [CleanupCase; 6] = [
    CleanupCase::Sigint,
    CleanupCase::Sigterm,
    CleanupCase::Sigpipe,
    CleanupCase::Duration,
    CleanupCase::MaxEvents,
    CleanupCase::WriteError,
];

impl CleanupCase {
    pub fn name(self) -> &'static str {
        match self {
            CleanupCase::Sigint => "sigint",
            CleanupCase::Sigterm => "sigterm",
            CleanupCase::Sigpipe => "sigpipe",
            CleanupCase::Duration => "duration",
            CleanupCase::MaxEvents => "max-events",
            CleanupCase::WriteError => "write-error",
        }
    }

    /// conntrace's exit status: 0 for every way of ending but a failed write.
    pub fn exit(self) -> &'static str {
        match self {
            CleanupCase::WriteError => "code=1",
            _ => "code=0",
        }
    }

    /// How ending this way is described in failure messages.
    pub fn describe(self) -> &'static str {
        match self {
            CleanupCase::Sigint => "after SIGINT",
            CleanupCase::Sigterm => "after SIGTERM",
            CleanupCase::Sigpipe => "after its stdout pipe was closed",
            CleanupCase::Duration => "with -d 1",
            CleanupCase::MaxEvents => "with -n 2",
            CleanupCase::WriteError => "with stdout on /dev/full",
        }
    }
}

/// Every run the init makes for `spec`, in console order.
pub fn expected(spec: &VmSpec) -> Vec<RunSpec> {
    let scenario = |name: &str, run: ScenarioRun| RunSpec {
        name: name.to_string(),
        check: Check::Scenario(run),
    };
    let mut runs: Vec<RunSpec> = spec
        .backends
        .iter()
        .map(|b| scenario(b, ScenarioRun::default()))
        .collect();
    for pass in &spec.passes {
        match pass {
            Pass::TracefsMethod => runs.push(scenario(
                "kprobe-tracefs",
                ScenarioRun {
                    kprobe_events_during: true,
                    classic_state: true,
                    perf_rings: true,
                    ..ScenarioRun::default()
                },
            )),
            Pass::NoTracefs => runs.push(scenario(
                "tracepoint-notracefs",
                ScenarioRun {
                    fault: Some(Fault::NoTracefs),
                    ..ScenarioRun::default()
                },
            )),
            Pass::CpuOffline => runs.push(scenario(
                "kprobe-cpu1off",
                ScenarioRun {
                    fault: Some(Fault::Cpu1Offline),
                    ..ScenarioRun::default()
                },
            )),
            // Without BTF every field is exact too: the usual checks.
            Pass::NoBtf => runs.push(scenario(
                "kprobe-nobtf",
                ScenarioRun {
                    no_btf: true,
                    ..ScenarioRun::default()
                },
            )),
            Pass::Unprivileged => runs.push(RunSpec {
                name: "unprivileged".into(),
                check: Check::Unprivileged,
            }),
            Pass::Storm => {
                for backend in &spec.backends {
                    runs.push(RunSpec {
                        name: format!("storm-{backend}"),
                        check: Check::Storm { misses: false },
                    });
                }
                runs.push(RunSpec {
                    name: "storm-kprobe-misses".into(),
                    check: Check::Storm { misses: true },
                });
            }
            Pass::CleanupKprobe | Pass::CleanupTracepoint => {
                let kprobe = *pass == Pass::CleanupKprobe;
                let backend = if kprobe { "kprobe" } else { "tracepoint" };
                for case in CLEANUP_CASES {
                    runs.push(RunSpec {
                        name: format!("cleanup-{backend}-{}", case.name()),
                        check: Check::Cleanup {
                            case,
                            kprobe_events_during: kprobe,
                        },
                    });
                }
            }
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::parse_args;

    #[test]
    fn names_follow_the_init() {
        let spec = &parse_args(&[]).unwrap().vms[0];
        let names: Vec<String> = expected(spec).into_iter().map(|r| r.name).collect();
        assert_eq!(names.len(), 2 + 1 + 1 + 12 + 1 + 1 + 1 + 3, "{names:?}");
        assert_eq!(
            names.get(..4).unwrap(),
            [
                "kprobe",
                "tracepoint",
                "kprobe-tracefs",
                "tracepoint-notracefs"
            ]
        );
        assert_eq!(names[4], "cleanup-kprobe-sigint");
        assert_eq!(names[15], "cleanup-tracepoint-write-error");
        assert_eq!(
            names.get(16..).unwrap(),
            [
                "kprobe-cpu1off",
                "unprivileged",
                "kprobe-nobtf",
                "storm-kprobe",
                "storm-tracepoint",
                "storm-kprobe-misses"
            ]
        );
    }

    #[test]
    fn only_a_write_error_exits_1() {
        for case in CLEANUP_CASES {
            let want = if case == CleanupCase::WriteError {
                "code=1"
            } else {
                "code=0"
            };
            assert_eq!(case.exit(), want, "{}", case.name());
        }
    }
}
