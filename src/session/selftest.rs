//! Without BTF, the built-in sock_common offsets and the ones the layout discovery found
//! (`discover`) are a claim about the running kernel, not a fact. Before conntrace prints
//! anything it proves them: it makes loopback connections of its own while the probes are
//! attached (one accepted, one refused), reads back their records, and compares every field
//! with what the sockets say (getsockname/getpeername, its own pid, tid, uid and netns, the
//! refusal's ECONNREFUSED). The accepted one carries known bytes each way ([`SENT_UP`],
//! [`SENT_DOWN`]) and is closed by the client first, so both ends' close records prove the
//! tcp_sock byte counters and the FIN flag (sock_common.skc_flags). One wrong field and it
//! refuses, naming the field, rather than print wrong data.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::kernel::btf;
use crate::kernel::ring::{Record, Rings};
use crate::kernel::sys::process;
use crate::kernel::sys::socket::BoundSocket;
use crate::session::discover::{self, Discovered};
use crate::session::event::{self, ClosedBy, Kind, WireEvent};
use crate::session::filter::{FilterConfig, ANY_UID};

/// How long one family's records may take to arrive.
const WAIT: Duration = Duration::from_secs(2);
/// Payload bytes the self-test's client sends, and the server answers: distinct, so a byte
/// counter read from the wrong offset cannot pass.
pub const SENT_UP: usize = 1111;
pub const SENT_DOWN: usize = 2345;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// What to do when the layout cannot be trusted.
const ADVICE: &str = "use a kernel with BTF or pass --btf FILE";

/// The in-kernel filter while the self-test runs: this process only, so no other traffic
/// mixes in, and no user filter (-p, -u, -P, -4/-6) can hide the self-test's records.
pub fn filter_self() -> FilterConfig {
    FilterConfig {
        pid: std::process::id(),
        uid: ANY_UID,
        family: 0,
        port_filter: 0,
        cgroup: 0,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }

    fn loopback(self) -> SocketAddr {
        match self {
            Family::Ipv4 => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            Family::Ipv6 => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
        }
    }
}

/// What the self-test verifies: the families, and the layout the discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub families: Vec<Family>,
    pub discovered: Discovered,
}

/// One record the self-test's own connection must produce, as the sockets describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub kind: Kind,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    /// This process's netns inode: every socket is in it.
    pub netns: u32,
    /// 0, or the failed record's errno.
    pub error: u32,
    /// A close record's payload bytes (sent, received) and who closed.
    pub close: Option<(u64, u64, ClosedBy)>,
}

