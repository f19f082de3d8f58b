//! The records the TCP scenario must produce: a table of expectations built from the scenario,
//! and one loop that finds each row's record and names every field that differs. Every record
//! of the run must be some row's: a record nobody expected is a failure too.

use super::fields::{check_fields, one, str_of, summary, u64_of, Want};
use super::scenario::{Actor, End, Life, LifeCase, Scenario};
use crate::json::Value;

/// Whose record it is (its pid, tid, uid, comm, cgroup): the process that connected or
/// accepted the socket, or nobody known (a close of a connection older than conntrace).
#[derive(Clone, Copy)]
enum Who {
    Client,
    Server,
    OldServer,
    Nobody,
}

impl Who {
    fn of(self, s: &Scenario) -> Option<&Actor> {
        match self {
            Who::Client => Some(&s.client),
            Who::Server => Some(&s.server),
            Who::OldServer => Some(&s.old_server),
            Who::Nobody => None,
        }
    }
}

/// What a record's local port must be.
#[derive(Clone, Copy)]
enum Port {
    /// Known in advance; the record is also looked up by it.
    Is(u64),
    /// Only non-zero: the refused connect's port is gone before the client could ask for it.
    NonZero,
    /// The local port of that earlier row's record (non-zero when that has none).
    SameAs(usize),
}

/// Who a close record must say ended the connection.
#[derive(Clone, Copy)]
enum ClosedBy {
    Local,
    Remote,
    /// Either: the scenario does not order the two ends' closes (both processes just exit).
    Either,
}

/// What a close record adds to the common fields.
#[derive(Clone, Copy)]
struct CloseWant {
    /// duration_us holds a duration; false: null (the connection is older than conntrace).
    duration: bool,
    /// bytes_sent is exactly this; None: null (older than conntrace, and not accepted since).
    sent: Option<u64>,
    received: u64,
    closed_by: ClosedBy,
}

/// One record the scenario must produce.
struct Expect {
    /// How failures name the record.
    what: String,
    event: &'static str,
    family: &'static str,
    who: Who,
    /// Both ends' address: every connection stays on loopback.
    addr: &'static str,
    lport: Port,
    rport: u64,
    /// The errno name of a failed connect or a reset connection; None: null.
    error: Option<&'static str>,
    /// latency_us holds a latency (outcomes), or is null.
    latency: bool,
    /// That earlier row's record (a connect or an accept) is this socket's: this record is
    /// found by its sock id when that one was found, else like any other row.
    same_sock: Option<usize>,
    /// That earlier row's record is the other end's socket: the sock ids must differ.
    other_end_of: Option<usize>,
    /// A close record: what it carries; None for the other kinds (those keys null).
    close: Option<CloseWant>,
    /// That earlier row is the other end's close: both cannot say the other closed first.
    peer_close: Option<usize>,
}

impl Expect {
    fn new(
        what: String,
        event: &'static str,
        (family, addr): (&'static str, &'static str),
        who: Who,
        lport: Port,
        rport: u64,
    ) -> Expect {
        Expect {
            what,
            event,
            family,
            who,
            addr,
            lport,
            rport,
            error: None,
            latency: false,
            same_sock: None,
            other_end_of: None,
            close: None,
            peer_close: None,
        }
    }
}

/// The records of one connection from connect to both closes, both ends owned (made while
/// conntrace ran): connect, established, accept, the client's close, the server's close.
struct Connection<'a> {
    what: String,
    fam: (&'static str, &'static str),
    client_port: u64,
    server_port: u64,
    /// The client's port as the server saw it.
    peer_port: u64,
    client_close: CloseWant,
    client_error: Option<&'static str>,
    server_close: CloseWant,
    server_error: Option<&'static str>,
    s: &'a Scenario,
}

fn by(s: &Scenario, who: Who) -> String {
    match who.of(s) {
        Some(a) => format!("by {} (pid {} tid {})", a.comm, a.pid, a.tid),
        None => "by nobody known".into(),
    }
}

