//! The tests. Each one isolates its own traffic with -P on ports its servers just got from the
//! kernel (and -p where it matters): other tracers and tests may run on this kernel meanwhile.

use crate::peer::{RefusingPort, ESCAPE_COMM};
use crate::record::{self, Expected};
use crate::scenario::{collect, expect_json, Client, Server, Window, ECONNREFUSED, EINPROGRESS};
use crate::tracer::{self, Tracer};
use std::time::{Duration, Instant};

pub type Test = fn() -> Result<(), String>;

pub const ALL: &[(&str, Test)] = &[
    (
        "containers_runtime_cgroups_name_container_and_pod",
        crate::containers::runtime_cgroups_name_container_and_pod,
    ),
    (
        "containers_filter_cgroup_in_the_kernel",
        crate::containers::filter_cgroup_in_the_kernel,
    ),
    (
        "containers_filter_container_prefix",
        crate::containers::filter_container_prefix,
    ),
    (
        "containers_text_column",
        crate::containers::text_container_column,
    ),
    (
        "metrics_scraped_by_prometheus_are_exact",
        crate::metrics::metrics_scraped_by_prometheus_are_exact,
    ),
    (
        "close_by_the_client_exact_bytes",
        crate::lifecycle::closed_by_the_client,
    ),
    (
        "close_by_the_server_ipv6_exact_bytes",
        crate::lifecycle::closed_by_the_server_ipv6,
    ),
    (
        "close_reset_by_the_client",
        crate::lifecycle::reset_by_the_client,
    ),
    (
        "close_through_the_classic_state_tracepoint",
        crate::lifecycle::through_the_classic_tracepoint,
    ),
    (
        "close_through_the_raw_state_tracepoint",
        crate::lifecycle::through_the_raw_tracepoint,
    ),
    (
        "records_through_the_perf_rings",
        crate::lifecycle::through_the_perf_rings,
    ),
    (
        "records_through_the_bpf_ring_buffer",
        crate::lifecycle::through_the_bpf_ring_buffer,
    ),
    (
        "close_of_a_connection_older_than_conntrace",
        crate::lifecycle::connection_older_than_conntrace,
    ),
    (
        "close_of_a_connection_accepted_after_start",
        crate::lifecycle::connection_accepted_after_start,
    ),
    (
        "close_of_a_connection_freed_without_its_change_to_close",
        crate::freed::freed_without_its_change_to_close,
    ),
    (
        "close_of_a_connection_freed_without_its_change_to_close_raw",
        crate::freed::freed_without_its_change_to_close_raw,
    ),
    (
        "close_of_a_connection_freed_without_its_change_to_close_classic",
        crate::freed::freed_without_its_change_to_close_classic,
    ),
    (
        "ipv4_connect_established_accept",
        ipv4_connect_established_accept,
    ),
    (
        "ipv6_connect_established_accept",
        ipv6_connect_established_accept,
    ),
    (
        "refused_blocking_connect_fails_econnrefused",
        refused_blocking_connect_fails_econnrefused,
    ),
    (
        "nonblocking_connect_established",
        nonblocking_connect_established,
    ),
    (
        "repeated_connect_is_one_attempt",
        repeated_connect_is_one_attempt,
    ),
    (
        "connect_again_while_pending_is_one_attempt",
        connect_again_while_pending_is_one_attempt,
    ),
    (
        "uid_of_an_unprivileged_client",
        uid_of_an_unprivileged_client,
    ),
    (
        "filter_pid_shows_only_that_process",
        filter_pid_shows_only_that_process,
    ),
    (
        "filter_uid_shows_only_that_user",
        filter_uid_shows_only_that_user,
    ),
    (
        "filter_port_hides_other_ports",
        filter_port_hides_other_ports,
    ),
    (
        "filter_port_list_shows_both_ports",
        filter_port_list_shows_both_ports,
    ),
    ("filter_ipv4_only", filter_ipv4_only),
    ("filter_ipv6_only", filter_ipv6_only),
    ("filter_events_accept_only", filter_events_accept_only),
    (
        "filter_events_connect_and_failed",
        filter_events_connect_and_failed,
    ),
    ("filter_failed_only", filter_failed_only),
    (
        "json_lines_have_exactly_the_documented_keys",
        json_lines_have_exactly_the_documented_keys,
    ),
    ("escape_comm_in_json", escape_comm_json),
    ("escape_comm_in_text", escape_comm_text),
    ("max_events_exits_after_one", max_events_exits_after_one),
    ("duration_exits_by_itself", duration_exits_by_itself),
    ("sigterm_detaches_and_exits_0", sigterm_detaches_and_exits_0),
    (
        "state_map_full_counts_every_connect",
        crate::scale::state_map_full_counts_every_connect,
    ),
    (
        "storm_every_connect_in_flight_has_its_outcome",
        crate::scale::storm_every_connect_in_flight_has_its_outcome,
    ),
    (
        "held_open_connections_each_close_once",
        crate::held::held_open_connections_each_close_once,
    ),
    (
        "bad_arguments_exit_2_with_one_line",
        bad_arguments_exit_2_with_one_line,
    ),
    (
        "kprobe_backend_unavailable_exits_1",
        kprobe_backend_unavailable_exits_1,
    ),
];

