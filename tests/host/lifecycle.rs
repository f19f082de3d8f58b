//! Close records: connections between separate processes on loopback that carry known bytes
//! and end in known ways, and connections older than conntrace. Every field of every close
//! is checked, the owner (the process that connected or accepted, not the task that ran the
//! state change) included.

use crate::record::{self, Record};
use crate::scenario::{expect_json, Client, Server, Window};
use crate::tracer::Tracer;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// One `talk` connection: the client sends `up` bytes, the server `down`; each ends by its
/// `how` (first, second, reset). Returns both peers once they are done.
fn talk(
    family: &'static str,
    up: u64,
    down: u64,
    client_how: &str,
    server_how: &str,
) -> Result<(Tracer, Window, Client, Server), String> {
    talk_env(&[], family, up, down, client_how, server_how)
}

/// [`talk`] with conntrace's test knobs `env` set.
fn talk_env(
    env: &[(&str, &str)],
    family: &'static str,
    up: u64,
    down: u64,
    client_how: &str,
    server_how: &str,
) -> Result<(Tracer, Window, Client, Server), String> {
    let mut server = Server::talking(family, down, up, server_how)?;
    let tracer = Tracer::attached_env(&["--json", "-P", &server.port.to_string()], env)?;
    let window = Window::open();
    let client = Client::talk(family, server.port, up, down, client_how)?;
    server.accepted(&client)?;
    server.finish()?;
    Ok((tracer, window, client, server))
}

pub fn closed_by_the_client() -> Result<(), String> {
    let (tracer, window, client, server) = talk("4", 1237, 2749, "first", "second")?;
    let expected = [
        client.connect(),
        client.established(),
        client.accepted_by(&server),
        client.closed(1237, 2749, Some("local"), None),
        client.closed_by_server(&server, 2749, 1237, Some("remote"), None),
    ];
    expect_json(tracer, &window, &expected).map(drop)
}

pub fn closed_by_the_server_ipv6() -> Result<(), String> {
    let (tracer, window, client, server) = talk("6", 3001, 409, "second", "first")?;
    let expected = [
        client.connect(),
        client.established(),
        client.accepted_by(&server),
        client.closed(3001, 409, Some("remote"), None),
        client.closed_by_server(&server, 409, 3001, Some("local"), None),
    ];
    expect_json(tracer, &window, &expected).map(drop)
}

/// The classic tracepoint for the state changes, forced as on a kernel before 4.17 (this one
/// has tp_btf and socket storage, and uses them): the same exact records, a reset included.
pub fn through_the_classic_tracepoint() -> Result<(), String> {
    through_the_state_hook(
        "tracepoint",
        "tracepoint sock/inet_sock_set_state",
        811,
        1999,
    )
}

/// The raw tracepoint with its state in hash maps, forced as on a kernel before 5.11 or
/// without BTF: the same exact records.
pub fn through_the_raw_tracepoint() -> Result<(), String> {
    through_the_state_hook(
        "raw_tracepoint",
        "raw tracepoint inet_sock_set_state",
        813,
        1997,
    )
}

/// Records through the per-CPU perf rings, forced as on a kernel before 5.8: the same exact
/// records as through the BPF ring buffer.
pub fn through_the_perf_rings() -> Result<(), String> {
    through_env(
        &[("CONNTRACE_RING", "perf")],
        "records through perf rings (",
        611,
        1499,
    )
}

/// The BPF ring buffer, which this kernel has: the default.
pub fn through_the_bpf_ring_buffer() -> Result<(), String> {
    through_env(&[], "records through the BPF ring buffer (", 97, 3001)
}

fn through_the_state_hook(kind: &str, named: &str, up: u64, down: u64) -> Result<(), String> {
    let named = format!("state: {named},");
    through_env(&[("CONNTRACE_STATE_HOOK", kind)], &named, up, down)
}

/// A connection's whole life traced with `env`, whose "attached" line must say `named`.
fn through_env(env: &[(&str, &str)], named: &str, up: u64, down: u64) -> Result<(), String> {
    let (tracer, window, client, server) = talk_env(env, "6", up, down, "reset", "second")?;
    let attached = tracer.attached_line().unwrap_or_default();
    if !attached.contains(named) {
        return Err(format!("not {named:?}: {attached}"));
    }
    let expected = [
        client.connect(),
        client.established(),
        client.accepted_by(&server),
        client.closed(up, down, Some("local"), None),
        client.closed_by_server(&server, down, up, Some("remote"), Some("ECONNRESET")),
    ];
    expect_json(tracer, &window, &expected).map(drop)
}

/// The client aborts (an RST): its end closed by itself without an error, the server's end
/// reset by the peer.
pub fn reset_by_the_client() -> Result<(), String> {
    let (tracer, window, client, server) = talk("4", 700, 300, "reset", "second")?;
    let expected = [
        client.connect(),
        client.established(),
        client.accepted_by(&server),
        client.closed(700, 300, Some("local"), None),
        client.closed_by_server(&server, 300, 700, Some("remote"), Some("ECONNRESET")),
    ];
    expect_json(tracer, &window, &expected).map(drop)
}

