use super::*;
use crate::app::count::Counter;
use crate::app::output::{Clock, Format, Printer};
use crate::session::event::{Close, ClosedBy, Comm, Event, Family, Kind, Owner};
use vmtest::json::{self, Value};

/// 2026-12-02T10:00:05Z is 1796205605 s after the epoch; the table ends at monotonic 10 s.
const OFFSET_NS: i64 = 1_796_205_605_000_000_000 - 10_000_000_000;

fn owner(pid: u32, comm: &[u8]) -> Owner {
    let mut raw = [0u8; 16];
    raw[..comm.len()].copy_from_slice(comm);
    Owner {
        pid,
        tid: pid,
        uid: 0,
        comm: Comm::from_wire(&raw),
        cgroup: 1,
    }
}

fn ev(kind: Kind, who: Option<Owner>, local: &str, remote: &str, sock_id: u64) -> Event {
    Event {
        ts_ns: 1,
        kind,
        owner: who,
        family: Family::Ipv4,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        netns: None,
        sock_id,
        error: None,
        latency_ns: None,
        close: None,
    }
}

fn closed(mut e: Event, sent: Option<u64>, received: u64) -> Event {
    e.kind = Kind::Close;
    e.close = Some(Close {
        duration_ns: None,
        bytes_sent: sent,
        bytes_received: received,
        closed_by: ClosedBy::Remote,
    });
    e
}

/// Two connects to 8080 (latencies 120 and 1500 µs) and a refused one to 9, the server's two
/// accepts, one close each, and an old connection's close of unknown owner.
fn table() -> Table {
    let client = Some(owner(1234, b"curl"));
    let server = Some(owner(77, b"ct\x1bsrv"));
    let mut c = Counter::new(5_000_000_000);
    for (i, latency) in [(0u64, 120_000u64), (1, 1_500_000)] {
        let local = format!("127.0.0.1:{}", 40000 + i);
        let out = ev(Kind::Connect, client, &local, "127.0.0.1:8080", i);
        c.record(&out);
        c.record(&Event {
            kind: Kind::Established,
            latency_ns: Some(latency),
            ..out
        });
        c.record(&closed(out, Some(100), 1000));
        let inbound = ev(Kind::Accept, server, "127.0.0.1:8080", &local, 10 + i);
        c.record(&inbound);
        c.record(&closed(inbound, Some(1000), 100));
    }
    c.record(&Event {
        kind: Kind::Failed,
        error: Some(libc::ECONNREFUSED),
        latency_ns: Some(30_000),
        ..ev(Kind::Connect, client, "127.0.0.1:41000", "127.0.0.1:9", 20)
    });
    c.record(&closed(
        ev(Kind::Close, None, "127.0.0.1:22", "127.0.0.1:50000", 30),
        None,
        5,
    ));
    c.take(10_000_000_000, true)
}

fn printed(format: Format, tables: &[Table]) -> String {
    let mut printer = Printer::new(format, Clock::with_offset(OFFSET_NS));
    let mut out = Vec::new();
    for t in tables {
        printer.count_table(t, &mut out);
    }
    String::from_utf8(out).unwrap()
}

const HEADER: &str =
    "SIDE    PID     COMM             RADDR           LPORT RPORT CONN   EST    FAIL   \
                      ACC    CLOSE  TX_B       RX_B       P50(ms)   P99(ms)   ERRORS";

#[test]
fn text_table_columns_are_aligned() {
    let text = printed(Format::Text { timestamps: false }, &[table()]);
    let want = [
        "--- 2026-12-02T10:00:05.000000Z, 5.000 s, 4 rows (at exit)",
        HEADER,
        "connect 1234    curl             127.0.0.1       -     8080  2      2      0      -      \
         2      200        2000       0.120     1.500     -",
        "accept  77      ct\\x1bsrv        127.0.0.1       8080  -     -      -      -      2      \
         2      2000       200        -         -         -",
        "accept  -       -                127.0.0.1       22    -     -      -      -      0      \
         1      0+         5          -         -         -",
        "connect 1234    curl             127.0.0.1       -     9     0      0      1      -      \
         0      0          0          -         -         ECONNREFUSED:1",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), want, "\n{text}");
}

#[test]
fn text_tables_are_separated_and_an_empty_one_is_its_title() {
    let empty = Counter::new(10_000_000_000).take(12_500_000_000, false);
    let text = printed(Format::Text { timestamps: false }, &[table(), empty]);
    assert!(
        text.ends_with("\n\n--- 2026-12-02T10:00:07.500000Z, 2.500 s, 0 rows\n"),
        "{text}"
    );
}

