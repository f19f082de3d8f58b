//! Without BTF, the fields beyond the built-in sock_common table, found on the running kernel
//! before the main programs load: `sock.sk_err`, `sock_common.skc_flags` (sk_flags),
//! `inet_sock.inet_sport`, `tcp_sock.bytes_acked`, `tcp_sock.bytes_received`, `net.ns.inum`,
//! and the TCP protocol structs (`&tcp_prot`, `&tcpv6_prot`) the socket-protocol check
//! compares `skc_prot` with.
//!
//! How: the layout probe (`kprobe/tcp_set_state`, src/bpf/layout.s) dumps the sockets
//! conntrace makes for the purpose, at each of their state changes (the last one wins):
//! (a) an IPv4 connection kept established (sk_err 0), (b) a connect refused on loopback
//! (CLOSE with ECONNREFUSED), (c) a connection the server resets (CLOSE with ECONNRESET),
//! (d) with IPv6, an IPv6 connection kept established, (e) a listener closed unused (CLOSE),
//! and (f) a data exchange of known sizes, both ends dumped: the client sends `DATA_SENT`
//! bytes, reads the `DATA_ANSWERED` bytes the server's end answers, and shuts down its side
//! (FIN_WAIT2 once its FIN is acked: bytes_acked counts the SYN, the data and the FIN, and
//! bytes_received the answer); the server's end receives that FIN (CLOSE_WAIT, SOCK_DONE:
//! bytes_acked is the answer, bytes_received the data and the FIN). Every socket also has its
//! own set of socket options (`FLAGS_*`), so that the bits of sk_flags they set differ from
//! one dump to the next. Pure functions then look for the one offset where every dump holds
//! what its socket must: a field found at no offset or at several is refused by name. The
//! self-test (`selftest`) then proves the fields its records read.
//! Kernel pointers found here go into the `tcp_prots` map, never into the output.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::kernel::attach::{self, KprobeSupport};
use crate::kernel::load::{self, FieldOffset, LoadOptions, Loaded, ProgramFilter};
use crate::kernel::probe_object::{self, ProbeObject};
use crate::kernel::sys::socket::{self, BoundSocket};
use crate::kernel::sys::{process, Sys};
use crate::session::embedded;
use crate::session::features::{self, Features};
use crate::session::fields::FieldSource;

/// The layout probe's program section.
pub const SECTION: &str = "kprobe/tcp_set_state";
/// A `layout_dump` slot (LAYOUT_* in src/bpf/layout.s): the sock's first bytes (all of struct
/// tcp_sock, with room for debug kernels' larger locks), its struct net's, the new state (u32)
/// and the number of state changes (u32).
pub const DUMP_SOCK: usize = 4096;
pub const DUMP_NET: usize = 512;
pub const DUMP_STATE: usize = DUMP_SOCK + DUMP_NET;
pub const DUMP_CALLS: usize = DUMP_STATE + 4;
pub const DUMP_SIZE: usize = DUMP_CALLS + 4;
pub const SLOTS: usize = 7;

/// The `layout_dump` slot of each dumped socket (`layout_ports` maps its local port to it).
const SLOT_ESTABLISHED: u32 = 0;
const SLOT_REFUSED: u32 = 1;
const SLOT_RESET: u32 = 2;
const SLOT_IPV6: u32 = 3;
/// A listener that is closed unused (see `Dumps::listener`).
const SLOT_LISTENER: u32 = 4;
const SLOT_DATA_CLIENT: u32 = 5;
/// The socket the data exchange's listener accepted: its local port is the listener's.
const SLOT_DATA_SERVER: u32 = 6;

pub const SK_ERR: &str = "sock.sk_err";
pub const SK_FLAGS: &str = "sock_common.skc_flags";
pub const INET_SPORT: &str = "inet_sock.inet_sport";
pub const BYTES_ACKED: &str = "tcp_sock.bytes_acked";
pub const BYTES_RECEIVED: &str = "tcp_sock.bytes_received";
pub const NS_INUM: &str = "net.ns.inum";
const SKC_PROT: &str = "sock_common.skc_prot";
/// Built-in offset of skc_prot (the table's, src/kernel/btf/builtin.rs).
const SKC_PROT_AT: usize = 40;
/// inet_sport lies in struct inet_sock after struct sock, so beyond sock_common's addresses.
const INET_SPORT_FROM: usize = 80;

const TCP_ESTABLISHED: u32 = 1;
const TCP_FIN_WAIT2: u32 = 5;
const TCP_CLOSE: u32 = 7;
const TCP_CLOSE_WAIT: u32 = 8;
/// How long each socket's state change may take to show. FIN_WAIT2 waits for the peer's ACK of
/// our FIN, which its delayed-ACK timer sends: a few ms here, but over 2 s once in an
/// emulated aarch64 VM (5.10 under TCG, the suite's slowest).
const WAIT: Duration = Duration::from_secs(5);
const ADVICE: &str = "use a kernel with BTF or pass --btf FILE";

/// The data exchange (f): bytes the client sends, and bytes the server's end answers. Sizes
/// no other field of either socket holds (not a power of two, not a segment size).
pub const DATA_SENT: usize = 1237;
pub const DATA_ANSWERED: usize = 2749;

/// Bits of sk_flags (enum sock_flags, include/net/sock.h, numbered so since 2.6).
pub const SOCK_DEAD: u64 = 1 << 0;
/// Set by tcp_fin when the peer's FIN arrives.
pub const SOCK_DONE: u64 = 1 << 1;
/// SO_OOBINLINE.
pub const SOCK_URGINLINE: u64 = 1 << 2;
/// SO_KEEPALIVE.
pub const SOCK_KEEPOPEN: u64 = 1 << 3;
/// SO_LINGER (on).
pub const SOCK_LINGER: u64 = 1 << 4;
/// SO_BROADCAST.
pub const SOCK_BROADCAST: u64 = 1 << 6;
/// The bits the discovery sets or leaves clear on every socket through its options.
const OPTION_BITS: u64 = SOCK_URGINLINE | SOCK_KEEPOPEN | SOCK_LINGER | SOCK_BROADCAST;
/// With the bits whose value is known where no reset or close is involved: an open socket
/// is not dead, and is done only once it has received a FIN.
const OPEN_BITS: u64 = OPTION_BITS | SOCK_DEAD | SOCK_DONE;

/// The options of each dumped socket, as the sk_flags bits they set: a different set on
/// each, so that no word but sk_flags follows them all.
const FLAGS_ESTABLISHED: u64 = SOCK_URGINLINE | SOCK_BROADCAST;
const FLAGS_REFUSED: u64 = SOCK_KEEPOPEN | SOCK_LINGER;
const FLAGS_RESET: u64 = SOCK_LINGER | SOCK_BROADCAST;
const FLAGS_IPV6: u64 = SOCK_KEEPOPEN;
const FLAGS_LISTENER: u64 = SOCK_URGINLINE;
const FLAGS_DATA_CLIENT: u64 = SOCK_KEEPOPEN | SOCK_BROADCAST;
const FLAGS_DATA_SERVER: u64 = SOCK_URGINLINE;

