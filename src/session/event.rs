//! The event record every BPF program writes with `bpf_perf_event_output`, and its decoding.
//!
//! The layout is shared with `src/bpf/*.s` (the `EV_*` constants there): change both together.

use bytemuck::{Pod, Zeroable};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One event as the kernel writes it. 144 bytes, no implicit padding.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct WireEvent {
    /// `bpf_ktime_get_ns()` when it happened (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// The kernel socket's address. Never printed: user space maps it to an opaque id.
    pub sock: u64,
    /// established/failed: from the connect (SYN_SENT) to the outcome; close: from
    /// established to close, with `CLOSE_DURATION`; 0 otherwise.
    pub latency_ns: u64,
    /// `bpf_get_current_cgroup_id()` of the process.
    pub cgroup: u64,
    /// Process id (tgid), thread id, uid.
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    /// Inode number of the socket's network namespace; 0 = unknown (no BTF).
    pub netns: u32,
    /// One of the `KIND_*` values.
    pub kind: u8,
    /// close: the TCP state the socket left for TCP_CLOSE.
    pub old_state: u8,
    /// close: `CLOSE_*` bits, what the record knows.
    pub close_flags: u8,
    pub _pad: u8,
    /// Positive errno, or 0 for none.
    pub error: i32,
    /// The task's comm, NUL-padded, not necessarily NUL-terminated.
    pub comm: [u8; 16],
    /// This host's end: a `sockaddr_in` or `sockaddr_in6` (family first, port in network order).
    pub local: [u8; 28],
    /// The peer's end, likewise.
    pub remote: [u8; 28],
    /// close: `tcp_sock.bytes_acked`, less the SYN when `CLOSE_BASE` says it was taken out.
    pub bytes_acked: u64,
    /// close: `tcp_sock.bytes_received` (the peer's FIN counts one, `CLOSE_PEER_FIN`).
    pub bytes_received: u64,
}

pub const WIRE_EVENT_SIZE: usize = std::mem::size_of::<WireEvent>();
const _: () = assert!(WIRE_EVENT_SIZE == 144);

pub const KIND_CONNECT: u8 = 1;
pub const KIND_ESTABLISHED: u8 = 2;
pub const KIND_FAILED: u8 = 3;
pub const KIND_ACCEPT: u8 = 4;
pub const KIND_CLOSE: u8 = 5;

/// `close_flags` bits (CLOSE_* in src/bpf/common.s).
pub const CLOSE_OWNER: u8 = 1;
pub const CLOSE_DURATION: u8 = 2;
pub const CLOSE_BASE: u8 = 4;
pub const CLOSE_PEER_FIN: u8 = 8;

/// The kernel's TCP states the probes tell apart (include/net/tcp_states.h; TCP_* in
/// src/bpf/common.s).
pub mod tcp_state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const SYN_RECV: u8 = 3;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const CLOSE: u8 = 7;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
    /// The states a connection leaves for CLOSE once it was established, as a bit set: the
    /// ones a close record's `old_state` can hold.
    pub const WAS_ESTABLISHED: u32 = 1 << ESTABLISHED
        | 1 << FIN_WAIT1
        | 1 << FIN_WAIT2
        | 1 << CLOSE_WAIT
        | 1 << LAST_ACK
        | 1 << CLOSING;
}

// ---------------------------------------------------------------------------------------------
// Decoding: raw sample bytes -> WireEvent -> Event.

/// `AF_INET` and `AF_INET6` as the kernel numbers them on every architecture.
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// `sizeof(struct sockaddr_in)`: family, port, 4 address bytes (the 8-byte zero pad is ignored).
const SOCKADDR_IN_USED: usize = 8;
/// `sizeof(struct sockaddr_in6)`.
const SOCKADDR_IN6_SIZE: usize = 28;

/// Why a record could not be decoded. The caller skips it and counts it as malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The sample is shorter than a `WireEvent`.
    Short { len: usize },
    /// `kind` is none of the `KIND_*` values.
    UnknownKind(u8),
    /// A sockaddr whose family is neither AF_INET nor AF_INET6.
    UnknownFamily { end: End, family: u16 },
    /// The sockaddr buffer is too small for the family it claims.
    ShortSockaddr { len: usize, family: u16 },
    /// One end is IPv4 and the other a (non-mapped) IPv6 address.
    MixedFamilies,
    /// A close record from a TCP state no established connection closes from.
    CloseState(u8),
}

