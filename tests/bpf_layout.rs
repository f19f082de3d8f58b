//! The layouts src/bpf/*.s shares with Rust, checked without root: every `EV_*` (WireEvent),
//! `CFG_*` (FilterConfig), `NEST_*` (NestSlot), `KIND_*` and `DROP_*` (LossReason::DROPS)
//! constant the probes use, and the sockaddr, socket and bpf() (`BPF_*`) constants they take
//! from the kernel's ABI, is evaluated with
//! bpf-asm, as build.rs assembles them, and compared with `offset_of!`, `size_of`, the Rust
//! constants and libc's. A constant of those families in the .s files that this test
//! does not know fails too, so a new one gets its Rust counterpart here.

use conntrace::app::reader;
use conntrace::session::discover;
use conntrace::session::event::{self, LossReason, WireEvent};
use conntrace::session::filter::FilterConfig;
use conntrace::session::nesting::NestSlot;
use std::collections::HashMap;
use std::mem::{offset_of, size_of, size_of_val};
use std::path::{Path, PathBuf};

/// The prefixes whose constants copy a Rust definition.
const SHARED: [&str; 14] = [
    "BPF_",
    "EV_",
    "NEST_",
    "CLOSE_",
    "TCP_",
    "LAYOUT_",
    "CALL_",
    "CFG_",
    "KIND_",
    "DROP_",
    "SIN_",
    "SIN6_",
    "SOCKADDR_",
    "AF_",
];

