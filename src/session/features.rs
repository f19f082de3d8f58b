//! What the running kernel offers, in one place: each feature conntrace's choices depend on,
//! probed once (a tiny program load or map create, `kernel::probe`) the first time it is
//! asked for and cached for the session. Never a version number: the version in [`Feature`]
//! is context for people (`conntrace check`, docs/kernel-features.md), not an input.
//!
//! From the answers: which helpers the programs call (bpf_probe_read where
//! bpf_probe_read_kernel/_user are missing, rewritten by the loader), whether RLIMIT_MEMLOCK
//! must be raised before maps are created, and what an EPERM means.

use std::cell::OnceCell;

use crate::kernel::abi::{
    BPF_FUNC_KTIME_GET_COARSE_NS, BPF_FUNC_PROBE_READ_KERNEL, BPF_FUNC_PROBE_READ_USER,
    BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_TRACEPOINT,
};
use crate::kernel::attach::{self, KprobeSupport};
use crate::kernel::btf::VMLINUX_BTF;
use crate::kernel::load::{helper_fallback, PermissionContext};
use crate::kernel::probe::{self, Probed};
use crate::kernel::probe_object::ProbeObject;
use crate::kernel::sys::{process, Rlimit, Sys, RLIM_INFINITY};
use bpf_insn::{decode_program, AtomicOp, JumpWidth, OpCode};

/// A kernel feature conntrace probes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    ProbeReadKernel,
    ProbeReadUser,
    Jmp32,
    AtomicFetch,
    RingBuf,
    RawTracepoint,
    /// Socket-local storage from a `tp_btf` program on the state tracepoint (the only
    /// program type conntrace could call it from: 5.11).
    SkStorage,
    KprobePmu,
    VmlinuxBtf,
    /// Hash maps that allocate their entries as they are used, safely from any program
    /// (`bpf_mem_alloc`, 6.1): read from the kernel's BTF, its hash table having a
    /// `bpf_mem_alloc` (`bpf_htab.ma`). Before it, a hash map a kprobe or tracepoint program
    /// fills must be preallocated, all its memory taken (and cleared) at creation.
    HashAllocAsUsed,
    /// Maps and programs charged to memory cgroups, not RLIMIT_MEMLOCK (5.11); probed, as
    /// libbpf does, through bpf_ktime_get_coarse_ns, a helper of the same release.
    MemcgAccounting,
}

impl Feature {
    pub const ALL: [Feature; 11] = [
        Feature::ProbeReadKernel,
        Feature::ProbeReadUser,
        Feature::Jmp32,
        Feature::AtomicFetch,
        Feature::RingBuf,
        Feature::RawTracepoint,
        Feature::SkStorage,
        Feature::KprobePmu,
        Feature::VmlinuxBtf,
        Feature::HashAllocAsUsed,
        Feature::MemcgAccounting,
    ];

    fn index(self) -> usize {
        Feature::ALL.iter().position(|&f| f == self).unwrap_or(0)
    }

