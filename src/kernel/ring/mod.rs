//! Reading the rings the BPF programs fill: the BPF ring buffer (`bpf_ringbuf_output`, 5.8)
//! or, before it, per-CPU perf rings (`bpf_perf_event_output`).
//!
//! `cpus` finds the online CPUs, `rings` opens one BPF output perf event and ring per CPU and
//! waits on them, `mapped` reads one perf ring by the kernel's head/tail protocol,
//! `bpf_ring` and `bpf_mapped` do the same for the BPF ring buffer, `source` is either to the
//! reader, and `record` parses the bytes of one record (pure, never trusts a size).

// Reads memory the kernel writes: with `mapped`, the places the crate root allows `unsafe`.
#[allow(unsafe_code)]
mod bpf_mapped;
mod bpf_ring;
mod cpus;
mod error;
#[allow(unsafe_code)]
mod mapped;
mod record;
mod rings;
mod source;

pub use bpf_ring::BpfRing;
pub use cpus::{online_cpus, parse_cpu_list, possible_cpus, ONLINE_CPUS_PATH, POSSIBLE_CPUS_PATH};
pub use error::RingError;
pub use record::{
    parse_header, parse_record, parse_ringbuf_header, Header, Record, RecordError, RingBufHeader,
    PERF_RECORD_LOST, PERF_RECORD_SAMPLE, RINGBUF_HEADER_SIZE,
};
pub use rings::{bpf_output_attr, CpuCounters, PerfRings, Wakeup};
pub use source::Rings;

#[cfg(test)]
mod bpf_ring_tests;
#[cfg(test)]
mod tests;