/// Sets the socket options whose sk_flags bits are `flags` (of OPTION_BITS).
fn set_options(socket: BorrowedFd<'_>, flags: u64) -> Result<(), String> {
    let options = [
        (SOCK_URGINLINE, libc::SO_OOBINLINE, "SO_OOBINLINE"),
        (SOCK_KEEPOPEN, libc::SO_KEEPALIVE, "SO_KEEPALIVE"),
        (SOCK_BROADCAST, libc::SO_BROADCAST, "SO_BROADCAST"),
    ];
    for (bit, option, name) in options {
        if flags & bit != 0 {
            socket::set_flag(socket, option).map_err(|e| format!("{name}: {e}"))?;
        }
    }
    if flags & SOCK_LINGER != 0 {
        socket::set_linger_zero(socket).map_err(|e| format!("SO_LINGER: {e}"))?;
    }
    Ok(())
}

/// Whether to dump an IPv6 connection (d) as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6 {
    /// The kernel has no IPv6: tcpv6_prot stays 0.
    Off,
    /// IPv6 is traced: failing to make the connection is an error.
    Required,
    /// Only IPv4 is traced (-4): IPv4-mapped IPv6 sockets still need tcpv6_prot, but a
    /// failing IPv6 connection only leaves it 0.
    Try,
}

impl Ipv6 {
    /// `Required` when IPv6 is traced and the kernel has it, `Try` for -4.
    pub fn for_kernel(ipv4_only: bool) -> Ipv6 {
        if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
            Ipv6::Off
        } else if ipv4_only {
            Ipv6::Try
        } else {
            Ipv6::Required
        }
    }
}

/// One `layout_dump` slot as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    pub sock: Vec<u8>,
    pub net: Vec<u8>,
    /// The state of the last change (TCP_ESTABLISHED, TCP_CLOSE, ...).
    pub state: u32,
    /// State changes seen: 0 = the probe never saw the socket.
    pub calls: u32,
}

impl Dump {
    pub fn from_bytes(value: &[u8]) -> Dump {
        let word = |at: usize| {
            value
                .get(at..at + 4)
                .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        let part = |from: usize, len: usize| {
            let mut out = vec![0; len];
            if let Some(src) = value.get(from..from + len) {
                out.copy_from_slice(src);
            }
            out
        };
        Dump {
            sock: part(0, DUMP_SOCK),
            net: part(DUMP_SOCK, DUMP_NET),
            state: word(DUMP_STATE),
            calls: word(DUMP_CALLS),
        }
    }
}

fn u16_be(bytes: &[u8], at: usize) -> Option<u16> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
}

fn u32_ne(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_ne(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at + 8)?;
    Some(u64::from_ne_bytes([
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
    ]))
}

/// A dumped socket and its own local port.
#[derive(Debug, Clone)]
pub struct Case {
    pub dump: Dump,
    pub port: u16,
}

/// The dumps of the discovery's connections (see the module doc).
#[derive(Debug, Clone)]
pub struct Dumps {
    pub established: Case,
    pub refused: Case,
    pub reset: Case,
    pub ipv6: Option<Case>,
    /// A listener closed unused: a socket that was never routed, so the copy of the local
    /// port every connected socket also holds (the cached flow in inet_sock's cork) is not
    /// there. Without IPv6 it alone tells inet_sport from that copy.
    pub listener: Case,
    /// The data exchange's client, in FIN_WAIT2: DATA_SENT bytes sent, DATA_ANSWERED read,
    /// its FIN sent and acked.
    pub data_client: Case,
    /// The data exchange's server end, in CLOSE_WAIT: DATA_SENT bytes and the client's FIN
    /// received, DATA_ANSWERED sent and acked.
    pub data_server: Case,
}

impl Dumps {
    fn all(&self) -> impl Iterator<Item = &Case> {
        [
            &self.established,
            &self.refused,
            &self.reset,
            &self.listener,
            &self.data_client,
            &self.data_server,
        ]
        .into_iter()
        .chain(self.ipv6.as_ref())
    }
}

/// What the discovery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discovered {
    pub sk_err: u32,
    pub inet_sport: u32,
    pub ns_inum: u32,
    pub bytes_acked: u32,
    pub bytes_received: u32,
    pub sk_flags: u32,
    /// This process's netns inode, which every record must carry.
    pub netns: u32,
    /// &tcp_prot and &tcpv6_prot (0 without IPv6): for the `tcp_prots` map only.
    pub tcp_prots: [u64; 2],
}