    /// What it is, as `conntrace check` names it.
    pub fn name(self) -> &'static str {
        match self {
            Feature::ProbeReadKernel => "bpf_probe_read_kernel",
            Feature::ProbeReadUser => "bpf_probe_read_user",
            Feature::Jmp32 => "JMP32 instructions",
            Feature::AtomicFetch => "atomic fetch instructions",
            Feature::RingBuf => "BPF ring buffer",
            Feature::RawTracepoint => "raw tracepoints",
            Feature::SkStorage => "socket-local storage (tp_btf)",
            Feature::KprobePmu => "kprobe PMU",
            Feature::VmlinuxBtf => "kernel BTF",
            Feature::HashAllocAsUsed => "hash maps allocated as used (bpf_mem_alloc)",
            Feature::MemcgAccounting => "memcg accounting",
        }
    }

    /// The mainline release that introduced it (context only: distributions backport).
    pub fn since(self) -> &'static str {
        match self {
            Feature::ProbeReadKernel | Feature::ProbeReadUser => "5.5",
            Feature::Jmp32 => "5.1",
            Feature::AtomicFetch => "5.12",
            Feature::RingBuf => "5.8",
            Feature::RawTracepoint => "4.17",
            Feature::SkStorage => "5.11",
            Feature::KprobePmu => "4.17",
            Feature::VmlinuxBtf => "5.4",
            Feature::HashAllocAsUsed => "6.1",
            Feature::MemcgAccounting => "5.11",
        }
    }

    /// What conntrace does where the kernel lacks it.
    pub fn without(self) -> &'static str {
        match self {
            Feature::ProbeReadKernel | Feature::ProbeReadUser => {
                "calls are rewritten to bpf_probe_read"
            }
            Feature::Jmp32 | Feature::AtomicFetch => "the programs must not use them",
            Feature::RingBuf => "not used: events go through the perf event array",
            Feature::RawTracepoint => "not used: classic tracepoints",
            Feature::SkStorage => "not used: per-socket state in hash maps sized from the machine",
            Feature::KprobePmu => "tracefs kprobe_events, else the tracepoint backend",
            Feature::VmlinuxBtf => "built-in layout, verified on loopback",
            Feature::HashAllocAsUsed => "the state hash maps are preallocated at start",
            Feature::MemcgAccounting => "RLIMIT_MEMLOCK is raised to unlimited",
        }
    }
}

/// What the running kernel's own BTF tells the probes (all None without it:
/// `session::fields::FieldSource::kernel_facts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BtfFacts {
    /// The BTF id of `btf_trace_inet_sock_set_state`, which the socket-storage probe
    /// attaches its `tp_btf` program by.
    pub state_tracepoint: Option<u32>,
    /// Whether the kernel's hash table has a `bpf_mem_alloc` (`bpf_htab.ma`).
    pub hash_mem_alloc: Option<bool>,
}

/// The features of the running kernel, each probed when first asked for, then cached.
pub struct Features<'s> {
    sys: &'s dyn Sys,
    btf: BtfFacts,
    answers: [OnceCell<Probed>; Feature::ALL.len()],
}

impl<'s> Features<'s> {
    /// Features of a kernel whose BTF is not at hand: what only BTF tells is "unknown".
    pub fn new(sys: &'s dyn Sys) -> Self {
        Features::with_btf(sys, BtfFacts::default())
    }

    /// With what the running kernel's BTF tells.
    pub fn with_btf(sys: &'s dyn Sys, btf: BtfFacts) -> Self {
        Features {
            sys,
            btf,
            answers: Default::default(),
        }
    }

    /// The answer for `feature`, probing it the first time.
    pub fn probe(&self, feature: Feature) -> &Probed {
        self.answers[feature.index()].get_or_init(|| run_probe(self.sys, feature, self.btf))
    }

    pub fn has(&self, feature: Feature) -> bool {
        self.probe(feature).is_present()
    }

    /// Every feature with its answer (probing what was not asked yet), in [`Feature::ALL`]
    /// order.
    pub fn all(&self) -> Vec<(Feature, &Probed)> {
        Feature::ALL.iter().map(|&f| (f, self.probe(f))).collect()
    }

    /// The helper calls the loader rewrites: `(missing helper, fallback)` for each helper
    /// the kernel was found not to have. Only a "missing" answer counts: where the probe
    /// could not tell, the programs stay as written and the verifier has the last word.
    pub fn helper_rewrites(&self) -> Vec<(u32, u32)> {
        [
            (Feature::ProbeReadKernel, BPF_FUNC_PROBE_READ_KERNEL),
            (Feature::ProbeReadUser, BPF_FUNC_PROBE_READ_USER),
        ]
        .into_iter()
        .filter(|(f, _)| self.probe(*f).is_missing())
        .filter_map(|(_, id)| helper_fallback(id).map(|to| (id, to)))
        .collect()
    }

