//! The kernel's numbers that conntrace uses, in one place, each as the uapi header spells it
//! (include/uapi/linux/bpf.h, perf_event.h). Nothing else in the crate writes these numbers.

// bpf(2) commands.
pub const BPF_MAP_CREATE: u32 = 0;
pub const BPF_MAP_LOOKUP_ELEM: u32 = 1;
pub const BPF_MAP_UPDATE_ELEM: u32 = 2;
pub const BPF_MAP_GET_NEXT_KEY: u32 = 4;
pub const BPF_PROG_LOAD: u32 = 5;
pub const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
pub const BPF_RAW_TRACEPOINT_OPEN: u32 = 17;
pub const BPF_BTF_LOAD: u32 = 18;

/// BPF_MAP_UPDATE_ELEM flag: create or replace.
pub const BPF_ANY: u64 = 0;

// Map types.
pub const BPF_MAP_TYPE_ARRAY: u32 = 2;
pub const BPF_MAP_TYPE_PERF_EVENT_ARRAY: u32 = 4;
pub const BPF_MAP_TYPE_SK_STORAGE: u32 = 24;
pub const BPF_MAP_TYPE_RINGBUF: u32 = 27;

/// BPF_MAP_CREATE flag: allocate elements on demand (local storage maps require it).
pub const BPF_F_NO_PREALLOC: u32 = 1;

// Program types.
pub const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
pub const BPF_PROG_TYPE_KPROBE: u32 = 2;
pub const BPF_PROG_TYPE_TRACEPOINT: u32 = 5;
pub const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
/// fentry/fexit and `tp_btf`: BTF-typed arguments, attached by BTF type id (5.5).
pub const BPF_PROG_TYPE_TRACING: u32 = 26;

/// `expected_attach_type` of a `tp_btf` program (`enum bpf_attach_type`).
pub const BPF_TRACE_RAW_TP: u32 = 23;

// Helper function ids (`enum bpf_func_id`).
pub const BPF_FUNC_PROBE_READ: u32 = 4;
pub const BPF_FUNC_PROBE_READ_STR: u32 = 45;
pub const BPF_FUNC_PROBE_READ_USER: u32 = 112;
pub const BPF_FUNC_PROBE_READ_KERNEL: u32 = 113;
pub const BPF_FUNC_PROBE_READ_USER_STR: u32 = 114;
pub const BPF_FUNC_PROBE_READ_KERNEL_STR: u32 = 115;
pub const BPF_FUNC_SK_STORAGE_GET: u32 = 107;
pub const BPF_FUNC_KTIME_GET_COARSE_NS: u32 = 160;
/// bpf_sk_storage_get flag: create the socket's entry when it has none.
pub const BPF_SK_STORAGE_GET_F_CREATE: u64 = 1;

// The BPF ring buffer (BPF_MAP_TYPE_RINGBUF, 5.8).
/// bpf_ringbuf_output flags: do not wake the reader / wake it whatever the kernel would do.
pub const BPF_RB_NO_WAKEUP: u64 = 1;
pub const BPF_RB_FORCE_WAKEUP: u64 = 2;
/// bpf_ringbuf_query: bytes not yet consumed / the data area's size.
pub const BPF_RB_AVAIL_DATA: u64 = 0;
pub const BPF_RB_RING_SIZE: u64 = 1;
/// Each record's 8-byte header: its length word (these two bits set aside) and a page offset.
pub const BPF_RINGBUF_HDR_SZ: usize = 8;
/// Reserved, not yet submitted or discarded: the reader stops there.
pub const BPF_RINGBUF_BUSY_BIT: u32 = 1 << 31;
/// Discarded by its program: skipped.
pub const BPF_RINGBUF_DISCARD_BIT: u32 = 1 << 30;

/// membarrier(2) command (include/uapi/linux/membarrier.h): synchronize_rcu() (4.3+).
pub const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;

// BTF (include/uapi/linux/btf.h).
pub const BTF_MAGIC: u16 = 0xeb9f;
pub const BTF_KIND_INT: u32 = 1;
/// BTF_INT_ENCODING: signed.
pub const BTF_INT_SIGNED: u32 = 1;

// perf_event_attr.type and config.
pub const PERF_TYPE_SOFTWARE: u32 = 1;
pub const PERF_TYPE_TRACEPOINT: u32 = 2;
pub const PERF_COUNT_SW_BPF_OUTPUT: u64 = 10;
/// perf_event_attr.sample_type: the raw data a BPF program passes to bpf_perf_event_output.
pub const PERF_SAMPLE_RAW: u64 = 1 << 10;
/// `perf_event_attr.watermark` (bit 14 of the flags word): wake up on `wakeup_watermark`
/// bytes, not events.
pub const PERF_ATTR_FLAG_WATERMARK: u64 = 1 << 14;
/// perf_event_open(2) flag.
pub const PERF_FLAG_FD_CLOEXEC: u64 = 1 << 3;

// perf event ioctls (see `sys::PerfEventIoctl`).
/// `_IO('$', 0)`.
pub const PERF_EVENT_IOC_ENABLE: u64 = 0x2400;
/// `_IO('$', 1)`.
pub const PERF_EVENT_IOC_DISABLE: u64 = 0x2401;
/// `_IOW('$', 8, __u32)`.
pub const PERF_EVENT_IOC_SET_BPF: u64 = 0x4004_2408;

// Offsets in `struct perf_event_mmap_page`, the first page of a perf ring mapping.
pub const PERF_MMAP_DATA_HEAD: usize = 1024;
pub const PERF_MMAP_DATA_TAIL: usize = 1032;
pub const PERF_MMAP_DATA_OFFSET: usize = 1040;
pub const PERF_MMAP_DATA_SIZE: usize = 1048;

// Perf ring records.
pub const PERF_RECORD_LOST: u32 = 2;
pub const PERF_RECORD_SAMPLE: u32 = 9;
/// `struct perf_event_header`: u32 type, u16 misc, u16 size (of the whole record).
pub const PERF_EVENT_HEADER_SIZE: usize = 8;

/// `struct bpf_prog_info`: `recursion_misses` (5.12+) at this offset, the runs of the program
/// the kernel skipped because another BPF program was running on that CPU (trace_call_bpf's
/// guard counts them there from 6.7); the struct is at least this long where it has the field.
pub const PROG_INFO_RECURSION_MISSES: usize = 208;
pub const PROG_INFO_LEN_WITH_MISSES: usize = 216;
