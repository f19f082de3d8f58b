//! Writes the checked-in seed corpora that come from conntrace itself: the embedded probe
//! object (what build.rs assembled), perf ring contents built the way the kernel lays them out,
//! and command lines. Rerun after changing the probes or the event layout:
//!
//!     cd fuzz && cargo run --example make_seeds
//!
//! The BTF seeds come from the running kernel instead: see seeds/btf_slice.py.

use std::fs;
use std::path::{Path, PathBuf};

use conntrace::kernel::sys::fake::{perf_lost_record, perf_record_header, perf_sample_record};
use conntrace::session::event::{
    tcp_state, WireEvent, CLOSE_BASE, CLOSE_DURATION, CLOSE_OWNER, CLOSE_PEER_FIN, KIND_ACCEPT,
    KIND_CLOSE, KIND_CONNECT, KIND_ESTABLISHED, KIND_FAILED,
};

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    probe_objects(&corpus.join("probe_object"))?;
    perf_records(&corpus.join("perf_record"))?;
    command_lines(&corpus.join("cli_parse"))?;
    Ok(())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let path: PathBuf = dir.join(name);
    fs::write(&path, bytes)?;
    println!("{}: {} bytes", path.display(), bytes.len());
    Ok(())
}

fn probe_objects(dir: &Path) -> std::io::Result<()> {
    write(
        dir,
        "probes.o",
        &conntrace::session::embedded::probe_object(),
    )?;
    let testdata =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/kernel/probe_object/testdata");
    for name in ["bpf-asm-fixture.o", "llvm-mc-map-load.o"] {
        write(dir, name, &fs::read(testdata.join(name))?)?;
    }
    Ok(())
}

fn sockaddr_in(port: u16, ip: [u8; 4]) -> [u8; 28] {
    let mut sa = [0u8; 28];
    sa[..2].copy_from_slice(&2u16.to_ne_bytes());
    sa[2..4].copy_from_slice(&port.to_be_bytes());
    sa[4..8].copy_from_slice(&ip);
    sa
}

fn sockaddr_in6(port: u16, ip: [u8; 16]) -> [u8; 28] {
    let mut sa = [0u8; 28];
    sa[..2].copy_from_slice(&10u16.to_ne_bytes());
    sa[2..4].copy_from_slice(&port.to_be_bytes());
    sa[8..24].copy_from_slice(&ip);
    sa
}

fn event(kind: u8, local: [u8; 28], remote: [u8; 28]) -> WireEvent {
    let mut comm = [0u8; 16];
    comm[..4].copy_from_slice(b"curl");
    WireEvent {
        ts_ns: 5_000_000_123,
        sock: 0xffff_8880_1234_5600,
        latency_ns: if kind == KIND_ESTABLISHED { 250_000 } else { 0 },
        cgroup: 1,
        pid: 4242,
        tid: 4243,
        uid: 1000,
        netns: 4_026_531_840,
        kind,
        old_state: 0,
        close_flags: 0,
        _pad: 0,
        error: if kind == KIND_FAILED { 111 } else { 0 },
        comm,
        local,
        remote,
        bytes_acked: 0,
        bytes_received: 0,
    }
}

fn sample(ev: &WireEvent) -> Vec<u8> {
    perf_sample_record(bytemuck::bytes_of(ev))
}

fn perf_records(dir: &Path) -> std::io::Result<()> {
    let v4_local = sockaddr_in(40000, [10, 0, 0, 2]);
    let v4_remote = sockaddr_in(443, [93, 184, 216, 34]);
    let mut mapped = [0u8; 16];
    mapped[10..12].copy_from_slice(&[0xff, 0xff]);
    mapped[12..].copy_from_slice(&[127, 0, 0, 1]);
    let v6_local = sockaddr_in6(8080, mapped);
    let v6_remote = sockaddr_in6(
        51000,
        [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );

    write(
        dir,
        "connect_v4",
        &sample(&event(KIND_CONNECT, v4_local, v4_remote)),
    )?;
    write(
        dir,
        "accept_v4_mapped",
        &sample(&event(KIND_ACCEPT, v6_local, v6_remote)),
    )?;
    write(dir, "lost", &perf_lost_record(1, 17))?;

    // Closes: one its owner ended after the peer's FIN, with its start and byte base; one
    // older than the probes (no owner, no flags) that the peer reset.
    let mut owned = event(KIND_CLOSE, v4_local, v4_remote);
    owned.old_state = tcp_state::LAST_ACK;
    owned.close_flags = CLOSE_OWNER | CLOSE_DURATION | CLOSE_BASE | CLOSE_PEER_FIN;
    owned.latency_ns = 1_500_000_000;
    owned.bytes_acked = 2750;
    owned.bytes_received = 1238;
    write(dir, "close_v4_owned", &sample(&owned))?;
    let mut unowned = event(KIND_CLOSE, v6_local, v6_remote);
    unowned.old_state = tcp_state::ESTABLISHED;
    (unowned.pid, unowned.tid, unowned.uid, unowned.comm) = (0, 0, 0, [0; 16]);
    unowned.error = 104;
    unowned.bytes_acked = 1 << 40;
    write(dir, "close_v6_reset_unowned", &sample(&unowned))?;

    // A stretch of ring as the reader sees it: outcome events, a loss, a record type we skip.
    let mut ring = sample(&event(KIND_ESTABLISHED, v4_local, v4_remote));
    ring.extend(perf_lost_record(1, 3));
    ring.extend(sample(&event(KIND_FAILED, v6_remote, v6_remote)));
    let mut unknown = perf_record_header(3, 16);
    unknown.resize(16, 0);
    ring.extend(unknown);
    ring.extend(sample(&event(KIND_CONNECT, v6_local, v4_remote)));
    write(dir, "ring_stretch", &ring)?;
    Ok(())
}

fn command_lines(dir: &Path) -> std::io::Result<()> {
    let lines: &[(&str, &[&str])] = &[
        ("no_args", &[""]),
        ("json_pid", &["-j", "-p", "1234"]),
        ("ports_family", &["-P", "80,443", "-4", "-t"]),
        ("clustered", &["-tjp1234", "-e", "connect,failed"]),
        (
            "failed_duration",
            &["--failed", "--duration", "1.5", "-n", "10"],
        ),
        (
            "long_equals",
            &["--backend=tracepoint", "--pages=128", "--uid=0"],
        ),
        ("check_btf", &["check", "--btf", "/sys/kernel/btf/vmlinux"]),
        ("btf_none", &["--btf", "none", "-6", "--events", "accept"]),
        ("double_dash", &["-j", "--", "extra"]),
        ("help_version", &["-h", "-V"]),
    ];
    for (name, args) in lines {
        write(dir, name, args.join("\0").as_bytes())?;
    }
    Ok(())
}