    /// The helpers the programs will call, for `check` and the "attached" line:
    /// "bpf_probe_read_kernel/_user", or "bpf_probe_read (no bpf_probe_read_kernel/_user)".
    pub fn helpers_in_use(&self) -> String {
        let kernel = self.probe(Feature::ProbeReadKernel).is_missing();
        let user = self.probe(Feature::ProbeReadUser).is_missing();
        match (kernel, user) {
            (false, false) => "bpf_probe_read_kernel/_user",
            (true, true) => "bpf_probe_read (no bpf_probe_read_kernel/_user)",
            (true, false) => {
                "bpf_probe_read for kernel memory (no bpf_probe_read_kernel), bpf_probe_read_user"
            }
            (false, true) => {
                "bpf_probe_read_kernel, bpf_probe_read for user memory (no bpf_probe_read_user)"
            }
        }
        .to_string()
    }

    /// What `object`'s programs need that this kernel was found to lack, one sentence each
    /// (empty: nothing): JMP32 and the atomics of 5.12 (fetch, xchg, cmpxchg, and/or/xor;
    /// plain atomic add is older than 4.19), each probed only if a program uses it. Said before loading, so an old kernel gets a reason rather than a
    /// verifier's "unknown opcode".
    pub fn unmet(&self, object: &ProbeObject) -> Vec<String> {
        let mut jmp32 = Vec::new();
        let mut fetch = Vec::new();
        for program in &object.programs {
            for (_, insn) in decode_program(&program.insns).flatten() {
                match insn.opcode {
                    OpCode::Jump {
                        width: JumpWidth::W32,
                        ..
                    } => jmp32.push(program.section.as_str()),
                    OpCode::Atomic(_) if insn.imm != AtomicOp::Add as i64 => {
                        fetch.push(program.section.as_str())
                    }
                    _ => {}
                }
            }
        }
        let mut unmet = Vec::new();
        for (feature, users) in [(Feature::Jmp32, jmp32), (Feature::AtomicFetch, fetch)] {
            let mut users = users;
            users.dedup();
            if users.is_empty() || !self.probe(feature).is_missing() {
                continue;
            }
            unmet.push(format!(
                "{} ({}) use {}, which this kernel lacks (Linux {}+)",
                users.join(", "),
                if users.len() == 1 {
                    "program"
                } else {
                    "programs"
                },
                feature.name(),
                feature.since()
            ));
        }
        unmet
    }

    /// Before maps are created: where the kernel charges them to RLIMIT_MEMLOCK (no memcg
    /// accounting, or the probe could not tell, as libbpf assumes), raises it to unlimited
    /// unless it is already. Says what it found and did.
    pub fn prepare_memlock(&self) -> Memlock {
        let charged = !self.has(Feature::MemcgAccounting);
        let before = self.sys.memlock_limit();
        let action = match (&before, charged) {
            (_, false) => MemlockAction::NotCharged,
            (Ok(l), true) if l.soft == RLIM_INFINITY => MemlockAction::AlreadyUnlimited,
            (_, true) => {
                let unlimited = Rlimit {
                    soft: RLIM_INFINITY,
                    hard: RLIM_INFINITY,
                };
                match self.sys.set_memlock_limit(unlimited) {
                    Ok(()) => MemlockAction::Raised,
                    Err(e) => MemlockAction::RaiseFailed(e.to_string()),
                }
            }
        };
        Memlock {
            charged,
            before: before.ok(),
            action,
        }
    }
}

