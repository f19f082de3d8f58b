//! IP addresses into a byte buffer, IPv6 in the RFC 5952 canonical form: lowercase hex without
//! leading zeros, the longest run of two or more zero groups as `::` (the leftmost on ties),
//! IPv4-mapped addresses as `::ffff:a.b.c.d`.

use super::digits::{push_hex_short, push_u64};
use super::sink::Sink;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub fn push_ip(out: &mut impl Sink, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => push_ipv4(out, v4),
        IpAddr::V6(v6) => push_ipv6(out, v6),
    }
}

pub fn push_ipv4(out: &mut impl Sink, ip: Ipv4Addr) {
    let [a, b, c, d] = ip.octets();
    push_u64(out, a.into());
    out.put_byte(b'.');
    push_u64(out, b.into());
    out.put_byte(b'.');
    push_u64(out, c.into());
    out.put_byte(b'.');
    push_u64(out, d.into());
}

pub fn push_ipv6(out: &mut impl Sink, ip: Ipv6Addr) {
    if let Some(v4) = ip.to_ipv4_mapped() {
        out.put(b"::ffff:");
        push_ipv4(out, v4);
        return;
    }
    let groups = ip.segments();
    let (run_start, run_len) = longest_zero_run(&groups);
    let mut i = 0;
    while i < groups.len() {
        if run_len >= 2 && i == run_start {
            out.put(b"::");
            i += run_len;
            continue;
        }
        // A separator goes between groups, except right after the `::` that already ends in one.
        if i > 0 && !(run_len >= 2 && i == run_start + run_len) {
            out.put_byte(b':');
        }
        push_hex_short(out, groups[i]);
        i += 1;
    }
}

/// Start and length of the longest run of zero groups; the first one wins ties.
fn longest_zero_run(groups: &[u16; 8]) -> (usize, usize) {
    let (mut best_start, mut best_len) = (0, 0);
    let mut current_start = 0;
    let mut current_len = 0;
    for (i, &g) in groups.iter().enumerate() {
        if g == 0 {
            if current_len == 0 {
                current_start = i;
            }
            current_len += 1;
            if current_len > best_len {
                (best_start, best_len) = (current_start, current_len);
            }
        } else {
            current_len = 0;
        }
    }
    (best_start, best_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> String {
        let mut out = Vec::new();
        push_ipv6(&mut out, s.parse().unwrap());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ipv4() {
        let mut out = Vec::new();
        push_ipv4(&mut out, Ipv4Addr::new(10, 0, 255, 5));
        assert_eq!(out, b"10.0.255.5");
    }

    #[test]
    fn rfc5952_examples() {
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("1::"), "1::");
        assert_eq!(v6("2001:0DB8:0000:0000:0000:0000:0000:0001"), "2001:db8::1");
        // A single zero group is not compressed.
        assert_eq!(v6("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
        // The longest run wins, the leftmost on ties.
        assert_eq!(v6("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
        assert_eq!(v6("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
        assert_eq!(v6("fe80::1:2"), "fe80::1:2");
        assert_eq!(v6("::ffff:192.0.2.1"), "::ffff:192.0.2.1");
        assert_eq!(v6("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8");
    }

    /// std's Display is RFC 5952 compliant: it is our oracle over many addresses, including
    /// every placement of zero groups.
    #[test]
    fn agrees_with_std_on_every_zero_pattern() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for mask in 0u32..256 {
            for _ in 0..8 {
                let mut groups = [0u16; 8];
                for (i, g) in groups.iter_mut().enumerate() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    if mask & (1 << i) != 0 {
                        // Vary the digit count: 1 to 4 hex digits.
                        *g = (state as u16) >> ((state >> 20) % 4 * 4);
                        *g |= 1;
                    }
                }
                let ip = Ipv6Addr::from(groups);
                let mut out = Vec::new();
                push_ipv6(&mut out, ip);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    ip.to_string(),
                    "{groups:x?}"
                );
            }
        }
    }
}