/// Which end of the connection a sockaddr describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Local,
    Remote,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Short { len } => {
                write!(
                    f,
                    "event record of {len} bytes, expected at least {WIRE_EVENT_SIZE}"
                )
            }
            DecodeError::UnknownKind(kind) => write!(f, "event record of unknown kind {kind}"),
            DecodeError::UnknownFamily { end, family } => {
                let end = match end {
                    End::Local => "local",
                    End::Remote => "remote",
                };
                write!(f, "{end} address of unknown family {family}")
            }
            DecodeError::ShortSockaddr { len, family } => {
                write!(
                    f,
                    "sockaddr of {len} bytes is too short for family {family}"
                )
            }
            DecodeError::MixedFamilies => write!(f, "local and remote address families differ"),
            DecodeError::CloseState(state) => {
                write!(
                    f,
                    "close record from TCP state {state}, not an established one"
                )
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Reads a `WireEvent` from a perf sample's raw bytes. Perf pads samples to 8 bytes, so longer
/// input is fine (the tail is ignored); shorter input is an error, never a panic.
pub fn wire_from_bytes(raw: &[u8]) -> Result<WireEvent, DecodeError> {
    let exact = raw
        .get(..WIRE_EVENT_SIZE)
        .ok_or(DecodeError::Short { len: raw.len() })?;
    Ok(bytemuck::pod_read_unaligned(exact))
}

/// Decodes a `sockaddr_in` (family 2) or `sockaddr_in6` (family 10) as the kernel lays it out:
/// family in host order, port in network order. IPv4-mapped IPv6 addresses stay IPv6 here;
/// [`decode`] decides how to show them.
pub fn decode_sockaddr(raw: &[u8]) -> Result<SocketAddr, DecodeError> {
    let family = match raw {
        [a, b, ..] => u16::from_ne_bytes([*a, *b]),
        _ => {
            return Err(DecodeError::ShortSockaddr {
                len: raw.len(),
                family: 0,
            })
        }
    };
    let short = DecodeError::ShortSockaddr {
        len: raw.len(),
        family,
    };
    match family {
        AF_INET => match raw.get(..SOCKADDR_IN_USED) {
            Some(&[_, _, p0, p1, a, b, c, d]) => Ok(SocketAddr::new(
                Ipv4Addr::new(a, b, c, d).into(),
                u16::from_be_bytes([p0, p1]),
            )),
            _ => Err(short),
        },
        AF_INET6 => {
            let bytes: &[u8; SOCKADDR_IN6_SIZE] = raw
                .get(..SOCKADDR_IN6_SIZE)
                .and_then(|b| b.try_into().ok())
                .ok_or(short)?;
            // Layout: family(2) port(2) flowinfo(4) addr(16) scope_id(4); fixed ranges within
            // a fixed-size array, so always in bounds.
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let mut addr = [0u8; 16];
            addr.copy_from_slice(&bytes[8..24]);
            Ok(SocketAddr::new(Ipv6Addr::from(addr).into(), port))
        }
        _ => Err(DecodeError::UnknownFamily {
            end: End::Local,
            family,
        }),
    }
}

/// What happened to the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Connect,
    Established,
    Failed,
    Accept,
    Close,
}

/// Why records were lost. The first three are the keys of the probes' `drops` map
/// (DROP_* in src/bpf/common.s, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    /// A ring had no room for the record.
    RingFull,
    /// A return probe missed a call (no free instance): its record was never made.
    ReturnMissed,
    /// A map that carries state between hooks was full.
    StateFull,
    /// The kernel skipped a probe's run (another BPF program was running on that CPU) and
    /// counted it (Linux 6.7+): each skip may have been a record.
    Skipped,
    /// The kernel freed sockets without running the destroy program, counting no skip
    /// (perf counted the calls, session::frees, when asked): each may have been a close or an
    /// outcome.
    Undelivered,
}

impl LossReason {
    /// The `drops` map's slots, by key.
    pub const DROPS: [LossReason; 3] = [
        LossReason::RingFull,
        LossReason::ReturnMissed,
        LossReason::StateFull,
    ];
    /// Every reason: the `drops` map's and those the kernel counts elsewhere.
    pub const ALL: [LossReason; 5] = [
        LossReason::RingFull,
        LossReason::ReturnMissed,
        LossReason::StateFull,
        LossReason::Skipped,
        LossReason::Undelivered,
    ];

    /// The name in JSON's `reason`.
    pub fn name(self) -> &'static str {
        match self {
            LossReason::RingFull => "ring_full",
            LossReason::ReturnMissed => "return_missed",
            LossReason::StateFull => "state_full",
            LossReason::Skipped => "skipped",
            LossReason::Undelivered => "undelivered",
        }
    }

    /// The words for the text notice on stderr.
    pub fn describe(self) -> &'static str {
        match self {
            LossReason::RingFull => "ring full",
            LossReason::ReturnMissed => "return probe missed the call",
            LossReason::StateFull => "state map full",
            LossReason::Skipped => {
                "probe runs the kernel skipped: another BPF program ran on the CPU"
            }
            LossReason::Undelivered => {
                "sockets the kernel freed without running any BPF program (counted by perf)"
            }
        }
    }
}