fn run_probe(sys: &dyn Sys, feature: Feature, btf: BtfFacts) -> Probed {
    let tp = BPF_PROG_TYPE_TRACEPOINT;
    match feature {
        Feature::ProbeReadKernel => probe::helper(sys, tp, BPF_FUNC_PROBE_READ_KERNEL),
        Feature::ProbeReadUser => probe::helper(sys, tp, BPF_FUNC_PROBE_READ_USER),
        Feature::Jmp32 => probe::jmp32(sys),
        Feature::AtomicFetch => probe::atomic_fetch(sys),
        Feature::RingBuf => probe::ringbuf(sys),
        Feature::RawTracepoint => probe::raw_tracepoint(sys),
        Feature::SkStorage => match btf.state_tracepoint {
            Some(id) => probe::tp_btf_sk_storage(sys, id),
            None => Probed::Unknown(
                "the kernel's BTF (btf_trace_inet_sock_set_state) is needed to try it".into(),
            ),
        },
        Feature::KprobePmu => match attach::kprobe_support(sys) {
            KprobeSupport::Pmu { .. } => Probed::Present,
            KprobeSupport::TracefsOnly => Probed::Missing(
                "no /sys/bus/event_source/devices/kprobe; tracefs kprobe_events is there".into(),
            ),
            KprobeSupport::None => Probed::Missing(
                "no /sys/bus/event_source/devices/kprobe, and no tracefs kprobe_events either"
                    .into(),
            ),
        },
        Feature::VmlinuxBtf => probe::vmlinux_btf(sys, std::path::Path::new(VMLINUX_BTF)),
        // No program load can tell: before 6.1 a tracepoint program with a non-preallocated
        // hash loads (with a kernel warning) and allocates with kmalloc in the probe, unsafe
        // there (the probe may be inside the allocator).
        Feature::HashAllocAsUsed => match btf.hash_mem_alloc {
            Some(true) => Probed::Present,
            Some(false) => Probed::Missing(
                "the kernel's hash table has no bpf_mem_alloc (no bpf_htab.ma in its BTF)".into(),
            ),
            None => Probed::Unknown("the kernel's BTF is needed to tell".into()),
        },
        // libbpf's probe for FEAT_MEMCG_ACCOUNT: the helper came in the same release.
        Feature::MemcgAccounting => probe::helper(
            sys,
            BPF_PROG_TYPE_SOCKET_FILTER,
            BPF_FUNC_KTIME_GET_COARSE_NS,
        ),
    }
}

/// What [`Features::prepare_memlock`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memlock {
    /// Whether the kernel charges maps to RLIMIT_MEMLOCK (no memcg accounting found).
    pub charged: bool,
    /// The limit before, if it could be read.
    pub before: Option<Rlimit>,
    pub action: MemlockAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemlockAction {
    /// Memcg accounting: the limit does not apply to BPF objects.
    NotCharged,
    AlreadyUnlimited,
    Raised,
    /// setrlimit refused (no CAP_SYS_RESOURCE to raise the hard limit): its error.
    RaiseFailed(String),
}

impl Memlock {
    /// "charged to RLIMIT_MEMLOCK (kernels before 5.11): raised from 64 KiB to unlimited".
    pub fn describe(&self) -> String {
        let was = self.before.map_or("unknown".to_string(), |l| size(l.soft));
        match &self.action {
            MemlockAction::NotCharged => format!(
                "not used for BPF (maps are charged to memory cgroups, 5.11+); RLIMIT_MEMLOCK is {was}"
            ),
            MemlockAction::AlreadyUnlimited => {
                "charged to RLIMIT_MEMLOCK (kernels before 5.11), which is unlimited".to_string()
            }
            MemlockAction::Raised => format!(
                "charged to RLIMIT_MEMLOCK (kernels before 5.11): raised from {was} to unlimited"
            ),
            MemlockAction::RaiseFailed(e) => format!(
                "charged to RLIMIT_MEMLOCK (kernels before 5.11), which is {was}: raising it to unlimited failed: {e}"
            ),
        }
    }

    /// What an EPERM means for this process: with privileges, this limit.
    pub fn permission_context(&self, privileged: bool) -> PermissionContext {
        if privileged {
            PermissionContext::Privileged {
                memlock: self.describe(),
            }
        } else {
            PermissionContext::Unprivileged
        }
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        RLIM_INFINITY => "unlimited".to_string(),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Whether this process may use bpf() for tracing as far as privilege goes: CAP_SYS_ADMIN or
/// CAP_BPF in its effective set (root has both), or, where capget fails, uid 0.
pub fn bpf_privileged() -> bool {
    match process::capget() {
        Ok(caps) => caps.effective & ((1 << CAP_SYS_ADMIN) | (1 << CAP_BPF)) != 0,
        Err(_) => process::euid() == 0,
    }
}

#[cfg(test)]
mod tests;