/// Verifies the layout with, per family in turn, one loopback connection and one refused
/// connect, or says which fields did not verify and why the layout cannot be trusted.
pub fn verify(rings: &mut Rings<'_>, plan: &Plan) -> Result<(), String> {
    let mut problems = Vec::new();
    let netns = plan.discovered.netns;
    for &family in &plan.families {
        let expected = connect_on_loopback(family, netns).map_err(|e| match family {
            Family::Ipv4 => format!(
                "cannot make an IPv4 loopback connection to verify the built-in layout: {e}; \
                 {ADVICE}"
            ),
            Family::Ipv6 => format!(
                "cannot verify the built-in IPv6 fields (sock_common.skc_v6_rcv_saddr, \
                 sock_common.skc_v6_daddr): no IPv6 loopback connection: {e}; pass -4 to \
                 trace IPv4 only, or {ADVICE}"
            ),
        })?;
        let records = collect(rings, &expected, WAIT)?;
        problems.extend(
            compare_all(&records, &expected, &plan.discovered)
                .into_iter()
                .map(|p| format!("{} self-test: {p}", family.name())),
        );
        let expected = refused_on_loopback(family, netns).map_err(|e| {
            format!(
                "cannot make a refused {} loopback connect to verify the failed record                  (sock.sk_err): {e}; {ADVICE}",
                family.name()
            )
        })?;
        let records = collect(rings, &expected, WAIT)?;
        problems.extend(
            compare_all(&records, &expected, &plan.discovered)
                .into_iter()
                .map(|p| format!("{} self-test, refused connect: {p}", family.name())),
        );
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut message = String::from(
        "the built-in and discovered layout could not be verified on this kernel \
         (records of conntrace's own loopback connections):",
    );
    for p in &problems {
        message.push_str("\n    ");
        message.push_str(p);
    }
    message.push_str(&format!("\n  refusing to print wrong data: {ADVICE}"));
    Err(message)
}

/// Makes a connection on loopback that carries [`SENT_UP`] and [`SENT_DOWN`] bytes and is
/// closed by the client first; returns its pid, then the records it must produce.
fn connect_on_loopback(family: Family, netns: u32) -> std::io::Result<(u32, Vec<Expected>)> {
    let listener = TcpListener::bind(family.loopback())?;
    let mut client = TcpStream::connect(listener.local_addr()?)?;
    let (mut server, _) = listener.accept()?;
    let pid = std::process::id();
    let tid = process::tid();
    let uid = process::uid();
    let record = |kind, local, remote| Expected {
        kind,
        local,
        remote,
        pid,
        tid,
        uid,
        netns,
        error: 0,
        close: None,
    };
    let (c_local, c_remote) = (client.local_addr()?, client.peer_addr()?);
    let (s_local, s_remote) = (server.local_addr()?, server.peer_addr()?);
    client.write_all(&[b'u'; SENT_UP])?;
    server.read_exact(&mut [0; SENT_UP])?;
    server.write_all(&[b'd'; SENT_DOWN])?;
    client.read_exact(&mut [0; SENT_DOWN])?;
    drop(client);
    // The client's FIN: read() returns 0 once it is in, then the server closes.
    server.set_read_timeout(Some(WAIT))?;
    if server.read(&mut [0; 1])? != 0 {
        return Err(std::io::Error::other(
            "the client's end sent more than it should",
        ));
    }
    drop(server);
    let (up, down) = (SENT_UP as u64, SENT_DOWN as u64);
    Ok((
        pid,
        vec![
            record(Kind::Connect, c_local, c_remote),
            record(Kind::Established, c_local, c_remote),
            record(Kind::Accept, s_local, s_remote),
            Expected {
                close: Some((up, down, ClosedBy::Local)),
                ..record(Kind::Close, c_local, c_remote)
            },
            Expected {
                close: Some((down, up, ClosedBy::Remote)),
                ..record(Kind::Close, s_local, s_remote)
            },
        ],
    ))
}

/// Makes a connect on loopback that is refused (to a bound port nothing listens on) and
/// returns its pid, then the records it must produce: its connect, and its failure with
/// ECONNREFUSED.
fn refused_on_loopback(family: Family, netns: u32) -> std::io::Result<(u32, Vec<Expected>)> {
    let ip = family.loopback().ip();
    let closed = BoundSocket::bind(ip)?;
    let client = BoundSocket::bind(ip)?;
    let (local, remote) = (client.local_addr()?, closed.local_addr()?);
    match client.connect(remote) {
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
        Err(e) => return Err(e),
        Ok(()) => return Err(std::io::Error::other("the connect was not refused")),
    }
    let record = |kind, error| Expected {
        kind,
        local,
        remote,
        pid: std::process::id(),
        tid: process::tid(),
        uid: process::uid(),
        netns,
        error,
        close: None,
    };
    Ok((
        std::process::id(),
        vec![
            record(Kind::Connect, 0),
            record(Kind::Failed, libc::ECONNREFUSED as u32),
        ],
    ))
}

/// This process's records from the rings, until one of each expected kind arrived or `wait`
/// passed. Anything else is dropped: tracing proper has not begun.
fn collect(
    rings: &mut Rings<'_>,
    expected: &(u32, Vec<Expected>),
    wait: Duration,
) -> Result<Vec<WireEvent>, String> {
    let pid = expected.0;
    let deadline = Instant::now() + wait;
    let mut records: Vec<WireEvent> = Vec::new();
    // As many records of each kind as expected (two closes: one per end).
    let complete = |records: &[WireEvent]| {
        expected.1.iter().all(|e| {
            let want = expected.1.iter().filter(|w| w.kind == e.kind).count();
            let got = records
                .iter()
                .filter(|r| Kind::from_wire(r.kind) == Some(e.kind))
                .count();
            got >= want
        })
    };
    while !complete(&records) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let timeout_ms = left.as_millis().clamp(1, 2000) as i32;
        rings
            .poll(timeout_ms, |record| {
                if let Record::Sample { data, .. } = record {
                    if let Ok(wire) = event::wire_from_bytes(data) {
                        if wire.pid == pid {
                            records.push(wire);
                        }
                    }
                }
            })
            .map_err(|e| format!("self-test: {e}"))?;
    }
    Ok(records)
}

