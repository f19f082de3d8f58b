use super::*;
use crate::session::event::{Close, ClosedBy, Comm, Owner};
use std::net::SocketAddr;

const SERVICE: &str = "127.0.0.1:8080";

fn owner(pid: u32, comm: &str) -> Owner {
    let mut raw = [0u8; 16];
    raw[..comm.len()].copy_from_slice(comm.as_bytes());
    Owner {
        pid,
        tid: pid,
        uid: 0,
        comm: Comm::from_wire(&raw),
        cgroup: 1,
    }
}

fn ev(kind: Kind, who: Option<Owner>, local: &str, remote: &str, sock_id: u64) -> Event {
    let local: SocketAddr = local.parse().unwrap();
    Event {
        ts_ns: 1,
        kind,
        owner: who,
        family: if local.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        },
        local,
        remote: remote.parse().unwrap(),
        netns: None,
        sock_id,
        error: None,
        latency_ns: kind.has_latency().then_some(50_000),
        close: None,
    }
}

fn close(mut e: Event, sent: Option<u64>, received: u64) -> Event {
    e.kind = Kind::Close;
    e.latency_ns = None;
    e.close = Some(Close {
        duration_ns: Some(1),
        bytes_sent: sent,
        bytes_received: received,
        closed_by: ClosedBy::Local,
    });
    e
}

fn failed(mut e: Event, errno: i32) -> Event {
    e.error = Some(errno);
    e
}

fn process(pid: u32, comm: &str) -> Option<Process> {
    Some(Process::new(pid, comm.as_bytes()))
}

fn row<'t>(table: &'t Table, side: Side, who: Option<Process>, remote: &str, port: u16) -> &'t Row {
    let key = Key {
        side,
        process: who,
        remote: remote.parse().unwrap(),
        port,
    };
    match table.rows.iter().find(|(k, _)| *k == key) {
        Some((_, r)) => r,
        None => panic!("no row {key:?} in {:#?}", table.rows),
    }
}

/// A client makes five connections that carry known bytes and three refused ones; the server
/// accepts the five: one connect row, one accept row, every number exact.
#[test]
fn connects_outcomes_accepts_closes_and_bytes() {
    let client = owner(100, "client");
    let server = owner(200, "server");
    let mut c = Counter::new(0);
    for i in 0..5u64 {
        let lport = 40000 + i;
        let local = format!("127.0.0.1:{lport}");
        let out = ev(Kind::Connect, Some(client), &local, SERVICE, i);
        c.record(&out);
        c.record(&Event {
            kind: Kind::Established,
            latency_ns: Some((10 + i) * 1000),
            ..out
        });
        let inbound = ev(Kind::Accept, Some(server), SERVICE, &local, 100 + i);
        c.record(&inbound);
        c.record(&close(out, Some(11), 22));
        c.record(&close(inbound, Some(22), 11));
    }
    for i in 0..3u64 {
        let attempt = ev(
            Kind::Connect,
            Some(client),
            "127.0.0.1:41000",
            "127.0.0.1:9",
            10 + i,
        );
        c.record(&attempt);
        c.record(&failed(
            Event {
                kind: Kind::Failed,
                ..attempt
            },
            libc::ECONNREFUSED,
        ));
    }
    let t = c.take(5_000_000_000, true);
    assert_eq!(t.rows.len(), 3, "{:#?}", t.rows);
    assert!(t.other.is_none());
    let out = row(&t, Side::Connect, process(100, "client"), "127.0.0.1", 8080);
    assert_eq!(
        (out.connects, out.established, out.failed, out.accepts),
        (5, 5, 0, 0)
    );
    assert_eq!(
        (out.closes, out.bytes_sent, out.bytes_received),
        (5, 55, 110)
    );
    let latency = out.latency.as_ref().unwrap();
    assert_eq!(latency.count(), 5);
    assert_eq!(latency.percentile_us(500), Some(12));
    assert_eq!(latency.percentile_us(990), Some(14));
    let refused = row(&t, Side::Connect, process(100, "client"), "127.0.0.1", 9);
    assert_eq!(
        (refused.connects, refused.established, refused.failed),
        (3, 0, 3)
    );
    assert_eq!(refused.errors, [(libc::ECONNREFUSED, 3)]);
    assert_eq!(refused.closes, 0);
    assert!(
        refused.latency.is_none(),
        "failed handshakes are not in the latency"
    );
    let inbound = row(&t, Side::Accept, process(200, "server"), "127.0.0.1", 8080);
    assert_eq!((inbound.accepts, inbound.connects), (5, 0));
    assert_eq!(
        (inbound.closes, inbound.bytes_sent, inbound.bytes_received),
        (5, 110, 55)
    );
    // Most active first: the connect row (20 events), the accept row (10), the refused (6).
    assert_eq!(t.rows[0].0.port, 8080);
    assert_eq!(t.rows[0].0.side, Side::Connect);
    assert_eq!(t.rows[1].0.side, Side::Accept);
    assert_eq!(t.rows[2].0.port, 9);
    assert_eq!(c.open_sockets(), 0, "every close forgot its socket");
}