/// Records that never reached the output: how many, why, and on which CPU where one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    pub cpu: Option<u32>,
    pub count: u64,
    pub reason: LossReason,
}

impl Kind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [Kind; 5] = [
        Kind::Connect,
        Kind::Established,
        Kind::Failed,
        Kind::Accept,
        Kind::Close,
    ];

    pub fn from_wire(kind: u8) -> Option<Kind> {
        match kind {
            KIND_CONNECT => Some(Kind::Connect),
            KIND_ESTABLISHED => Some(Kind::Established),
            KIND_FAILED => Some(Kind::Failed),
            KIND_ACCEPT => Some(Kind::Accept),
            KIND_CLOSE => Some(Kind::Close),
            _ => None,
        }
    }

    /// The name used in both output formats and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Established => "established",
            Kind::Failed => "failed",
            Kind::Accept => "accept",
            Kind::Close => "close",
        }
    }

    /// Whether the record carries a handshake latency.
    pub fn has_latency(self) -> bool {
        matches!(self, Kind::Established | Kind::Failed)
    }
}

/// Address family as shown to the user (after IPv4-mapped IPv6 became IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

/// A task's comm: up to 16 bytes, cut at the first NUL. Not necessarily UTF-8.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Comm {
    bytes: [u8; 16],
    len: u8,
}

impl Comm {
    pub fn from_wire(raw: &[u8; 16]) -> Comm {
        let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        // len <= 16, so the cast is lossless.
        Comm {
            bytes: *raw,
            len: len as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes
            .get(..usize::from(self.len))
            .unwrap_or(&self.bytes)
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Maps kernel socket addresses to opaque ids: a keyed hash with a key drawn once per run, so
/// the same socket gets the same id on every record while no pointer ever reaches the output.
#[derive(Clone, Default)]
pub struct SockIds {
    key: RandomState,
}

impl SockIds {
    pub fn new() -> SockIds {
        SockIds {
            key: RandomState::new(),
        }
    }

    pub fn id(&self, sock: u64) -> u64 {
        self.key.hash_one(sock)
    }
}

/// The process a record belongs to: the one that connected or accepted the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub tid: u32,
    pub uid: u32,
    pub comm: Comm,
    /// Its cgroup v2 id.
    pub cgroup: u64,
}

/// Who ended a connection: the side that sent the first FIN or RST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClosedBy {
    Local,
    Remote,
}

impl ClosedBy {
    pub fn name(self) -> &'static str {
        match self {
            ClosedBy::Local => "local",
            ClosedBy::Remote => "remote",
        }
    }
}

/// What a `close` record adds: how long the connection lived and what it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// From established to close; None for a connection older than the probes.
    pub duration_ns: Option<u64>,
    /// Payload the peer acknowledged; None when the probes could not tell the connecting
    /// side's SYN from payload (a connection older than them, not accepted since).
    pub bytes_sent: Option<u64>,
    /// Payload received.
    pub bytes_received: u64,
    pub closed_by: ClosedBy,
}

/// One decoded event, ready to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    pub kind: Kind,
    /// None only on a close whose socket's owner the probes never saw.
    pub owner: Option<Owner>,
    pub family: Family,
    /// This host's end.
    pub local: SocketAddr,
    /// The peer.
    pub remote: SocketAddr,
    /// Inode of the socket's network namespace; None where the probes cannot read it (no BTF).
    pub netns: Option<u32>,
    /// Opaque socket id from [`SockIds`].
    pub sock_id: u64,
    /// Positive errno, if the operation failed.
    pub error: Option<i32>,
    /// Handshake latency for established/failed; None for the others.
    pub latency_ns: Option<u64>,
    /// For close records only.
    pub close: Option<Close>,
}

impl Event {
    pub fn pid(&self) -> Option<u32> {
        self.owner.map(|o| o.pid)
    }
}

