//! `ctload syscalls`: the cost of one syscall, timed over a tight loop of getppid() calls.
//!
//! A tracer that enables any `syscalls:*` tracepoint makes the kernel send every syscall of
//! every task through its slow path (the syscall-trace work flag) while it is attached, even
//! syscalls it has no probe on. The loop makes no connection, so what it measures is that tax
//! alone: run it untraced and under a tracer and compare the ns per call.

use std::hint::black_box;
use std::time::Instant;

/// What one loop measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub calls: u64,
    pub seconds: f64,
}

impl Timing {
    pub fn ns_per_call(&self) -> f64 {
        if self.calls > 0 {
            self.seconds * 1e9 / self.calls as f64
        } else {
            0.0
        }
    }
}

/// Calls getppid() `calls` times. getppid because it is the cheapest real syscall: no
/// arguments, no locks, no vDSO shortcut (getpid may be cached by a libc, getppid never is),
/// so the loop is the syscall entry and exit and little else.
pub fn time_getppid(calls: u64) -> Timing {
    let start = Instant::now();
    for _ in 0..calls {
        // black_box: the result must look used, or the call could be hoisted or merged.
        // SAFETY: getppid takes no arguments, touches no memory of ours and cannot fail.
        black_box(unsafe { libc::getppid() });
    }
    Timing {
        calls,
        seconds: start.elapsed().as_secs_f64(),
    }
}

pub fn text(t: &Timing) -> String {
    format!(
        "ctload: {} getppid() calls in {:.3} s: {:.1} ns per call",
        t.calls,
        t.seconds,
        t.ns_per_call()
    )
}

pub fn json(t: &Timing) -> String {
    format!(
        "{{\"calls\":{},\"seconds\":{:.6},\"ns_per_call\":{:.1}}}",
        t.calls,
        t.seconds,
        t.ns_per_call()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_makes_every_call_and_times_it() {
        let t = time_getppid(1000);
        assert_eq!(t.calls, 1000);
        assert!(t.seconds > 0.0);
        // Generous bounds: a syscall takes tens of ns to tens of µs, never a whole ms.
        assert!(t.ns_per_call() > 1.0 && t.ns_per_call() < 1e6, "{t:?}");
    }

    #[test]
    fn reports() {
        let t = Timing {
            calls: 2_000_000,
            seconds: 0.25,
        };
        assert_eq!(
            text(&t),
            "ctload: 2000000 getppid() calls in 0.250 s: 125.0 ns per call"
        );
        assert_eq!(
            json(&t),
            "{\"calls\":2000000,\"seconds\":0.250000,\"ns_per_call\":125.0}"
        );
    }
}