#[test]
fn a_connect_refused_before_the_syn_is_a_failure() {
    let mut c = Counter::new(0);
    let e = failed(
        ev(
            Kind::Connect,
            Some(owner(1, "curl")),
            "0.0.0.0:0",
            "127.0.0.1:80",
            1,
        ),
        libc::ENETUNREACH,
    );
    c.record(&e);
    c.record(&e);
    c.record(&failed(
        ev(
            Kind::Failed,
            Some(owner(1, "curl")),
            "127.0.0.1:5",
            "127.0.0.1:80",
            2,
        ),
        libc::ECONNREFUSED,
    ));
    let t = c.take(1, true);
    let r = row(&t, Side::Connect, process(1, "curl"), "127.0.0.1", 80);
    assert_eq!((r.connects, r.failed), (2, 3));
    // Ordered by errno: ENETUNREACH (101) before ECONNREFUSED (111).
    assert_eq!(r.errors, [(libc::ENETUNREACH, 2), (libc::ECONNREFUSED, 1)]);
    assert_eq!(c.open_sockets(), 0);
}

#[test]
fn accepted_connections_group_by_local_port_and_client_address() {
    let server = Some(owner(7, "nginx"));
    let mut c = Counter::new(0);
    for (i, client) in ["127.0.0.2:50000", "127.0.0.2:50001", "127.0.0.3:50000"]
        .iter()
        .enumerate()
    {
        c.record(&ev(Kind::Accept, server, "127.0.0.1:443", client, i as u64));
    }
    c.record(&ev(
        Kind::Accept,
        server,
        "127.0.0.1:80",
        "127.0.0.2:50002",
        9,
    ));
    let t = c.take(1, true);
    assert_eq!(t.rows.len(), 3);
    assert_eq!(
        row(&t, Side::Accept, process(7, "nginx"), "127.0.0.2", 443).accepts,
        2
    );
    assert_eq!(
        row(&t, Side::Accept, process(7, "nginx"), "127.0.0.3", 443).accepts,
        1
    );
    assert_eq!(
        row(&t, Side::Accept, process(7, "nginx"), "127.0.0.2", 80).accepts,
        1
    );
}

#[test]
fn processes_are_told_apart_by_pid_and_comm() {
    let mut c = Counter::new(0);
    for who in [owner(1, "a"), owner(2, "a"), owner(1, "b"), owner(1, "a")] {
        c.record(&ev(Kind::Connect, Some(who), "127.0.0.1:1", SERVICE, 0));
    }
    let t = c.take(1, true);
    assert_eq!(t.rows.len(), 3);
    assert_eq!(
        row(&t, Side::Connect, process(1, "a"), "127.0.0.1", 8080).connects,
        2
    );
}