/// Decodes a wire record. IPv4-mapped IPv6 ends become IPv4 with family `ipv4`.
pub fn decode(wire: &WireEvent, ids: &SockIds) -> Result<Event, DecodeError> {
    let kind = Kind::from_wire(wire.kind).ok_or(DecodeError::UnknownKind(wire.kind))?;
    let local = decode_sockaddr(&wire.local).map_err(|e| at_end(e, End::Local))?;
    let remote = decode_sockaddr(&wire.remote).map_err(|e| at_end(e, End::Remote))?;
    let (family, local, remote) = unify_families(local, remote)?;
    // The probes store a positive errno; accept a negative kernel return value as well.
    let error = (wire.error != 0).then(|| wire.error.checked_abs().unwrap_or(i32::MAX));
    let close = match kind {
        Kind::Close => Some(decode_close(wire, error)?),
        _ => None,
    };
    let owner_known = kind != Kind::Close || wire.close_flags & CLOSE_OWNER != 0;
    Ok(Event {
        ts_ns: wire.ts_ns,
        kind,
        owner: owner_known.then(|| Owner {
            pid: wire.pid,
            tid: wire.tid,
            uid: wire.uid,
            comm: Comm::from_wire(&wire.comm),
            cgroup: wire.cgroup,
        }),
        family,
        local,
        remote,
        // No namespace has inode 0: the no-BTF probes leave it unset.
        netns: (wire.netns != 0).then_some(wire.netns),
        sock_id: ids.id(wire.sock),
        error,
        latency_ns: kind.has_latency().then_some(wire.latency_ns),
        close,
    })
}

/// The close record's facts, from the kernel's raw counters:
/// - `closed_by`: the state left for CLOSE says who sent the first FIN (FIN_WAIT*, CLOSING:
///   this host; CLOSE_WAIT, LAST_ACK: the peer); straight from ESTABLISHED it was an RST, the
///   peer's when the socket was reset (ECONNRESET), else this host's (an abort, a timeout).
/// - `bytes_sent`: `bytes_acked` counts this host's FIN once acknowledged, which it was when
///   the socket left FIN_WAIT2, or CLOSING/LAST_ACK without an error; the probes took the SYN
///   out already (CLOSE_BASE), or could not.
/// - `bytes_received`: `bytes_received` counts the peer's FIN (CLOSE_PEER_FIN).
///
/// A close the probes made when the socket was freed (the kernel showed no change to CLOSE,
/// src/bpf/state.s) has the same form, its old state the last one a change showed, and the
/// same rules hold for it: the first FIN was sent in the state that state names or after, and
/// the counters and flags are read at the free, the close's own values. Only a step the
/// kernel did not show either between that state and CLOSE makes it an earlier state (the
/// FIN acknowledged in an unseen FIN_WAIT2 then counts in `bytes_sent`).
pub fn decode_close(wire: &WireEvent, error: Option<i32>) -> Result<Close, DecodeError> {
    use tcp_state::*;
    let reset = error == Some(libc::ECONNRESET);
    let closed_by = match wire.old_state {
        FIN_WAIT1 | FIN_WAIT2 | CLOSING => ClosedBy::Local,
        CLOSE_WAIT | LAST_ACK => ClosedBy::Remote,
        ESTABLISHED if reset => ClosedBy::Remote,
        ESTABLISHED => ClosedBy::Local,
        other => return Err(DecodeError::CloseState(other)),
    };
    let fin_acked = match wire.old_state {
        FIN_WAIT2 => true,
        CLOSING | LAST_ACK => error.is_none(),
        _ => false,
    };
    let flag = |bit: u8| wire.close_flags & bit != 0;
    Ok(Close {
        duration_ns: flag(CLOSE_DURATION).then_some(wire.latency_ns),
        bytes_sent: flag(CLOSE_BASE).then(|| wire.bytes_acked.saturating_sub(u64::from(fin_acked))),
        bytes_received: wire
            .bytes_received
            .saturating_sub(u64::from(flag(CLOSE_PEER_FIN))),
        closed_by,
    })
}

/// Raw bytes to a decoded event in one step.
pub fn decode_bytes(raw: &[u8], ids: &SockIds) -> Result<Event, DecodeError> {
    decode(&wire_from_bytes(raw)?, ids)
}

fn at_end(e: DecodeError, end: End) -> DecodeError {
    match e {
        DecodeError::UnknownFamily { family, .. } => DecodeError::UnknownFamily { end, family },
        other => other,
    }
}

/// Brings both ends to one family. An IPv6 socket talking IPv4 carries `::ffff:a.b.c.d`
/// addresses; its local end may still be `::` when the connect failed before binding.
fn unify_families(
    local: SocketAddr,
    remote: SocketAddr,
) -> Result<(Family, SocketAddr, SocketAddr), DecodeError> {
    let local_v4 = as_ipv4(local.ip());
    let remote_v4 = as_ipv4(remote.ip());
    let unspecified = |a: &SocketAddr| a.ip().is_unspecified();
    let to_v4 = |a: SocketAddr, v4: Option<Ipv4Addr>| {
        SocketAddr::new(v4.unwrap_or(Ipv4Addr::UNSPECIFIED).into(), a.port())
    };
    match (local_v4, remote_v4) {
        (Some(_), Some(_)) => Ok((
            Family::Ipv4,
            to_v4(local, local_v4),
            to_v4(remote, remote_v4),
        )),
        (Some(_), None) if unspecified(&remote) => {
            Ok((Family::Ipv4, to_v4(local, local_v4), to_v4(remote, None)))
        }
        (None, Some(_)) if unspecified(&local) => {
            Ok((Family::Ipv4, to_v4(local, None), to_v4(remote, remote_v4)))
        }
        (None, None) => Ok((Family::Ipv6, local, remote)),
        _ => Err(DecodeError::MixedFamilies),
    }
}