fn push_connection(rows: &mut Vec<Expect>, c: Connection<'_>) {
    let (family, lo) = c.fam;
    let (s, cport, sport) = (c.s, c.client_port, c.server_port);
    let connect = rows.len();
    rows.push(Expect::new(
        format!(
            "connect {family} [{lo}]:{cport} -> [{lo}]:{sport}{} {}",
            c.what,
            by(s, Who::Client)
        ),
        "connect",
        c.fam,
        Who::Client,
        Port::Is(cport),
        sport,
    ));
    let mut established = Expect::new(
        format!(
            "established {family} [{lo}]:{cport} -> [{lo}]:{sport}{} (same sock as its connect)",
            c.what
        ),
        "established",
        c.fam,
        Who::Client,
        Port::Is(cport),
        sport,
    );
    established.latency = true;
    established.same_sock = Some(connect);
    rows.push(established);
    let accept = rows.len();
    let mut row = Expect::new(
        format!(
            "accept {family} [{lo}]:{sport} <- [{lo}]:{}{} {}",
            c.peer_port,
            c.what,
            by(s, Who::Server)
        ),
        "accept",
        c.fam,
        Who::Server,
        Port::Is(sport),
        c.peer_port,
    );
    row.other_end_of = Some(connect);
    rows.push(row);
    let client_close = rows.len();
    let mut row = Expect::new(
        format!(
            "close {family} [{lo}]:{cport} -> [{lo}]:{sport}{} {} (same sock as its connect)",
            c.what,
            by(s, Who::Client)
        ),
        "close",
        c.fam,
        Who::Client,
        Port::Is(cport),
        sport,
    );
    row.same_sock = Some(connect);
    row.close = Some(c.client_close);
    row.error = c.client_error;
    rows.push(row);
    let mut row = Expect::new(
        format!(
            "close {family} [{lo}]:{sport} <- [{lo}]:{}{} {} (same sock as its accept)",
            c.peer_port,
            c.what,
            by(s, Who::Server)
        ),
        "close",
        c.fam,
        Who::Server,
        Port::Is(sport),
        c.peer_port,
    );
    row.same_sock = Some(accept);
    row.other_end_of = Some(connect);
    row.close = Some(c.server_close);
    row.error = c.server_error;
    row.peer_close = Some(client_close);
    rows.push(row);
}

/// A lifecycle end's close: its exact payload counts, a duration, closed by `by`.
fn owned_close(end: End, closed_by: ClosedBy) -> CloseWant {
    CloseWant {
        duration: true,
        sent: Some(end.sent),
        received: end.received,
        closed_by,
    }
}

/// The close of an end conntrace never saw connect or accept: no owner, no duration, no way
/// to tell the connecting side's SYN from payload.
fn unowned_close(end: End, closed_by: ClosedBy) -> CloseWant {
    CloseWant {
        duration: false,
        sent: None,
        received: end.received,
        closed_by,
    }
}

