//! The runs of conntrace around the TCP scenario (with its lifecycle cases, and the old pair
//! started before conntrace: src/lifecycle.rs): one per backend, then the same scenario
//! with a fault or a forced fallback (kprobe_events instead of the PMU, tracefs unmounted,
//! a CPU offline, no BTF), and conntrace as an unprivileged user.

use crate::faults;
use crate::lifecycle;
use crate::report::{one_line, say};
use crate::scenario;
use crate::settle;
use crate::tracer::{self, Finish, Launch, Stdout};

/// The kprobe method knob conntrace reads (src/session/backend.rs).
pub const FORCE_TRACEFS: (&str, &str) = ("CONNTRACE_KPROBE_METHOD", "tracefs");
/// The state hook knob (src/session/backend.rs): the classic tracepoint, not the raw one.
pub const FORCE_CLASSIC_STATE: (&str, &str) = ("CONNTRACE_STATE_HOOK", "tracepoint");
/// The ring knob (src/session/rings.rs): the perf rings, not the BPF ring buffer.
pub const FORCE_PERF_RINGS: (&str, &str) = ("CONNTRACE_RING", "perf");

/// What every scenario run shares: the machine's facts and the next free port pair.
pub struct Ctx {
    pub ipv6: bool,
    pub netns: u64,
    next_port: u16,
}

impl Ctx {
    /// Each run gets its own ports, so records of one run cannot pass for another's.
    pub fn new(first_port: u16, ipv6: bool, netns: u64) -> Ctx {
        Ctx {
            ipv6,
            netns,
            next_port: first_port,
        }
    }

    fn take_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = self.next_port.saturating_add(10);
        port
    }
}

/// `conntrace --json --backend BACKEND` around the scenario; the run is named BACKEND.
pub fn backend(ctx: &mut Ctx, backend: &str) {
    scenario_run(ctx, backend, &["--backend", backend], &[], false, &|| {});
}

/// The kprobe backend as a kernel before 4.17 has it: through tracefs kprobe_events, listed
/// while attached, the classic state tracepoint and the perf rings.
pub fn tracefs_method(ctx: &mut Ctx) {
    let run = "kprobe-tracefs";
    scenario_run(
        ctx,
        run,
        &["--backend", "kprobe"],
        &[FORCE_TRACEFS, FORCE_CLASSIC_STATE, FORCE_PERF_RINGS],
        true,
        &|| {},
    );
}

/// The tracepoint backend with tracefs unmounted: conntrace must mount it itself.
pub fn no_tracefs(ctx: &mut Ctx) {
    let run = "tracepoint-notracefs";
    faults::report_setup(run, faults::unmount_tracefs());
    let restore = || faults::report_restore(run, faults::ensure_tracefs());
    scenario_run(ctx, run, &["--backend", "tracepoint"], &[], false, &restore);
}

/// The kprobe backend with CPU 1 offline: rings only for the online CPUs.
pub fn cpu_offline(ctx: &mut Ctx) {
    let run = "kprobe-cpu1off";
    faults::report_setup(run, faults::set_cpu_online(1, false));
    let restore = || faults::report_restore(run, faults::set_cpu_online(1, true));
    scenario_run(ctx, run, &["--backend", "kprobe"], &[], false, &restore);
}

/// The kprobe backend with `--btf none`: the built-in field offsets.
pub fn no_btf(ctx: &mut Ctx) {
    let run = "kprobe-nobtf";
    let args = ["--backend", "kprobe", "--btf", "none"];
    scenario_run(ctx, run, &args, &[], false, &|| {});
}

/// Accepts by threads blocked before conntrace started and forty at once, and forty
/// connects at once, on each backend; then the kprobe fallback with misses forced.
pub fn storm(ctx: &mut Ctx, backends: &[String]) {
    for backend in backends {
        crate::storm::blocked_before(backend, ctx.take_port());
    }
    crate::storm::forced_misses(ctx.take_port());
}

/// conntrace as uid 1000 without capabilities: it must refuse with a clear message.
pub fn unprivileged() {
    let launch = Launch {
        run: "unprivileged",
        args: &["--json"],
        env: &[],
        stdout: Stdout::Pipe,
        uid: Some(1000),
        list_kprobes_while_attached: false,
    };
    if let Some(running) = tracer::launch(&launch) {
        let how = if running.attached {
            Finish::Signal(libc::SIGINT)
        } else {
            Finish::Wait
        };
        running.finish(how, &|| {});
    }
}

fn scenario_run(
    ctx: &mut Ctx,
    run: &str,
    backend_args: &[&str],
    env: &[(&str, &str)],
    list_kprobes_while_attached: bool,
    restore: &dyn Fn(),
) {
    let port = ctx.take_port();
    let (closed_port, life_port, old_port) = (port + 1, port + 2, port + 3);
    // Connections older than conntrace: up before it starts, closed while it runs.
    let old = lifecycle::OldPair::start(old_port, ctx.ipv6);
    let mut args = vec!["--json"];
    args.extend_from_slice(backend_args);
    let launch = Launch {
        run,
        args: &args,
        env,
        stdout: Stdout::Pipe,
        uid: None,
        list_kprobes_while_attached,
    };
    let running = tracer::launch(&launch);
    // Run the scenario whatever happened above, so its part of the harness is always exercised.
    let facts = scenario::run(port, closed_port, life_port, ctx.ipv6).and_then(|mut facts| {
        facts.extend(old.and_then(lifecycle::OldPair::finish)?);
        Ok(facts)
    });
    // Every close record the scenario expects is made once its sockets reach CLOSE.
    let open = settle::wait_closed(&[port, life_port, old_port]);
    if !open.is_empty() {
        say(
            "NOTE",
            &format!(
                "{run}: sockets still closing when conntrace stops: {}",
                open.join(", ")
            ),
        );
    }
    match facts {
        Ok(facts) => say(
            "EXPECT",
            &format!(
                "{run} ipv6={} port={port} closed_port={closed_port} life_port={life_port} \
                 old_port={old_port} netns={} {}",
                u8::from(ctx.ipv6),
                ctx.netns,
                facts.join(" ")
            ),
        ),
        Err(e) => say("SCENARIO_ERROR", &format!("{run} {}", one_line(&e))),
    }
    match running {
        Some(r) => r.finish(Finish::Signal(libc::SIGINT), restore),
        None => restore(),
    }
}