/// Every way `records` differ from what the connection produced (empty: verified).
pub fn compare_all(
    records: &[WireEvent],
    expected: &(u32, Vec<Expected>),
    found: &Discovered,
) -> Vec<String> {
    let mut problems = Vec::new();
    for want in &expected.1 {
        let of_kind = |r: &&WireEvent| Kind::from_wire(r.kind) == Some(want.kind);
        // The two closes are told apart by their local port; with that field wrong, the
        // first close is compared, and the port is what the comparison names.
        let mine = |r: &&WireEvent| SockaddrView(&r.local).port() == want.local.port();
        let matching = records.iter().filter(of_kind).find(mine);
        match matching.or_else(|| records.iter().find(of_kind)) {
            Some(got) => problems.extend(compare(got, want, found)),
            None => problems.push(format!(
                "no {} record arrived within {} s: the probes did not see the connection",
                want.kind.name(),
                WAIT.as_secs()
            )),
        }
    }
    problems
}

/// Where `spec`'s offset came from and what it is: the built-in table or the discovery.
fn origin(spec: &str, found: &Discovered) -> Option<(&'static str, u32)> {
    match found.offset(spec) {
        Some(offset) => Some(("discovered", offset)),
        None => btf::builtin_field(spec).map(|f| ("built-in", f.offset)),
    }
}

