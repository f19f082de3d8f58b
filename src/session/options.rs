//! What a session is asked to do, in the session's own terms: the command line (`app::cli`)
//! and `conntrace check` build these; nothing here knows how they were spelled.

use std::path::PathBuf;

/// 256 pages (1 MiB per CPU, ~7k events) ride out a reader descheduled for ~0.25 s at the full
/// loopback rate; 64 lost records on a busy 2-CPU machine (docs/benchmarks.md).
pub const DEFAULT_PAGES: u32 = 256;

/// Where struct layouts come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BtfSource {
    /// `/sys/kernel/btf/vmlinux`.
    #[default]
    Kernel,
    /// `--btf PATH`: raw BTF or an ELF vmlinux with a `.BTF` section.
    Path(PathBuf),
    /// `--btf none`: use the built-in offsets and verify them.
    None,
}

/// Which backend to use; `Auto` lets the kernel decide (see `backend::choose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    Auto,
    Kprobe,
    Tracepoint,
}

/// The address families to trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyFilter {
    Any,
    Ipv4,
    Ipv6,
}

/// Everything `session::start` needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    pub btf: BtfSource,
    pub backend: BackendChoice,
    /// In-kernel filters: only this process (tgid), only this uid, only these ports (empty =
    /// any), only this family.
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub ports: Vec<u16>,
    pub family: FamilyFilter,
    /// In-kernel: only tasks under this cgroup v2 directory (a path on the cgroup2 mount).
    pub cgroup: Option<PathBuf>,
    /// Whether any connect, established or failed record is wanted (else no connect probe
    /// is attached), and whether accept records are. Close records need both: their owner
    /// comes from the connect or the accept.
    pub connects: bool,
    pub accepts: bool,
    /// Pages per CPU for the rings (a power of two): each perf ring, or half of the BPF ring buffer.
    pub pages: u32,
    /// Connects in flight the probes can track (`--max-tracked`); None: chosen for the
    /// machine (`capacity::Capacity::from_machine`).
    pub max_tracked: Option<u32>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            btf: BtfSource::Kernel,
            backend: BackendChoice::Auto,
            pid: None,
            uid: None,
            ports: Vec::new(),
            family: FamilyFilter::Any,
            cgroup: None,
            connects: true,
            accepts: true,
            pages: DEFAULT_PAGES,
            max_tracked: None,
        }
    }
}