fn rows(format: Format, t: Table) -> Vec<Value> {
    printed(format, &[t])
        .lines()
        .map(|l| json::parse(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn keys(v: &Value) -> Vec<&str> {
    match v {
        Value::Object(members) => members.iter().map(|(k, _)| k.as_str()).collect(),
        other => panic!("not an object: {other:?}"),
    }
}

fn u(v: &Value, key: &str) -> Option<u64> {
    let got = v.get(key).unwrap_or_else(|| panic!("no {key}"));
    if got.is_null() {
        None
    } else {
        Some(got.as_u64().unwrap_or_else(|| panic!("{key} is {got:?}")))
    }
}

#[test]
fn json_rows_have_every_key_in_order_null_where_it_does_not_apply() {
    let rows = rows(Format::Json, table());
    assert_eq!(rows.len(), 4);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(keys(row), FIELDS, "row {i}");
        assert_eq!(
            row.get("ts").unwrap().as_str(),
            Some("2026-12-02T10:00:05.000000Z")
        );
        assert_eq!(
            row.get("since").unwrap().as_str(),
            Some("2026-12-02T10:00:00.000000Z")
        );
        assert_eq!(row.get("event").unwrap().as_str(), Some("count"));
        assert_eq!(row.get("last"), Some(&Value::Bool(true)));
        assert_eq!(
            (u(row, "rank"), u(row, "rows")),
            (Some(i as u64 + 1), Some(4))
        );
        assert_eq!(u(row, "folded_rows"), None);
    }
    let out = &rows[0];
    assert_eq!(out.get("side").unwrap().as_str(), Some("connect"));
    assert_eq!(out.get("comm").unwrap().as_str(), Some("curl"));
    assert_eq!(out.get("family").unwrap().as_str(), Some("ipv4"));
    assert_eq!(out.get("raddr").unwrap().as_str(), Some("127.0.0.1"));
    assert_eq!(
        (u(out, "pid"), u(out, "lport"), u(out, "rport")),
        (Some(1234), None, Some(8080))
    );
    assert_eq!(
        ["connects", "established", "failed", "accepts", "closes"].map(|k| u(out, k)),
        [Some(2), Some(2), Some(0), None, Some(2)]
    );
    assert_eq!(out.get("errors"), Some(&Value::Object(vec![])));
    assert_eq!(
        ["bytes_sent", "bytes_received", "sent_unknown"].map(|k| u(out, k)),
        [Some(200), Some(2000), Some(0)]
    );
    assert_eq!(
        (u(out, "latency_p50_us"), u(out, "latency_p99_us")),
        (Some(120), Some(1500))
    );
    let inbound = &rows[1];
    assert_eq!(inbound.get("side").unwrap().as_str(), Some("accept"));
    assert_eq!(inbound.get("comm").unwrap().as_str(), Some("ct\u{1b}srv"));
    assert_eq!(
        (u(inbound, "lport"), u(inbound, "rport")),
        (Some(8080), None)
    );
    assert_eq!(
        ["connects", "established", "failed", "accepts", "closes"].map(|k| u(inbound, k)),
        [None, None, None, Some(2), Some(2)]
    );
    assert!(inbound.get("errors").unwrap().is_null());
    assert!(inbound.get("latency_p50_us").unwrap().is_null());
    // One event each; the close carried bytes, so it comes first.
    let refused = &rows[3];
    assert_eq!(
        refused.get("errors"),
        Some(&Value::Object(vec![(
            "ECONNREFUSED".into(),
            Value::Number("1".into())
        )]))
    );
    let old = &rows[2];
    assert!(old.get("pid").unwrap().is_null() && old.get("comm").unwrap().is_null());
    assert_eq!(
        (u(old, "lport"), u(old, "sent_unknown")),
        (Some(22), Some(1))
    );
}

#[test]
fn the_other_row_says_how_many_rows_it_holds() {
    let who = Some(owner(5, b"scan"));
    let mut c = Counter::with_limits(0, 4, 16);
    for i in 0..6u16 {
        for _ in 0..=i {
            c.record(&Event {
                error: Some(libc::EHOSTUNREACH),
                ..ev(
                    Kind::Connect,
                    who,
                    "0.0.0.0:0",
                    &format!("127.0.0.{}:80", i + 1),
                    0,
                )
            });
        }
    }
    c.record(&ev(Kind::Accept, who, "127.0.0.1:80", "127.0.0.9:5000", 1));
    let t = c.take(2_000_000_000, false);
    // 7 keys into 4 rows: each of the last three folds the least active row (a quarter of 4).
    let folded = t.other.as_ref().unwrap().0;
    assert_eq!(folded, 3);
    let text = printed(Format::Text { timestamps: false }, &[t]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with(", 5 rows; 3 less active rows folded into other (at most 4 rows)"),
        "{text}"
    );
    let other = lines.last().unwrap();
    assert!(other.starts_with("other   -       -                -               -     -     "));
    assert!(other.ends_with("EHOSTUNREACH:6"), "{other}");

    let mut c = Counter::with_limits(0, 4, 16);
    for i in 0..5u8 {
        c.record(&ev(
            Kind::Accept,
            who,
            "127.0.0.1:80",
            &format!("127.0.0.{i}:5000"),
            0,
        ));
    }
    let rows = rows(Format::Json, c.take(1, false));
    let other = rows.last().unwrap();
    assert_eq!(keys(other), FIELDS);
    assert_eq!(other.get("side").unwrap().as_str(), Some("other"));
    assert_eq!(other.get("last"), Some(&Value::Bool(false)));
    for key in ["pid", "comm", "family", "raddr", "lport", "rport"] {
        assert!(other.get(key).unwrap().is_null(), "{key}");
    }
    assert_eq!(
        (u(other, "folded_rows"), u(other, "accepts")),
        (Some(1), Some(1))
    );
    assert_eq!(u(other, "connects"), Some(0), "other counts every side");
    let accepts: u64 = rows.iter().map(|r| u(r, "accepts").unwrap()).sum();
    assert_eq!(accepts, 5);
}

#[test]
fn an_empty_table_prints_no_json() {
    assert!(printed(Format::Json, &[Counter::new(0).take(1, true)]).is_empty());
}