/// How one record differs from what it should say. An accept record's addresses come straight
/// from the socket (fill_local/fill_remote), so its differences name the field; a connect's
/// may come from the state tracepoint's copy, so those name the record's field. Every
/// record's netns is read from the socket (skc_net, then net.ns.inum), and a failed
/// record's error from sock.sk_err.
pub fn compare(got: &WireEvent, want: &Expected, found: &Discovered) -> Vec<String> {
    let mut problems = Vec::new();
    let kind = want.kind.name();
    let from_sock = want.kind == Kind::Accept;
    let mut check = |what: &str, spec: &str, named: bool, read: String, expected: String| {
        if read == expected {
            return;
        }
        problems.push(match origin(spec, found) {
            Some((from, offset)) if named => format!(
                "{kind} record: {from} offset of {spec} ({offset}) read {read}, expected \
                 {expected}"
            ),
            _ => format!("{kind} record: {what} read {read}, expected {expected}"),
        });
    };
    check("pid", "", false, got.pid.to_string(), want.pid.to_string());
    check("tid", "", false, got.tid.to_string(), want.tid.to_string());
    check("uid", "", false, got.uid.to_string(), want.uid.to_string());
    check(
        "netns",
        discover::NS_INUM,
        true,
        got.netns.to_string(),
        want.netns.to_string(),
    );
    check(
        "error",
        discover::SK_ERR,
        want.kind == Kind::Failed,
        got.error.to_string(),
        want.error.to_string(),
    );
    for (end, raw, addr, port_spec, v4_spec, v6_spec) in [
        (
            "local",
            &got.local,
            want.local,
            discover::INET_SPORT,
            "sock_common.skc_rcv_saddr",
            "sock_common.skc_v6_rcv_saddr",
        ),
        (
            "remote",
            &got.remote,
            want.remote,
            "sock_common.skc_dport",
            "sock_common.skc_daddr",
            "sock_common.skc_v6_daddr",
        ),
    ] {
        let view = SockaddrView(raw);
        let family = if addr.is_ipv4() { AF_INET } else { AF_INET6 };
        check(
            &format!("{end} family"),
            "sock_common.skc_family",
            from_sock,
            view.family().to_string(),
            family.to_string(),
        );
        check(
            &format!("{end} port"),
            port_spec,
            from_sock,
            view.port().to_string(),
            addr.port().to_string(),
        );
        let (spec, read) = match addr.ip() {
            IpAddr::V4(_) => (v4_spec, view.ipv4().to_string()),
            IpAddr::V6(_) => (v6_spec, view.ipv6().to_string()),
        };
        check(
            &format!("{end} address"),
            spec,
            from_sock,
            read,
            addr.ip().to_string(),
        );
    }
    if let Some((sent, received, closed_by)) = want.close {
        let error = (got.error != 0).then_some(got.error);
        match event::decode_close(got, error) {
            Err(e) => check("close", "", false, e.to_string(), "a close record".into()),
            Ok(close) => {
                check(
                    "bytes_sent",
                    discover::BYTES_ACKED,
                    true,
                    format!("{:?}", close.bytes_sent),
                    format!("{:?}", Some(sent)),
                );
                // One byte over: the peer's FIN counted, which the FIN flag takes out.
                let spec = if close.bytes_received == received + 1 {
                    discover::SK_FLAGS
                } else {
                    discover::BYTES_RECEIVED
                };
                check(
                    "bytes_received",
                    spec,
                    true,
                    close.bytes_received.to_string(),
                    received.to_string(),
                );
                check(
                    "closed_by",
                    "",
                    false,
                    close.closed_by.name().into(),
                    closed_by.name().into(),
                );
            }
        }
    }
    problems
}

/// The fields of a wire sockaddr as the probes lay them out (family in host order, port in
/// network order), read whatever the family claims.
struct SockaddrView<'a>(&'a [u8; 28]);