/// What each shared constant must be, with the Rust expression it comes from.
fn expected() -> Vec<(&'static str, i128, String)> {
    let ev = |name: &'static str, field: &str, offset: usize, add: usize, what: &str| {
        let rust = if what.is_empty() {
            format!("offset_of!(WireEvent, {field})")
        } else {
            format!("offset_of!(WireEvent, {field}) + {what}")
        };
        (name, (offset + add) as i128, rust)
    };
    // Both ends are a sockaddr_in or sockaddr_in6; the port sits at the same offset in both.
    let port = offset_of!(libc::sockaddr_in, sin_port);
    assert_eq!(port, offset_of!(libc::sockaddr_in6, sin6_port));
    let addr4 = offset_of!(libc::sockaddr_in, sin_addr);
    let addr6 = offset_of!(libc::sockaddr_in6, sin6_addr);
    let local = offset_of!(WireEvent, local);
    let remote = offset_of!(WireEvent, remote);
    let mut table = vec![
        ev("EV_TS", "ts_ns", offset_of!(WireEvent, ts_ns), 0, ""),
        ev("EV_SOCK", "sock", offset_of!(WireEvent, sock), 0, ""),
        ev(
            "EV_LATENCY",
            "latency_ns",
            offset_of!(WireEvent, latency_ns),
            0,
            "",
        ),
        ev("EV_CGROUP", "cgroup", offset_of!(WireEvent, cgroup), 0, ""),
        ev("EV_PID", "pid", offset_of!(WireEvent, pid), 0, ""),
        ev("EV_TID", "tid", offset_of!(WireEvent, tid), 0, ""),
        ev("EV_UID", "uid", offset_of!(WireEvent, uid), 0, ""),
        ev("EV_NETNS", "netns", offset_of!(WireEvent, netns), 0, ""),
        ev("EV_KIND", "kind", offset_of!(WireEvent, kind), 0, ""),
        ev(
            "EV_OLD_STATE",
            "old_state",
            offset_of!(WireEvent, old_state),
            0,
            "",
        ),
        ev(
            "EV_CLOSE_FLAGS",
            "close_flags",
            offset_of!(WireEvent, close_flags),
            0,
            "",
        ),
        ev(
            "EV_BYTES_ACKED",
            "bytes_acked",
            offset_of!(WireEvent, bytes_acked),
            0,
            "",
        ),
        ev(
            "EV_BYTES_RECEIVED",
            "bytes_received",
            offset_of!(WireEvent, bytes_received),
            0,
            "",
        ),
        ev("EV_ERROR", "error", offset_of!(WireEvent, error), 0, ""),
        ev("EV_COMM", "comm", offset_of!(WireEvent, comm), 0, ""),
        ev("EV_LOCAL", "local", local, 0, ""),
        ev("EV_LOCAL_PORT", "local", local, port, "sin_port"),
        ev("EV_LOCAL_ADDR4", "local", local, addr4, "sin_addr"),
        ev("EV_LOCAL_ADDR6", "local", local, addr6, "sin6_addr"),
        ev("EV_REMOTE", "remote", remote, 0, ""),
        ev("EV_REMOTE_PORT", "remote", remote, port, "sin_port"),
        ev("EV_REMOTE_ADDR4", "remote", remote, addr4, "sin_addr"),
        ev("EV_REMOTE_ADDR6", "remote", remote, addr6, "sin6_addr"),
        ev(
            "EV_REMOTE_ADDR6_W1",
            "remote",
            remote,
            addr6 + 4,
            "sin6_addr + 4",
        ),
        ev(
            "EV_REMOTE_ADDR6_W2",
            "remote",
            remote,
            addr6 + 8,
            "sin6_addr + 8",
        ),
        (
            "EV_SIZE",
            size_of::<WireEvent>() as i128,
            "size_of::<WireEvent>()".into(),
        ),
    ];
    let cfg = |name: &'static str, field: &str, offset: usize| {
        (
            name,
            offset as i128,
            format!("offset_of!(FilterConfig, {field})"),
        )
    };
    table.extend([
        cfg("CFG_PID", "pid", offset_of!(FilterConfig, pid)),
        cfg("CFG_UID", "uid", offset_of!(FilterConfig, uid)),
        cfg("CFG_FAMILY", "family", offset_of!(FilterConfig, family)),
        cfg(
            "CFG_PORT_FILTER",
            "port_filter",
            offset_of!(FilterConfig, port_filter),
        ),
        cfg("CFG_CGROUP", "cgroup", offset_of!(FilterConfig, cgroup)),
        (
            "CFG_SIZE",
            size_of::<FilterConfig>() as i128,
            "size_of::<FilterConfig>()".into(),
        ),
    ]);
    let kind = |name: &'static str, value: u8| (name, value as i128, format!("event::{name}"));
    table.extend([
        kind("KIND_CONNECT", event::KIND_CONNECT),
        kind("KIND_ESTABLISHED", event::KIND_ESTABLISHED),
        kind("KIND_FAILED", event::KIND_FAILED),
        kind("KIND_ACCEPT", event::KIND_ACCEPT),
        kind("KIND_CLOSE", event::KIND_CLOSE),
        kind("CLOSE_OWNER", event::CLOSE_OWNER),
        kind("CLOSE_DURATION", event::CLOSE_DURATION),
        kind("CLOSE_BASE", event::CLOSE_BASE),
        kind("CLOSE_PEER_FIN", event::CLOSE_PEER_FIN),
    ]);
    let state = |name: &'static str, value: u8| {
        (
            name,
            value as i128,
            format!("event::tcp_state::{}", &name[4..]),
        )
    };
    use conntrace::kernel::abi;
    table.extend([
        ("BPF_ANY", abi::BPF_ANY as i128, "abi::BPF_ANY".into()),
        (
            "BPF_SK_STORAGE_GET_F_CREATE",
            abi::BPF_SK_STORAGE_GET_F_CREATE as i128,
            "abi::BPF_SK_STORAGE_GET_F_CREATE".into(),
        ),
        (
            "BPF_F_NO_PREALLOC",
            abi::BPF_F_NO_PREALLOC as i128,
            "abi::BPF_F_NO_PREALLOC".into(),
        ),
        (
            "BPF_RB_NO_WAKEUP",
            abi::BPF_RB_NO_WAKEUP as i128,
            "abi::BPF_RB_NO_WAKEUP".into(),
        ),
        (
            "BPF_RB_FORCE_WAKEUP",
            abi::BPF_RB_FORCE_WAKEUP as i128,
            "abi::BPF_RB_FORCE_WAKEUP".into(),
        ),
        (
            "BPF_RB_AVAIL_DATA",
            abi::BPF_RB_AVAIL_DATA as i128,
            "abi::BPF_RB_AVAIL_DATA".into(),
        ),
        (
            "BPF_RB_RING_SIZE",
            abi::BPF_RB_RING_SIZE as i128,
            "abi::BPF_RB_RING_SIZE".into(),
        ),
    ]);
    use event::tcp_state::*;
    table.extend([
        state("TCP_ESTABLISHED", ESTABLISHED),
        state("TCP_SYN_SENT", SYN_SENT),
        state("TCP_SYN_RECV", SYN_RECV),
        state("TCP_FIN_WAIT1", FIN_WAIT1),
        state("TCP_FIN_WAIT2", FIN_WAIT2),
        state("TCP_CLOSE", CLOSE),
        state("TCP_CLOSE_WAIT", CLOSE_WAIT),
        state("TCP_LAST_ACK", LAST_ACK),
        state("TCP_LISTEN", LISTEN),
        state("TCP_CLOSING", CLOSING),
        (
            "TCP_WAS_ESTABLISHED",
            WAS_ESTABLISHED as i128,
            "event::tcp_state::WAS_ESTABLISHED".into(),
        ),
    ]);
    let drop = |name: &'static str, reason: LossReason| match LossReason::DROPS
        .iter()
        .position(|&r| r == reason)
    {
        Some(i) => (
            name,
            i as i128,
            format!("LossReason::{reason:?}'s index in LossReason::DROPS"),
        ),
        // Never equal to a key: reported as a mismatch.
        None => (name, -1, format!("LossReason::{reason:?}, not in DROPS")),
    };
    table.extend([
        drop("DROP_RING_FULL", LossReason::RingFull),
        drop("DROP_RETURN_MISSED", LossReason::ReturnMissed),
        drop("DROP_STATE_FULL", LossReason::StateFull),
        (
            "DROP_COUNT",
            LossReason::DROPS.len() as i128,
            "LossReason::DROPS.len()".into(),
        ),
    ]);
    // The `nest` map's value: user space reads the rescued runs at exit.
    let nest = |name: &'static str, value: usize, field: &str| {
        (
            name,
            value as i128,
            format!("offset_of!(NestSlot, {field})"),
        )
    };
    table.extend([
        nest("NEST_SOCK", offset_of!(NestSlot, sock), "sock"),
        nest("NEST_STATES", offset_of!(NestSlot, states), "states"),
        nest("NEST_SOCK2", offset_of!(NestSlot, sock2), "sock2"),
        nest("NEST_STATES2", offset_of!(NestSlot, states2), "states2"),
        nest("NEST_RESCUED", offset_of!(NestSlot, rescued), "rescued"),
        nest(
            "NEST_OWNER_SOCK",
            offset_of!(NestSlot, owner_sock),
            "owner_sock",
        ),
        nest(
            "NEST_OWNER_STATES",
            offset_of!(NestSlot, owner_states),
            "owner_states",
        ),
        (
            "NEST_SIZE",
            size_of::<NestSlot>() as i128,
            "size_of::<NestSlot>()".into(),
        ),
    ]);
    // The `connecting` entry: user space reads the sockaddr and the start at exit.
    table.extend([
        ("CALL_HANDLE", 0, "the entry's first field".to_string()),
        (
            "CALL_ADDR",
            reader::CALL_ADDR as i128,
            "reader::CALL_ADDR".into(),
        ),
        (
            "CALL_START",
            reader::CALL_START as i128,
            "reader::CALL_START".into(),
        ),
        (
            "CALL_SIZE",
            reader::CALL_START as i128 + 8,
            "reader::CALL_START + 8".into(),
        ),
    ]);
    // A `layout_dump` slot (src/bpf/layout.s), which session::discover reads.
    let layout = |name: &'static str, value: usize, how: &str| {
        (name, value as i128, format!("discover::{how}"))
    };
    table.extend([
        layout("LAYOUT_SOCK", discover::DUMP_SOCK, "DUMP_SOCK"),
        layout("LAYOUT_NET", discover::DUMP_NET, "DUMP_NET"),
        layout("LAYOUT_STATE", discover::DUMP_STATE, "DUMP_STATE"),
        layout("LAYOUT_CALLS", discover::DUMP_CALLS, "DUMP_CALLS"),
        layout("LAYOUT_SIZE", discover::DUMP_SIZE, "DUMP_SIZE"),
        layout("LAYOUT_SLOTS", discover::SLOTS, "SLOTS"),
    ]);
    let libc = |name: &'static str, value: i128, how: &str| (name, value, format!("libc::{how}"));
    table.extend([
        libc("SIN_PORT", port as i128, "sockaddr_in's sin_port"),
        libc("SIN_ADDR", addr4 as i128, "sockaddr_in's sin_addr"),
        libc("SIN6_ADDR", addr6 as i128, "sockaddr_in6's sin6_addr"),
        libc(
            "SOCKADDR_SIZE",
            size_of::<libc::sockaddr_in6>() as i128,
            "sockaddr_in6's size",
        ),
        libc("AF_INET", libc::AF_INET as i128, "AF_INET"),
        libc("AF_INET6", libc::AF_INET6 as i128, "AF_INET6"),
        libc("IPPROTO_TCP", libc::IPPROTO_TCP as i128, "IPPROTO_TCP"),
    ]);
    // Each end holds a whole sockaddr_in6 (and so a sockaddr_in).
    let wire: WireEvent = bytemuck::Zeroable::zeroed();
    assert_eq!(size_of_val(&wire.local), size_of::<libc::sockaddr_in6>());
    assert_eq!(size_of_val(&wire.remote), size_of::<libc::sockaddr_in6>());
    table
}

