//! Offsets for kernels without BTF: the `struct sock_common` fields that have kept their
//! place since Linux 3.x. Callers must verify them at run time (`session::selftest` does); a
//! test checks them against this machine's BTF.

use super::Field;

/// `(spec, offset, size)`. Everything before `skc_prot` (the first pointer) is independent
/// of pointer width; `skc_prot` and `skc_net` (a pointer only with network namespaces), then
/// the IPv6 addresses, hold on 64-bit kernels with network namespaces only. What lies beyond
/// sock_common (struct sock, inet_sock, net) is found at start-up by `session::discover`.
const SOCK_COMMON: &[(&str, u32, u32)] = &[
    ("sock_common.skc_daddr", 0, 4),
    ("sock_common.skc_rcv_saddr", 4, 4),
    ("sock_common.skc_dport", 12, 2),
    ("sock_common.skc_num", 14, 2),
    ("sock_common.skc_family", 16, 2),
    ("sock_common.skc_state", 18, 1),
    #[cfg(target_pointer_width = "64")]
    ("sock_common.skc_prot", 40, 8),
    #[cfg(target_pointer_width = "64")]
    ("sock_common.skc_net", 48, 8),
    #[cfg(target_pointer_width = "64")]
    ("sock_common.skc_v6_daddr", 56, 16),
    #[cfg(target_pointer_width = "64")]
    ("sock_common.skc_v6_rcv_saddr", 72, 16),
];

/// The built-in offset of `spec` (e.g. "sock_common.skc_dport"), if there is one.
pub fn builtin_field(spec: &str) -> Option<Field> {
    SOCK_COMMON
        .iter()
        .find(|(name, _, _)| *name == spec)
        .map(|&(_, offset, size)| Field { offset, size })
}

/// Every spec the built-in table knows.
pub fn builtin_specs() -> impl Iterator<Item = &'static str> {
    SOCK_COMMON.iter().map(|(name, _, _)| *name)
}
