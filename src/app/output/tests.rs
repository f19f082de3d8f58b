use super::*;
use crate::session::event::{Close, ClosedBy, Comm, Family, Kind, LossReason, Owner};
use std::net::SocketAddr;

/// 2026-11-28T02:30:00Z is 1795833000 s after the epoch; events happen at monotonic 5 s.
const OFFSET_NS: i64 = 1_795_833_000_000_000_000 - 5_000_000_000;

fn event(kind: Kind) -> Event {
    Event {
        ts_ns: 5_000_000_000 + 123_456_789,
        kind,
        owner: Some(owner(b"curl\0\0\0\0\0\0\0\0\0\0\0\0")),
        family: Family::Ipv4,
        local: "10.0.0.2:51234".parse().unwrap(),
        remote: "10.0.0.5:443".parse().unwrap(),
        netns: Some(4026531840),
        sock_id: 0x9f3a_0c22_e1d0_4b11,
        error: None,
        latency_ns: None,
        close: None,
    }
}

fn owner(comm: &[u8; 16]) -> Owner {
    Owner {
        pid: 1234,
        tid: 1234,
        uid: 0,
        comm: Comm::from_wire(comm),
        cgroup: 1234,
    }
}

/// A connection of 2.5 s that sent 1000 bytes and received 500, closed by this host.
fn close() -> Event {
    Event {
        close: Some(Close {
            duration_ns: Some(2_500_123_999),
            bytes_sent: Some(1000),
            bytes_received: 500,
            closed_by: ClosedBy::Local,
        }),
        ..event(Kind::Close)
    }
}

fn json_line(ev: &Event) -> String {
    let mut printer = Printer::new(Format::Json, Clock::with_offset(OFFSET_NS));
    let mut out = Vec::new();
    printer.header(&mut out);
    assert!(out.is_empty(), "JSON has no header");
    printer.event(ev, &mut out);
    String::from_utf8(out).unwrap()
}

