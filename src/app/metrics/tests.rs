use super::*;
use crate::session::event::{Close, ClosedBy, Comm, Family, Owner};

fn event(kind: Kind, error: Option<i32>, latency_ns: Option<u64>) -> Event {
    Event {
        ts_ns: 1,
        kind,
        owner: Some(Owner {
            pid: 1,
            tid: 1,
            uid: 0,
            comm: Comm::from_wire(b"x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"),
            cgroup: 1,
        }),
        family: Family::Ipv4,
        local: "127.0.0.1:1".parse().unwrap(),
        remote: "127.0.0.1:2".parse().unwrap(),
        netns: None,
        sock_id: 1,
        error,
        latency_ns,
        close: None,
    }
}

const CID: &str = "4f1c9a6b2d3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccdde";

#[test]
fn counts_events_errors_and_latency_by_container() {
    let mut m = Metrics::new();
    m.record(&event(Kind::Connect, None, None), Some(CID));
    m.record(&event(Kind::Established, None, Some(300_000)), Some(CID));
    m.record(&event(Kind::Connect, None, None), None);
    m.record(&event(Kind::Failed, Some(111), Some(50_000)), None);
    m.record(&event(Kind::Connect, Some(101), None), None);
    m.lost(LossReason::RingFull, 17);
    let text = m.render();
    for line in [
        format!("conntrace_events_total{{event=\"connect\",container=\"{CID}\"}} 1"),
        format!("conntrace_events_total{{event=\"established\",container=\"{CID}\"}} 1"),
        "conntrace_events_total{event=\"connect\",container=\"\"} 2".into(),
        "conntrace_events_total{event=\"accept\",container=\"\"} 0".into(),
        "conntrace_errors_total{event=\"failed\",error=\"ECONNREFUSED\",container=\"\"} 1".into(),
        "conntrace_errors_total{event=\"connect\",error=\"ENETUNREACH\",container=\"\"} 1".into(),
        format!("conntrace_handshake_latency_seconds_bucket{{outcome=\"established\",container=\"{CID}\",le=\"0.00025\"}} 0"),
        format!("conntrace_handshake_latency_seconds_bucket{{outcome=\"established\",container=\"{CID}\",le=\"0.0005\"}} 1"),
        format!("conntrace_handshake_latency_seconds_bucket{{outcome=\"established\",container=\"{CID}\",le=\"+Inf\"}} 1"),
        format!("conntrace_handshake_latency_seconds_sum{{outcome=\"established\",container=\"{CID}\"}} 0.0003"),
        "conntrace_handshake_latency_seconds_count{outcome=\"failed\",container=\"\"} 1".into(),
        "conntrace_lost_events_total{reason=\"ring_full\"} 17".into(),
        "conntrace_lost_events_total{reason=\"state_full\"} 0".into(),
        "# TYPE conntrace_handshake_latency_seconds histogram".into(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    assert!(text.contains("conntrace_events_total{event=\"close\",container=\"\"} 0"));
    assert!(text.contains("conntrace_bytes_total{direction=\"sent\",container=\"\"} 0"));
    let closed = |sent, received| Event {
        close: Some(Close {
            duration_ns: Some(1),
            bytes_sent: sent,
            bytes_received: received,
            closed_by: ClosedBy::Local,
        }),
        ..event(Kind::Close, None, None)
    };
    m.record(&closed(Some(10), 20), Some(CID));
    m.record(&closed(None, 5), Some(CID));
    let text = m.render();
    for line in [
        format!("conntrace_events_total{{event=\"close\",container=\"{CID}\"}} 2"),
        format!("conntrace_bytes_total{{direction=\"sent\",container=\"{CID}\"}} 10"),
        format!("conntrace_bytes_total{{direction=\"received\",container=\"{CID}\"}} 25"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

#[test]
fn container_labels_are_capped() {
    let mut m = Metrics::new();
    for i in 0..MAX_CONTAINERS + 50 {
        let id = format!("{i:064x}");
        m.record(&event(Kind::Accept, None, None), Some(&id));
    }
    let text = m.render();
    let containers: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("conntrace_events_total{"))
        .filter_map(|l| l.split("container=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        containers.len(),
        MAX_CONTAINERS + 2,
        "the cap, \"\" and \"other\""
    );
    assert!(text.contains("conntrace_events_total{event=\"accept\",container=\"other\"} 50"));
}