impl Discovered {
    /// The fields for the resolver (`FieldSource::set_discovered`).
    pub fn fields(&self) -> [(&'static str, FieldOffset); 6] {
        let at = |offset, size| FieldOffset { offset, size };
        [
            (SK_ERR, at(self.sk_err, 4)),
            (INET_SPORT, at(self.inet_sport, 2)),
            (NS_INUM, at(self.ns_inum, 4)),
            (BYTES_ACKED, at(self.bytes_acked, 8)),
            (BYTES_RECEIVED, at(self.bytes_received, 8)),
            (SK_FLAGS, at(self.sk_flags, 8)),
        ]
    }

    /// "discovered sock.sk_err at 284, inet_sock.inet_sport at 782, net.ns.inum at 136,
    /// tcp_sock.bytes_acked at 1824, tcp_sock.bytes_received at 1752, sock_common.skc_flags
    /// at 96"
    /// (offsets only: the protocol pointers never leave the kernel maps).
    pub fn describe(&self) -> String {
        let placed: Vec<String> = self
            .fields()
            .iter()
            .map(|(spec, f)| format!("{spec} at {}", f.offset))
            .collect();
        format!("discovered {}", placed.join(", "))
    }

    /// The discovered offset of `spec`, if it is one of them.
    pub fn offset(&self, spec: &str) -> Option<u32> {
        self.fields()
            .iter()
            .find(|(s, _)| *s == spec)
            .map(|(_, f)| f.offset)
    }
}

/// The one offset of `candidates`, or why `spec` cannot be placed.
fn unique(spec: &str, candidates: Vec<usize>, looked_for: &str) -> Result<u32, String> {
    match candidates.as_slice() {
        [one] => Ok(*one as u32),
        [] => Err(format!("{spec}: no offset holds {looked_for}")),
        many => Err(format!(
            "{spec}: {} offsets hold {looked_for} ({}), so none can be trusted",
            many.len(),
            many.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `sock.sk_err`: the 4-aligned offset that reads 0 in the established socket(s) and both
/// ends of the data exchange, ECONNREFUSED in the refused one and ECONNRESET in the reset one.
pub fn find_sk_err(dumps: &Dumps) -> Result<u32, String> {
    let mut want = vec![
        (&dumps.established, 0),
        (&dumps.refused, libc::ECONNREFUSED as u32),
        (&dumps.reset, libc::ECONNRESET as u32),
        (&dumps.data_client, 0),
        (&dumps.data_server, 0),
    ];
    want.extend(dumps.ipv6.as_ref().map(|c| (c, 0)));
    let candidates = (0..=DUMP_SOCK - 4)
        .step_by(4)
        .filter(|&at| {
            want.iter()
                .all(|(case, value)| u32_ne(&case.dump.sock, at) == Some(*value))
        })
        .collect();
    unique(
        SK_ERR,
        candidates,
        "0, ECONNREFUSED and ECONNRESET in the established, refused and reset sockets",
    )
}

/// `inet_sock.inet_sport`: the 2-aligned offset from INET_SPORT_FROM on where every dump holds
/// its own socket's local port in network order.
pub fn find_inet_sport(dumps: &Dumps) -> Result<u32, String> {
    let candidates = (INET_SPORT_FROM..=DUMP_SOCK - 2)
        .step_by(2)
        .filter(|&at| {
            dumps
                .all()
                .all(|case| u16_be(&case.dump.sock, at) == Some(case.port))
        })
        .collect();
    unique(
        INET_SPORT,
        candidates,
        "each socket's own local port (network order)",
    )
}

/// `net.ns.inum`: the 4-aligned offset of struct net where every dump holds `netns`, this
/// process's netns inode (every socket is in it).
pub fn find_ns_inum(dumps: &Dumps, netns: u32) -> Result<u32, String> {
    let candidates = (0..=DUMP_NET - 4)
        .step_by(4)
        .filter(|&at| {
            dumps
                .all()
                .all(|case| u32_ne(&case.dump.net, at) == Some(netns))
        })
        .collect();
    unique(
        NS_INUM,
        candidates,
        &format!("this process's netns inode {netns} in every socket's struct net"),
    )
}

/// The 8-aligned offsets where each case's u64 is its value.
fn u64_candidates(want: &[(&Case, u64)]) -> Vec<usize> {
    (0..=DUMP_SOCK - 8)
        .step_by(8)
        .filter(|&at| {
            want.iter()
                .all(|(case, value)| u64_ne(&case.dump.sock, at) == Some(*value))
        })
        .collect()
}

/// `tcp_sock.bytes_acked` (u64): the data exchange's client has had its SYN, DATA_SENT bytes
/// and its FIN acked, the server's end the DATA_ANSWERED bytes of its answer (an accepted
/// socket's SYN-ACK does not count).
pub fn find_bytes_acked(dumps: &Dumps) -> Result<u32, String> {
    let client = DATA_SENT as u64 + 2;
    let server = DATA_ANSWERED as u64;
    unique(
        BYTES_ACKED,
        u64_candidates(&[(&dumps.data_client, client), (&dumps.data_server, server)]),
        &format!(
            "{client} (SYN, {DATA_SENT} bytes, FIN) in the data exchange's client and {server} \
             in its server end"
        ),
    )
}

/// `tcp_sock.bytes_received` (u64): the data exchange's client has received the DATA_ANSWERED
/// bytes of the answer, the server's end DATA_SENT bytes and the client's FIN (the SYN does
/// not count).
pub fn find_bytes_received(dumps: &Dumps) -> Result<u32, String> {
    let client = DATA_ANSWERED as u64;
    let server = DATA_SENT as u64 + 1;
    unique(
        BYTES_RECEIVED,
        u64_candidates(&[(&dumps.data_client, client), (&dumps.data_server, server)]),
        &format!(
            "{client} in the data exchange's client and {server} ({DATA_SENT} bytes, FIN) in \
             its server end"
        ),
    )
}

/// What each dump's sk_flags must hold: (case, the bits known, their values). Only the bits
/// conntrace controls: the options it set or left off, and, on sockets that are open and
/// neither refused nor reset, SOCK_DEAD (never) and SOCK_DONE (once a FIN arrived).
fn flags_wanted(dumps: &Dumps) -> Vec<(&Case, u64, u64)> {
    let mut want = vec![
        (&dumps.established, OPEN_BITS, FLAGS_ESTABLISHED),
        (&dumps.refused, OPTION_BITS, FLAGS_REFUSED),
        (&dumps.reset, OPTION_BITS, FLAGS_RESET),
        (&dumps.listener, OPTION_BITS, FLAGS_LISTENER),
        (&dumps.data_client, OPEN_BITS, FLAGS_DATA_CLIENT),
        (&dumps.data_server, OPEN_BITS, FLAGS_DATA_SERVER | SOCK_DONE),
    ];
    want.extend(dumps.ipv6.as_ref().map(|c| (c, OPEN_BITS, FLAGS_IPV6)));
    want
}

/// `sock_common.skc_flags`, struct sock's sk_flags (an unsigned long; include/net/sock.h:
/// `#define sk_flags __sk_common.skc_flags`): the 8-aligned offset where every dump holds
/// the bits of the options set on its socket (SO_OOBINLINE, SO_KEEPALIVE, SO_LINGER,
/// SO_BROADCAST, a different set on each) and SOCK_DONE on the data exchange's server end,
/// which received a FIN.
pub fn find_sk_flags(dumps: &Dumps) -> Result<u32, String> {
    let want = flags_wanted(dumps);
    let candidates = (0..=DUMP_SOCK - 8)
        .step_by(8)
        .filter(|&at| {
            want.iter().all(|(case, mask, value)| {
                u64_ne(&case.dump.sock, at).is_some_and(|word| word & mask == *value)
            })
        })
        .collect();
    unique(
        SK_FLAGS,
        candidates,
        "the socket-option bits (SOCK_URGINLINE, SOCK_KEEPOPEN, SOCK_LINGER, SOCK_BROADCAST) \
         set on each socket and SOCK_DONE on the one that received a FIN",
    )
}

/// &tcp_prot (the IPv4 sockets' skc_prot, all the same) and &tcpv6_prot (the IPv6 one's,
/// another; 0 without it).
pub fn find_tcp_prots(dumps: &Dumps) -> Result<[u64; 2], String> {
    let prot = |case: &Case| u64_ne(&case.dump.sock, SKC_PROT_AT).unwrap_or(0);
    let v4 = prot(&dumps.established);
    let others = [
        &dumps.refused,
        &dumps.reset,
        &dumps.data_client,
        &dumps.data_server,
    ];
    if v4 == 0 || others.iter().any(|c| prot(c) != v4) {
        return Err(format!(
            "built-in offset of {SKC_PROT} ({SKC_PROT_AT}): the IPv4 sockets do not share \
             one non-null protocol pointer"
        ));
    }
    let v6 = match &dumps.ipv6 {
        None => 0,
        Some(case) => match prot(case) {
            p if p == 0 || p == v4 => {
                return Err(format!(
                    "built-in offset of {SKC_PROT} ({SKC_PROT_AT}): the IPv6 socket's \
                     protocol pointer is null or the IPv4 one"
                ))
            }
            p => p,
        },
    };
    Ok([v4, v6])
}

/// Everything from the dumps, or every field that could not be found, each named.
pub fn find(dumps: &Dumps, netns: u32) -> Result<Discovered, Vec<String>> {
    let mut problems = Vec::new();
    for case in dumps.all() {
        if case.dump.calls == 0 {
            problems.push(format!(
                "the layout probe never saw the socket on local port {}",
                case.port
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut keep = |r: Result<u32, String>| r.map_err(|e| problems.push(e)).unwrap_or(0);
    let sk_err = keep(find_sk_err(dumps));
    let inet_sport = keep(find_inet_sport(dumps));
    let ns_inum = keep(find_ns_inum(dumps, netns));
    let bytes_acked = keep(find_bytes_acked(dumps));
    let bytes_received = keep(find_bytes_received(dumps));
    let sk_flags = keep(find_sk_flags(dumps));
    let tcp_prots = find_tcp_prots(dumps)
        .map_err(|e| problems.push(e))
        .unwrap_or_default();
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Discovered {
        sk_err,
        inet_sport,
        ns_inum,
        bytes_acked,
        bytes_received,
        sk_flags,
        netns,
        tcp_prots,
    })
}

/// Without BTF: runs the discovery and puts the fields it found into `fields`. With BTF:
/// nothing to do (None).
pub fn discover(
    sys: &dyn Sys,
    fields: &mut FieldSource,
    kprobes: KprobeSupport,
    ipv6: Ipv6,
) -> Result<Option<Discovered>, String> {
    if fields.has_btf() {
        return Ok(None);
    }
    let found = run(sys, fields, kprobes, ipv6)?;
    fields.set_discovered(&found.fields());
    Ok(Some(found))
}

/// Writes &tcp_prot and &tcpv6_prot into the main programs' `tcp_prots` map.
pub fn write_tcp_prots(sys: &dyn Sys, loaded: &Loaded, found: &Discovered) -> Result<(), String> {
    let mut value = [0u8; 16];
    value[..8].copy_from_slice(&found.tcp_prots[0].to_ne_bytes());
    value[8..].copy_from_slice(&found.tcp_prots[1].to_ne_bytes());
    load::update_map(sys, loaded, "tcp_prots", &0u32.to_ne_bytes(), &value)
        .map_err(|e| format!("cannot set the socket-protocol check: {e}"))
}

/// The layout probe alone, with only the maps it uses.
fn layout_object(full: &ProbeObject) -> Result<ProbeObject, String> {
    let mut program = full
        .program(SECTION)
        .ok_or_else(|| format!("the no-BTF probe object has no {SECTION} program"))?
        .clone();
    let mut maps = Vec::new();
    for reloc in &mut program.map_relocs {
        let def = full
            .maps
            .get(reloc.1)
            .ok_or("the layout probe names a map the object lacks")?;
        reloc.1 = match maps.iter().position(|m| m == def) {
            Some(i) => i,
            None => {
                maps.push(def.clone());
                maps.len() - 1
            }
        };
    }
    Ok(ProbeObject {
        license: full.license.clone(),
        maps,
        programs: vec![program],
    })
}

/// Loads and attaches the layout probe, makes the connections, reads the dumps, detaches,
/// and finds the fields.
fn run(
    sys: &dyn Sys,
    fields: &FieldSource,
    kprobes: KprobeSupport,
    ipv6: Ipv6,
) -> Result<Discovered, String> {
    let fail = |e: String| format!("cannot discover the kernel's socket layout without BTF: {e}");
    let full = probe_object::parse(&embedded::probe_object_nobtf())
        .map_err(|e| format!("embedded probe object: {e}"))?;
    let object = layout_object(&full)?;
    // The first maps of the run: raise RLIMIT_MEMLOCK first where the kernel charges them
    // to it (before 5.11), and fall back to bpf_probe_read where its successors are missing.
    let features = Features::new(sys);
    let memlock = features.prepare_memlock();
    let opts = LoadOptions {
        nr_cpus: 1,
        kern_version: load::kernel_version_code(),
        helper_rewrites: features.helper_rewrites(),
        permission: memlock.permission_context(features::bpf_privileged()),
        programs: ProgramFilter::All,
        map_sizes: Vec::new(),
        allocated_as_used: Vec::new(),
    };
    let loaded = load::load(sys, &object, fields, &opts).map_err(|e| e.to_string())?;
    let netns =
        process::netns_inode().map_err(|e| fail(format!("cannot read /proc/self/ns/net: {e}")))?;
    let sockets = Sockets::bind(ipv6).map_err(|e| fail(format!("loopback sockets: {e}")))?;
    for (slot, port) in sockets
        .slots()
        .map_err(|e| fail(format!("getsockname: {e}")))?
    {
        load::update_map(
            sys,
            &loaded,
            "layout_ports",
            &u32::from(port).to_ne_bytes(),
            &slot.to_ne_bytes(),
        )
        .map_err(|e| e.to_string())?;
    }
    let program = loaded
        .program(SECTION)
        .ok_or_else(|| format!("program {SECTION} was not loaded"))?;
    let method = kprobes.method().map_err(|e| e.to_string())?;
    let attachment = attach::attach(sys, program, method).map_err(|e| fail(e.to_string()))?;
    let made = sockets.connect();
    let dumps = made.and_then(|held| {
        let dumps = read_dumps(sys, &loaded, &held);
        drop(held);
        dumps
    });
    attachment.detach().map_err(|e| e.to_string())?;
    let dumps = dumps.map_err(fail)?;
    find(&dumps, netns).map_err(|problems| {
        let mut message = String::from(
            "the kernel's socket layout could not be discovered without BTF (dumps of \
             conntrace's own loopback sockets):",
        );
        for p in &problems {
            message.push_str("\n    ");
            message.push_str(p);
        }
        message.push_str(&format!("\n  refusing to print wrong data: {ADVICE}"));
        message
    })
}

/// The discovery's sockets, bound before they connect so their ports are known up front.
struct Sockets {
    server: TcpListener,
    /// Listens and is closed unused (`Dumps::listener`).
    idle: TcpListener,
    /// Bound, never listening: a connect to it is refused.
    closed: BoundSocket,
    established: BoundSocket,
    refused: BoundSocket,
    reset: BoundSocket,
    /// The data exchange's own listener (its port is the dumped server end's) and client.
    data_server: TcpListener,
    data_client: BoundSocket,
    /// The IPv6 server and client, when asked for and possible.
    ipv6: Option<(TcpListener, BoundSocket, Ipv6)>,
}

/// The sockets once connected, kept open until their dumps are read.
struct Held {
    /// (slot, local port, state of the last change) of each socket that must have a dump.
    slots: Vec<(u32, u16, u32)>,
    _streams: Vec<TcpStream>,
    _sockets: Vec<BoundSocket>,
    _listeners: Vec<TcpListener>,
}

fn port_of(socket: &BoundSocket) -> io::Result<u16> {
    socket.local_addr().map(|a| a.port())
}

fn listener_port(listener: &TcpListener) -> io::Result<u16> {
    listener.local_addr().map(|a| a.port())
}

impl Sockets {
    fn bind(ipv6: Ipv6) -> io::Result<Sockets> {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let ipv6 = match ipv6 {
            Ipv6::Off => None,
            need => match (
                TcpListener::bind(SocketAddr::new(v6, 0)),
                BoundSocket::bind(v6),
            ) {
                (Ok(server), Ok(client)) => Some((server, client, need)),
                (Err(e), _) | (_, Err(e)) if need == Ipv6::Required => {
                    return Err(io::Error::other(format!(
                        "IPv6 loopback: {e} (pass -4 to trace IPv4 only)"
                    )))
                }
                _ => None,
            },
        };
        Ok(Sockets {
            server: TcpListener::bind(SocketAddr::new(v4, 0))?,
            idle: TcpListener::bind(SocketAddr::new(v4, 0))?,
            closed: BoundSocket::bind(v4)?,
            established: BoundSocket::bind(v4)?,
            refused: BoundSocket::bind(v4)?,
            reset: BoundSocket::bind(v4)?,
            data_server: TcpListener::bind(SocketAddr::new(v4, 0))?,
            data_client: BoundSocket::bind(v4)?,
            ipv6,
        })
    }

    /// The local port of each socket to dump, by slot (for `layout_ports`).
    fn slots(&self) -> io::Result<Vec<(u32, u16)>> {
        let mut slots = vec![
            (SLOT_ESTABLISHED, port_of(&self.established)?),
            (SLOT_REFUSED, port_of(&self.refused)?),
            (SLOT_RESET, port_of(&self.reset)?),
            (SLOT_LISTENER, listener_port(&self.idle)?),
            (SLOT_DATA_CLIENT, port_of(&self.data_client)?),
            (SLOT_DATA_SERVER, listener_port(&self.data_server)?),
        ];
        if let Some((_, client, _)) = &self.ipv6 {
            slots.push((SLOT_IPV6, port_of(client)?));
        }
        Ok(slots)
    }

    /// Makes the connections (see the module doc); each has had its last state change when
    /// this returns, as far as the sockets can tell.
    fn connect(self) -> Result<Held, String> {
        let ports: Vec<(u32, u16)> = self.slots().map_err(|e| format!("getsockname: {e}"))?;
        let port = |slot: u32| ports.iter().find(|(s, _)| *s == slot).map_or(0, |p| p.1);
        let server_addr = self.server.local_addr().map_err(|e| e.to_string())?;
        let closed_addr = self.closed.local_addr().map_err(|e| e.to_string())?;
        let mut streams = Vec::new();
        let mut slots = vec![
            (SLOT_ESTABLISHED, port(SLOT_ESTABLISHED), TCP_ESTABLISHED),
            (SLOT_REFUSED, port(SLOT_REFUSED), TCP_CLOSE),
            (SLOT_RESET, port(SLOT_RESET), TCP_CLOSE),
            (SLOT_LISTENER, port(SLOT_LISTENER), TCP_CLOSE),
            (SLOT_DATA_CLIENT, port(SLOT_DATA_CLIENT), TCP_FIN_WAIT2),
            (SLOT_DATA_SERVER, port(SLOT_DATA_SERVER), TCP_CLOSE_WAIT),
        ];

        // (a) established, kept so.
        set_options(self.established.as_fd(), FLAGS_ESTABLISHED)?;
        self.established
            .connect(server_addr)
            .map_err(|e| format!("connect to the loopback server: {e}"))?;
        streams.push(self.established.into_stream());
        streams.push(accept(&self.server)?);

        // (b) refused.
        set_options(self.refused.as_fd(), FLAGS_REFUSED)?;
        match self.refused.connect(closed_addr) {
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
            Err(e) => {
                return Err(format!(
                    "connect to a closed loopback port: {e}, expected ECONNREFUSED"
                ))
            }
            Ok(()) => return Err("a connect to a closed loopback port succeeded".into()),
        }

        // (c) reset by the server: SO_LINGER {1, 0}, then close.
        set_options(self.reset.as_fd(), FLAGS_RESET)?;
        self.reset
            .connect(server_addr)
            .map_err(|e| format!("connect to the loopback server: {e}"))?;
        let mut client = self.reset.into_stream();
        let server_end = accept(&self.server)?;
        socket::set_linger_zero(server_end.as_fd()).map_err(|e| format!("SO_LINGER: {e}"))?;
        drop(server_end);
        client
            .set_read_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        match client.read(&mut [0u8; 1]) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => {
                return Err(format!(
                    "the loopback server's reset did not arrive within {} s: read gave {other:?}",
                    WAIT.as_secs()
                ))
            }
        }
        streams.push(client);

        // The unused listener's close: tcp_set_state(CLOSE) of a socket never routed.
        set_options(self.idle.as_fd(), FLAGS_LISTENER)?;
        drop(self.idle);

        // (f) the data exchange; the server end is the one socket of its listener.
        let (client, server) = exchange(self.data_client, &self.data_server)?;
        streams.extend([client, server]);
        let mut listeners = vec![self.server, self.data_server];

        // (d) IPv6, established.
        if let Some((server, client, need)) = self.ipv6 {
            set_options(client.as_fd(), FLAGS_IPV6)?;
            let connected = server
                .local_addr()
                .and_then(|addr| client.connect(addr))
                .map_err(|e| format!("IPv6 loopback connect: {e} (pass -4 to trace IPv4 only)"));
            match connected {
                Ok(()) => {
                    streams.push(client.into_stream());
                    streams.push(accept(&server)?);
                    slots.push((SLOT_IPV6, port(SLOT_IPV6), TCP_ESTABLISHED));
                }
                Err(e) if need == Ipv6::Required => return Err(e),
                Err(_) => {}
            }
            listeners.push(server);
        }
        Ok(Held {
            slots,
            _streams: streams,
            _sockets: vec![self.closed, self.refused],
            _listeners: listeners,
        })
    }
}

/// The data exchange (f): `client` (SO_KEEPALIVE, SO_BROADCAST) connects to `listener` and
/// sends DATA_SENT bytes; the accepted end (SO_OOBINLINE) reads them and answers DATA_ANSWERED;
/// the client reads the answer and shuts down its side. Returns both ends, kept open: the
/// client reaches FIN_WAIT2 once its FIN is acked, the server end CLOSE_WAIT.
fn exchange(client: BoundSocket, listener: &TcpListener) -> Result<(TcpStream, TcpStream), String> {
    let io =
        |what: &'static str| move |e: io::Error| format!("loopback data exchange, {what}: {e}");
    set_options(client.as_fd(), FLAGS_DATA_CLIENT)?;
    let addr = listener.local_addr().map_err(io("getsockname"))?;
    client.connect(addr).map_err(io("connect"))?;
    let mut client = client.into_stream();
    let mut server = accept(listener)?;
    set_options(server.as_fd(), FLAGS_DATA_SERVER)?;
    for end in [&client, &server] {
        end.set_read_timeout(Some(WAIT)).map_err(io("timeout"))?;
        end.set_write_timeout(Some(WAIT)).map_err(io("timeout"))?;
    }
    client
        .write_all(&[0x5a; DATA_SENT])
        .map_err(io("client send"))?;
    server
        .read_exact(&mut [0; DATA_SENT])
        .map_err(io("server receive"))?;
    server
        .write_all(&[0xa5; DATA_ANSWERED])
        .map_err(io("server answer"))?;
    client
        .read_exact(&mut [0; DATA_ANSWERED])
        .map_err(io("client receive"))?;
    client.shutdown(Shutdown::Write).map_err(io("shutdown"))?;
    Ok((client, server))
}

fn accept(server: &TcpListener) -> Result<TcpStream, String> {
    server
        .accept()
        .map(|(stream, _)| stream)
        .map_err(|e| format!("loopback accept: {e}"))
}

/// Reads each slot of `held` once its last state change shows (bounded by WAIT).
fn read_dumps(sys: &dyn Sys, loaded: &Loaded, held: &Held) -> Result<Dumps, String> {
    let map = loaded
        .map_fd("layout_dump")
        .ok_or("the layout probe has no layout_dump map")?;
    collect_dumps(&held.slots, WAIT, |slot, value| {
        sys.map_lookup(map, &slot.to_ne_bytes(), value)
            .map_err(|e| format!("reading layout_dump: {e}"))
    })
}

/// Polls each (slot, port, state) of `slots` with `lookup` until the slot holds a dump of
/// that state, and the same dump twice in a row: a read during a later write of the probe
/// could mix the bytes of two state changes. Everything within `wait`.
fn collect_dumps(
    slots: &[(u32, u16, u32)],
    wait: Duration,
    mut lookup: impl FnMut(u32, &mut [u8]) -> Result<(), String>,
) -> Result<Dumps, String> {
    let deadline = Instant::now() + wait;
    let mut cases = Vec::new();
    for &(slot, port, state) in slots {
        let mut value = vec![0u8; DUMP_SIZE];
        let mut seen: Option<Dump> = None;
        loop {
            lookup(slot, &mut value)?;
            let dump = Dump::from_bytes(&value);
            if dump.state == state && dump.calls > 0 {
                if seen.as_ref() == Some(&dump) {
                    cases.push((slot, Case { dump, port }));
                    break;
                }
                seen = Some(dump);
                continue;
            }
            seen = None;
            if Instant::now() >= deadline {
                return Err(format!(
                    "the socket on local port {port} did not reach state {state} in the layout \
                     probe's dump within {} s (last seen: state {}, {} changes)",
                    wait.as_secs(),
                    dump.state,
                    dump.calls
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut take = |slot: u32| {
        cases
            .iter()
            .position(|(s, _)| *s == slot)
            .map(|i| cases.swap_remove(i).1)
    };
    let missing = "a dump is missing";
    Ok(Dumps {
        established: take(SLOT_ESTABLISHED).ok_or(missing)?,
        refused: take(SLOT_REFUSED).ok_or(missing)?,
        reset: take(SLOT_RESET).ok_or(missing)?,
        listener: take(SLOT_LISTENER).ok_or(missing)?,
        data_client: take(SLOT_DATA_CLIENT).ok_or(missing)?,
        data_server: take(SLOT_DATA_SERVER).ok_or(missing)?,
        ipv6: take(SLOT_IPV6),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A made-up layout: sk_err at 284, inet_sport at 782, ns.inum at 136 of struct net,
    // sk_flags at 96, bytes_received at 1752, bytes_acked at 1824.
    const SK_ERR_AT: usize = 284;
    const SPORT_AT: usize = 782;
    const INUM_AT: usize = 136;
    const FLAGS_AT: usize = 96;
    const RECEIVED_AT: usize = 1752;
    const ACKED_AT: usize = 1824;
    /// tcp_sock.bytes_sent: payload sent, so the client's DATA_SENT and the server's
    /// DATA_ANSWERED, without the SYN or FIN. Must not be taken for bytes_acked.
    const SENT_AT: usize = 1544;
    const NETNS: u32 = 4026531840;
    const TCP_PROT: u64 = 0xffff_ffff_8250_1234;
    const TCPV6_PROT: u64 = 0xffff_ffff_8260_5678;
    /// Bits of sk_flags conntrace does not control (SOCK_DESTROY, SOCK_ZAPPED, SOCK_RCU_FREE):
    /// set in every dump, they change nothing.
    const OTHER_FLAGS: u64 = 1 << 5 | 1 << 8 | 1 << 23;

    fn put(case: &mut Case, at: usize, value: u64) {
        case.dump.sock[at..at + 8].copy_from_slice(&value.to_ne_bytes());
    }

    fn case(port: u16, err: u32, prot: u64, flags: u64) -> Case {
        let mut sock = vec![0u8; DUMP_SOCK];
        // sock_common's skc_num (host order) and a dport: neither may be taken for inet_sport.
        sock[14..16].copy_from_slice(&port.to_ne_bytes());
        sock[12..14].copy_from_slice(&40000u16.to_be_bytes());
        sock[SKC_PROT_AT..SKC_PROT_AT + 8].copy_from_slice(&prot.to_ne_bytes());
        sock[SK_ERR_AT..SK_ERR_AT + 4].copy_from_slice(&err.to_ne_bytes());
        sock[SPORT_AT..SPORT_AT + 2].copy_from_slice(&port.to_be_bytes());
        sock[FLAGS_AT..FLAGS_AT + 8].copy_from_slice(&(flags | OTHER_FLAGS).to_ne_bytes());
        // Noise: another word that is ECONNREFUSED in one dump only.
        sock[1000..1004].copy_from_slice(&111u32.to_ne_bytes());
        // A kernel pointer after sk_flags (skc_node's first), the same in every dump.
        sock[104..112].copy_from_slice(&0xffff_8880_0412_3c48u64.to_ne_bytes());
        let mut net = vec![0u8; DUMP_NET];
        net[INUM_AT..INUM_AT + 4].copy_from_slice(&NETNS.to_ne_bytes());
        net[8..12].copy_from_slice(&1u32.to_ne_bytes());
        Case {
            dump: Dump {
                sock,
                net,
                state: TCP_CLOSE,
                calls: 3,
            },
            port,
        }
    }

    fn data_case(port: u16, flags: u64, acked: u64, received: u64, sent: u64) -> Case {
        let mut c = case(port, 0, TCP_PROT, flags);
        put(&mut c, ACKED_AT, acked);
        put(&mut c, RECEIVED_AT, received);
        put(&mut c, SENT_AT, sent);
        c
    }

    fn dumps() -> Dumps {
        let (sent, answered) = (DATA_SENT as u64, DATA_ANSWERED as u64);
        let mut established = case(43817, 0, TCP_PROT, FLAGS_ESTABLISHED);
        // A connecting socket has had its SYN acked.
        put(&mut established, ACKED_AT, 1);
        Dumps {
            established,
            refused: case(43818, 111, TCP_PROT, FLAGS_REFUSED),
            reset: case(43819, 104, TCP_PROT, FLAGS_RESET),
            ipv6: Some(case(43820, 0, TCPV6_PROT, FLAGS_IPV6)),
            listener: case(43800, 0, TCP_PROT, FLAGS_LISTENER),
            data_client: data_case(43821, FLAGS_DATA_CLIENT, sent + 2, answered, sent),
            data_server: data_case(
                43801,
                FLAGS_DATA_SERVER | SOCK_DONE,
                answered,
                sent + 1,
                answered,
            ),
        }
    }

    #[test]
    fn without_ipv6_the_listener_tells_inet_sport_from_the_flow_cache() {
        // Every connected socket also holds its port in the cork's cached flow; the listener,
        // never routed, does not.
        const CORK_AT: usize = 946;
        let mut d = dumps();
        d.ipv6 = None;
        for c in [
            &mut d.established,
            &mut d.refused,
            &mut d.reset,
            &mut d.data_client,
            &mut d.data_server,
        ] {
            c.dump.sock[CORK_AT..CORK_AT + 2].copy_from_slice(&c.port.to_be_bytes());
        }
        assert_eq!(find_inet_sport(&d), Ok(SPORT_AT as u32));
        // Were the listener to hold it too, nothing would tell them apart: refused.
        let port = d.listener.port;
        d.listener.dump.sock[CORK_AT..CORK_AT + 2].copy_from_slice(&port.to_be_bytes());
        assert!(find_inet_sport(&d).unwrap_err().contains("(782, 946)"));
    }

    #[test]
    fn a_consistent_layout_is_found() {
        let found = find(&dumps(), NETNS).unwrap();
        assert_eq!(
            found,
            Discovered {
                sk_err: SK_ERR_AT as u32,
                inet_sport: SPORT_AT as u32,
                ns_inum: INUM_AT as u32,
                bytes_acked: ACKED_AT as u32,
                bytes_received: RECEIVED_AT as u32,
                sk_flags: FLAGS_AT as u32,
                netns: NETNS,
                tcp_prots: [TCP_PROT, TCPV6_PROT],
            }
        );
        assert_eq!(found.offset("inet_sock.inet_sport"), Some(782));
        assert_eq!(found.offset("tcp_sock.bytes_acked"), Some(1824));
        assert_eq!(found.offset("sock_common.skc_num"), None);
        assert_eq!(
            found.describe(),
            "discovered sock.sk_err at 284, inet_sock.inet_sport at 782, net.ns.inum at 136, \
             tcp_sock.bytes_acked at 1824, tcp_sock.bytes_received at 1752, \
             sock_common.skc_flags at 96"
        );
        let at = |offset, size| FieldOffset { offset, size };
        assert_eq!(
            found.fields()[3..],
            [
                ("tcp_sock.bytes_acked", at(1824, 8)),
                ("tcp_sock.bytes_received", at(1752, 8)),
                ("sock_common.skc_flags", at(96, 8)),
            ]
        );
        // Without IPv6 too, and tcpv6_prot is 0.
        let mut d = dumps();
        d.ipv6 = None;
        assert_eq!(find(&d, NETNS).unwrap().tcp_prots, [TCP_PROT, 0]);
    }

    #[test]
    fn every_discovered_field_is_a_discovered_spec() {
        let found = find(&dumps(), NETNS).unwrap();
        let specs: Vec<&str> = found.fields().iter().map(|(spec, _)| *spec).collect();
        assert_eq!(specs, crate::session::fields::DISCOVERED_SPECS);
    }

    #[test]
    fn a_dump_round_trips_through_the_map_value() {
        let c = case(43817, 111, TCP_PROT, 0);
        let mut value = c.dump.sock.clone();
        value.extend(&c.dump.net);
        value.extend(TCP_CLOSE.to_ne_bytes());
        value.extend(3u32.to_ne_bytes());
        assert_eq!(value.len(), DUMP_SIZE);
        assert_eq!(Dump::from_bytes(&value), c.dump);
    }

    #[test]
    fn ambiguous_fields_are_refused_by_name() {
        let mut d = dumps();
        // A second word that is 0/111/104 in the right dumps.
        for (c, v) in [(&mut d.refused, 111u32), (&mut d.reset, 104)] {
            c.dump.sock[600..604].copy_from_slice(&v.to_ne_bytes());
        }
        // A second copy of every local port.
        for c in [
            &mut d.established,
            &mut d.refused,
            &mut d.reset,
            &mut d.listener,
            &mut d.data_client,
            &mut d.data_server,
        ] {
            let port = c.port;
            c.dump.sock[1500..1502].copy_from_slice(&port.to_be_bytes());
        }
        d.ipv6.as_mut().unwrap().dump.sock[1500..1502].copy_from_slice(&43820u16.to_be_bytes());
        let problems = find(&d, NETNS).unwrap_err();
        assert_eq!(
            problems,
            [
                "sock.sk_err: 2 offsets hold 0, ECONNREFUSED and ECONNRESET in the established, \
                 refused and reset sockets (284, 600), so none can be trusted",
                "inet_sock.inet_sport: 2 offsets hold each socket's own local port (network \
                 order) (782, 1500), so none can be trusted",
            ]
        );
    }

    #[test]
    fn absent_fields_are_refused_by_name() {
        let mut d = dumps();
        d.reset.dump.sock[SK_ERR_AT..SK_ERR_AT + 4].copy_from_slice(&0u32.to_ne_bytes());
        d.refused.dump.sock[SPORT_AT..SPORT_AT + 2].fill(0);
        d.ipv6.as_mut().unwrap().dump.net.fill(0);
        let problems = find(&d, NETNS).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("sock.sk_err: no offset holds"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("inet_sock.inet_sport: no offset"),
            "{problems:?}"
        );
        assert_eq!(
            problems[2],
            "net.ns.inum: no offset holds this process's netns inode 4026531840 in every \
             socket's struct net"
        );
        // A port below INET_SPORT_FROM (sock_common) never counts.
        let mut d = dumps();
        for c in [
            &mut d.established,
            &mut d.refused,
            &mut d.reset,
            &mut d.data_client,
            &mut d.data_server,
        ] {
            c.dump.sock[SPORT_AT..SPORT_AT + 2].fill(0);
            let port = c.port;
            c.dump.sock[78..80].copy_from_slice(&port.to_be_bytes());
        }
        d.ipv6 = None;
        assert!(find_inet_sport(&d).unwrap_err().contains("no offset"));
    }

    #[test]
    fn bytes_acked_counts_the_clients_syn_and_fin() {
        // bytes_sent (1237 and 2749, the payload alone) is not it.
        assert_eq!(find_bytes_acked(&dumps()), Ok(ACKED_AT as u32));
        // Nowhere: the client's FIN not acked (FIN_WAIT1's 1238).
        let mut d = dumps();
        put(&mut d.data_client, ACKED_AT, DATA_SENT as u64 + 1);
        assert_eq!(
            find_bytes_acked(&d),
            Err(
                "tcp_sock.bytes_acked: no offset holds 1239 (SYN, 1237 bytes, FIN) in the \
                 data exchange's client and 2749 in its server end"
                    .into()
            )
        );
        // Twice: a copy of both counts elsewhere.
        let mut d = dumps();
        put(&mut d.data_client, 2000, DATA_SENT as u64 + 2);
        put(&mut d.data_server, 2000, DATA_ANSWERED as u64);
        let e = find_bytes_acked(&d).unwrap_err();
        assert!(
            e.starts_with("tcp_sock.bytes_acked: 2 offsets hold 1239")
                && e.contains("(1824, 2000)"),
            "{e}"
        );
    }

    #[test]
    fn bytes_received_counts_the_fin_not_the_syn() {
        assert_eq!(find_bytes_received(&dumps()), Ok(RECEIVED_AT as u32));
        // Nowhere: the server end without the FIN.
        let mut d = dumps();
        put(&mut d.data_server, RECEIVED_AT, DATA_SENT as u64);
        assert_eq!(
            find_bytes_received(&d),
            Err(
                "tcp_sock.bytes_received: no offset holds 2749 in the data exchange's client \
                 and 1238 (1237 bytes, FIN) in its server end"
                    .into()
            )
        );
        // Twice.
        let mut d = dumps();
        put(&mut d.data_client, 8, DATA_ANSWERED as u64);
        put(&mut d.data_server, 8, DATA_SENT as u64 + 1);
        let e = find_bytes_received(&d).unwrap_err();
        assert!(
            e.starts_with("tcp_sock.bytes_received: 2 offsets hold") && e.contains("(8, 1752)"),
            "{e}"
        );
    }

    #[test]
    fn sk_flags_compares_only_the_bits_conntrace_controls() {
        let mut d = dumps();
        // The refused and reset sockets' SOCK_DONE and the closed listener's SOCK_DEAD are
        // not conntrace's to say: either way the word is sk_flags.
        put(
            &mut d.refused,
            FLAGS_AT,
            FLAGS_REFUSED | SOCK_DONE | OTHER_FLAGS,
        );
        put(&mut d.reset, FLAGS_AT, FLAGS_RESET | SOCK_DONE);
        put(&mut d.listener, FLAGS_AT, FLAGS_LISTENER | SOCK_DEAD);
        assert_eq!(find_sk_flags(&d), Ok(FLAGS_AT as u32));
    }

    #[test]
    fn sk_flags_absent_or_ambiguous_is_refused_by_name() {
        // The server end without SOCK_DONE: nowhere.
        let mut d = dumps();
        put(&mut d.data_server, FLAGS_AT, FLAGS_DATA_SERVER);
        let e = find_sk_flags(&d).unwrap_err();
        assert!(
            e.starts_with("sock_common.skc_flags: no offset holds"),
            "{e}"
        );
        // An option conntrace did not set (SO_KEEPALIVE on the established socket): nowhere.
        let mut d = dumps();
        put(
            &mut d.established,
            FLAGS_AT,
            FLAGS_ESTABLISHED | SOCK_KEEPOPEN,
        );
        assert!(find_sk_flags(&d).unwrap_err().contains("no offset"));
        // A copy of every socket's flags: refused.
        let mut d = dumps();
        let mut all: Vec<&mut Case> = vec![
            &mut d.established,
            &mut d.refused,
            &mut d.reset,
            &mut d.listener,
            &mut d.data_client,
            &mut d.data_server,
        ];
        all.extend(d.ipv6.as_mut());
        for c in all {
            let word = u64_ne(&c.dump.sock, FLAGS_AT).unwrap();
            put(c, 3000, word);
        }
        let e = find_sk_flags(&d).unwrap_err();
        assert!(
            e.starts_with("sock_common.skc_flags: 2 offsets hold") && e.contains("(96, 3000)"),
            "{e}"
        );
    }

    #[test]
    fn each_socket_has_its_own_options() {
        let all = [
            FLAGS_ESTABLISHED,
            FLAGS_REFUSED,
            FLAGS_RESET,
            FLAGS_IPV6,
            FLAGS_LISTENER,
            FLAGS_DATA_CLIENT,
            FLAGS_DATA_SERVER | SOCK_DONE,
        ];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a & !OPEN_BITS, 0, "{a:#x}");
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn the_found_fields_need_all_dumps_of_the_data_exchange() {
        let mut d = dumps();
        d.data_server.dump.calls = 0;
        assert_eq!(
            find(&d, NETNS).unwrap_err(),
            ["the layout probe never saw the socket on local port 43801"]
        );
    }

    #[test]
    fn protocol_pointers_must_be_consistent() {
        let mut d = dumps();
        d.reset.dump.sock[SKC_PROT_AT..SKC_PROT_AT + 8].copy_from_slice(&1u64.to_ne_bytes());
        assert!(find_tcp_prots(&d)
            .unwrap_err()
            .contains("sock_common.skc_prot (40)"));
        let mut d = dumps();
        d.data_server.dump.sock[SKC_PROT_AT..SKC_PROT_AT + 8]
            .copy_from_slice(&TCPV6_PROT.to_ne_bytes());
        assert!(find_tcp_prots(&d).unwrap_err().contains("IPv4 sockets"));
        let mut d = dumps();
        let v6 = d.ipv6.as_mut().unwrap();
        v6.dump.sock[SKC_PROT_AT..SKC_PROT_AT + 8].copy_from_slice(&TCP_PROT.to_ne_bytes());
        assert!(find_tcp_prots(&d).unwrap_err().contains("IPv6"));
    }

    #[test]
    fn a_socket_the_probe_never_saw_is_named() {
        let mut d = dumps();
        d.refused.dump.calls = 0;
        assert_eq!(
            find(&d, NETNS).unwrap_err(),
            ["the layout probe never saw the socket on local port 43818"]
        );
    }

    /// The map value of `case` in `state` after `calls` changes.
    fn value(case: &Case, state: u32, calls: u32) -> Vec<u8> {
        let mut v = case.dump.sock.clone();
        v.extend(&case.dump.net);
        v.extend(state.to_ne_bytes());
        v.extend(calls.to_ne_bytes());
        v
    }

    #[test]
    fn a_dump_is_read_once_it_holds_the_last_state_twice() {
        let d = dumps();
        let all = [
            (SLOT_ESTABLISHED, &d.established, TCP_ESTABLISHED),
            (SLOT_REFUSED, &d.refused, TCP_CLOSE),
            (SLOT_RESET, &d.reset, TCP_CLOSE),
            (SLOT_LISTENER, &d.listener, TCP_CLOSE),
            (SLOT_DATA_CLIENT, &d.data_client, TCP_FIN_WAIT2),
            (SLOT_DATA_SERVER, &d.data_server, TCP_CLOSE_WAIT),
        ];
        let slots: Vec<(u32, u16, u32)> = all.iter().map(|(s, c, st)| (*s, c.port, *st)).collect();
        // The client: FIN_WAIT1, then a read that has FIN_WAIT2's state but FIN_WAIT1's
        // bytes (no FIN acked yet), then FIN_WAIT2 for good.
        let mut torn = d.data_client.clone();
        put(&mut torn, ACKED_AT, DATA_SENT as u64 + 1);
        let mut script: Vec<(u32, Vec<u8>)> = vec![
            (SLOT_DATA_CLIENT, value(&torn, 4, 3)),
            (SLOT_DATA_CLIENT, value(&torn, TCP_FIN_WAIT2, 3)),
            (SLOT_DATA_CLIENT, value(&d.data_client, TCP_FIN_WAIT2, 4)),
            (SLOT_DATA_CLIENT, value(&d.data_client, TCP_FIN_WAIT2, 4)),
        ];
        for (slot, case, state) in all {
            if slot != SLOT_DATA_CLIENT {
                script.push((slot, value(case, state, 3)));
                script.push((slot, value(case, state, 3)));
            }
        }
        let mut reads = Vec::new();
        let got = collect_dumps(&slots, WAIT, |slot, out| {
            let i = script
                .iter()
                .position(|(s, _)| *s == slot)
                .ok_or("read past the script")?;
            out.copy_from_slice(&script.remove(i).1);
            reads.push(slot);
            Ok(())
        })
        .unwrap();
        assert_eq!(reads.iter().filter(|&&s| s == SLOT_DATA_CLIENT).count(), 4);
        assert_eq!(got.data_client.dump.calls, 4);
        assert_eq!(find_bytes_acked(&got), Ok(ACKED_AT as u32));
        assert!(got.ipv6.is_none());
        // A state that never shows: named, with what was seen.
        let e = collect_dumps(
            &[(SLOT_LISTENER, 43800, TCP_CLOSE)],
            Duration::ZERO,
            |_, out| {
                out.copy_from_slice(&value(&d.listener, 10, 1));
                Ok(())
            },
        )
        .unwrap_err();
        assert!(
            e.starts_with("the socket on local port 43800 did not reach state 7")
                && e.ends_with("(last seen: state 10, 1 changes)"),
            "{e}"
        );
    }

    #[test]
    fn the_layout_object_holds_the_probe_and_its_maps_only() {
        let full = probe_object::parse(&embedded::probe_object_nobtf()).unwrap();
        let object = layout_object(&full).unwrap();
        assert_eq!(object.programs.len(), 1);
        assert_eq!(object.programs[0].section, SECTION);
        let names: Vec<_> = object.maps.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["layout_ports", "layout_dump"]);
        assert_eq!(object.maps[0].max_entries as usize, SLOTS);
        assert_eq!(object.maps[1].value_size as usize, DUMP_SIZE);
        assert_eq!(object.maps[1].max_entries as usize, SLOTS);
        // Only built-in fields: it loads before any is discovered.
        for spec in object.field_specs(|_| true) {
            assert!(crate::kernel::btf::builtin_field(spec).is_some(), "{spec}");
        }
    }
}