/// The rows of one lifecycle connection.
fn push_life(rows: &mut Vec<Expect>, s: &Scenario, l: &Life) {
    use ClosedBy::{Local, Remote};
    let fam = (l.family, l.addr);
    let (lo, family) = (l.addr, l.family);
    let what = format!(" ({} case)", l.case.token());
    let (client, server) = (l.client, l.server);
    let connection = |client_close, client_error, server_close, server_error| Connection {
        what: what.clone(),
        fam,
        client_port: client.port,
        server_port: s.life_port,
        peer_port: server.port,
        client_close,
        client_error,
        server_close,
        server_error,
        s,
    };
    let reset = Some("ECONNRESET");
    match l.case {
        LifeCase::ClientFirst => push_connection(
            rows,
            connection(
                owned_close(client, Local),
                None,
                owned_close(server, Remote),
                None,
            ),
        ),
        LifeCase::ServerFirst => push_connection(
            rows,
            connection(
                owned_close(client, Remote),
                None,
                owned_close(server, Local),
                None,
            ),
        ),
        // The side that aborts closes from ESTABLISHED with no error; the other is reset.
        LifeCase::ClientReset => push_connection(
            rows,
            connection(
                owned_close(client, Local),
                None,
                owned_close(server, Remote),
                reset,
            ),
        ),
        LifeCase::ServerReset => push_connection(
            rows,
            connection(
                owned_close(client, Remote),
                reset,
                owned_close(server, Local),
                None,
            ),
        ),
        LifeCase::Old => {
            let client_close = rows.len();
            let mut row = Expect::new(
                format!(
                    "close {family} [{lo}]:{} -> [{lo}]:{}{what}, connected before conntrace started",
                    client.port, s.old_port
                ),
                "close",
                fam,
                Who::Nobody,
                Port::Is(client.port),
                s.old_port,
            );
            row.close = Some(unowned_close(client, Local));
            rows.push(row);
            let mut row = Expect::new(
                format!(
                    "close {family} [{lo}]:{} <- [{lo}]:{}{what}, accepted before conntrace started",
                    s.old_port, server.port
                ),
                "close",
                fam,
                Who::Nobody,
                Port::Is(s.old_port),
                server.port,
            );
            row.close = Some(unowned_close(server, Remote));
            row.other_end_of = Some(client_close);
            row.peer_close = Some(client_close);
            rows.push(row);
        }
        LifeCase::Late => {
            let accept = rows.len();
            let mut row = Expect::new(
                format!(
                    "accept {family} [{lo}]:{} <- [{lo}]:{}{what} {}",
                    s.old_port,
                    server.port,
                    by(s, Who::OldServer)
                ),
                "accept",
                fam,
                Who::OldServer,
                Port::Is(s.old_port),
                server.port,
            );
            rows.push(row);
            // Accepted while conntrace ran: the owner, and the payload it sent (the SYN was
            // the peer's), but no start.
            let server_close = rows.len();
            row = Expect::new(
                format!(
                    "close {family} [{lo}]:{} <- [{lo}]:{}{what} {} (same sock as its accept)",
                    s.old_port,
                    server.port,
                    by(s, Who::OldServer)
                ),
                "close",
                fam,
                Who::OldServer,
                Port::Is(s.old_port),
                server.port,
            );
            row.same_sock = Some(accept);
            row.close = Some(CloseWant {
                sent: Some(server.sent),
                ..unowned_close(server, Local)
            });
            rows.push(row);
            row = Expect::new(
                format!(
                    "close {family} [{lo}]:{} -> [{lo}]:{}{what}, connected before conntrace started",
                    client.port, s.old_port
                ),
                "close",
                fam,
                Who::Nobody,
                Port::Is(client.port),
                s.old_port,
            );
            row.close = Some(unowned_close(client, Remote));
            row.other_end_of = Some(accept);
            row.peer_close = Some(server_close);
            rows.push(row);
        }
    }
}

/// Every record the scenario must produce, in the order failures name them. Rows refer to
/// earlier rows by index.
fn expectations(s: &Scenario) -> Vec<Expect> {
    let mut rows = Vec::new();
    // The flows' ends close when their processes exit, in no set order; nothing was sent.
    let quiet = CloseWant {
        duration: true,
        sent: Some(0),
        received: 0,
        closed_by: ClosedBy::Either,
    };
    for f in &s.flows {
        push_connection(
            &mut rows,
            Connection {
                what: String::new(),
                fam: (f.family, f.addr),
                client_port: f.client_port,
                server_port: s.port,
                peer_port: f.peer_port,
                client_close: quiet,
                client_error: None,
                server_close: quiet,
                server_error: None,
                s,
            },
        );
    }
    let connect = rows.len();
    rows.push(Expect::new(
        format!(
            "connect ipv4 -> 127.0.0.1:{} (closed port) {}",
            s.closed_port,
            by(s, Who::Client)
        ),
        "connect",
        ("ipv4", "127.0.0.1"),
        Who::Client,
        Port::NonZero,
        s.closed_port,
    ));
    let mut row = Expect::new(
        format!(
            "failed ipv4 -> 127.0.0.1:{} with ECONNREFUSED (same sock as its connect)",
            s.closed_port
        ),
        "failed",
        ("ipv4", "127.0.0.1"),
        Who::Client,
        Port::SameAs(connect),
        s.closed_port,
    );
    row.error = Some("ECONNREFUSED");
    row.latency = true;
    row.same_sock = Some(connect);
    rows.push(row);
    for l in &s.lives {
        push_life(&mut rows, s, l);
    }
    rows
}

