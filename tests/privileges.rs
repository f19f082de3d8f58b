//! Least privilege on the real kernel: once conntrace says its probes are attached, it holds
//! no capability, runs as uid/gid 65534 with no_new_privs, still traces, and exits cleanly.
//! Run as root (`cargo test --test privileges`); as any other user it is skipped.

#[path = "common/root.rs"]
mod root;

#[allow(dead_code)]
#[path = "host/tracer.rs"]
mod tracer;

use std::net::{TcpListener, TcpStream};
use std::time::Duration;
use tracer::Tracer;

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in /proc/PID/status:\n{status}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn privileges_are_dropped_after_attaching_and_tracing_goes_on() {
    if !root::root_or_skip("privileges") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let tracer = Tracer::attached(&["--json", "-P", &port]).unwrap_or_else(|e| panic!("{e}"));

    let status = std::fs::read_to_string(format!("/proc/{}/status", tracer.pid())).unwrap();
    let zero = "0000000000000000";
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&status, key), zero, "{key} after attaching");
    }
    assert_eq!(status_field(&status, "Uid"), "65534 65534 65534 65534");
    assert_eq!(status_field(&status, "Gid"), "65534 65534 65534 65534");
    assert_eq!(status_field(&status, "Groups"), "");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");

    // Still traced: connect, established, accept and both closes of one loopback connection.
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let lport = client.local_addr().unwrap().port();
    let seen = |kind: &str, lines: &[Vec<u8>]| {
        lines.iter().any(|l| {
            let l = String::from_utf8_lossy(l);
            l.contains(&format!("\"event\":\"{kind}\""))
                && (l.contains(&format!("\"lport\":{lport},"))
                    || l.contains(&format!("\"rport\":{lport},")))
        })
    };
    let all_three = tracer.wait_for(Duration::from_secs(5), |lines| {
        ["connect", "established", "accept"]
            .iter()
            .all(|k| seen(k, lines))
    });
    drop((client, server));
    // And both ends' closes, read through the same rings.
    let closes = |lines: &[Vec<u8>]| {
        lines
            .iter()
            .filter(|l| {
                let l = String::from_utf8_lossy(l);
                l.contains("\"event\":\"close\"") && l.contains(&format!("port\":{lport},"))
            })
            .count()
    };
    let both_closed = tracer.wait_for(Duration::from_secs(5), |lines| closes(lines) == 2);
    let printed = tracer.stdout_lines();
    assert!(
        all_three && both_closed,
        "not every event of the connection from port {lport} was printed:\n{}",
        printed
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    );

    // SIGINT: detach (through fds opened while privileged), read the drop counters, exit 0.
    let finished = tracer.interrupt().unwrap_or_else(|e| panic!("{e}"));
    let stderr = finished.stderr_text();
    assert!(
        stderr.contains("conntrace: 5 events, 0 lost"),
        "summary line missing or wrong:\n{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
}
