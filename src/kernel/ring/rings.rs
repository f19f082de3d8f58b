//! The set of per-CPU rings behind one BPF_MAP_TYPE_PERF_EVENT_ARRAY, and waiting on them.

use super::mapped::MappedRing;
use super::{Record, RingError};
use crate::kernel::sys::{host, PerfEventAttr, PerfEventIoctl, Sys, PERF_ATTR_SIZE};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::kernel::abi::{
    PERF_ATTR_FLAG_WATERMARK, PERF_COUNT_SW_BPF_OUTPUT, PERF_FLAG_FD_CLOEXEC, PERF_SAMPLE_RAW,
    PERF_TYPE_SOFTWARE,
};

/// When the kernel wakes a reader blocked in `poll`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// After every record: lowest latency.
    EveryRecord,
    /// Once this many bytes are waiting: fewer wake-ups under load, but a quiet ring is only
    /// read when a `poll` times out.
    Watermark(u32),
}

/// Counters of one CPU's ring.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CpuCounters {
    pub cpu: u32,
    /// Records the kernel dropped because the ring was full (from LOST records).
    pub lost: u64,
    /// Batches dropped because a record in them was malformed.
    pub malformed: u64,
}

struct CpuRing<'s> {
    counters: CpuCounters,
    ring: MappedRing<'s>,
}

/// One ring per CPU, registered in the events map and in an epoll set.
/// Dropping it unmaps the rings and closes their perf events (through `Sys`).
pub struct PerfRings<'s> {
    sys: &'s dyn Sys,
    rings: Vec<CpuRing<'s>>,
    epoll: OwnedFd,
    /// epoll_wait's output, allocated once.
    tokens: Vec<u64>,
    /// Where records that wrap the end of a ring are made contiguous; reused.
    scratch: Vec<u8>,
}

/// The attributes of a BPF output event, as libbpf's perf_buffer opens it.
pub fn bpf_output_attr(wakeup: Wakeup) -> PerfEventAttr {
    let (flags, wakeup_value) = match wakeup {
        Wakeup::EveryRecord => (0, 1),
        Wakeup::Watermark(bytes) => (PERF_ATTR_FLAG_WATERMARK, bytes.max(1)),
    };
    PerfEventAttr {
        type_: PERF_TYPE_SOFTWARE,
        size: PERF_ATTR_SIZE,
        config: PERF_COUNT_SW_BPF_OUTPUT,
        sample_period_or_freq: 1,
        sample_type: PERF_SAMPLE_RAW,
        flags,
        wakeup_events_or_watermark: wakeup_value,
        ..Default::default()
    }
}

impl<'s> PerfRings<'s> {
    /// Opens a BPF output perf event on each of `cpus`, maps its ring (`data_pages` pages, a
    /// power of two, plus the metadata page), stores it in `events_map` at key = CPU number,
    /// enables it and adds it to an epoll set. Any failure undoes what was done (drops).
    pub fn open(
        sys: &'s dyn Sys,
        events_map: BorrowedFd<'_>,
        cpus: &[u32],
        data_pages: usize,
        wakeup: Wakeup,
    ) -> Result<Self, RingError> {
        if cpus.is_empty() {
            return Err(RingError::NoCpus);
        }
        let page = host::page_size();
        if !data_pages.is_power_of_two()
            || data_pages
                .checked_add(1)
                .and_then(|n| n.checked_mul(page))
                .is_none()
        {
            return Err(RingError::BadRingSize { data_pages });
        }
        let epoll = sys
            .epoll_create()
            .map_err(|err| RingError::EpollCreate { err })?;
        let attr = bpf_output_attr(wakeup);
        let mut rings = Vec::with_capacity(cpus.len());
        for (index, &cpu) in cpus.iter().enumerate() {
            let cpu_arg = i32::try_from(cpu).map_err(|_| RingError::PerfEventOpen {
                cpu,
                err: crate::kernel::sys::SysError::new("perf_event_open", libc::EINVAL),
            })?;
            let fd = sys
                .perf_event_open(&attr, -1, cpu_arg, -1, PERF_FLAG_FD_CLOEXEC)
                .map_err(|err| RingError::PerfEventOpen { cpu, err })?;
            let ring = MappedRing::map(sys, fd, page, data_pages)
                .map_err(|(bytes, err)| RingError::Mmap { cpu, bytes, err })?;
            sys.map_update(events_map, &cpu.to_ne_bytes(), &fd_value(ring.fd()), 0)
                .map_err(|err| RingError::MapUpdate { cpu, err })?;
            sys.ioctl(ring.fd(), PerfEventIoctl::Enable)
                .map_err(|err| RingError::Enable { cpu, err })?;
            sys.epoll_add(epoll.as_fd(), ring.fd(), index as u64)
                .map_err(|err| RingError::EpollAdd { cpu, err })?;
            rings.push(CpuRing {
                counters: CpuCounters {
                    cpu,
                    ..Default::default()
                },
                ring,
            });
        }
        Ok(PerfRings {
            sys,
            tokens: vec![0; rings.len()],
            rings,
            epoll,
            scratch: Vec::new(),
        })
    }

