//! Reading the per-CPU perf rings that the BPF programs fill with `bpf_perf_event_output`.
//!
//! `cpus` finds the online CPUs, `rings` opens one BPF output perf event and ring per CPU and
//! waits on them, `mapped` reads one ring by the kernel's head/tail protocol, and `record`
//! parses the bytes of one record (pure, never trusts a size).

mod cpus;
mod error;
// Reads memory the kernel writes: the other place the crate root allows `unsafe`.
#[allow(unsafe_code)]
mod mapped;
mod record;
mod rings;

pub use cpus::{online_cpus, parse_cpu_list, possible_cpus, ONLINE_CPUS_PATH, POSSIBLE_CPUS_PATH};
pub use error::RingError;
pub use record::{
    parse_header, parse_record, Header, Record, RecordError, PERF_RECORD_LOST, PERF_RECORD_SAMPLE,
};
pub use rings::{bpf_output_attr, CpuCounters, PerfRings, Wakeup};

#[cfg(test)]
mod tests;
