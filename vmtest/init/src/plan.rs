//! The init's instructions, from the kernel command line: `ct.backends=kprobe,tracepoint`
//! and `ct.ipv6=0|1`.

pub struct Plan {
    pub backends: Vec<String>,
    pub ipv6: bool,
}

pub fn from_cmdline(cmdline: &str) -> Plan {
    let mut plan = Plan {
        backends: vec!["kprobe".into(), "tracepoint".into()],
        ipv6: true,
    };
    for word in cmdline.split_whitespace() {
        if let Some(list) = word.strip_prefix("ct.backends=") {
            plan.backends = list
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
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
    fn reads_backends_and_ipv6() {
        let p = from_cmdline("console=ttyS0 ct.backends=tracepoint ct.ipv6=0 ipv6.disable=1\n");
        assert_eq!(p.backends, vec!["tracepoint"]);
        assert!(!p.ipv6);
        let p = from_cmdline("console=ttyS0");
        assert_eq!(p.backends, vec!["kprobe", "tracepoint"]);
        assert!(p.ipv6);
    }
}