/// One client to one server under `-P port --json` plus `extra` filters.
fn one_connection(
    family: &'static str,
    flags: &str,
) -> Result<(Client, Vec<record::Record>), String> {
    let mut server = Server::start(family, 1)?;
    let port = server.port.to_string();
    let tracer = Tracer::attached(&["--json", "-P", &port])?;
    let window = Window::open();
    let client = Client::run(family, server.port, flags)?;
    server.accepted(&client)?;
    server.finish()?;
    let records = expect_json(tracer, &window, &client.full_connection(&server))?;
    Ok((client, records))
}

fn ipv4_connect_established_accept() -> Result<(), String> {
    let (client, _) = one_connection("4", "")?;
    client.expect_errno(0, 0)
}

fn ipv6_connect_established_accept() -> Result<(), String> {
    let (client, _) = one_connection("6", "")?;
    client.expect_errno(0, 0)
}

fn nonblocking_connect_established() -> Result<(), String> {
    let (client, _) = one_connection("4", "nonblock")?;
    client.expect_errno(EINPROGRESS, 0)
}

/// A non-blocking client calling connect() again after EINPROGRESS: still exactly one
/// connect, one established and one accept.
fn repeated_connect_is_one_attempt() -> Result<(), String> {
    let (client, _) = one_connection("4", "nonblock repeat")?;
    client.expect_errno(EINPROGRESS, 0)
}