/// What each field of a row's record must hold, in the contract's order (FIELDS). `found`
/// holds the records of the rows before this one.
fn wants<'a>(
    s: &'a Scenario,
    row: &Expect,
    found: &[Option<&Value>],
) -> Vec<(&'static str, Want<'a>)> {
    let lport = match row.lport {
        Port::Is(p) => Want::Int(p),
        Port::NonZero => Want::NonZero,
        Port::SameAs(i) => found[i]
            .and_then(|r| u64_of(r, "lport"))
            .map_or(Want::NonZero, Want::Int),
    };
    // Exact on every run, without BTF too: the layout discovery and self-test prove the
    // netns and error fields there.
    let netns = Want::Int(s.netns);
    let error = match row.error {
        None => Want::Null,
        Some(e) => Want::Str(e),
    };
    let latency = match row.latency {
        true => Want::Micros,
        false => Want::Null,
    };
    // The VM's init runs in the root cgroup, when cgroup2 is mounted at all.
    let (pid, tid, uid, comm, cgroup, cgroup_path) = match row.who.of(s) {
        Some(a) => (
            Want::Int(a.pid),
            Want::Int(a.tid),
            Want::Int(a.uid),
            Want::Str(&a.comm),
            Want::AnyInt,
            Want::StrOrNull("/"),
        ),
        None => (
            Want::Null,
            Want::Null,
            Want::Null,
            Want::Null,
            Want::Null,
            Want::Null,
        ),
    };
    let (duration, sent, received, closed_by) = match row.close {
        None => (Want::Null, Want::Null, Want::Null, Want::Null),
        Some(c) => (
            if c.duration { Want::Micros } else { Want::Null },
            c.sent.map_or(Want::Null, Want::Int),
            Want::Int(c.received),
            match c.closed_by {
                ClosedBy::Local => Want::Str("local"),
                ClosedBy::Remote => Want::Str("remote"),
                ClosedBy::Either => Want::OneOf(&["local", "remote"]),
            },
        ),
    };
    vec![
        ("ts", Want::Timestamp),
        ("event", Want::Str(row.event)),
        ("pid", pid),
        ("tid", tid),
        ("uid", uid),
        ("comm", comm),
        ("family", Want::Str(row.family)),
        ("laddr", Want::Str(row.addr)),
        ("lport", lport),
        ("raddr", Want::Str(row.addr)),
        ("rport", Want::Int(row.rport)),
        ("netns", netns),
        ("cgroup", cgroup),
        ("sock", Want::SockId),
        ("error", error),
        ("latency_us", latency),
        ("duration_us", duration),
        ("bytes_sent", sent),
        ("bytes_received", received),
        ("closed_by", closed_by),
        ("cgroup_path", cgroup_path),
        ("container_id", Want::Null),
        ("pod_uid", Want::Null),
    ]
}

/// The records a row is looked up by when it is not found through an earlier row's sock.
fn matching<'r>(records: &'r [Value], row: &Expect) -> Vec<&'r Value> {
    let lport = match row.lport {
        Port::Is(p) => Some(p),
        Port::NonZero | Port::SameAs(_) => None,
    };
    records
        .iter()
        .filter(|r| {
            str_of(r, "event") == Some(row.event)
                && str_of(r, "family") == Some(row.family)
                && u64_of(r, "rport") == Some(row.rport)
                && lport.is_none_or(|p| u64_of(r, "lport") == Some(p))
        })
        .collect()
}

/// The records of the socket with this id that can stand for a row of kind `event`: an
/// outcome (established or failed, either: the field check names a wrong one), or a close.
fn of_sock<'r>(records: &'r [Value], sock: Option<&str>, event: &str) -> Vec<&'r Value> {
    let outcome = |e: &str| matches!(e, "established" | "failed");
    records
        .iter()
        .filter(|r| {
            let kind = str_of(r, "event").unwrap_or_default();
            (kind == event || (outcome(event) && outcome(kind)))
                && sock.is_some()
                && str_of(r, "sock") == sock
        })
        .collect()
}