impl SockaddrView<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.0.get(at..at + N) {
            out.copy_from_slice(src);
        }
        out
    }

    fn family(&self) -> u16 {
        u16::from_ne_bytes(self.bytes(0))
    }

    fn port(&self) -> u16 {
        u16::from_be_bytes(self.bytes(2))
    }

    fn ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.bytes::<4>(4))
    }

    fn ipv6(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.bytes::<16>(8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::event::{
        tcp_state, CLOSE_BASE, CLOSE_DURATION, CLOSE_OWNER, CLOSE_PEER_FIN, KIND_ACCEPT,
        KIND_CLOSE, KIND_CONNECT, KIND_ESTABLISHED, KIND_FAILED,
    };

    const NETNS: u32 = 4026531840;

    fn found() -> Discovered {
        Discovered {
            sk_err: 284,
            inet_sport: 782,
            ns_inum: 136,
            bytes_acked: 1824,
            bytes_received: 1752,
            sk_flags: 96,
            netns: NETNS,
            tcp_prots: [1, 2],
        }
    }

    fn sockaddr(addr: SocketAddr) -> [u8; 28] {
        let mut raw = [0u8; 28];
        match addr {
            SocketAddr::V4(a) => {
                raw[0..2].copy_from_slice(&AF_INET.to_ne_bytes());
                raw[4..8].copy_from_slice(&a.ip().octets());
            }
            SocketAddr::V6(a) => {
                raw[0..2].copy_from_slice(&AF_INET6.to_ne_bytes());
                raw[8..24].copy_from_slice(&a.ip().octets());
            }
        }
        raw[2..4].copy_from_slice(&addr.port().to_be_bytes());
        raw
    }

    fn expected(kind: Kind, local: &str, remote: &str) -> Expected {
        Expected {
            kind,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            pid: 100,
            tid: 101,
            uid: 0,
            netns: NETNS,
            error: 0,
            close: None,
        }
    }

    /// The record a correct layout produces for `want`. A close as the kernel shows the
    /// self-test's: the client's end left FIN_WAIT2 (its FIN acknowledged, counted in
    /// bytes_acked), the server's LAST_ACK (both FINs counted).
    fn record(want: &Expected) -> WireEvent {
        let kind = match want.kind {
            Kind::Connect => KIND_CONNECT,
            Kind::Established => KIND_ESTABLISHED,
            Kind::Failed => KIND_FAILED,
            Kind::Close => KIND_CLOSE,
            _ => KIND_ACCEPT,
        };
        let (old_state, close_flags, bytes_acked, bytes_received) = match want.close {
            None => (0, 0, 0, 0),
            Some((sent, received, ClosedBy::Local)) => (
                tcp_state::FIN_WAIT2,
                CLOSE_OWNER | CLOSE_DURATION | CLOSE_BASE,
                sent + 1,
                received,
            ),
            Some((sent, received, ClosedBy::Remote)) => (
                tcp_state::LAST_ACK,
                CLOSE_OWNER | CLOSE_DURATION | CLOSE_BASE | CLOSE_PEER_FIN,
                sent + 1,
                received + 1,
            ),
        };
        WireEvent {
            ts_ns: 1,
            sock: 0xffff_8880_0000_1000,
            latency_ns: 0,
            cgroup: 1,
            pid: want.pid,
            tid: want.tid,
            uid: want.uid,
            netns: want.netns,
            kind,
            old_state,
            close_flags,
            _pad: 0,
            error: want.error as i32,
            comm: [0; 16],
            local: sockaddr(want.local),
            remote: sockaddr(want.remote),
            bytes_acked,
            bytes_received,
        }
    }

    fn close(local: &str, remote: &str, sent: u64, received: u64, by: ClosedBy) -> Expected {
        Expected {
            close: Some((sent, received, by)),
            ..expected(Kind::Close, local, remote)
        }
    }

    fn connection(local: &str, remote: &str) -> (u32, Vec<Expected>) {
        (
            100,
            vec![
                expected(Kind::Connect, local, remote),
                expected(Kind::Established, local, remote),
                expected(Kind::Accept, remote, local),
                close(local, remote, 1111, 2345, ClosedBy::Local),
                close(remote, local, 2345, 1111, ClosedBy::Remote),
            ],
        )
    }

    #[test]
    fn wrong_byte_counters_name_their_fields() {
        let conn = connection("127.0.0.1:43817", "127.0.0.1:40000");
        let mut records: Vec<_> = conn.1.iter().map(record).collect();
        // The client's close: a counter read from the wrong offset, and the server's: its
        // FIN counted, as when the FIN flag is read from the wrong place.
        records[3].bytes_acked = 7;
        records[4].close_flags &= !CLOSE_PEER_FIN;
        assert_eq!(
            compare_all(&records, &conn, &found()),
            [
                "close record: discovered offset of tcp_sock.bytes_acked (1824) read Some(6), \
                 expected Some(1111)",
                "close record: discovered offset of sock_common.skc_flags (96) read 1112, \
                 expected 1111",
            ]
        );
    }

    #[test]
    fn the_two_closes_are_told_apart_by_their_local_port() {
        let conn = connection("127.0.0.1:43817", "127.0.0.1:40000");
        let mut records: Vec<_> = conn.1.iter().map(record).collect();
        records.swap(3, 4);
        assert_eq!(compare_all(&records, &conn, &found()), Vec::<String>::new());
    }

    #[test]
    fn matching_records_verify() {
        for (local, remote) in [
            ("127.0.0.1:43817", "127.0.0.1:40000"),
            ("[::1]:43817", "[::1]:40000"),
        ] {
            let conn = connection(local, remote);
            let records: Vec<_> = conn.1.iter().map(record).collect();
            assert_eq!(compare_all(&records, &conn, &found()), Vec::<String>::new());
        }
    }

    #[test]
    fn wrong_local_port_names_the_discovered_field() {
        let want = expected(Kind::Accept, "127.0.0.1:40000", "127.0.0.1:43817");
        let mut got = record(&want);
        got.local[2..4].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(
            compare(&got, &want, &found()),
            [
                "accept record: discovered offset of inet_sock.inet_sport (782) read 0, expected \
                 40000"
            ]
        );
    }

    #[test]
    fn wrong_netns_names_the_discovered_field_in_every_record() {
        for kind in [Kind::Connect, Kind::Established, Kind::Accept, Kind::Failed] {
            let mut want = expected(kind, "127.0.0.1:40000", "127.0.0.1:43817");
            if kind == Kind::Failed {
                want.error = 111;
            }
            let mut got = record(&want);
            got.netns = 0;
            assert_eq!(
                compare(&got, &want, &found()),
                [format!(
                    "{} record: discovered offset of net.ns.inum (136) read 0, expected {NETNS}",
                    kind.name()
                )]
            );
        }
    }

    #[test]
    fn a_failed_record_must_carry_the_refusal() {
        let mut want = expected(Kind::Failed, "127.0.0.1:43817", "127.0.0.1:40000");
        want.error = 111;
        let mut got = record(&want);
        assert_eq!(compare(&got, &want, &found()), Vec::<String>::new());
        got.error = 0;
        assert_eq!(
            compare(&got, &want, &found()),
            ["failed record: discovered offset of sock.sk_err (284) read 0, expected 111"]
        );
    }

    #[test]
    fn wrong_ipv6_addresses_name_the_builtin_fields() {
        let want = expected(Kind::Accept, "[::1]:40000", "[::1]:43817");
        let mut got = record(&want);
        got.local[8..24].fill(0);
        got.remote[8..24].fill(0xff);
        let problems = compare(&got, &want, &found());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0]
            .starts_with("accept record: built-in offset of sock_common.skc_v6_rcv_saddr"));
        assert!(
            problems[0].ends_with("read ::, expected ::1"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].contains("sock_common.skc_v6_daddr"),
            "{}",
            problems[1]
        );
    }

    #[test]
    fn wrong_family_and_address_in_accept() {
        let want = expected(Kind::Accept, "127.0.0.1:40000", "127.0.0.1:43817");
        let mut got = record(&want);
        got.remote[0..2].copy_from_slice(&0u16.to_ne_bytes());
        got.remote[4..8].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            compare(&got, &want, &found()),
            [
                "accept record: built-in offset of sock_common.skc_family (16) read 0, expected 2",
                "accept record: built-in offset of sock_common.skc_daddr (0) read 0.0.0.0, \
                 expected 127.0.0.1",
            ]
        );
    }

    #[test]
    fn connect_differences_name_the_record_field() {
        let want = expected(Kind::Connect, "127.0.0.1:43817", "127.0.0.1:40000");
        let mut got = record(&want);
        got.remote[2..4].copy_from_slice(&1u16.to_be_bytes());
        got.tid = 7;
        got.error = 111;
        assert_eq!(
            compare(&got, &want, &found()),
            [
                "connect record: tid read 7, expected 101",
                "connect record: error read 111, expected 0",
                "connect record: remote port read 1, expected 40000",
            ]
        );
    }

    #[test]
    fn missing_records_are_named() {
        let conn = connection("127.0.0.1:43817", "127.0.0.1:40000");
        let records = vec![record(&conn.1[2]), record(&conn.1[3]), record(&conn.1[4])];
        assert_eq!(
            compare_all(&records, &conn, &found()),
            [
                "no connect record arrived within 2 s: the probes did not see the connection",
                "no established record arrived within 2 s: the probes did not see the connection",
            ]
        );
    }

    #[test]
    fn self_filter_is_this_process_only() {
        let f = filter_self();
        assert_eq!(
            (f.pid, f.uid, f.family, f.port_filter),
            (std::process::id(), ANY_UID, 0, 0)
        );
    }
}
