//! Without BTF, the fields beyond the built-in sock_common table, found on the running kernel
//! before the main programs load: `sock.sk_err`, `inet_sock.inet_sport`, `net.ns.inum`, and
//! the TCP protocol structs (`&tcp_prot`, `&tcpv6_prot`) the socket-protocol check compares
//! `skc_prot` with.
//!
//! How: the layout probe (`kprobe/tcp_set_state`, src/bpf/layout.s) dumps the sockets
//! conntrace makes for the purpose, at each of their state changes (the last one wins):
//! (a) an IPv4 connection kept established (sk_err 0), (b) a connect refused on loopback
//! (CLOSE with ECONNREFUSED), (c) a connection the server resets (CLOSE with ECONNRESET) and,
//! with IPv6, (d) an IPv6 connection kept established. Pure functions then look for the one
//! offset where every dump holds what its socket must: a field found at no offset or at
//! several is refused by name. The self-test (`selftest`) proves the result afterwards.
//! Kernel pointers found here go into the `tcp_prots` map, never into the output.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
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
pub const SLOTS: usize = 5;
/// The slot of a listener that is closed unused (see `Dumps::listener`).
const LISTENER_SLOT: u32 = 4;

pub const SK_ERR: &str = "sock.sk_err";
pub const INET_SPORT: &str = "inet_sock.inet_sport";
pub const NS_INUM: &str = "net.ns.inum";
const SKC_PROT: &str = "sock_common.skc_prot";
/// Built-in offset of skc_prot (the table's, src/kernel/btf/builtin.rs).
const SKC_PROT_AT: usize = 40;
/// inet_sport lies in struct inet_sock after struct sock, so beyond sock_common's addresses.
const INET_SPORT_FROM: usize = 80;

const TCP_ESTABLISHED: u32 = 1;
const TCP_CLOSE: u32 = 7;
/// How long each socket's state change may take to show.
const WAIT: Duration = Duration::from_secs(2);
const ADVICE: &str = "use a kernel with BTF or pass --btf FILE";

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
}