/// `up` bytes one way and `down` the other on an established pair, read in full.
fn exchange(
    client: &mut TcpStream,
    server: &mut TcpStream,
    up: usize,
    down: usize,
) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    client.write_all(&vec![b'u'; up]).map_err(io)?;
    server.read_exact(&mut vec![0; up]).map_err(io)?;
    server.write_all(&vec![b'd'; down]).map_err(io)?;
    client.read_exact(&mut vec![0; down]).map_err(io)?;
    Ok(())
}

/// The closes of one connection, client end first, from a tracer that saw nothing else of it.
fn closes(tracer: Tracer, client_port: u16, count: usize) -> Result<Vec<Record>, String> {
    tracer.wait_for(Duration::from_secs(10), |lines| lines.len() >= count);
    std::thread::sleep(Duration::from_millis(200));
    let finished = tracer.interrupt()?;
    let records = record::parse_lines(&finished.stdout)?;
    if records.len() != count {
        return Err(format!("want {count} records, got {records:?}"));
    }
    let (mut client, server): (Vec<Record>, Vec<Record>) =
        records.into_iter().partition(|r| r.lport == client_port);
    client.extend(server);
    Ok(client)
}

/// What a close must say beyond its ends.
struct Want {
    owner: Option<u32>,
    duration: bool,
    sent: Option<u64>,
    received: u64,
    closed_by: &'static str,
}

fn check_close(got: &Record, lport: u16, rport: u16, want: &Want) -> Result<(), String> {
    let mut wrong = Vec::new();
    if got.event != "close" || got.lport != lport || got.rport != rport {
        wrong.push(format!("want a close of {lport} -> {rport}"));
    }
    if got.pid != want.owner || got.tid != want.owner {
        wrong.push(format!(
            "owner pid/tid {:?}/{:?}, want {:?}",
            got.pid, got.tid, want.owner
        ));
    }
    let owner_keys = [got.uid.is_some(), got.comm.is_some(), got.cgroup.is_some()];
    if owner_keys != [want.owner.is_some(); 3] {
        wrong.push("uid, comm and cgroup must be there exactly when the owner is".into());
    }
    if got.duration_us.is_some() != want.duration {
        wrong.push(format!("duration_us {:?}", got.duration_us));
    }
    if got.bytes_sent != want.sent || got.bytes_received != Some(want.received) {
        wrong.push(format!(
            "bytes {:?}/{:?}, want {:?}/{}",
            got.bytes_sent, got.bytes_received, want.sent, want.received
        ));
    }
    if got.closed_by.as_deref() != Some(want.closed_by) || got.error.is_some() {
        wrong.push(format!(
            "closed_by {:?} error {:?}, want {} and null",
            got.closed_by, got.error, want.closed_by
        ));
    }
    if got.latency_us.is_some() || got.netns == 0 || got.laddr != "127.0.0.1" {
        wrong.push("latency_us must be null, netns known, laddr 127.0.0.1".into());
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{got:?}: {}", wrong.join("; ")))
    }
}

/// Closes the client end, then (once the FIN is in) the server end.
fn close_in_order(client: TcpStream, server: TcpStream) {
    drop(client);
    std::thread::sleep(Duration::from_millis(100));
    drop(server);
}

/// Established and exchanged before conntrace started: both closes come, with no owner, no
/// duration and no bytes_sent (the probes cannot tell a SYN from payload), bytes_received
/// exact, closed_by from the states.
pub fn connection_older_than_conntrace() -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let (mut server, _) = listener.accept().map_err(|e| e.to_string())?;
    exchange(&mut client, &mut server, 555, 333)?;
    let cport = client.local_addr().map_err(|e| e.to_string())?.port();
    let tracer = Tracer::attached(&["--json", "-P", &port.to_string()])?;
    close_in_order(client, server);
    let records = closes(tracer, cport, 2)?;
    let unknown = |sent, received, closed_by| Want {
        owner: None,
        duration: false,
        sent,
        received,
        closed_by,
    };
    check_close(&records[0], cport, port, &unknown(None, 333, "local"))?;
    check_close(&records[1], port, cport, &unknown(None, 555, "remote"))
}

/// Established before conntrace started, accepted after: the accepting process owns the
/// server's end, whose bytes are exact both ways (an accepted socket never sent the SYN);
/// the duration is still unknown. The client's end stays unknown.
pub fn connection_accepted_after_start() -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    let cport = client.local_addr().map_err(|e| e.to_string())?.port();
    let tracer = Tracer::attached(&["--json", "-e", "close", "-P", &port.to_string()])?;
    let (mut server, _) = listener.accept().map_err(|e| e.to_string())?;
    exchange(&mut client, &mut server, 100, 200)?;
    close_in_order(client, server);
    let records = closes(tracer, cport, 2)?;
    // SAFETY: getpid has no preconditions.
    let us = unsafe { libc::getpid() } as u32;
    check_close(
        &records[0],
        cport,
        port,
        &Want {
            owner: None,
            duration: false,
            sent: None,
            received: 200,
            closed_by: "local",
        },
    )?;
    check_close(
        &records[1],
        port,
        cport,
        &Want {
            owner: Some(us),
            duration: false,
            sent: Some(200),
            received: 100,
            closed_by: "remote",
        },
    )
}