/// The IPv4 address an address stands for: itself, or the IPv4 inside `::ffff:a.b.c.d`.
fn as_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sockaddr_in(addr: [u8; 4], port: u16) -> [u8; 28] {
        let mut raw = [0u8; 28];
        raw[0..2].copy_from_slice(&AF_INET.to_ne_bytes());
        raw[2..4].copy_from_slice(&port.to_be_bytes());
        raw[4..8].copy_from_slice(&addr);
        raw
    }

    pub(crate) fn sockaddr_in6(addr: Ipv6Addr, port: u16) -> [u8; 28] {
        let mut raw = [0u8; 28];
        raw[0..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        raw[2..4].copy_from_slice(&port.to_be_bytes());
        raw[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes()); // flowinfo: ignored
        raw[8..24].copy_from_slice(&addr.octets());
        raw[24..28].copy_from_slice(&3u32.to_ne_bytes()); // scope_id: ignored
        raw
    }

    pub(crate) fn wire(kind: u8, local: [u8; 28], remote: [u8; 28]) -> WireEvent {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        WireEvent {
            ts_ns: 5_000_000_000,
            sock: 0xffff_8881_0a2b_3c00,
            latency_ns: 1_234_567,
            cgroup: 1234,
            pid: 1234,
            tid: 1235,
            uid: 1000,
            netns: 4026531840,
            kind,
            old_state: 0,
            close_flags: 0,
            _pad: 0,
            error: 0,
            comm,
            local,
            remote,
            bytes_acked: 0,
            bytes_received: 0,
        }
    }

    #[test]
    fn sockaddr_ipv4() {
        let raw = sockaddr_in([10, 0, 0, 5], 443);
        assert_eq!(decode_sockaddr(&raw), Ok("10.0.0.5:443".parse().unwrap()));
        // Only the first 8 bytes matter for AF_INET.
        assert_eq!(
            decode_sockaddr(&raw[..8]),
            Ok("10.0.0.5:443".parse().unwrap())
        );
    }

    #[test]
    fn sockaddr_ipv6() {
        let ip: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let raw = sockaddr_in6(ip, 8080);
        assert_eq!(
            decode_sockaddr(&raw),
            Ok("[2001:db8::1]:8080".parse().unwrap())
        );
    }

    #[test]
    fn sockaddr_ipv4_mapped_stays_ipv6_at_this_level() {
        let ip: Ipv6Addr = "::ffff:192.168.1.9".parse().unwrap();
        let got = decode_sockaddr(&sockaddr_in6(ip, 22)).unwrap();
        assert_eq!(got, SocketAddr::new(ip.into(), 22));
    }

    #[test]
    fn sockaddr_unknown_family() {
        let mut raw = sockaddr_in([1, 2, 3, 4], 1);
        raw[0..2].copy_from_slice(&1u16.to_ne_bytes()); // AF_UNIX
        assert_eq!(
            decode_sockaddr(&raw),
            Err(DecodeError::UnknownFamily {
                end: End::Local,
                family: 1
            })
        );
        assert_eq!(
            decode_sockaddr(&[0u8; 28]),
            Err(DecodeError::UnknownFamily {
                end: End::Local,
                family: 0
            })
        );
    }

    #[test]
    fn sockaddr_short_input() {
        assert_eq!(
            decode_sockaddr(&[]),
            Err(DecodeError::ShortSockaddr { len: 0, family: 0 })
        );
        assert_eq!(
            decode_sockaddr(&[2]),
            Err(DecodeError::ShortSockaddr { len: 1, family: 0 })
        );
        let v4 = sockaddr_in([1, 2, 3, 4], 1);
        assert_eq!(
            decode_sockaddr(&v4[..7]),
            Err(DecodeError::ShortSockaddr { len: 7, family: 2 })
        );
        let v6 = sockaddr_in6(Ipv6Addr::LOCALHOST, 1);
        assert_eq!(
            decode_sockaddr(&v6[..27]),
            Err(DecodeError::ShortSockaddr {
                len: 27,
                family: 10
            })
        );
    }

    #[test]
    fn wire_from_short_long_and_exact_samples() {
        let ev = wire(
            KIND_CONNECT,
            sockaddr_in([1, 1, 1, 1], 1),
            sockaddr_in([2, 2, 2, 2], 2),
        );
        let bytes = bytemuck::bytes_of(&ev).to_vec();
        assert_eq!(wire_from_bytes(&bytes), Ok(ev));
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0xaa; 4]); // perf pads samples to 8 bytes
        assert_eq!(wire_from_bytes(&padded), Ok(ev));
        // Unaligned input must work too.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(wire_from_bytes(&shifted[1..]), Ok(ev));
        for len in [0, 1, 64, 127] {
            assert_eq!(
                wire_from_bytes(&bytes[..len]),
                Err(DecodeError::Short { len })
            );
        }
    }

    #[test]
    fn decode_ipv4_connect() {
        let ids = SockIds::new();
        let ev = wire(
            KIND_CONNECT,
            sockaddr_in([10, 0, 0, 2], 51234),
            sockaddr_in([10, 0, 0, 5], 443),
        );
        let got = decode(&ev, &ids).unwrap();
        assert_eq!(got.kind, Kind::Connect);
        assert_eq!(got.family, Family::Ipv4);
        assert_eq!(got.local, "10.0.0.2:51234".parse().unwrap());
        assert_eq!(got.remote, "10.0.0.5:443".parse().unwrap());
        let owner = got.owner.unwrap();
        assert_eq!(owner.comm.as_bytes(), b"curl");
        assert_eq!((owner.pid, owner.tid, owner.uid), (1234, 1235, 1000));
        assert_eq!((got.netns, owner.cgroup), (Some(4026531840), 1234));
        assert_eq!(got.error, None);
        assert_eq!(got.latency_ns, None, "connect records carry no latency");
        assert_eq!(got.close, None);
    }

    fn close_wire(old_state: u8, flags: u8, error: i32, acked: u64, received: u64) -> WireEvent {
        WireEvent {
            old_state,
            close_flags: flags,
            error,
            latency_ns: 2_000_000,
            bytes_acked: acked,
            bytes_received: received,
            ..wire(
                KIND_CLOSE,
                sockaddr_in([127, 0, 0, 1], 40000),
                sockaddr_in([127, 0, 0, 1], 80),
            )
        }
    }

    #[test]
    fn close_records_count_payload_and_name_who_closed() {
        use tcp_state::*;
        let ids = SockIds::new();
        let all = CLOSE_OWNER | CLOSE_DURATION | CLOSE_BASE;
        let close = |w: &WireEvent| decode(w, &ids).unwrap().close.unwrap();
        // Measured on Linux 6.18: 1000 bytes sent, 500 received, by the connecting side.
        // It closed first: its FIN was acknowledged (FIN_WAIT2), the peer's not yet seen.
        let c = close(&close_wire(FIN_WAIT2, all, 0, 1001, 500));
        assert_eq!(
            (c.bytes_sent, c.bytes_received, c.closed_by),
            (Some(1000), 500, ClosedBy::Local)
        );
        assert_eq!(c.duration_ns, Some(2_000_000));
        // The accepting side of the same connection, closing second: both FINs counted.
        let c = close(&close_wire(LAST_ACK, all | CLOSE_PEER_FIN, 0, 501, 1001));
        assert_eq!(
            (c.bytes_sent, c.bytes_received, c.closed_by),
            (Some(500), 1000, ClosedBy::Remote)
        );
        // Reset by the peer: straight from ESTABLISHED with ECONNRESET; nothing to take out.
        let c = close(&close_wire(ESTABLISHED, all, 104, 500, 1000));
        assert_eq!(
            (c.bytes_sent, c.bytes_received, c.closed_by),
            (Some(500), 1000, ClosedBy::Remote)
        );
        // This host's abort (SO_LINGER 0): from ESTABLISHED without an error.
        assert_eq!(
            close(&close_wire(ESTABLISHED, all, 0, 1000, 500)).closed_by,
            ClosedBy::Local
        );
        // LAST_ACK ended by a reset: this host's FIN was never acknowledged.
        let c = close(&close_wire(LAST_ACK, all | CLOSE_PEER_FIN, 104, 500, 1001));
        assert_eq!((c.bytes_sent, c.bytes_received), (Some(500), 1000));
        // Older than the probes: no owner, no duration, no way to tell the SYN from payload.
        let old = decode(&close_wire(CLOSE_WAIT, CLOSE_PEER_FIN, 0, 77, 9), &ids).unwrap();
        assert_eq!(old.owner, None);
        let c = old.close.unwrap();
        assert_eq!(
            (c.duration_ns, c.bytes_sent, c.bytes_received, c.closed_by),
            (None, None, 8, ClosedBy::Remote)
        );
        // Counters below what is taken out never wrap.
        assert_eq!(
            close(&close_wire(FIN_WAIT2, all | CLOSE_PEER_FIN, 0, 0, 0)).bytes_sent,
            Some(0)
        );
    }

    #[test]
    fn a_close_made_at_the_sockets_free_decodes_from_the_last_state_shown() {
        use tcp_state::*;
        let ids = SockIds::new();
        let all = CLOSE_OWNER | CLOSE_DURATION | CLOSE_BASE;
        let fin = CLOSE_PEER_FIN;
        // (last state shown, flags, error, bytes_acked less the SYN, bytes_received, as read
        // at the free) -> (bytes_sent, bytes_received, closed_by): one row per way out.
        let cases = [
            // An orphaned client end whose FIN_WAIT2 -> CLOSE was not shown (held-open's
            // kind): its FIN acknowledged, the peer's in (TIME_WAIT).
            ((FIN_WAIT2, all | fin, 0, 1, 1), (0, 0, ClosedBy::Local)),
            // ... or freed by the FIN_WAIT2 timer, the peer's FIN never in.
            ((FIN_WAIT2, all, 0, 101, 50), (100, 50, ClosedBy::Local)),
            // FIN_WAIT1 given up on (orphan retries): its FIN never acknowledged.
            (
                (FIN_WAIT1, all, libc::ETIMEDOUT, 300, 0),
                (300, 0, ClosedBy::Local),
            ),
            // Simultaneous close, both FINs acknowledged.
            ((CLOSING, all | fin, 0, 11, 11), (10, 10, ClosedBy::Local)),
            // The server's end after the client's FIN: LAST_ACK acknowledged ...
            (
                (LAST_ACK, all | fin, 0, 501, 1001),
                (500, 1000, ClosedBy::Remote),
            ),
            // ... or reset there: its FIN not acknowledged.
            (
                (LAST_ACK, all | fin, libc::ECONNRESET, 500, 1001),
                (500, 1000, ClosedBy::Remote),
            ),
            // CLOSE_WAIT ended by this host's reset (unread data at close): no FIN of its own.
            (
                (CLOSE_WAIT, all | fin, 0, 200, 11),
                (200, 10, ClosedBy::Remote),
            ),
            // Straight from ESTABLISHED: the peer's reset, or this host's abort.
            (
                (ESTABLISHED, all, libc::ECONNRESET, 5, 7),
                (5, 7, ClosedBy::Remote),
            ),
            ((ESTABLISHED, all, 0, 5, 7), (5, 7, ClosedBy::Local)),
        ];
        for ((state, flags, error, acked, received), (sent, got, by)) in cases {
            let event = decode(&close_wire(state, flags, error, acked, received), &ids).unwrap();
            let c = event.close.unwrap();
            assert_eq!(
                (c.bytes_sent, c.bytes_received, c.closed_by),
                (Some(sent), got, by),
                "from state {state}, error {error}"
            );
            assert_eq!(c.duration_ns, Some(2_000_000));
            assert_eq!(event.error, (error != 0).then_some(error));
        }
    }

    #[test]
    fn a_close_from_a_state_before_established_is_an_error() {
        let ids = SockIds::new();
        for state in [0u8, 2, 3, 6, 7, 10, 12, 255] {
            assert_eq!(
                decode(&close_wire(state, 0, 0, 0, 0), &ids),
                Err(DecodeError::CloseState(state))
            );
        }
    }

    #[test]
    fn decode_netns_zero_is_unknown() {
        let mut ev = wire(
            KIND_ACCEPT,
            sockaddr_in([10, 0, 0, 2], 80),
            sockaddr_in([10, 0, 0, 5], 40000),
        );
        ev.netns = 0;
        assert_eq!(decode(&ev, &SockIds::new()).unwrap().netns, None);
    }

    #[test]
    fn decode_latency_only_for_outcomes() {
        let ids = SockIds::new();
        let (l, r) = (sockaddr_in([1, 1, 1, 1], 1), sockaddr_in([2, 2, 2, 2], 2));
        for (kind, latency) in [
            (KIND_CONNECT, None),
            (KIND_ESTABLISHED, Some(1_234_567)),
            (KIND_FAILED, Some(1_234_567)),
            (KIND_ACCEPT, None),
        ] {
            assert_eq!(
                decode(&wire(kind, l, r), &ids).unwrap().latency_ns,
                latency,
                "kind {kind}"
            );
        }
    }

    #[test]
    fn decode_error_field() {
        let ids = SockIds::new();
        let mut ev = wire(
            KIND_FAILED,
            sockaddr_in([1, 1, 1, 1], 1),
            sockaddr_in([2, 2, 2, 2], 2),
        );
        ev.error = 111;
        assert_eq!(decode(&ev, &ids).unwrap().error, Some(111));
        ev.error = -111;
        assert_eq!(decode(&ev, &ids).unwrap().error, Some(111));
        ev.error = i32::MIN;
        assert_eq!(decode(&ev, &ids).unwrap().error, Some(i32::MAX));
    }

    #[test]
    fn decode_ipv4_mapped_becomes_ipv4() {
        let ids = SockIds::new();
        let l: Ipv6Addr = "::ffff:127.0.0.1".parse().unwrap();
        let r: Ipv6Addr = "::ffff:127.0.0.2".parse().unwrap();
        let got = decode(
            &wire(KIND_ACCEPT, sockaddr_in6(l, 80), sockaddr_in6(r, 40000)),
            &ids,
        );
        let got = got.unwrap();
        assert_eq!(got.family, Family::Ipv4);
        assert_eq!(got.local, "127.0.0.1:80".parse().unwrap());
        assert_eq!(got.remote, "127.0.0.2:40000".parse().unwrap());
        // A v6 socket whose connect failed before binding: local is still `::`.
        let got = decode(
            &wire(
                KIND_CONNECT,
                sockaddr_in6(Ipv6Addr::UNSPECIFIED, 0),
                sockaddr_in6(r, 9),
            ),
            &ids,
        )
        .unwrap();
        assert_eq!(got.family, Family::Ipv4);
        assert_eq!(got.local, "0.0.0.0:0".parse().unwrap());
    }

    #[test]
    fn decode_plain_ipv6_and_mixed_families() {
        let ids = SockIds::new();
        let l: Ipv6Addr = "fe80::1".parse().unwrap();
        let r: Ipv6Addr = "2001:db8::5".parse().unwrap();
        let got = decode(
            &wire(KIND_CONNECT, sockaddr_in6(l, 1), sockaddr_in6(r, 2)),
            &ids,
        )
        .unwrap();
        assert_eq!(got.family, Family::Ipv6);
        assert_eq!(got.remote, SocketAddr::new(r.into(), 2));
        let mixed = wire(
            KIND_CONNECT,
            sockaddr_in([1, 2, 3, 4], 1),
            sockaddr_in6(r, 2),
        );
        assert_eq!(decode(&mixed, &ids), Err(DecodeError::MixedFamilies));
    }

    #[test]
    fn decode_rejects_unknown_kind_and_family() {
        let ids = SockIds::new();
        let (l, r) = (sockaddr_in([1, 1, 1, 1], 1), sockaddr_in([2, 2, 2, 2], 2));
        assert_eq!(
            decode(&wire(0, l, r), &ids),
            Err(DecodeError::UnknownKind(0))
        );
        assert_eq!(
            decode(&wire(6, l, r), &ids),
            Err(DecodeError::UnknownKind(6))
        );
        let err = decode(&wire(KIND_CONNECT, l, [0; 28]), &ids).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownFamily {
                end: End::Remote,
                family: 0
            }
        );
        assert_eq!(err.to_string(), "remote address of unknown family 0");
        let err = decode(&wire(KIND_CONNECT, [0xff; 28], r), &ids).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownFamily {
                end: End::Local,
                family: 0xffff
            }
        );
    }

    #[test]
    fn comm_stops_at_first_nul_or_16_bytes() {
        assert_eq!(
            Comm::from_wire(b"curl\0junk\0\0\0\0\0\0\0").as_bytes(),
            b"curl"
        );
        assert_eq!(
            Comm::from_wire(b"0123456789abcdef").as_bytes(),
            b"0123456789abcdef"
        );
        assert_eq!(Comm::from_wire(&[0; 16]).as_bytes(), b"");
    }

    #[test]
    fn sock_ids_are_stable_per_run_and_hide_the_pointer() {
        let ids = SockIds::new();
        let ptr = 0xffff_8881_0a2b_3c00;
        assert_eq!(ids.id(ptr), ids.id(ptr));
        assert_ne!(ids.id(ptr), ids.id(ptr + 8));
        assert_ne!(ids.id(ptr), ptr);
        // Another run (another key) gives another id for the same pointer.
        assert_ne!(SockIds::new().id(ptr), ids.id(ptr));
    }

    #[test]
    fn decode_bytes_never_panics_on_arbitrary_input() {
        let ids = SockIds::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..300 {
            let raw: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = decode_bytes(&raw, &ids);
        }
    }
}