fn text_lines(format: Format, events: &[Event]) -> Vec<String> {
    let mut printer = Printer::new(format, Clock::with_offset(OFFSET_NS));
    let mut out = Vec::new();
    printer.header(&mut out);
    for ev in events {
        printer.event(ev, &mut out);
    }
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn json_unknown_netns_is_null() {
    let ev = Event {
        netns: None,
        ..event(Kind::Accept)
    };
    assert!(json_line(&ev).contains(r#""rport":443,"netns":null,"cgroup":1234,"#));
}

#[test]
fn json_connect() {
    assert_eq!(
        json_line(&event(Kind::Connect)),
        concat!(
            r#"{"ts":"2026-11-28T02:30:00.123456Z","event":"connect","pid":1234,"tid":1234,"#,
            r#""uid":0,"comm":"curl","family":"ipv4","laddr":"10.0.0.2","lport":51234,"#,
            r#""raddr":"10.0.0.5","rport":443,"netns":4026531840,"cgroup":1234,"#,
            r#""sock":"9f3a0c22e1d04b11","error":null,"latency_us":null,"duration_us":null,"bytes_sent":null,"bytes_received":null,"closed_by":null,"cgroup_path":null,"container_id":null,"pod_uid":null}"#,
            "\n"
        )
    );
}

#[test]
fn json_connect_refused_before_syn() {
    let ev = Event {
        error: Some(101),
        ..event(Kind::Connect)
    };
    assert_eq!(
        json_line(&ev),
        concat!(
            r#"{"ts":"2026-11-28T02:30:00.123456Z","event":"connect","pid":1234,"tid":1234,"#,
            r#""uid":0,"comm":"curl","family":"ipv4","laddr":"10.0.0.2","lport":51234,"#,
            r#""raddr":"10.0.0.5","rport":443,"netns":4026531840,"cgroup":1234,"#,
            r#""sock":"9f3a0c22e1d04b11","error":"ENETUNREACH","latency_us":null,"duration_us":null,"bytes_sent":null,"bytes_received":null,"closed_by":null,"cgroup_path":null,"container_id":null,"pod_uid":null}"#,
            "\n"
        )
    );
}

#[test]
fn json_established() {
    let ev = Event {
        latency_ns: Some(1_234_999),
        ..event(Kind::Established)
    };
    assert_eq!(
        json_line(&ev),
        concat!(
            r#"{"ts":"2026-11-28T02:30:00.123456Z","event":"established","pid":1234,"#,
            r#""tid":1234,"uid":0,"comm":"curl","family":"ipv4","laddr":"10.0.0.2","#,
            r#""lport":51234,"raddr":"10.0.0.5","rport":443,"netns":4026531840,"cgroup":1234,"#,
            r#""sock":"9f3a0c22e1d04b11","error":null,"latency_us":1234,"duration_us":null,"bytes_sent":null,"bytes_received":null,"closed_by":null,"cgroup_path":null,"container_id":null,"pod_uid":null}"#,
            "\n"
        )
    );
}

#[test]
fn json_failed() {
    let ev = Event {
        latency_ns: Some(87_000),
        error: Some(111),
        ..event(Kind::Failed)
    };
    assert_eq!(
        json_line(&ev),
        concat!(
            r#"{"ts":"2026-11-28T02:30:00.123456Z","event":"failed","pid":1234,"tid":1234,"#,
            r#""uid":0,"comm":"curl","family":"ipv4","laddr":"10.0.0.2","lport":51234,"#,
            r#""raddr":"10.0.0.5","rport":443,"netns":4026531840,"cgroup":1234,"#,
            r#""sock":"9f3a0c22e1d04b11","error":"ECONNREFUSED","latency_us":87,"duration_us":null,"bytes_sent":null,"bytes_received":null,"closed_by":null,"cgroup_path":null,"container_id":null,"pod_uid":null}"#,
            "\n"
        )
    );
}

#[test]
fn json_accept_ipv6() {
    let ev = Event {
        family: Family::Ipv6,
        local: "[2001:db8::1]:22".parse().unwrap(),
        remote: "[fe80::a:0:0:1]:50000".parse().unwrap(),
        owner: Some(Owner {
            pid: 77,
            tid: 78,
            ..owner(b"sshd\0\0\0\0\0\0\0\0\0\0\0\0")
        }),
        ..event(Kind::Accept)
    };
    assert_eq!(
        json_line(&ev),
        concat!(
            r#"{"ts":"2026-11-28T02:30:00.123456Z","event":"accept","pid":77,"tid":78,"#,
            r#""uid":0,"comm":"sshd","family":"ipv6","laddr":"2001:db8::1","lport":22,"#,
            r#""raddr":"fe80::a:0:0:1","rport":50000,"netns":4026531840,"cgroup":1234,"#,
            r#""sock":"9f3a0c22e1d04b11","error":null,"latency_us":null,"duration_us":null,"bytes_sent":null,"bytes_received":null,"closed_by":null,"cgroup_path":null,"container_id":null,"pod_uid":null}"#,
            "\n"
        )
    );
}

#[test]
fn json_close() {
    assert_eq!(
        json_line(&close()),
        concat!(
            r#"{"ts":"2026-11-28T02:30:00.123456Z","event":"close","pid":1234,"tid":1234,"#,
            r#""uid":0,"comm":"curl","family":"ipv4","laddr":"10.0.0.2","lport":51234,"#,
            r#""raddr":"10.0.0.5","rport":443,"netns":4026531840,"cgroup":1234,"#,
            r#""sock":"9f3a0c22e1d04b11","error":null,"latency_us":null,"duration_us":2500123,"#,
            r#""bytes_sent":1000,"bytes_received":500,"closed_by":"local","cgroup_path":null,"#,
            r#""container_id":null,"pod_uid":null}"#,
            "\n"
        )
    );
}

#[test]
fn json_close_of_a_connection_older_than_conntrace() {
    let ev = Event {
        owner: None,
        error: Some(104),
        close: Some(Close {
            duration_ns: None,
            bytes_sent: None,
            bytes_received: 3,
            closed_by: ClosedBy::Remote,
        }),
        ..close()
    };
    assert_eq!(
        json_line(&ev),
        concat!(
            r#"{"ts":"2026-11-28T02:30:00.123456Z","event":"close","pid":null,"tid":null,"#,
            r#""uid":null,"comm":null,"family":"ipv4","laddr":"10.0.0.2","lport":51234,"#,
            r#""raddr":"10.0.0.5","rport":443,"netns":4026531840,"cgroup":null,"#,
            r#""sock":"9f3a0c22e1d04b11","error":"ECONNRESET","latency_us":null,"duration_us":null,"#,
            r#""bytes_sent":null,"bytes_received":3,"closed_by":"remote","cgroup_path":null,"#,
            r#""container_id":null,"pod_uid":null}"#,
            "\n"
        )
    );
}

#[test]
fn json_unknown_errno_still_a_string() {
    let ev = Event {
        error: Some(512),
        latency_ns: Some(0),
        ..event(Kind::Failed)
    };
    assert!(json_line(&ev).contains("\"error\":\"E512\",\"latency_us\":0,"));
}

fn loss(cpu: Option<u32>, count: u64, reason: LossReason) -> Loss {
    Loss { cpu, count, reason }
}

#[test]
fn json_lost() {
    let mut printer = Printer::new(Format::Json, Clock::with_offset(OFFSET_NS));
    let mut out = Vec::new();
    assert_eq!(
        printer.lost(
            &loss(Some(1), 17, LossReason::RingFull),
            5_000_000_000,
            &mut out
        ),
        Stream::Stdout
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"ts\":\"2026-11-28T02:30:00.000000Z\",\"event\":\"lost\",\"cpu\":1,\"count\":17,\"reason\":\"ring_full\"}\n"
    );
    let mut out = Vec::new();
    printer.lost(
        &loss(None, 3, LossReason::ReturnMissed),
        5_000_000_000,
        &mut out,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"ts\":\"2026-11-28T02:30:00.000000Z\",\"event\":\"lost\",\"cpu\":null,\"count\":3,\"reason\":\"return_missed\"}\n"
    );
}

#[test]
fn text_lost_goes_to_stderr() {
    let mut printer = Printer::new(Format::Text { timestamps: true }, Clock::with_offset(0));
    let mut out = Vec::new();
    assert_eq!(
        printer.lost(&loss(Some(1), 17, LossReason::RingFull), 0, &mut out),
        Stream::Stderr
    );
    assert_eq!(out, b"lost 17 events on CPU 1 (ring full)\n");
    out.clear();
    printer.lost(&loss(Some(3), 1, LossReason::StateFull), 0, &mut out);
    assert_eq!(out, b"lost 1 event on CPU 3 (state map full)\n");
    out.clear();
    printer.lost(&loss(None, 2, LossReason::ReturnMissed), 0, &mut out);
    assert_eq!(out, b"lost 2 events (return probe missed the call)\n");
}

/// Reads a flat JSON object of strings, numbers and nulls; returns its keys in order and
/// checks the syntax on the way. Enough to hold our output to the schema.
fn json_keys(line: &str) -> Vec<String> {
    let mut chars = line
        .strip_suffix('\n')
        .expect("newline-terminated")
        .chars()
        .peekable();
    let mut keys = Vec::new();
    let string = |chars: &mut std::iter::Peekable<std::str::Chars>| -> String {
        assert_eq!(chars.next(), Some('"'));
        let mut s = String::new();
        loop {
            match chars.next().expect("unterminated string") {
                '"' => return s,
                '\\' => match chars.next().expect("dangling escape") {
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        s.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                    }
                    c @ ('"' | '\\' | '/') => s.push(c),
                    other => panic!("bad escape \\{other} in {line}"),
                },
                c => {
                    assert!(!c.is_control(), "raw control character in {line:?}");
                    s.push(c)
                }
            }
        }
    };
    assert_eq!(chars.next(), Some('{'));
    loop {
        keys.push(string(&mut chars));
        assert_eq!(chars.next(), Some(':'));
        match chars.peek() {
            Some('"') => {
                string(&mut chars);
            }
            Some('n') => assert_eq!(chars.by_ref().take(4).collect::<String>(), "null"),
            Some(c) if c.is_ascii_digit() => {
                while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
                    chars.next();
                }
            }
            other => panic!("unexpected value start {other:?} in {line}"),
        }
        match chars.next() {
            Some(',') => continue,
            Some('}') => break,
            other => panic!("unexpected {other:?} in {line}"),
        }
    }
    assert_eq!(chars.next(), None, "trailing text in {line}");
    keys
}

#[test]
fn every_json_line_has_exactly_the_documented_keys() {
    // The contract as the tests state it, independently of the writer.
    let documented = vmtest::verdict::FIELDS;
    let nasty = Comm::from_wire(b"a\x1b\n\"\\\xff\x7f\0\0\0\0\0\0\0\0\0");
    for kind in Kind::ALL {
        for error in [None, Some(111), Some(9999)] {
            let latency_ns = kind.has_latency().then_some(5_000);
            let ev = Event {
                error,
                latency_ns,
                owner: Some(Owner {
                    comm: nasty,
                    ..owner(b"x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")
                }),
                close: close().close.filter(|_| kind == Kind::Close),
                ..event(kind)
            };
            assert_eq!(json_keys(&json_line(&ev)), documented, "{kind:?} {error:?}");
        }
    }
    // A close with nothing known but the connection itself.
    let bare = Event {
        owner: None,
        close: Some(Close {
            duration_ns: None,
            bytes_sent: None,
            bytes_received: 0,
            closed_by: ClosedBy::Remote,
        }),
        ..close()
    };
    assert_eq!(json_keys(&json_line(&bare)), documented);
    let mut printer = Printer::new(Format::Json, Clock::with_offset(OFFSET_NS));
    let mut out = Vec::new();
    printer.lost(&loss(Some(0), u64::MAX, LossReason::RingFull), 0, &mut out);
    let lost = String::from_utf8(out).unwrap();
    assert_eq!(json_keys(&lost), ["ts", "event", "cpu", "count", "reason"]);
}

#[test]
fn comm_escaping_in_both_formats() {
    let ev = Event {
        owner: Some(owner(b"x\x1b[2J\n\"\\\xffy\0\0\0\0\0\0")),
        ..event(Kind::Connect)
    };
    assert!(json_line(&ev).contains(r#","comm":"x\u001b[2J\u000a\"\\\\xffy","#));
    let text = text_lines(Format::Text { timestamps: false }, &[ev]);
    assert_eq!(text.len(), 2, "the newline in comm must not split the line");
    assert!(text[1].contains(r#" x\x1b[2J\x0a"\\\xffy "#), "{}", text[1]);
}

#[test]
fn text_table() {
    let connect = event(Kind::Connect);
    let failed = Event {
        error: Some(111),
        latency_ns: Some(1_234_567),
        ..event(Kind::Failed)
    };
    let reset = Event {
        owner: None,
        error: Some(104),
        close: Some(Close {
            duration_ns: None,
            bytes_sent: None,
            bytes_received: 7,
            closed_by: ClosedBy::Remote,
        }),
        ..close()
    };
    let lines = text_lines(
        Format::Text { timestamps: false },
        &[connect, failed, close(), reset],
    );
    assert_eq!(
        lines,
        [
            "EVENT       PID     TID     UID    COMM             IP LADDR           LPORT \
             RADDR           RPORT LAT(ms)   DUR(ms)    TX_B     RX_B     CLOSED ERROR",
            "connect     1234    1234    0      curl             4  10.0.0.2        51234 \
             10.0.0.5        443   -         -          -        -        -      -",
            "failed      1234    1234    0      curl             4  10.0.0.2        51234 \
             10.0.0.5        443   1.234     -          -        -        -      ECONNREFUSED",
            "close       1234    1234    0      curl             4  10.0.0.2        51234 \
             10.0.0.5        443   -         2500.123   1000     500      local  -",
            "close       -       -       -      -                4  10.0.0.2        51234 \
             10.0.0.5        443   -         -          -        7        remote ECONNRESET",
        ]
    );
}

#[test]
fn text_timestamps_count_from_the_first_event() {
    let first = event(Kind::Connect);
    let later = Event {
        ts_ns: first.ts_ns + 2_500_123_999,
        latency_ns: Some(40_000),
        ..event(Kind::Established)
    };
    let lines = text_lines(Format::Text { timestamps: true }, &[first, later]);
    assert!(
        lines[0].starts_with("TIME(s)       EVENT       PID"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("0.000000      connect     1234"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("2.500123      established 1234"),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].ends_with(" 0.040     -          -        -        -      -"),
        "{}",
        lines[2]
    );
}

#[test]
fn text_long_ipv6_addresses_push_columns_right_but_stay_separated() {
    let ev = Event {
        family: Family::Ipv6,
        local: SocketAddr::new("2001:db8:1:2:3:4:5:6".parse().unwrap(), 1),
        remote: SocketAddr::new("::1".parse().unwrap(), 2),
        ..event(Kind::Accept)
    };
    let lines = text_lines(Format::Text { timestamps: false }, &[ev]);
    assert!(lines[1].contains(" 6  2001:db8:1:2:3:4:5:6 1     ::1             2     - "));
}

const CID: &str = "4f1c9a6b2d3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccdde";

fn pod_identity() -> crate::app::identity::Identity {
    crate::app::identity::Identity::of_path(
        format!(
            "/kubepods.slice/kubepods-pod0a1b2c3d_4e5f_6071_8293_a4b5c6d7e8f9.slice/cri-containerd-{CID}.scope"
        )
        .as_bytes(),
    )
}

#[test]
fn json_names_the_cgroup_container_and_pod() {
    let who = pod_identity();
    let mut printer = Printer::new(Format::Json, Clock::with_offset(OFFSET_NS));
    let mut out = Vec::new();
    printer.event_of(&event(Kind::Connect), Some(&who), &mut out);
    let line = String::from_utf8(out).unwrap();
    let line = line.strip_suffix('\n').unwrap();
    assert!(line.ends_with(&format!(
        r#""latency_us":null,"duration_us":null,"bytes_sent":null,"bytes_received":null,"closed_by":null,"cgroup_path":"/kubepods.slice/kubepods-pod0a1b2c3d_4e5f_6071_8293_a4b5c6d7e8f9.slice/cri-containerd-{CID}.scope","container_id":"{CID}","pod_uid":"0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"}}"#
    ).trim_end()), "{line}");
    assert_eq!(json_keys(&format!("{line}\n")), vmtest::verdict::FIELDS);
    // A cgroup directory name is any bytes: escaped like comm.
    let odd = crate::app::identity::Identity::of_path(b"/a\"b\n\xff");
    let mut out = Vec::new();
    printer.event_of(&event(Kind::Accept), Some(&odd), &mut out);
    let line = String::from_utf8(out).unwrap();
    assert!(
        line.contains(r#""cgroup_path":"/a\"b\u000a\\xff","container_id":null,"#),
        "{line}"
    );
}

#[test]
fn text_container_column_with_short_ids() {
    let who = pod_identity();
    let mut printer = Printer::new(
        Format::Text { timestamps: false },
        Clock::with_offset(OFFSET_NS),
    )
    .with_containers(true);
    let mut out = Vec::new();
    printer.header(&mut out);
    printer.event_of(&event(Kind::Connect), Some(&who), &mut out);
    printer.event_of(&event(Kind::Accept), None, &mut out);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains(" COMM             CONTAINER    IP "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(&format!(" curl             {} 4 ", &CID[..12])),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(" curl             -            4 "),
        "{}",
        lines[2]
    );
    // Without --containers the table is as before.
    let plain = text_lines(Format::Text { timestamps: false }, &[event(Kind::Connect)]);
    assert!(!plain[0].contains("CONTAINER"));
}