/// A close whose opening was not seen: the row this table has for it, else the lower port's
/// side; one with an unknown owner groups under no process.
#[test]
fn closes_of_sockets_not_seen_opening() {
    let web = Some(owner(5, "web"));
    let mut c = Counter::new(0);
    c.record(&ev(
        Kind::Accept,
        web,
        "127.0.0.1:50500",
        "127.0.0.9:60000",
        1,
    ));
    // An older connection to the same service from the same client: the accept row decides,
    // though its remote port is the lower one.
    c.record(&close(
        ev(Kind::Close, web, "127.0.0.1:50500", "127.0.0.9:1000", 2),
        None,
        3,
    ));
    // No row: the lower port is the service.
    c.record(&close(
        ev(Kind::Close, None, "127.0.0.1:22", "127.0.0.8:50123", 3),
        None,
        4,
    ));
    c.record(&close(
        ev(Kind::Close, None, "127.0.0.1:50124", "127.0.0.8:443", 4),
        Some(5),
        6,
    ));
    let t = c.take(1, true);
    let served = row(&t, Side::Accept, process(5, "web"), "127.0.0.9", 50500);
    assert_eq!(
        (served.accepts, served.closes, served.bytes_received),
        (1, 1, 3)
    );
    assert_eq!((served.sent_unknown, served.bytes_sent), (1, 0));
    let ssh = row(&t, Side::Accept, None, "127.0.0.8", 22);
    assert_eq!(
        (ssh.closes, ssh.sent_unknown, ssh.bytes_received),
        (1, 1, 4)
    );
    let https = row(&t, Side::Connect, None, "127.0.0.8", 443);
    assert_eq!(
        (https.closes, https.bytes_sent, https.bytes_received),
        (1, 5, 6)
    );
}

/// A connection opened in one interval and closed in the next: its close lands on the next
/// table's row of the same side; each table counts only its own interval.
#[test]
fn intervals_count_their_own_events_and_keep_open_sockets() {
    let mut c = Counter::new(10);
    let who = Some(owner(3, "app"));
    // A high service port, so that only the remembered side can put the close right.
    let out = ev(
        Kind::Established,
        who,
        "127.0.0.1:40000",
        "127.0.0.1:50000",
        77,
    );
    c.record(&out);
    let first = c.take(20, false);
    assert_eq!((first.since_ns, first.at_ns, first.last), (10, 20, false));
    assert_eq!(first.rows.len(), 1);
    assert_eq!(c.open_sockets(), 1);
    c.record(&close(out, Some(1), 2));
    let second = c.take(30, true);
    assert_eq!((second.since_ns, second.at_ns, second.last), (20, 30, true));
    let r = row(
        &second,
        Side::Connect,
        process(3, "app"),
        "127.0.0.1",
        50000,
    );
    assert_eq!((r.established, r.closes, r.bytes_sent), (0, 1, 1));
    let empty = c.take(40, true);
    assert!(empty.rows.is_empty() && empty.other.is_none());
}

