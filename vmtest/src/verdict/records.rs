//! The TCP scenario's records: who the init says did what, and every record that must follow.

use super::fields::{check_fields, one, str_of, u64_of, Want};
use crate::console::BackendRun;
use crate::json::Value;

/// Who did what in the scenario, from the init's EXPECT line.
pub(super) struct Scenario {
    port: u64,
    closed_port: u64,
    netns: u64,
    server: Actor,
    client: Actor,
    /// (family, loopback address, client's local port, the port the server saw)
    flows: Vec<(&'static str, &'static str, u64, u64)>,
    /// Built-in offsets without BTF: netns may be null, and error on failed records.
    nobtf: bool,
}

struct Actor {
    pid: u64,
    tid: u64,
    uid: u64,
    comm: String,
}

pub(super) fn scenario(run: &BackendRun, ipv6: bool, nobtf: bool) -> Result<Scenario, String> {
    let num = |key: &str| -> Result<u64, String> {
        let text = run
            .expect_value(key)
            .ok_or_else(|| format!("the scenario did not report {key}"))?;
        text.parse()
            .map_err(|_| format!("the scenario reported {key}={text}, not a number"))
    };
    let text = |key: &str| -> Result<String, String> {
        run.expect_value(key)
            .map(str::to_string)
            .ok_or_else(|| format!("the scenario did not report {key}"))
    };
    let actor = |who: &str| -> Result<Actor, String> {
        Ok(Actor {
            pid: num(&format!("{who}_pid"))?,
            tid: num(&format!("{who}_tid"))?,
            uid: num(&format!("{who}_uid"))?,
            comm: text(&format!("{who}_comm"))?,
        })
    };
    let mut flows = vec![("ipv4", "127.0.0.1", num("v4_lport")?, num("v4_peer_port")?)];
    if ipv6 {
        flows.push(("ipv6", "::1", num("v6_lport")?, num("v6_peer_port")?));
    }
    Ok(Scenario {
        port: num("port")?,
        closed_port: num("closed_port")?,
        netns: num("netns")?,
        server: actor("server")?,
        client: actor("client")?,
        flows,
        nobtf,
    })
}

