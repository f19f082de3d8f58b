//! Host integration tests: run conntrace on this machine's kernel against peer processes we
//! start ourselves, and check every field of every record it prints.
//!
//! `cargo test --test host [-- SUBSTRING]` runs the tests (as root); `-- --self-check` checks the
//! harness alone (timestamps, record matching, peers) without conntrace. With CONNTRACE_TEST_ROLE set
//! the binary is one of the peers instead (see host/peer.rs).

// The crate root is tests/host.rs, so submodules need their paths spelled out.
#[path = "host/cases.rs"]
mod cases;
#[path = "host/containers.rs"]
mod containers;
#[path = "host/count.rs"]
mod count;
#[path = "host/freed.rs"]
mod freed;
#[path = "host/held.rs"]
mod held;
#[path = "host/lifecycle.rs"]
mod lifecycle;
#[path = "common/linger.rs"]
mod linger;
#[path = "host/metrics.rs"]
mod metrics;
#[path = "host/peer.rs"]
mod peer;
#[path = "host/record.rs"]
mod record;
#[path = "common/root.rs"]
mod root;
#[path = "host/scale.rs"]
mod scale;
#[path = "host/scenario.rs"]
mod scenario;
#[path = "host/tracer.rs"]
mod tracer;
#[path = "host/witness.rs"]
mod witness;

use std::panic::{catch_unwind, AssertUnwindSafe};

fn main() {
    if let Ok(role) = std::env::var(peer::ROLE_VAR) {
        if role.starts_with("count-") {
            std::process::exit(count::run_role(&role));
        }
        std::process::exit(peer::run_role(&role));
    }
    if !root::root_or_skip("host") {
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tests: Vec<(&str, cases::Test)> = if args.iter().any(|a| a == "--self-check") {
        SELF_CHECKS.to_vec()
    } else {
        // cargo passes its own flags through (--nocapture, ...): only a bare word filters.
        let filter = args.iter().find(|a| !a.starts_with('-'));
        cases::ALL
            .iter()
            .chain(count::ALL)
            .copied()
            .filter(|(name, _)| filter.is_none_or(|f| name.contains(f.as_str())))
            .collect()
    };
    let failed = run_all(&tests);
    println!("{} passed, {failed} failed", tests.len() - failed);
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

/// Runs each test in turn, prints `name ... ok` or `name ... FAILED` and why; returns the failures.
fn run_all(tests: &[(&str, cases::Test)]) -> usize {
    // A panicking test is a failed test, reported like the others.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = 0;
    for (name, test) in tests {
        let started = std::time::Instant::now();
        let outcome =
            catch_unwind(AssertUnwindSafe(test)).unwrap_or_else(|panic| Err(panic_message(&panic)));
        match outcome {
            Ok(()) => println!("{name} ... ok ({:.1} s)", started.elapsed().as_secs_f64()),
            Err(message) => {
                failed += 1;
                println!("{name} ... FAILED\n    {}", message.replace('\n', "\n    "));
            }
        }
    }
    failed
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    format!("panicked: {text}")
}

const SELF_CHECKS: &[(&str, cases::Test)] = &[
    ("self_check_timestamps", record::self_check),
    (
        "self_check_host_identity",
        scenario::self_check_host_identity,
    ),
    ("self_check_record_matching", scenario::self_check_matching),
    ("self_check_peers_alone", scenario::self_check_peers),
];
