//! The records the TCP scenario must produce: a table of expectations built from the scenario,
//! and one loop that finds each row's record and names every field that differs.

use super::fields::{check_fields, one, str_of, u64_of, Want};
use super::scenario::{Actor, Scenario};
use crate::json::Value;

/// Which end of the connection the record is about (its pid, tid, uid, comm).
#[derive(Clone, Copy)]
enum Who {
    Client,
    Server,
}

impl Who {
    fn of(self, s: &Scenario) -> &Actor {
        match self {
            Who::Client => &s.client,
            Who::Server => &s.server,
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
    /// The errno name of a failed connect; None: null.
    error: Option<&'static str>,
    /// latency_us holds a latency (outcomes), or is null.
    latency: bool,
    /// The outcome of that earlier row's connect: found by the connect's sock id when that
    /// record was found, else like any other row.
    outcome_of: Option<usize>,
    /// That earlier row's record is the other end's socket: the sock ids must differ.
    other_end_of: Option<usize>,
}

/// Every record the scenario must produce, in the order failures name them. Rows refer to
/// earlier rows by index.
fn expectations(s: &Scenario) -> Vec<Expect> {
    let by = |who: Who| {
        let a = who.of(s);
        format!("by {} (pid {} tid {})", a.comm, a.pid, a.tid)
    };
    let mut rows = Vec::new();
    for f in &s.flows {
        let (family, lo, cport) = (f.family, f.addr, f.client_port);
        let connect = rows.len();
        rows.push(Expect {
            what: format!(
                "connect {family} [{lo}]:{cport} -> [{lo}]:{} {}",
                s.port,
                by(Who::Client)
            ),
            event: "connect",
            family,
            who: Who::Client,
            addr: lo,
            lport: Port::Is(cport),
            rport: s.port,
            error: None,
            latency: false,
            outcome_of: None,
            other_end_of: None,
        });
        rows.push(Expect {
            what: format!(
                "established {family} [{lo}]:{cport} -> [{lo}]:{} (same sock as its connect)",
                s.port
            ),
            event: "established",
            family,
            who: Who::Client,
            addr: lo,
            lport: Port::Is(cport),
            rport: s.port,
            error: None,
            latency: true,
            outcome_of: Some(connect),
            other_end_of: None,
        });
        rows.push(Expect {
            what: format!(
                "accept {family} [{lo}]:{} <- [{lo}]:{} {}",
                s.port,
                f.peer_port,
                by(Who::Server)
            ),
            event: "accept",
            family,
            who: Who::Server,
            addr: lo,
            lport: Port::Is(s.port),
            rport: f.peer_port,
            error: None,
            latency: false,
            outcome_of: None,
            other_end_of: Some(connect),
        });
    }
    let connect = rows.len();
    rows.push(Expect {
        what: format!(
            "connect ipv4 -> 127.0.0.1:{} (closed port) {}",
            s.closed_port,
            by(Who::Client)
        ),
        event: "connect",
        family: "ipv4",
        who: Who::Client,
        addr: "127.0.0.1",
        lport: Port::NonZero,
        rport: s.closed_port,
        error: None,
        latency: false,
        outcome_of: None,
        other_end_of: None,
    });
    rows.push(Expect {
        what: format!(
            "failed ipv4 -> 127.0.0.1:{} with ECONNREFUSED (same sock as its connect)",
            s.closed_port
        ),
        event: "failed",
        family: "ipv4",
        who: Who::Client,
        addr: "127.0.0.1",
        lport: Port::SameAs(connect),
        rport: s.closed_port,
        error: Some("ECONNREFUSED"),
        latency: true,
        outcome_of: Some(connect),
        other_end_of: None,
    });
    rows
}

/// What each field of a row's record must hold, in the contract's order (FIELDS). `found`
/// holds the records of the rows before this one.
fn wants<'a>(
    s: &'a Scenario,
    row: &Expect,
    found: &[Option<&Value>],
) -> Vec<(&'static str, Want<'a>)> {
    let actor = row.who.of(s);
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
        true => Want::Latency,
        false => Want::Null,
    };
    vec![
        ("ts", Want::Timestamp),
        ("event", Want::Str(row.event)),
        ("pid", Want::Int(actor.pid)),
        ("tid", Want::Int(actor.tid)),
        ("uid", Want::Int(actor.uid)),
        ("comm", Want::Str(&actor.comm)),
        ("family", Want::Str(row.family)),
        ("laddr", Want::Str(row.addr)),
        ("lport", lport),
        ("raddr", Want::Str(row.addr)),
        ("rport", Want::Int(row.rport)),
        ("netns", netns),
        ("cgroup", Want::AnyInt),
        ("sock", Want::SockId),
        ("error", error),
        ("latency_us", latency),
        // The VM's init runs in the root cgroup, when cgroup2 is mounted at all.
        ("cgroup_path", Want::StrOrNull("/")),
        ("container_id", Want::Null),
        ("pod_uid", Want::Null),
    ]
}

