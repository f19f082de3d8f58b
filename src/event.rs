//! The event record every BPF program writes with `bpf_perf_event_output`, and its decoding.
//!
//! The layout is shared with `src/bpf/*.s` (the `EV_*` constants there): change both together.

use bytemuck::{Pod, Zeroable};

/// One event as the kernel writes it. 128 bytes, no implicit padding.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct WireEvent {
    /// `bpf_ktime_get_ns()` when it happened (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// The kernel socket's address. Never printed: user space maps it to an opaque id.
    pub sock: u64,
    /// established/failed: from the connect (SYN_SENT) to the outcome; 0 otherwise.
    pub latency_ns: u64,
    /// `bpf_get_current_cgroup_id()` of the process.
    pub cgroup: u64,
    /// Process id (tgid), thread id, uid.
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    /// Inode number of the socket's network namespace.
    pub netns: u32,
    /// One of the `KIND_*` values.
    pub kind: u8,
    pub _pad: [u8; 3],
    /// Positive errno, or 0 for none.
    pub error: i32,
    /// The task's comm, NUL-padded, not necessarily NUL-terminated.
    pub comm: [u8; 16],
    /// This host's end: a `sockaddr_in` or `sockaddr_in6` (family first, port in network order).
    pub local: [u8; 28],
    /// The peer's end, likewise.
    pub remote: [u8; 28],
}

pub const WIRE_EVENT_SIZE: usize = std::mem::size_of::<WireEvent>();
const _: () = assert!(WIRE_EVENT_SIZE == 128);

pub const KIND_CONNECT: u8 = 1;
pub const KIND_ESTABLISHED: u8 = 2;
pub const KIND_FAILED: u8 = 3;
pub const KIND_ACCEPT: u8 = 4;