/// Far more distinct peers than rows: the table stays at the cap, the least active rows are
/// folded into `other`, and every count is still there.
#[test]
fn more_peers_than_rows_fold_into_other_and_keep_every_count() {
    const CAP: usize = 64;
    let mut c = Counter::with_limits(0, CAP, 1000);
    let who = Some(owner(9, "scanner"));
    // One busy peer, then 10,000 peers of one failed connect each.
    for i in 0..100 {
        c.record(&ev(Kind::Connect, who, "127.0.0.1:1", "127.0.0.1:443", i));
    }
    let mut events = 100;
    for i in 0..10_000u32 {
        let remote = format!("127.{}.{}.{}:80", i >> 16, (i >> 8) & 255, i & 255);
        let attempt = ev(Kind::Connect, who, "127.0.0.1:1", &remote, u64::from(i));
        c.record(&attempt);
        c.record(&failed(
            Event {
                kind: Kind::Failed,
                ..attempt
            },
            libc::ECONNREFUSED,
        ));
        events += 2;
        assert!(c.rows.len() <= CAP);
    }
    let t = c.take(1, true);
    assert!(t.rows.len() <= CAP);
    let (folded, other) = t.other.as_ref().expect("an other row");
    assert_eq!(
        *folded as usize + t.rows.len(),
        10_001,
        "every key is a row or folded"
    );
    let total: u64 = t.rows.iter().map(|(_, r)| r.activity()).sum::<u64>() + other.activity();
    assert_eq!(total, events);
    let connects: u64 = t.rows.iter().map(|(_, r)| r.connects).sum::<u64>() + other.connects;
    assert_eq!(connects, 10_100);
    let refused: u64 = t
        .rows
        .iter()
        .map(|(_, r)| &r.errors)
        .chain([&other.errors])
        .flatten()
        .map(|&(errno, n)| {
            assert_eq!(errno, libc::ECONNREFUSED);
            n
        })
        .sum();
    assert_eq!(refused, 10_000);
    // The busy peer kept its row, at the top.
    assert_eq!(t.rows[0].0.port, 443);
    assert_eq!(t.rows[0].1.connects, 100);
}

#[test]
fn open_sockets_are_bounded_and_the_rest_guessed() {
    let mut c = Counter::with_limits(0, 16, 2);
    let who = Some(owner(1, "x"));
    for i in 0..5 {
        c.record(&ev(
            Kind::Accept,
            who,
            "127.0.0.1:50000",
            "127.0.0.1:60000",
            i,
        ));
    }
    assert_eq!(c.open_sockets(), 2);
    for i in 0..5 {
        c.record(&close(
            ev(Kind::Close, who, "127.0.0.1:50000", "127.0.0.1:60000", i),
            Some(1),
            1,
        ));
    }
    let t = c.take(1, true);
    assert_eq!(
        t.rows.len(),
        1,
        "the remembered and the guessed closes agree"
    );
    assert_eq!(t.rows[0].1.closes, 5);
    assert_eq!(c.open_sockets(), 0);
}

#[test]
fn errnos_per_row_are_bounded() {
    let mut c = Counter::new(0);
    let who = Some(owner(1, "x"));
    for errno in 1..=(MAX_ERRNOS as i32 + 4) {
        c.record(&failed(
            ev(Kind::Failed, who, "127.0.0.1:1", SERVICE, 0),
            errno,
        ));
    }
    c.record(&ev(Kind::Failed, who, "127.0.0.1:1", SERVICE, 0));
    let t = c.take(1, true);
    let r = &t.rows[0].1;
    assert_eq!(r.errors.len(), MAX_ERRNOS);
    assert_eq!(r.errors_other, 5);
    assert_eq!(r.failed, MAX_ERRNOS as u64 + 5);
}

#[test]
fn merge_adds_everything() {
    let mut a = Row {
        connects: 1,
        errors: vec![(1, 1)],
        ..Row::default()
    };
    let mut h = Histogram::default();
    h.observe_ns(1000);
    let b = Row {
        connects: 2,
        established: 3,
        failed: 4,
        errors: vec![(1, 2), (2, 2)],
        errors_other: 1,
        accepts: 5,
        closes: 6,
        bytes_sent: 7,
        bytes_received: 8,
        sent_unknown: 9,
        latency: Some(Box::new(h)),
    };
    a.merge(&b);
    assert_eq!(
        (a.connects, a.established, a.failed, a.accepts, a.closes),
        (3, 3, 4, 5, 6)
    );
    assert_eq!(a.errors, [(1, 3), (2, 2)]);
    assert_eq!(
        (
            a.errors_other,
            a.bytes_sent,
            a.bytes_received,
            a.sent_unknown
        ),
        (1, 7, 8, 9)
    );
    assert_eq!(a.latency.unwrap().count(), 1);
}