/// connect() called again while the handshake is still pending (EALREADY) is not a new
/// attempt: a listener whose accept queue is full drops the SYN, so the socket stays in
/// SYN_SENT; closing it then ends it as `failed` with no socket error.
fn connect_again_while_pending_is_one_attempt() -> Result<(), String> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    // SAFETY: listen(2) on a socket `listener` owns; backlog 0 keeps at most one queued.
    unsafe { libc::listen(listener.as_raw_fd(), 0) };
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let tracer = Tracer::attached(&["--json", "-P", &port.to_string()])?;
    let nonblocking = || -> Result<OwnedFd, String> {
        // SAFETY: socket() has no memory preconditions; the fd is owned at once.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: fd was just returned by socket() and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let connect = |fd: &OwnedFd| -> i32 {
        // SAFETY: a zeroed sockaddr_in is valid; connect reads exactly its size.
        let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_port = port.to_be();
        sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: `sin` is a live sockaddr_in of `len` bytes.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                &sin as *const _ as *const libc::sockaddr,
                len,
            )
        };
        if rc == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        }
    };
    // Fill the accept queue so the next SYN is dropped.
    let fillers: Vec<OwnedFd> = (0..3).map(|_| nonblocking()).collect::<Result<_, _>>()?;
    for f in &fillers {
        connect(f);
    }
    std::thread::sleep(Duration::from_millis(100));
    let pending = nonblocking()?;
    let errnos: Vec<i32> = (0..3).map(|_| connect(&pending)).collect();
    if errnos != [libc::EINPROGRESS, libc::EALREADY, libc::EALREADY] {
        return Err(format!(
            "expected EINPROGRESS, EALREADY, EALREADY from the pending socket, got {errnos:?}"
        ));
    }
    // SAFETY: a zeroed sockaddr_in is valid; getsockname writes at most `len` bytes into it.
    let mut local: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `local` is live and `len` is its size.
    unsafe {
        libc::getsockname(
            pending.as_raw_fd(),
            &mut local as *mut _ as *mut libc::sockaddr,
            &mut len,
        )
    };
    let lport = u16::from_be(local.sin_port);
    drop(pending);

    let ours = |lines: &[Vec<u8>]| {
        record::parse_lines(lines)
            .map(|rs| {
                rs.into_iter()
                    .filter(|r| r.lport == lport)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    tracer.wait_for(Duration::from_secs(5), |lines| {
        ours(lines).iter().any(|r| r.event == "failed")
    });
    std::thread::sleep(Duration::from_millis(300));
    let finished = tracer.interrupt()?;
    let records = ours(&finished.stdout);
    let events: Vec<(&str, Option<&str>)> = records
        .iter()
        .map(|r| (r.event.as_str(), r.error.as_deref()))
        .collect();
    if events != [("connect", None), ("failed", None)] {
        return Err(format!(
            "local port {lport}: want one connect then one failed (no error), got {events:?}"
        ));
    }
    drop(fillers);
    Ok(())
}

fn uid_of_an_unprivileged_client() -> Result<(), String> {
    let (client, _) = one_connection("4", "uid=65534")?;
    if client.task.uid != 65534 {
        return Err(format!("client runs as uid {}, not 65534", client.task.uid));
    }
    client.expect_errno(0, 0)
}

fn refused_blocking_connect_fails_econnrefused() -> Result<(), String> {
    let refusing = RefusingPort::new("4")?;
    let tracer = Tracer::attached(&["--json", "-P", &refusing.port.to_string()])?;
    let window = Window::open();
    let client = Client::run("4", refusing.port, "")?;
    client.expect_errno(ECONNREFUSED, 0)?;
    expect_json(
        tracer,
        &window,
        &[client.connect(), client.failed("ECONNREFUSED")],
    )?;
    Ok(())
}

fn filter_pid_shows_only_that_process() -> Result<(), String> {
    let mut server = Server::start("4", 2)?;
    let (chosen, chosen_pid) = Client::waiting("4", server.port, "")?;
    let (other, _) = Client::waiting("4", server.port, "")?;
    let tracer = Tracer::attached(&[
        "--json",
        "-p",
        &chosen_pid.to_string(),
        "-P",
        &server.port.to_string(),
    ])?;
    let window = Window::open();
    // The other client goes first, so its records would be out before the ones awaited.
    let other = Client::release(other, "4", server.port, "")?;
    server.accepted(&other)?;
    let chosen = Client::release(chosen, "4", server.port, "")?;
    server.accepted(&chosen)?;
    server.finish()?;
    // The server's end is the server's, not the chosen client's: no close for it either.
    let expected = [
        chosen.connect(),
        chosen.established(),
        chosen.closed(0, 0, None, None),
    ];
    expect_json(tracer, &window, &expected)?;
    Ok(())
}

fn filter_uid_shows_only_that_user() -> Result<(), String> {
    let mut server = Server::start("4", 2)?;
    let tracer = Tracer::attached(&["--json", "-u", "65534", "-P", &server.port.to_string()])?;
    let window = Window::open();
    let root = Client::run("4", server.port, "")?;
    server.accepted(&root)?;
    let nobody = Client::run("4", server.port, "uid=65534")?;
    server.accepted(&nobody)?;
    server.finish()?;
    let expected = [
        nobody.connect(),
        nobody.established(),
        nobody.closed(0, 0, None, None),
    ];
    expect_json(tracer, &window, &expected)?;
    Ok(())
}

fn filter_port_hides_other_ports() -> Result<(), String> {
    let mut server = Server::start("4", 1)?;
    let mut decoy = Server::start("4", 1)?;
    let tracer = Tracer::attached(&["--json", "-P", &server.port.to_string()])?;
    let window = Window::open();
    let ignored = Client::run("4", decoy.port, "")?;
    decoy.accepted(&ignored)?;
    let client = Client::run("4", server.port, "")?;
    server.accepted(&client)?;
    server.finish()?;
    decoy.finish()?;
    expect_json(tracer, &window, &client.full_connection(&server))?;
    Ok(())
}

fn filter_port_list_shows_both_ports() -> Result<(), String> {
    let mut first = Server::start("4", 1)?;
    let mut second = Server::start("6", 1)?;
    let ports = format!("{},{}", first.port, second.port);
    let tracer = Tracer::attached(&["--json", "-P", &ports])?;
    let window = Window::open();
    let a = Client::run("4", first.port, "")?;
    first.accepted(&a)?;
    let b = Client::run("6", second.port, "")?;
    second.accepted(&b)?;
    let mut expected = a.full_connection(&first);
    expected.extend(b.full_connection(&second));
    first.finish()?;
    second.finish()?;
    expect_json(tracer, &window, &expected)?;
    Ok(())
}

/// Runs an IPv4 and an IPv6 connection (unwanted family first) under `family_flag`.
fn one_family(family_flag: &str, wanted: &'static str) -> Result<(), String> {
    let mut v4 = Server::start("4", 1)?;
    let mut v6 = Server::start("6", 1)?;
    let ports = format!("{},{}", v4.port, v6.port);
    let tracer = Tracer::attached(&["--json", family_flag, "-P", &ports])?;
    let window = Window::open();
    let run = |server: &mut Server| -> Result<Client, String> {
        let client = Client::run(server.family, server.port, "")?;
        server.accepted(&client)?;
        Ok(client)
    };
    let (expected, _) = if wanted == "4" {
        let c6 = run(&mut v6)?;
        let c4 = run(&mut v4)?;
        (c4.full_connection(&v4), c6)
    } else {
        let c4 = run(&mut v4)?;
        let c6 = run(&mut v6)?;
        (c6.full_connection(&v6), c4)
    };
    v4.finish()?;
    v6.finish()?;
    expect_json(tracer, &window, &expected)?;
    Ok(())
}

fn filter_ipv4_only() -> Result<(), String> {
    one_family("-4", "4")
}

fn filter_ipv6_only() -> Result<(), String> {
    one_family("-6", "6")
}

fn filter_events_accept_only() -> Result<(), String> {
    let mut server = Server::start("6", 1)?;
    let tracer = Tracer::attached(&["--json", "-e", "accept", "-P", &server.port.to_string()])?;
    let window = Window::open();
    let client = Client::run("6", server.port, "")?;
    server.accepted(&client)?;
    server.finish()?;
    expect_json(tracer, &window, &[client.accepted_by(&server)])?;
    Ok(())
}

/// A refused and a successful connect under `filters`; returns both clients.
fn refused_and_accepted(
    filters: &[&str],
) -> Result<(Tracer, Window, Client, Client, Server), String> {
    let refusing = RefusingPort::new("4")?;
    let mut server = Server::start("4", 1)?;
    let ports = format!("{},{}", refusing.port, server.port);
    let mut args = vec!["--json", "-P", &ports];
    args.extend_from_slice(filters);
    let tracer = Tracer::attached(&args)?;
    let window = Window::open();
    let good = Client::run("4", server.port, "")?;
    server.accepted(&good)?;
    let refused = Client::run("4", refusing.port, "")?;
    refused.expect_errno(ECONNREFUSED, 0)?;
    Ok((tracer, window, good, refused, server))
}

fn filter_events_connect_and_failed() -> Result<(), String> {
    let (tracer, window, good, refused, mut server) =
        refused_and_accepted(&["-e", "connect,failed"])?;
    server.finish()?;
    let expected = [
        good.connect(),
        refused.connect(),
        refused.failed("ECONNREFUSED"),
    ];
    expect_json(tracer, &window, &expected)?;
    Ok(())
}

fn filter_failed_only() -> Result<(), String> {
    let (tracer, window, _good, refused, mut server) = refused_and_accepted(&["--failed"])?;
    server.finish()?;
    expect_json(tracer, &window, &[refused.failed("ECONNREFUSED")])?;
    Ok(())
}

fn json_lines_have_exactly_the_documented_keys() -> Result<(), String> {
    let mut server = Server::start("4", 1)?;
    let tracer = Tracer::attached(&["--json", "-P", &server.port.to_string()])?;
    let client = Client::run("4", server.port, "")?;
    server.accepted(&client)?;
    server.finish()?;
    // connect, established, accept and both ends' closes.
    let finished = collect(tracer, 5)?;
    if finished.stdout.len() != 5 {
        return Err(format!("{} stdout lines, want 5", finished.stdout.len()));
    }
    for line in &finished.stdout {
        let text = String::from_utf8_lossy(line);
        if !text.starts_with("{\"ts\":\"") || !text.ends_with('}') {
            return Err(format!("not one compact JSON object per line: {text:?}"));
        }
        // parse_record insists on exactly record::KEYS in order.
        record::parse_record(&text).map_err(|e| format!("{text:?}: {e}"))?;
    }
    Ok(())
}

/// What a JSON reader must get back for ESCAPE_COMM: the text as is, with each byte that is not
/// UTF-8 spelled `\xNN` (JSON "\\xNN") because JSON strings cannot carry raw bytes.
pub fn escape_comm_in_json_form() -> String {
    let mut out = String::new();
    for chunk in ESCAPE_COMM.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

fn escape_comm_json() -> Result<(), String> {
    let mut server = Server::start("4", 1)?;
    let tracer = Tracer::attached(&["--json", "-P", &server.port.to_string()])?;
    let window = Window::open();
    let client = Client::run("4", server.port, "escape-comm")?;
    server.accepted(&client)?;
    server.finish()?;
    let expected = client.full_connection(&server);
    let finished = collect(tracer, expected.len())?;
    let mut records = record::parse_lines(&finished.stdout)?;
    // \xFF and \xff say the same; the contract does not fix the case of the hex digits.
    for record in &mut records {
        record.comm = record.comm.as_ref().map(|c| c.replace("\\xFF", "\\xff"));
    }
    record::check_exact(&records, &expected, &window.host()?)
}

fn escape_comm_text() -> Result<(), String> {
    let mut server = Server::start("4", 1)?;
    let tracer = Tracer::attached(&["-P", &server.port.to_string()])?;
    let client = Client::run("4", server.port, "escape-comm")?;
    server.accepted(&client)?;
    server.finish()?;
    // A header and connect, established, accept, two closes: a raw newline in comm would add
    // a line.
    let finished = collect(tracer, 6)?;
    let lines = &finished.stdout;
    let all = || {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(l))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if lines.len() != 6 {
        return Err(format!(
            "{} text lines, want a header and 5 events:\n{}",
            lines.len(),
            all()
        ));
    }
    for line in lines {
        let text =
            std::str::from_utf8(line).map_err(|_| format!("text line is not UTF-8: {line:?}"))?;
        if text.chars().any(|c| c.is_control()) {
            return Err(format!("raw control character on a text line: {text:?}"));
        }
    }
    let header = String::from_utf8_lossy(&lines[0]).to_uppercase();
    if !header.contains("PID") || !header.contains("COMM") {
        return Err(format!(
            "first line is not a header naming PID and COMM: {header:?}"
        ));
    }
    let has_token = |line: &str, token: &str| line.split_whitespace().any(|t| t == token);
    let client_pid = client.task.pid.to_string();
    let events: Vec<String> = lines[1..]
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    for event in ["connect", "established", "close"] {
        let line = events
            .iter()
            .find(|l| has_token(l, event) && has_token(l, &client_pid))
            .ok_or_else(|| format!("no {event} line:\n{}", all()))?;
        let lower = line.to_lowercase();
        if !has_token(line, &client_pid) || !lower.contains("\\x1b") || !lower.contains("\\xff") {
            return Err(format!(
                "{event} line lacks the client's pid {client_pid} or the escapes \\x1b and \\xff: {line:?}"
            ));
        }
    }
    let accept = events
        .iter()
        .find(|l| has_token(l, "accept"))
        .ok_or_else(|| format!("no accept line:\n{}", all()))?;
    if !has_token(accept, &server.task.pid.to_string()) || !accept.contains("ct-server") {
        return Err(format!(
            "accept line lacks the server's pid and comm: {accept:?}"
        ));
    }
    Ok(())
}

fn max_events_exits_after_one() -> Result<(), String> {
    let mut server = Server::start("4", 1)?;
    let tracer = Tracer::attached(&["--json", "-n", "1", "-P", &server.port.to_string()])?;
    let window = Window::open();
    let client = Client::run("4", server.port, "")?;
    server.accepted(&client)?;
    server.finish()?;
    let finished = tracer.wait()?;
    let args = vec!["-n".to_string(), "1".into()];
    tracer::check_clean_exit(&args, &finished)?;
    let records = record::parse_lines(&finished.stdout)?;
    let [only] = records.as_slice() else {
        return Err(format!(
            "{} records with -n 1, want exactly 1: {records:?}",
            records.len()
        ));
    };
    let expected: Vec<Expected> = client
        .full_connection(&server)
        .into_iter()
        .filter(|e| e.event == only.event && Some(e.task.pid) == only.pid)
        .collect();
    record::check_exact(&records, &expected, &window.host()?)
}

fn duration_exits_by_itself() -> Result<(), String> {
    let refusing = RefusingPort::new("4")?;
    let started = Instant::now();
    let tracer = Tracer::attached(&["--json", "-d", "0.5", "-P", &refusing.port.to_string()])?;
    let finished = tracer.wait()?;
    let took = started.elapsed();
    tracer::check_clean_exit(&["-d".into(), "0.5".into()], &finished)?;
    if took < Duration::from_millis(450) {
        return Err(format!("-d 0.5 exited after only {took:?}"));
    }
    if !finished.stdout.is_empty() {
        return Err(format!(
            "{} stdout lines without any traffic",
            finished.stdout.len()
        ));
    }
    Ok(())
}

fn sigterm_detaches_and_exits_0() -> Result<(), String> {
    let refusing = RefusingPort::new("4")?;
    let args = ["--json", "-P", &refusing.port.to_string()];
    let tracer = Tracer::attached(&args)?;
    let finished = tracer.stop(libc::SIGTERM)?;
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tracer::check_clean_exit(&args, &finished)?;
    check_totals(&finished)
}

/// After a signal conntrace prints its totals: something on stderr after the "attached" line.
fn check_totals(finished: &tracer::Finished) -> Result<(), String> {
    let attached = finished
        .stderr
        .iter()
        .position(|l| l.starts_with(tracer::ATTACHED.as_bytes()));
    let after = attached.map_or(0, |i| {
        finished.stderr[i + 1..]
            .iter()
            .filter(|l| !l.is_empty())
            .count()
    });
    if after == 0 {
        return Err(format!(
            "no totals on stderr after the signal; stderr:\n{}",
            finished.stderr_text()
        ));
    }
    Ok(())
}

fn bad_arguments_exit_2_with_one_line() -> Result<(), String> {
    let cases: &[(&[&str], &str)] = &[
        (&["--no-such-option"], "--no-such-option"),
        (&["-P", "notaport"], "notaport"),
        (&["-P", "70000"], "70000"),
        (&["-p", "12ab"], "12ab"),
        (&["-u", "root!"], "root!"),
        (&["-e", "connect,sneeze"], "sneeze"),
        (&["--backend", "uprobe"], "uprobe"),
        (&["-d", "soon"], "soon"),
        (&["-n", "many"], "many"),
        (&["--pid"], "pid"),
        (&["stray"], "stray"),
    ];
    for (args, mention) in cases {
        let finished = tracer::run_to_end(args)?;
        let stderr = finished.stderr_text();
        if finished.status.code() != Some(2) {
            return Err(format!(
                "conntrace {args:?} ended with {}, want exit 2; stderr:\n{stderr}",
                finished.status
            ));
        }
        if finished.stderr.len() != 1 || !stderr.contains(mention) {
            return Err(format!(
                "conntrace {args:?}: want one stderr line mentioning {mention:?}, got:\n{stderr}"
            ));
        }
        if !finished.stdout.is_empty() {
            return Err(format!("conntrace {args:?} wrote to stdout"));
        }
    }
    Ok(())
}

fn kprobe_backend_unavailable_exits_1() -> Result<(), String> {
    let finished = tracer::run_to_end(&["--backend", "kprobe"])?;
    let stderr = finished.stderr_text();
    if finished.status.code() != Some(1) {
        return Err(format!(
            "--backend kprobe ended with {}, want exit 1; stderr:\n{stderr}",
            finished.status
        ));
    }
    if !stderr.to_lowercase().contains("kprobe") {
        return Err(format!(
            "--backend kprobe failed without naming kprobes; stderr:\n{stderr}"
        ));
    }
    if stderr.contains(tracer::ATTACHED) {
        return Err("--backend kprobe claims to be attached".into());
    }
    Ok(())
}
