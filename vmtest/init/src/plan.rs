//! The init's instructions, from the kernel command line: `ct.backends=kprobe,tracepoint`,
//! `ct.passes=tracefs-method,no-tracefs,...` (the extra runs, in order) and `ct.ipv6=0|1`.
//! The host writes them (vmtest/src/plan.rs); the pass names below are shared with it.

pub const TRACEFS_METHOD: &str = "tracefs-method";
pub const NO_TRACEFS: &str = "no-tracefs";
pub const CLEANUP_KPROBE: &str = "cleanup-kprobe";
pub const CLEANUP_TRACEPOINT: &str = "cleanup-tracepoint";
pub const CPU_OFFLINE: &str = "cpu-offline";
pub const UNPRIVILEGED: &str = "unprivileged";
pub const NO_BTF: &str = "nobtf";
pub const STORM: &str = "storm";

pub struct Plan {
    pub backends: Vec<String>,
    pub passes: Vec<String>,
    pub ipv6: bool,
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn from_cmdline(cmdline: &str) -> Plan {
    let mut plan = Plan {
        backends: vec!["kprobe".into(), "tracepoint".into()],
        passes: Vec::new(),
        ipv6: true,
    };
    for word in cmdline.split_whitespace() {
        if let Some(backends) = word.strip_prefix("ct.backends=") {
            plan.backends = list(backends);
        } else if let Some(passes) = word.strip_prefix("ct.passes=") {
            plan.passes = list(passes);
        } else if let Some(flag) = word.strip_prefix("ct.ipv6=") {
            plan.ipv6 = flag != "0";
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_backends_passes_and_ipv6() {
        let p = from_cmdline(
            "console=ttyS0 ct.backends=tracepoint ct.passes=cleanup-kprobe,nobtf ct.ipv6=0 ipv6.disable=1\n",
        );
        assert_eq!(p.backends, vec!["tracepoint"]);
        assert_eq!(p.passes, vec![CLEANUP_KPROBE, NO_BTF]);
        assert!(!p.ipv6);
        let p = from_cmdline("console=ttyS0 ct.passes=");
        assert_eq!(p.backends, vec!["kprobe", "tracepoint"]);
        assert!(p.passes.is_empty());
        assert!(p.ipv6);
    }
}
