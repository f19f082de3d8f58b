//! Which probes a backend uses, where each is attached, and how `auto` picks a backend.

use crate::attach::{self, KprobeSupport};
use crate::cli::Backend as Choice;
use crate::sys::Sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Kprobe,
    Tracepoint,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Kprobe => "kprobe",
            Backend::Tracepoint => "tracepoint",
        }
    }

    /// The program sections this backend loads, each with the events it produces.
    pub fn probes(self) -> &'static [Probe] {
        match self {
            Backend::Kprobe => KPROBE_PROBES,
            Backend::Tracepoint => TRACEPOINT_PROBES,
        }
    }
}

/// What a probe is needed for: `-e accept` alone loads no connect probe, and the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Connect,
    Accept,
}

/// One program section and the tracepoints it is attached to (for kprobe sections, the
/// section name says it all and `extra_tracepoints` is empty).
#[derive(Debug)]
pub struct Probe {
    pub section: &'static str,
    pub role: Role,
    /// Further tracepoints ("category/name") that take the same program.
    pub extra_tracepoints: &'static [&'static str],
    /// A probe whose hook may be missing (IPv6 built as a module that is not loaded): its
    /// failure to attach is a warning, not an error.
    pub optional: bool,
}

const STATE: Probe = Probe {
    section: "tracepoint/sock/inet_sock_set_state",
    role: Role::Connect,
    extra_tracepoints: &[],
    optional: false,
};

static TRACEPOINT_PROBES: &[Probe] = &[
    Probe {
        section: "tracepoint/syscalls/sys_enter_connect",
        role: Role::Connect,
        extra_tracepoints: &[],
        optional: false,
    },
    Probe {
        section: "tracepoint/syscalls/sys_exit_connect",
        role: Role::Connect,
        extra_tracepoints: &[],
        optional: false,
    },
    STATE,
    Probe {
        section: "tracepoint/syscalls/sys_exit_accept4",
        role: Role::Accept,
        extra_tracepoints: &["syscalls/sys_exit_accept"],
        optional: false,
    },
];

static KPROBE_PROBES: &[Probe] = &[
    Probe {
        section: "kprobe/tcp_v4_connect",
        role: Role::Connect,
        extra_tracepoints: &[],
        optional: false,
    },
    Probe {
        section: "kretprobe/tcp_v4_connect",
        role: Role::Connect,
        extra_tracepoints: &[],
        optional: false,
    },
    Probe {
        section: "kprobe/tcp_v6_connect",
        role: Role::Connect,
        extra_tracepoints: &[],
        optional: true,
    },
    Probe {
        section: "kretprobe/tcp_v6_connect",
        role: Role::Connect,
        extra_tracepoints: &[],
        optional: true,
    },
    STATE,
    Probe {
        section: "kretprobe/inet_csk_accept",
        role: Role::Accept,
        extra_tracepoints: &[],
        optional: false,
    },
];

/// Why the tracepoint backend needs BTF, for the messages that refuse it.
const TRACEPOINT_NEEDS_BTF: &str = "the tracepoint backend finds sockets by walking \
    task_struct -> files_struct -> fdtable -> file -> socket, layouts that vary with every \
    kernel config and only BTF gives";

/// The backend to use, and a sentence saying why, for stderr. Without BTF (`has_btf` false)
/// only the kprobe backend can work.
pub fn choose(
    sys: &dyn Sys,
    choice: Choice,
    has_btf: bool,
) -> Result<(Backend, KprobeSupport, String), String> {
    let support = attach::kprobe_support(sys);
    let has_kprobes = !matches!(support, KprobeSupport::None);
    pick(choice, has_kprobes, has_btf).map(|(backend, why)| (backend, support, why))
}

fn pick(choice: Choice, has_kprobes: bool, has_btf: bool) -> Result<(Backend, String), String> {
    match choice {
        Choice::Tracepoint if !has_btf => Err(format!(
            "--backend tracepoint needs BTF: {TRACEPOINT_NEEDS_BTF}; use the kprobe backend \
             or pass --btf FILE"
        )),
        Choice::Tracepoint => Ok((Backend::Tracepoint, "tracepoint backend (as asked)".into())),
        Choice::Kprobe if has_kprobes => Ok((Backend::Kprobe, "kprobe backend (as asked)".into())),
        Choice::Auto | Choice::Kprobe if !has_btf && !has_kprobes => Err(format!(
            "without BTF conntrace needs the kprobe backend, and this kernel has no kprobes \
             (no kprobe PMU and no tracefs kprobe_events); {TRACEPOINT_NEEDS_BTF}: use a \
             kernel with BTF or pass --btf FILE"
        )),
        Choice::Kprobe => Err("kernel has no kprobes (no kprobe PMU and no tracefs kprobe_events): use --backend tracepoint".into()),
        Choice::Auto if has_kprobes => Ok((Backend::Kprobe, "kprobe backend (auto: the kernel has kprobes)".into())),
        Choice::Auto => Ok((Backend::Tracepoint, "tracepoint backend (auto: the kernel has no kprobes)".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_btf_auto_prefers_kprobes() {
        assert_eq!(pick(Choice::Auto, true, true).unwrap().0, Backend::Kprobe);
        assert_eq!(
            pick(Choice::Auto, false, true).unwrap().0,
            Backend::Tracepoint
        );
        assert_eq!(
            pick(Choice::Tracepoint, true, true).unwrap().0,
            Backend::Tracepoint
        );
        assert!(pick(Choice::Kprobe, false, true).is_err());
    }

    #[test]
    fn without_btf_only_kprobes() {
        assert_eq!(pick(Choice::Auto, true, false).unwrap().0, Backend::Kprobe);
        assert_eq!(
            pick(Choice::Kprobe, true, false).unwrap().0,
            Backend::Kprobe
        );
        for choice in [Choice::Auto, Choice::Kprobe] {
            let e = pick(choice, false, false).unwrap_err();
            assert!(
                e.starts_with("without BTF conntrace needs the kprobe backend"),
                "{e}"
            );
            assert!(
                e.ends_with("use a kernel with BTF or pass --btf FILE"),
                "{e}"
            );
        }
        for kprobes in [true, false] {
            let e = pick(Choice::Tracepoint, kprobes, false).unwrap_err();
            assert!(e.starts_with("--backend tracepoint needs BTF"), "{e}");
        }
    }
}
