//! The in-kernel filters: the value of the `config` map the probes read first thing.
//!
//! The layout is shared with `src/bpf/*.s` (the `CFG_*` constants there).

use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct FilterConfig {
    /// Only this process (tgid); 0 = any.
    pub pid: u32,
    /// Only this uid; `ANY_UID` = any.
    pub uid: u32,
    /// Only this address family (2 = AF_INET, 10 = AF_INET6); 0 = any. IPv4-mapped IPv6
    /// connections count as AF_INET.
    pub family: u32,
    /// 1 = only ports present in the `ports` map (remote port of connects, local port of accepts).
    pub port_filter: u32,
}

pub const ANY_UID: u32 = u32::MAX;

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            pid: 0,
            uid: ANY_UID,
            family: 0,
            port_filter: 0,
        }
    }
}