/// Checks that what the scenario's processes reported adds up (ports, bytes both ways).
fn check_scenario(failures: &mut Vec<String>, s: &Scenario) {
    for f in &s.flows {
        if f.client_port != f.peer_port {
            failures.push(format!(
                "scenario: the {} client's local port {} differs from the port the server saw ({})",
                f.family, f.client_port, f.peer_port
            ));
        }
    }
    for l in &s.lives {
        let (c, sv) = (l.client, l.server);
        if c.port != sv.port || c.sent != sv.received || sv.sent != c.received {
            failures.push(format!(
                "scenario: the {} {} case's ends disagree: the client reported port {}, {} bytes \
                 sent, {} received; the server peer port {}, {} sent, {} received",
                l.family,
                l.case.token(),
                c.port,
                c.sent,
                c.received,
                sv.port,
                sv.sent,
                sv.received
            ));
        }
    }
}

/// Checks the records against the scenario: one failure per missing or repeated record, one
/// per record naming every field that differs, and one per record no row expected.
pub(super) fn check(failures: &mut Vec<String>, s: &Scenario, records: &[Value]) {
    check_scenario(failures, s);
    let rows = expectations(s);
    let mut found: Vec<Option<&Value>> = Vec::new();
    let mut accounted = vec![false; records.len()];
    for row in &rows {
        let candidates = match row.same_sock.and_then(|i| found[i]) {
            Some(earlier) => of_sock(records, str_of(earlier, "sock"), row.event),
            None => matching(records, row),
        };
        for c in &candidates {
            if let Some(i) = records.iter().position(|r| std::ptr::eq(r, *c)) {
                accounted[i] = true;
            }
        }
        let rec = one(failures, &row.what, candidates);
        if let Some(rec) = rec {
            check_fields(failures, &row.what, rec, &wants(s, row, &found));
            if let Some(other) = row.other_end_of {
                let other_sock = found[other].and_then(|r| str_of(r, "sock"));
                if other_sock.is_some() && str_of(rec, "sock") == other_sock {
                    failures.push(format!(
                        "{}: has the same sock id as {}; they are different sockets",
                        row.what, rows[other].what
                    ));
                }
            }
            if let Some(peer) = row.peer_close.and_then(|i| found[i].map(|r| (i, r))) {
                let remote = |r: &Value| str_of(r, "closed_by") == Some("remote");
                if remote(rec) && remote(peer.1) {
                    failures.push(format!(
                        "{} and {}: both say closed_by remote, yet one end closed first",
                        rows[peer.0].what, row.what
                    ));
                }
            }
        }
        found.push(rec);
    }
    for (rec, _) in records.iter().zip(accounted).filter(|(_, a)| !a) {
        failures.push(format!(
            "a record the scenario did not make: {}",
            summary(rec)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::scenario::Flow;
    use crate::verdict::FIELDS;

    fn scenario(ipv6: bool) -> Scenario {
        let actor = |pid, comm: &str| Actor {
            pid,
            tid: pid,
            uid: 0,
            comm: comm.into(),
        };
        let mut families = vec![("ipv4", "127.0.0.1")];
        if ipv6 {
            families.push(("ipv6", "::1"));
        }
        let mut flows = Vec::new();
        let mut lives = Vec::new();
        for (n, &(family, addr)) in families.iter().enumerate() {
            let port = 40001 + n as u64;
            flows.push(Flow {
                family,
                addr,
                client_port: port,
                peer_port: port,
            });
            for (i, case) in LifeCase::ALL.into_iter().enumerate() {
                let port = 41000 + 100 * n as u64 + i as u64;
                let (c, s) = (1000 + 100 * i as u64, 501 + 100 * i as u64);
                lives.push(Life {
                    family,
                    addr,
                    case,
                    client: End {
                        port,
                        sent: c,
                        received: s,
                    },
                    server: End {
                        port,
                        sent: s,
                        received: c,
                    },
                });
            }
        }
        Scenario {
            port: 4200,
            closed_port: 4201,
            netns: 1,
            server: actor(90, "ct-server"),
            client: actor(91, "ct-client"),
            flows,
            life_port: 4202,
            old_port: 4203,
            old_server: actor(95, "ct-old-server"),
            lives,
        }
    }

    #[test]
    fn every_row_checks_every_field_of_the_contract_in_order() {
        let s = scenario(true);
        let rows = expectations(&s);
        // Per family: a flow (connect, established, accept, two closes), four lifecycle cases
        // as many, the old connection's two closes, the late one's accept and two closes;
        // and the refused connect.
        assert_eq!(rows.len(), 2 * (5 + 4 * 5 + 2 + 3) + 2);
        for (i, row) in rows.iter().enumerate() {
            let found = vec![None; i];
            let names: Vec<&str> = wants(&s, row, &found).iter().map(|(f, _)| *f).collect();
            assert_eq!(names, FIELDS, "{}", row.what);
            assert_eq!(row.close.is_some(), row.event == "close", "{}", row.what);
        }
        assert_eq!(expectations(&scenario(false)).len(), 5 + 4 * 5 + 2 + 3 + 2);
    }

    #[test]
    fn rows_refer_only_to_earlier_rows_of_the_right_kind() {
        for ipv6 in [false, true] {
            let rows = expectations(&scenario(ipv6));
            for (i, row) in rows.iter().enumerate() {
                let kind = |j: Option<usize>| j.map(|j| (j < i, rows[j].event));
                if let Port::SameAs(j) = row.lport {
                    assert_eq!(kind(Some(j)), Some((true, "connect")), "{}", row.what);
                }
                if let Some((earlier, event)) = kind(row.same_sock) {
                    assert!(earlier, "{}", row.what);
                    assert!(matches!(event, "connect" | "accept"), "{}", row.what);
                }
                if let Some((earlier, _)) = kind(row.other_end_of) {
                    assert!(earlier, "{}", row.what);
                }
                if let Some((earlier, event)) = kind(row.peer_close) {
                    assert!(earlier && event == "close" && row.event == "close");
                }
            }
        }
    }

    #[test]
    fn closes_are_owned_timed_and_counted_as_the_case_says() {
        let s = scenario(false);
        let rows = expectations(&s);
        let close = |needle: &str| -> (&Expect, CloseWant) {
            let row = rows
                .iter()
                .find(|r| r.event == "close" && r.what.contains(needle))
                .unwrap_or_else(|| panic!("no close row with {needle}"));
            (row, row.close.unwrap())
        };
        // Reset by the client: the server's end carries the error.
        let (row, c) = close("<- [127.0.0.1]:41002 (creset case)");
        assert_eq!(row.error, Some("ECONNRESET"));
        assert!(matches!(c.closed_by, ClosedBy::Remote));
        assert_eq!((c.duration, c.sent, c.received), (true, Some(701), 1200));
        let (row, c) = close("[127.0.0.1]:41002 -> [127.0.0.1]:4202 (creset case)");
        assert_eq!(row.error, None);
        assert!(matches!(c.closed_by, ClosedBy::Local));
        // Older than conntrace: nobody, no duration, no bytes sent.
        let (row, c) = close("41004 -> [127.0.0.1]:4203 (old case)");
        assert!(row.who.of(&s).is_none());
        assert_eq!((c.duration, c.sent, c.received), (false, None, 901));
        // Accepted while conntrace ran: its owner and the bytes it sent, still no duration.
        let (row, c) = close("4203 <- [127.0.0.1]:41005 (late case)");
        assert_eq!(row.who.of(&s).map(|a| a.pid), Some(95));
        assert_eq!((c.duration, c.sent, c.received), (false, Some(1001), 1500));
        let (row, c) = close("41005 -> [127.0.0.1]:4203 (late case)");
        assert!(row.who.of(&s).is_none());
        assert_eq!(c.sent, None);
    }
}
