//! Where a session's records arrive: the BPF ring buffer where the kernel has one, else the
//! per-CPU perf rings. The reader sees one interface.

use super::{BpfRing, CpuCounters, PerfRings, Record, RingError};

pub enum Rings<'s> {
    Bpf(BpfRing<'s>),
    Perf(PerfRings<'s>),
}

impl Rings<'_> {
    /// Waits up to `timeout_ms` for data unless some is waiting, then drains once.
    pub fn poll(
        &mut self,
        timeout_ms: i32,
        on_record: impl FnMut(Record<'_>),
    ) -> Result<usize, RingError> {
        match self {
            Rings::Bpf(ring) => ring.poll(timeout_ms, on_record),
            Rings::Perf(rings) => rings.poll(timeout_ms, on_record),
        }
    }

    /// Drains once without waiting.
    pub fn drain(&mut self, on_record: impl FnMut(Record<'_>)) -> usize {
        match self {
            Rings::Bpf(ring) => ring.drain(on_record),
            Rings::Perf(rings) => rings.drain(on_record),
        }
    }

    /// Batches dropped because they held a malformed record.
    pub fn malformed(&self) -> u64 {
        match self {
            Rings::Bpf(ring) => ring.malformed(),
            Rings::Perf(rings) => rings.malformed(),
        }
    }

    /// Each perf ring's counters (the kernel's LOST records); none for the BPF ring buffer,
    /// whose full-ring drops only the probes count.
    pub fn per_cpu(&self) -> Vec<CpuCounters> {
        match self {
            Rings::Bpf(_) => Vec::new(),
            Rings::Perf(rings) => rings.per_cpu().collect(),
        }
    }
}