fn bpf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bpf")
}

/// The .s files of src/bpf in file-name order, as build.rs reads them.
fn read_sources() -> Vec<(String, String)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(bpf_dir())
        .expect("list src/bpf")
        .map(|e| e.expect("read src/bpf").path())
        .filter(|p| p.extension().is_some_and(|e| e == "s") && p.is_file())
        .collect();
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    paths
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (
                format!("src/bpf/{}", p.file_name().unwrap().to_string_lossy()),
                text,
            )
        })
        .collect()
}

/// Constants and maps of the unit build.rs assembles with the variant `prelude` and the ring
/// prelude `ring`; arch.s as for x86_64 (its values matter to no shared layout).
struct Unit {
    constants: Vec<(String, i128)>,
    program: bpf_asm::Program,
    /// The files, to say where a constant is defined.
    files: Vec<(String, String)>,
}

fn unit(prelude: &str, ring: &str) -> Unit {
    let arch = ".equ PT_REGS_PARM1, 112\n.equ PT_REGS_PARM2, 104\n\
                .equ PT_REGS_PARM3, 96\n.equ PT_REGS_RC, 80\n";
    let read = |dir: &str, file: &str| {
        let path = bpf_dir().join(dir).join(file);
        (
            format!("src/bpf/{dir}/{file}"),
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
    };
    let mut files = vec![
        ("arch.s".to_string(), arch.to_string()),
        read("variants", prelude),
        read("rings", ring),
    ];
    files.extend(read_sources());
    let sources: Vec<bpf_asm::Source> = files
        .iter()
        .map(|(name, text)| bpf_asm::Source { name, text })
        .collect();
    let constants = bpf_asm::constants(&sources).unwrap_or_else(|e| panic!("{e}"));
    let program = bpf_asm::parse(&sources).unwrap_or_else(|e| panic!("{e}"));
    Unit {
        constants,
        program,
        files,
    }
}

/// `file:line` of `.equ NAME,` (or `.set`), for the message.
fn defined_at(files: &[(String, String)], name: &str) -> String {
    for (file, text) in files {
        for (i, line) in text.lines().enumerate() {
            let mut words = line.split_whitespace();
            if matches!(words.next(), Some(".equ" | ".set"))
                && words.next().map(|w| w.trim_end_matches(',')) == Some(name)
            {
                return format!("{file}:{}", i + 1);
            }
        }
    }
    "src/bpf".to_string()
}

fn check(prelude: &str, ring: &str) {
    let unit = unit(prelude, ring);
    let values: HashMap<&str, i128> = unit
        .constants
        .iter()
        .map(|(n, v)| (n.as_str(), *v))
        .collect();
    let expected = expected();
    let mut problems = Vec::new();
    for (name, rust, how) in &expected {
        match values.get(name) {
            Some(&asm) if asm == *rust => {}
            Some(&asm) => problems.push(format!(
                "{name}: {} says {asm}, Rust says {rust} ({how})",
                defined_at(&unit.files, name)
            )),
            None => problems.push(format!(
                "{name}: not defined in src/bpf/*.s, Rust has {rust} ({how})"
            )),
        }
    }
    for (name, asm) in &unit.constants {
        let shared = SHARED.iter().any(|p| name.starts_with(p));
        if shared && !expected.iter().any(|(n, _, _)| n == name) {
            problems.push(format!(
                "{name}: {} defines it ({asm}) but no Rust definition is checked: \
                 add it to expected() in tests/bpf_layout.rs",
                defined_at(&unit.files, name)
            ));
        }
    }
    let map = |name: &str| {
        unit.program
            .maps
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no map `{name}` in src/bpf"))
    };
    let drops = map("drops");
    if drops.max_entries as usize != LossReason::DROPS.len() {
        problems.push(format!(
            "map drops: max_entries {} in src/bpf/common.s, LossReason::DROPS.len() {}",
            drops.max_entries,
            LossReason::DROPS.len()
        ));
    }
    let config = map("config");
    if config.value_size as usize != size_of::<FilterConfig>() {
        problems.push(format!(
            "map config: value_size {} in src/bpf/common.s, size_of::<FilterConfig>() {}",
            config.value_size,
            size_of::<FilterConfig>()
        ));
    }
    assert!(
        problems.is_empty(),
        "src/bpf (with variants/{prelude} and rings/{ring}) disagrees with the Rust definitions:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn btf_probes_share_the_rust_layouts() {
    check("btf.s", "ringbuf.s");
    check("btf.s", "perf.s");
}

#[test]
fn nobtf_probes_share_the_rust_layouts() {
    check("nobtf.s", "ringbuf.s");
    check("nobtf.s", "perf.s");
}