impl Dumps {
    fn all(&self) -> impl Iterator<Item = &Case> {
        [
            &self.established,
            &self.refused,
            &self.reset,
            &self.listener,
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
    /// This process's netns inode, which every record must carry.
    pub netns: u32,
    /// &tcp_prot and &tcpv6_prot (0 without IPv6): for the `tcp_prots` map only.
    pub tcp_prots: [u64; 2],
}

impl Discovered {
    /// The fields for the resolver (`FieldSource::set_discovered`).
    pub fn fields(&self) -> [(&'static str, FieldOffset); 3] {
        let at = |offset, size| FieldOffset { offset, size };
        [
            (SK_ERR, at(self.sk_err, 4)),
            (INET_SPORT, at(self.inet_sport, 2)),
            (NS_INUM, at(self.ns_inum, 4)),
        ]
    }

    /// "discovered sock.sk_err at 284, inet_sock.inet_sport at 782, net.ns.inum at 136"
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

/// `sock.sk_err`: the 4-aligned offset that reads 0 in the established socket(s),
/// ECONNREFUSED in the refused one and ECONNRESET in the reset one.
pub fn find_sk_err(dumps: &Dumps) -> Result<u32, String> {
    let mut want = vec![
        (&dumps.established, 0),
        (&dumps.refused, libc::ECONNREFUSED as u32),
        (&dumps.reset, libc::ECONNRESET as u32),
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

/// &tcp_prot (the IPv4 sockets' skc_prot, all the same) and &tcpv6_prot (the IPv6 one's,
/// another; 0 without it).
pub fn find_tcp_prots(dumps: &Dumps) -> Result<[u64; 2], String> {
    let prot = |case: &Case| u64_ne(&case.dump.sock, SKC_PROT_AT).unwrap_or(0);
    let v4 = prot(&dumps.established);
    if v4 == 0 || [&dumps.refused, &dumps.reset].iter().any(|c| prot(c) != v4) {
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
    let full = probe_object::parse(embedded::PROBE_OBJECT_NOBTF)
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
    };
    let loaded = load::load(sys, &object, fields, &opts).map_err(|e| e.to_string())?;
    let netns =
        process::netns_inode().map_err(|e| fail(format!("cannot read /proc/self/ns/net: {e}")))?;
    let sockets = Sockets::bind(ipv6).map_err(|e| fail(format!("loopback sockets: {e}")))?;
    for (slot, port) in sockets.ports().into_iter().enumerate() {
        load::update_map(
            sys,
            &loaded,
            "layout_ports",
            &u32::from(port).to_ne_bytes(),
            &(slot as u32).to_ne_bytes(),
        )
        .map_err(|e| e.to_string())?;
    }
    let listener_port = sockets
        .idle
        .local_addr()
        .map_err(|e| fail(format!("loopback listener: {e}")))?
        .port();
    load::update_map(
        sys,
        &loaded,
        "layout_ports",
        &u32::from(listener_port).to_ne_bytes(),
        &LISTENER_SLOT.to_ne_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let program = loaded
        .program(SECTION)
        .ok_or_else(|| format!("program {SECTION} was not loaded"))?;
    let method = kprobes.method().map_err(|e| e.to_string())?;
    let attachment = attach::attach(sys, program, method).map_err(|e| fail(e.to_string()))?;
    let made = sockets.connect();
    let dumps = made.and_then(|held| {
        let dumps = read_dumps(sys, &loaded, &held, listener_port);
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
    /// The IPv6 server and client, when asked for and possible.
    ipv6: Option<(TcpListener, BoundSocket, Ipv6)>,
}

/// The sockets once connected, kept open until their dumps are read.
struct Held {
    ports: Vec<u16>,
    ipv6: bool,
    _streams: Vec<TcpStream>,
    _sockets: Vec<BoundSocket>,
    _listeners: Vec<TcpListener>,
}

fn port_of(socket: &BoundSocket) -> io::Result<u16> {
    socket.local_addr().map(|a| a.port())
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
            ipv6,
        })
    }

    /// The clients' local ports, in slot order: established, refused, reset, IPv6.
    fn ports(&self) -> Vec<u16> {
        let mut clients = vec![&self.established, &self.refused, &self.reset];
        clients.extend(self.ipv6.as_ref().map(|(_, client, _)| client));
        clients.iter().filter_map(|c| port_of(c).ok()).collect()
    }

    /// Makes the connections (see the module doc); each has had its last state change when
    /// this returns, as far as the sockets can tell.
    fn connect(self) -> Result<Held, String> {
        let ports = self.ports();
        if ports.len() < 3 {
            return Err("getsockname failed on a bound socket".into());
        }
        let server_addr = self.server.local_addr().map_err(|e| e.to_string())?;
        let closed_addr = self.closed.local_addr().map_err(|e| e.to_string())?;
        let mut streams = Vec::new();

        // (a) established, kept so.
        self.established
            .connect(server_addr)
            .map_err(|e| format!("connect to the loopback server: {e}"))?;
        streams.push(self.established.into_stream());
        streams.push(accept(&self.server)?);

        // (b) refused.
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
        drop(self.idle);

        // (d) IPv6, established.
        let mut listeners = vec![self.server];
        let mut ipv6 = false;
        if let Some((server, client, need)) = self.ipv6 {
            let connected = server
                .local_addr()
                .and_then(|addr| client.connect(addr))
                .map_err(|e| format!("IPv6 loopback connect: {e} (pass -4 to trace IPv4 only)"));
            match connected {
                Ok(()) => {
                    streams.push(client.into_stream());
                    streams.push(accept(&server)?);
                    ipv6 = true;
                }
                Err(e) if need == Ipv6::Required => return Err(e),
                Err(_) => {}
            }
            listeners.push(server);
        }
        let mut ports = ports;
        ports.truncate(3 + usize::from(ipv6));
        Ok(Held {
            ports,
            ipv6,
            _streams: streams,
            _sockets: vec![self.closed, self.refused],
            _listeners: listeners,
        })
    }
}

fn accept(server: &TcpListener) -> Result<TcpStream, String> {
    server
        .accept()
        .map(|(stream, _)| stream)
        .map_err(|e| format!("loopback accept: {e}"))
}

/// Reads each slot once its last state change shows (bounded by WAIT).
fn read_dumps(
    sys: &dyn Sys,
    loaded: &Loaded,
    held: &Held,
    listener_port: u16,
) -> Result<Dumps, String> {
    let map = loaded
        .map_fd("layout_dump")
        .ok_or("the layout probe has no layout_dump map")?;
    let want = [TCP_ESTABLISHED, TCP_CLOSE, TCP_CLOSE, TCP_ESTABLISHED];
    let deadline = Instant::now() + WAIT;
    let mut cases = Vec::new();
    let slots = held
        .ports
        .iter()
        .zip(want)
        .enumerate()
        .map(|(slot, (&port, state))| (slot as u32, port, state))
        .collect::<Vec<_>>();
    // The unused listener last, in its own slot: closed at the end of `connect`.
    let listener = (LISTENER_SLOT, listener_port, TCP_CLOSE);
    for (slot, port, state) in slots.into_iter().chain([listener]) {
        let mut value = vec![0u8; DUMP_SIZE];
        loop {
            sys.map_lookup(map, &slot.to_ne_bytes(), &mut value)
                .map_err(|e| format!("reading layout_dump: {e}"))?;
            let dump = Dump::from_bytes(&value);
            if dump.state == state && dump.calls > 0 {
                cases.push(Case { dump, port });
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the socket on local port {port} did not reach state {state} in the layout \
                     probe's dump within {} s (last seen: state {}, {} changes)",
                    WAIT.as_secs(),
                    dump.state,
                    dump.calls
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut cases = cases.into_iter();
    let mut next = || cases.next().ok_or("a dump is missing");
    Ok(Dumps {
        established: next()?,
        refused: next()?,
        reset: next()?,
        ipv6: if held.ipv6 { Some(next()?) } else { None },
        listener: next()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A made-up layout: sk_err at 284, inet_sport at 782, ns.inum at 136 of struct net.
    const SK_ERR_AT: usize = 284;
    const SPORT_AT: usize = 782;
    const INUM_AT: usize = 136;
    const NETNS: u32 = 4026531840;
    const TCP_PROT: u64 = 0xffff_ffff_8250_1234;
    const TCPV6_PROT: u64 = 0xffff_ffff_8260_5678;

    fn case(port: u16, err: u32, prot: u64) -> Case {
        let mut sock = vec![0u8; DUMP_SOCK];
        // sock_common's skc_num (host order) and a dport: neither may be taken for inet_sport.
        sock[14..16].copy_from_slice(&port.to_ne_bytes());
        sock[12..14].copy_from_slice(&40000u16.to_be_bytes());
        sock[SKC_PROT_AT..SKC_PROT_AT + 8].copy_from_slice(&prot.to_ne_bytes());
        sock[SK_ERR_AT..SK_ERR_AT + 4].copy_from_slice(&err.to_ne_bytes());
        sock[SPORT_AT..SPORT_AT + 2].copy_from_slice(&port.to_be_bytes());
        // Noise: another word that is ECONNREFUSED in one dump only.
        sock[1000..1004].copy_from_slice(&111u32.to_ne_bytes());
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

    fn dumps() -> Dumps {
        Dumps {
            established: case(43817, 0, TCP_PROT),
            refused: case(43818, 111, TCP_PROT),
            reset: case(43819, 104, TCP_PROT),
            ipv6: Some(case(43820, 0, TCPV6_PROT)),
            listener: case(43800, 0, TCP_PROT),
        }
    }

    #[test]
    fn without_ipv6_the_listener_tells_inet_sport_from_the_flow_cache() {
        // Every connected socket also holds its port in the cork's cached flow; the listener,
        // never routed, does not.
        const CORK_AT: usize = 946;
        let mut d = dumps();
        d.ipv6 = None;
        for c in [&mut d.established, &mut d.refused, &mut d.reset] {
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
                netns: NETNS,
                tcp_prots: [TCP_PROT, TCPV6_PROT],
            }
        );
        assert_eq!(found.offset("inet_sock.inet_sport"), Some(782));
        assert_eq!(found.offset("sock_common.skc_num"), None);
        assert_eq!(
            found.describe(),
            "discovered sock.sk_err at 284, inet_sock.inet_sport at 782, net.ns.inum at 136"
        );
        // Without IPv6 too, and tcpv6_prot is 0.
        let mut d = dumps();
        d.ipv6 = None;
        assert_eq!(find(&d, NETNS).unwrap().tcp_prots, [TCP_PROT, 0]);
    }

    #[test]
    fn a_dump_round_trips_through_the_map_value() {
        let c = case(43817, 111, TCP_PROT);
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
        for c in [&mut d.established, &mut d.refused, &mut d.reset] {
            c.dump.sock[SPORT_AT..SPORT_AT + 2].fill(0);
            let port = c.port;
            c.dump.sock[78..80].copy_from_slice(&port.to_be_bytes());
        }
        d.ipv6 = None;
        assert!(find_inet_sport(&d).unwrap_err().contains("no offset"));
    }

    #[test]
    fn protocol_pointers_must_be_consistent() {
        let mut d = dumps();
        d.reset.dump.sock[SKC_PROT_AT..SKC_PROT_AT + 8].copy_from_slice(&1u64.to_ne_bytes());
        assert!(find_tcp_prots(&d)
            .unwrap_err()
            .contains("sock_common.skc_prot (40)"));
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

    #[test]
    fn the_layout_object_holds_the_probe_and_its_maps_only() {
        let full = probe_object::parse(embedded::PROBE_OBJECT_NOBTF).unwrap();
        let object = layout_object(&full).unwrap();
        assert_eq!(object.programs.len(), 1);
        assert_eq!(object.programs[0].section, SECTION);
        let names: Vec<_> = object.maps.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["layout_ports", "layout_dump"]);
        assert_eq!(object.maps[1].value_size as usize, DUMP_SIZE);
        assert_eq!(object.maps[1].max_entries as usize, SLOTS);
        // Only built-in fields: it loads before any is discovered.
        for spec in object.field_specs(|_| true) {
            assert!(crate::kernel::btf::builtin_field(spec).is_some(), "{spec}");
        }
    }
}
