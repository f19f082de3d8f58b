//! A tracepoint counted by perf, with no program on it: how many times the kernel called it.
//! Beside a program's own count of its runs, the calls no program ran for (a counting perf
//! event is not a BPF program, and the kernel has been seen to run none of those for calls it
//! still counts: docs/kernel-features.md).

use super::{is_identifier, read_id, tracefs, AttachError, Attachment};
use crate::kernel::abi::{PERF_FLAG_FD_CLOEXEC, PERF_TYPE_TRACEPOINT};
use crate::kernel::sys::{PerfEventAttr, PerfEventIoctl, Sys, PERF_ATTR_SIZE};
use std::os::fd::{AsFd, OwnedFd};

/// One counting perf event per CPU on one tracepoint, opened disabled.
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
    // Counting only: no sample period, so no ring and no wakeups; disabled until `enable`.
    let attr = PerfEventAttr {
        type_: PERF_TYPE_TRACEPOINT,
        size: PERF_ATTR_SIZE,
        config: id,
        flags: PERF_ATTR_DISABLED,
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

/// perf_event_attr's first flag bit: the event starts disabled.
const PERF_ATTR_DISABLED: u64 = 1;

impl<'s> TracepointCounter<'s> {
    /// Starts counting on every CPU.
    pub fn enable(&self) -> Result<(), String> {
        self.each(PerfEventIoctl::Enable, "enabling")
    }

    /// Stops counting on every CPU; `total` then stays as it is.
    pub fn disable(&self) -> Result<(), String> {
        self.each(PerfEventIoctl::Disable, "disabling")
    }

    fn each(&self, request: PerfEventIoctl, doing: &str) -> Result<(), String> {
        for (cpu, fd) in &self.events {
            self.sys
                .ioctl(fd.as_fd(), request)
                .map_err(|e| format!("{doing} {} on CPU {cpu}: {e}", self.what))?;
        }
        Ok(())
    }

    /// The calls so far, summed over the CPUs.
    pub fn total(&self) -> Result<u64, String> {
        self.events.iter().try_fold(0u64, |sum, (cpu, fd)| {
            self.sys
                .read_count(fd.as_fd())
                .map(|n| sum.saturating_add(n))
                .map_err(|e| format!("cannot read {} on CPU {cpu}: {e}", self.what))
        })
    }

    /// Its events as attachments, for `detach_all` to close with the rest (each close may wait
    /// for a grace period, as every perf tracepoint event's does).
    pub fn into_attachments(self) -> Vec<Attachment<'s>> {
        let (sys, what) = (self.sys, self.what);
        self.events
            .into_iter()
            .map(|(cpu, fd)| Attachment::new(sys, format!("{what} on CPU {cpu}"), fd, None))
            .collect()
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
            // Counting, from `enable` on: no sampling, disabled as opened.
            assert_eq!((attr.sample_period_or_freq, attr.flags), (0, 1));
        }
        counter.enable().unwrap();
        counter.disable().unwrap();
        let ioctls: Vec<_> = fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Ioctl { request, .. } => Some(request),
                _ => None,
            })
            .collect();
        assert_eq!(
            ioctls,
            [[PerfEventIoctl::Enable; 3], [PerfEventIoctl::Disable; 3]].concat()
        );
        fake.set_perf_count(0, 10);
        fake.set_perf_count(3, 5);
        assert_eq!(counter.total(), Ok(15));
        assert_eq!(counter.into_attachments().len(), 3);
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
