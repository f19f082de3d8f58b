//! A tracepoint counted by perf, with no program on it: how many times the kernel called it.
//! Beside a program's own count of its runs, the calls no program ran for (a counting perf
//! event is not a BPF program, and the kernel has been seen to run none of those for calls it
//! still counts: docs/kernel-features.md).

use super::{is_identifier, read_id, tracefs, AttachError};
use crate::kernel::abi::{PERF_FLAG_FD_CLOEXEC, PERF_TYPE_TRACEPOINT};
use crate::kernel::sys::{PerfEventAttr, Sys, PERF_ATTR_SIZE};
use std::os::fd::{AsFd, OwnedFd};

/// One counting perf event per CPU on one tracepoint, counting from its opening.
pub struct TracepointCounter<'s> {
    sys: &'s dyn Sys,
    what: String,
    /// (cpu, its event).
    events: Vec<(u32, OwnedFd)>,
}

/// Counts `category/name` on each of `cpus` (a tracepoint event counts only on its own CPU).
pub fn count_tracepoint<'s>(
    sys: &'s dyn Sys,
    category: &str,
    name: &str,
    cpus: &[u32],
) -> Result<TracepointCounter<'s>, AttachError> {
    if !is_identifier(category) || !is_identifier(name) {
        return Err(AttachError::BadSection(format!(
            "`{category}/{name}` is not a tracepoint name"
        )));
    }
    let id_path = tracefs::root(sys)?
        .join("events")
        .join(category)
        .join(name)
        .join("id");
    let id = read_id(sys, &id_path).map_err(|_| AttachError::TracepointMissing {
        category: category.to_string(),
        name: name.to_string(),
    })?;
    // Counting only: no sample period, so no ring and no wakeups; enabled as opened (no
    // enable or disable ioctl, each a call on every event's CPU).
    let attr = PerfEventAttr {
        type_: PERF_TYPE_TRACEPOINT,
        size: PERF_ATTR_SIZE,
        config: id,
        ..Default::default()
    };
    let what = format!("the count of tracepoint {category}/{name}");
    let mut events = Vec::with_capacity(cpus.len());
    for &cpu in cpus {
        let fd = sys
            .perf_event_open(&attr, -1, cpu as i32, -1, PERF_FLAG_FD_CLOEXEC)
            .map_err(|error| AttachError::sys(format!("opening {what} on CPU {cpu}"), error))?;
        events.push((cpu, fd));
    }
    Ok(TracepointCounter { sys, what, events })
}

impl<'s> TracepointCounter<'s> {
    /// The calls so far, summed over the CPUs.
    pub fn total(&self) -> Result<u64, String> {
        self.events.iter().try_fold(0u64, |sum, (cpu, fd)| {
            self.sys
                .read_count(fd.as_fd())
                .map(|n| sum.saturating_add(n))
                .map_err(|e| format!("cannot read {} on CPU {cpu}: {e}", self.what))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::sys::fake::{Call, FakeSys};

    const ID: &str = "/sys/kernel/tracing/events/tcp/tcp_destroy_sock/id";

    fn with_tracepoint() -> FakeSys {
        let fake = FakeSys::new();
        fake.set_file("/sys/kernel/tracing/events/header_page", b"");
        fake.set_file(ID, b"1234\n");
        fake
    }

    #[test]
    fn one_counting_event_per_cpu_summed() {
        let fake = with_tracepoint();
        let counter = count_tracepoint(&fake, "tcp", "tcp_destroy_sock", &[0, 1, 3]).unwrap();
        let opened: Vec<_> = fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::PerfEventOpen { attr, pid, cpu, .. } => Some((attr, pid, cpu)),
                _ => None,
            })
            .collect();
        assert_eq!(opened.len(), 3);
        for ((attr, pid, cpu), want) in opened.iter().zip([0, 1, 3]) {
            assert_eq!(
                (attr.type_, attr.config, *pid, *cpu),
                (PERF_TYPE_TRACEPOINT, 1234, -1, want)
            );
            // Counting as opened: no sampling, not disabled.
            assert_eq!((attr.sample_period_or_freq, attr.flags), (0, 0));
        }
        assert!(!fake.calls().iter().any(|c| matches!(c, Call::Ioctl { .. })));
        fake.set_perf_count(0, 10);
        fake.set_perf_count(3, 5);
        assert_eq!(counter.total(), Ok(15));
    }

    #[test]
    fn a_missing_tracepoint_or_a_failed_read_is_an_error_that_names_it() {
        let fake = FakeSys::new();
        fake.set_file("/sys/kernel/tracing/events/header_page", b"");
        let e = count_tracepoint(&fake, "tcp", "tcp_destroy_sock", &[0])
            .err()
            .unwrap();
        assert!(e.to_string().contains("tcp_destroy_sock"), "{e}");

        let fake = with_tracepoint();
        let counter = count_tracepoint(&fake, "tcp", "tcp_destroy_sock", &[0]).unwrap();
        fake.fail_always("read_count", libc::EBADF);
        let e = counter.total().unwrap_err();
        assert!(e.contains("tcp/tcp_destroy_sock on CPU 0"), "{e}");
    }
}