/// The records a row is looked up by when it is not found through its connect's sock.
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

/// The outcomes (established or failed) of the socket with this id.
fn outcomes_of<'r>(records: &'r [Value], sock: Option<&str>) -> Vec<&'r Value> {
    records
        .iter()
        .filter(|r| {
            matches!(str_of(r, "event"), Some("established" | "failed"))
                && sock.is_some()
                && str_of(r, "sock") == sock
        })
        .collect()
}

/// Checks the records against the scenario: one failure per missing or repeated record, and
/// one per record naming every field that differs.
pub(super) fn check(failures: &mut Vec<String>, s: &Scenario, records: &[Value]) {
    for f in &s.flows {
        if f.client_port != f.peer_port {
            failures.push(format!(
                "scenario: the {} client's local port {} differs from the port the server saw ({})",
                f.family, f.client_port, f.peer_port
            ));
        }
    }
    let mut found: Vec<Option<&Value>> = Vec::new();
    for row in expectations(s) {
        let candidates = match row.outcome_of.and_then(|i| found[i]) {
            Some(connect) => outcomes_of(records, str_of(connect, "sock")),
            None => matching(records, &row),
        };
        let rec = one(failures, &row.what, candidates);
        if let Some(rec) = rec {
            check_fields(failures, &row.what, rec, &wants(s, &row, &found));
            let other_sock = row
                .other_end_of
                .and_then(|i| found[i])
                .and_then(|r| str_of(r, "sock"));
            if other_sock.is_some() && str_of(rec, "sock") == other_sock {
                failures.push(format!(
                    "{}: has the same sock id as the client's socket; they are different sockets",
                    row.what
                ));
            }
        }
        found.push(rec);
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
        let mut flows = vec![Flow {
            family: "ipv4",
            addr: "127.0.0.1",
            client_port: 40001,
            peer_port: 40001,
        }];
        if ipv6 {
            flows.push(Flow {
                family: "ipv6",
                addr: "::1",
                client_port: 40002,
                peer_port: 40002,
            });
        }
        Scenario {
            port: 4200,
            closed_port: 4201,
            netns: 1,
            server: actor(90, "ct-server"),
            client: actor(91, "ct-client"),
            flows,
        }
    }

    #[test]
    fn every_row_checks_every_field_of_the_contract_in_order() {
        let s = scenario(true);
        let rows = expectations(&s);
        assert_eq!(rows.len(), 3 * 2 + 2);
        for (i, row) in rows.iter().enumerate() {
            let found = vec![None; i];
            let names: Vec<&str> = wants(&s, row, &found).iter().map(|(f, _)| *f).collect();
            assert_eq!(names, FIELDS, "{}", row.what);
        }
    }

    #[test]
    fn rows_refer_only_to_earlier_connects() {
        for ipv6 in [false, true] {
            let rows = expectations(&scenario(ipv6));
            for (i, row) in rows.iter().enumerate() {
                let same_as = match row.lport {
                    Port::SameAs(j) => Some(j),
                    _ => None,
                };
                for j in [row.outcome_of, row.other_end_of, same_as]
                    .into_iter()
                    .flatten()
                {
                    assert!(j < i, "{} refers to row {j}", row.what);
                    assert_eq!(rows[j].event, "connect", "{}", row.what);
                }
            }
        }
    }
}
