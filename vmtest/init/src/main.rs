//! The /init of conntrace's test VMs. As PID 1 it sets the machine up, runs conntrace with
//! each backend around a TCP scenario, prints everything on the console for the host, and
//! powers off. Started again as `ct-server` / `ct-client` (or `ct-old-server` /
//! `ct-old-client`, `ct-acceptor` / `ct-storm-client`) it plays a part in the scenario.

mod bpfprogs;
mod cleanup;
mod faults;
mod kprobes;
mod lifecycle;
mod lines;
mod passes;
mod plan;
mod report;
mod scenario;
mod settle;
mod storm;
mod system;
mod tracer;

use report::say;

/// The first scenario run's port; each further run takes the next ten.
const FIRST_PORT: u16 = 4200;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let role = args.get(1).map(String::as_str);
    let rest = args.get(2..).unwrap_or_default();
    let result = match role {
        Some(scenario::SERVER_COMM) => scenario::server_main(rest),
        Some(scenario::CLIENT_COMM) => scenario::client_main(rest),
        Some(storm::ACCEPTOR_COMM) => storm::acceptor_main(rest),
        Some(storm::CLIENT_COMM) => storm::client_main(rest),
        Some(lifecycle::OLD_SERVER_COMM) => lifecycle::old_server_main(rest),
        Some(lifecycle::OLD_CLIENT_COMM) => lifecycle::old_client_main(rest),
        _ => {
            pid1();
            return;
        }
    };
    if let Err(e) = result {
        eprintln!("{}: {e}", role.unwrap_or("?"));
        std::process::exit(1);
    }
}

fn pid1() {
    for (src, dir, fs) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
    ] {
        if let Err(e) = system::mount(src, dir, fs) {
            say("NOTE", &format!("cannot mount {fs} on {dir}: {e}"));
        }
    }
    let (release, machine) = system::uname();
    say(
        "INIT",
        &format!(
            "uptime={} kernel={release} arch={machine}",
            system::uptime()
        ),
    );
    // Whether the kernel has BTF: the host checks the no-BTF kernel really has none.
    let btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
    say("BTF", if btf { "present" } else { "absent" });
    // conntrace must cope without tracefs too (it mounts it itself), but the init needs it
    // to list kprobe_events; a failure here is reported, not fatal.
    if let Err(e) = system::mount("tracefs", kprobes::TRACEFS, "tracefs") {
        say(
            "NOTE",
            &format!("cannot mount tracefs on {}: {e}", kprobes::TRACEFS),
        );
    }
    if let Err(e) = system::loopback_up() {
        say(
            "NOTE",
            &format!("cannot bring lo up: {e}; the scenario will fail"),
        );
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let plan = plan::from_cmdline(&cmdline);
    say(
        "NOTE",
        &format!(
            "plan: backends={} passes={} ipv6={}",
            plan.backends.join(","),
            plan.passes.join(","),
            u8::from(plan.ipv6)
        ),
    );
    let netns = system::netns_inode().unwrap_or_else(|e| {
        say("NOTE", &format!("cannot read the netns inode: {e}"));
        0
    });
    let mut ctx = passes::Ctx::new(FIRST_PORT, plan.ipv6, netns);
    for backend in &plan.backends {
        passes::backend(&mut ctx, backend);
    }
    for pass in &plan.passes {
        match pass.as_str() {
            plan::TRACEFS_METHOD => passes::tracefs_method(&mut ctx),
            plan::NO_TRACEFS => passes::no_tracefs(&mut ctx),
            plan::CPU_OFFLINE => passes::cpu_offline(&mut ctx),
            plan::NO_BTF => passes::no_btf(&mut ctx),
            plan::UNPRIVILEGED => passes::unprivileged(),
            plan::CLEANUP_KPROBE => cleanup::run_all("kprobe"),
            plan::CLEANUP_TRACEPOINT => cleanup::run_all("tracepoint"),
            plan::STORM => passes::storm(&mut ctx, &plan.backends),
            other => say("NOTE", &format!("unknown pass {other:?} skipped")),
        }
    }
    tracer::run_check();
    say("DONE", &format!("uptime={}", system::uptime()));
    system::power_off();
}