pub(super) fn check(failures: &mut Vec<String>, s: &Scenario, records: &[Value]) {
    let by = |event: &str, family: &str, lport: Option<u64>, rport: u64| -> Vec<&Value> {
        records
            .iter()
            .filter(|r| {
                str_of(r, "event") == Some(event)
                    && str_of(r, "family") == Some(family)
                    && u64_of(r, "rport") == Some(rport)
                    && lport.is_none_or(|p| u64_of(r, "lport") == Some(p))
            })
            .collect()
    };
    let outcomes_of = |sock: Option<&str>| -> Vec<&Value> {
        records
            .iter()
            .filter(|r| {
                matches!(str_of(r, "event"), Some("established" | "failed"))
                    && sock.is_some()
                    && str_of(r, "sock") == sock
            })
            .collect()
    };
    let c = &s.client;
    let srv = &s.server;
    let netns: Want<'static> = if s.nobtf {
        Want::IntOrNull(s.netns)
    } else {
        Want::Int(s.netns)
    };

    for &(family, lo, cport, peer_port) in &s.flows {
        if cport != peer_port {
            failures.push(format!(
                "scenario: the {family} client's local port {cport} differs from the port the server saw ({peer_port})"
            ));
        }
        let client_side = |event: &'static str,
                           lport: Want<'static>,
                           rport: u64|
         -> Vec<(&'static str, Want<'static>)> {
            vec![
                ("ts", Want::Timestamp),
                ("event", Want::Str(event)),
                ("pid", Want::Int(c.pid)),
                ("tid", Want::Int(c.tid)),
                ("uid", Want::Int(c.uid)),
                ("family", Want::Str(family)),
                ("laddr", Want::Str(lo)),
                ("lport", lport),
                ("raddr", Want::Str(lo)),
                ("rport", Want::Int(rport)),
                ("netns", netns.clone()),
                ("cgroup", Want::AnyInt),
                ("sock", Want::SockId),
            ]
        };
        let what = format!(
            "connect {family} [{lo}]:{cport} -> [{lo}]:{} by {} (pid {} tid {})",
            s.port, c.comm, c.pid, c.tid
        );
        let connect = one(failures, &what, by("connect", family, Some(cport), s.port));
        if let Some(rec) = connect {
            let mut wants = client_side("connect", Want::Int(cport), s.port);
            wants.extend([
                ("comm", Want::Str(&c.comm)),
                ("error", Want::Null),
                ("latency_us", Want::Null),
            ]);
            check_fields(failures, &what, rec, &wants);
        }
        let what = format!(
            "established {family} [{lo}]:{cport} -> [{lo}]:{} (same sock as its connect)",
            s.port
        );
        let found = match connect {
            Some(rec) => outcomes_of(str_of(rec, "sock")),
            None => by("established", family, Some(cport), s.port),
        };
        if let Some(rec) = one(failures, &what, found) {
            let mut wants = client_side("established", Want::Int(cport), s.port);
            wants.extend([
                ("comm", Want::Str(&c.comm)),
                ("error", Want::Null),
                ("latency_us", Want::Latency),
            ]);
            check_fields(failures, &what, rec, &wants);
        }
        let what = format!(
            "accept {family} [{lo}]:{} <- [{lo}]:{peer_port} by {} (pid {} tid {})",
            s.port, srv.comm, srv.pid, srv.tid
        );
        if let Some(rec) = one(
            failures,
            &what,
            by("accept", family, Some(s.port), peer_port),
        ) {
            let wants = [
                ("ts", Want::Timestamp),
                ("event", Want::Str("accept")),
                ("pid", Want::Int(srv.pid)),
                ("tid", Want::Int(srv.tid)),
                ("uid", Want::Int(srv.uid)),
                ("comm", Want::Str(&srv.comm)),
                ("family", Want::Str(family)),
                ("laddr", Want::Str(lo)),
                ("lport", Want::Int(s.port)),
                ("raddr", Want::Str(lo)),
                ("rport", Want::Int(peer_port)),
                ("netns", netns.clone()),
                ("cgroup", Want::AnyInt),
                ("sock", Want::SockId),
                ("error", Want::Null),
                ("latency_us", Want::Null),
            ];
            check_fields(failures, &what, rec, &wants);
            let client_sock = connect.and_then(|r| str_of(r, "sock"));
            if client_sock.is_some() && str_of(rec, "sock") == client_sock {
                failures.push(format!("{what}: has the same sock id as the client's socket; they are different sockets"));
            }
        }
    }

    // The refused connect: its local port is gone by the time the client could ask, so it is
    // only required to be non-zero and the same on both records.
    let what = format!(
        "connect ipv4 -> 127.0.0.1:{} (closed port) by {} (pid {} tid {})",
        s.closed_port, c.comm, c.pid, c.tid
    );
    let connect = one(failures, &what, by("connect", "ipv4", None, s.closed_port));
    let refused_wants = |event: &'static str,
                         lport: Want<'static>,
                         error: Want<'static>,
                         latency: Want<'static>| {
        vec![
            ("ts", Want::Timestamp),
            ("event", Want::Str(event)),
            ("pid", Want::Int(c.pid)),
            ("tid", Want::Int(c.tid)),
            ("uid", Want::Int(c.uid)),
            ("family", Want::Str("ipv4")),
            ("laddr", Want::Str("127.0.0.1")),
            ("lport", lport),
            ("raddr", Want::Str("127.0.0.1")),
            ("rport", Want::Int(s.closed_port)),
            ("netns", netns.clone()),
            ("cgroup", Want::AnyInt),
            ("sock", Want::SockId),
            ("error", error),
            ("latency_us", latency),
        ]
    };
    if let Some(rec) = connect {
        let mut wants = refused_wants("connect", Want::NonZero, Want::Null, Want::Null);
        wants.push(("comm", Want::Str(&c.comm)));
        check_fields(failures, &what, rec, &wants);
    }
    let what = format!(
        "failed ipv4 -> 127.0.0.1:{} with ECONNREFUSED (same sock as its connect)",
        s.closed_port
    );
    let found = match connect {
        Some(rec) => outcomes_of(str_of(rec, "sock")),
        None => by("failed", "ipv4", None, s.closed_port),
    };
    if let Some(rec) = one(failures, &what, found) {
        let lport = match connect.and_then(|r| u64_of(r, "lport")) {
            Some(p) => Want::Int(p),
            None => Want::NonZero,
        };
        let error = if s.nobtf {
            Want::StrOrNull("ECONNREFUSED")
        } else {
            Want::Str("ECONNREFUSED")
        };
        let mut wants = refused_wants("failed", lport, error, Want::Latency);
        wants.push(("comm", Want::Str(&c.comm)));
        check_fields(failures, &what, rec, &wants);
    }
}