    /// Waits up to `timeout_ms` (-1: forever) for data unless some is already waiting, then
    /// drains every ring once, handing each record to `on_record`. Returns how many records it
    /// handed over. An interrupted wait (EINTR) is not an error: it returns what was there.
    ///
    /// Every ring is drained, not only those epoll reported: a perf event's readiness is
    /// consumed by the wait that reports it, so data that arrived unreported must still be
    /// read; an empty ring costs two atomic loads.
    pub fn poll(
        &mut self,
        timeout_ms: i32,
        mut on_record: impl FnMut(Record<'_>),
    ) -> Result<usize, RingError> {
        if !self.rings.iter().any(|r| r.ring.has_data()) {
            wait(self.sys, self.epoll.as_fd(), &mut self.tokens, timeout_ms)?;
        }
        Ok(self.drain(&mut on_record))
    }

    /// Drains every ring once without waiting (e.g. a last sweep before exiting).
    pub fn drain(&mut self, mut on_record: impl FnMut(Record<'_>)) -> usize {
        let mut records = 0;
        for r in &mut self.rings {
            let done = r
                .ring
                .drain(r.counters.cpu, &mut self.scratch, &mut on_record);
            records += done.records;
            r.counters.lost = r.counters.lost.saturating_add(done.lost);
            r.counters.malformed += u64::from(done.malformed);
        }
        records
    }

    /// The size of each ring's data area.
    pub fn data_size(&self) -> usize {
        self.rings.first().map_or(0, |r| r.ring.data_size())
    }

    /// The CPUs read, in ring order.
    pub fn cpus(&self) -> impl Iterator<Item = u32> + '_ {
        self.rings.iter().map(|r| r.counters.cpu)
    }

    /// Records the kernel dropped on all CPUs, as reported by LOST records.
    pub fn lost(&self) -> u64 {
        self.rings
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(r.counters.lost))
    }

    /// Batches dropped on all CPUs because they held a malformed record.
    pub fn malformed(&self) -> u64 {
        self.rings.iter().map(|r| r.counters.malformed).sum()
    }

    pub fn per_cpu(&self) -> impl Iterator<Item = CpuCounters> + '_ {
        self.rings.iter().map(|r| r.counters)
    }
}

/// Waits up to `timeout_ms` for one of `epoll`'s fds to be ready. An interrupted wait (EINTR)
/// is not an error: the caller drains what is there.
pub(super) fn wait(
    sys: &dyn Sys,
    epoll: BorrowedFd<'_>,
    tokens: &mut [u64],
    timeout_ms: i32,
) -> Result<(), RingError> {
    match sys.epoll_wait(epoll, tokens, timeout_ms) {
        Ok(_) => Ok(()),
        Err(err) if err.errno == libc::EINTR => Ok(()),
        Err(err) => Err(RingError::Wait { err }),
    }
}

/// A PERF_EVENT_ARRAY value: the perf event's fd as a u32.
fn fd_value(fd: BorrowedFd<'_>) -> [u8; 4] {
    use std::os::fd::AsRawFd;
    (fd.as_raw_fd() as u32).to_ne_bytes()
}
