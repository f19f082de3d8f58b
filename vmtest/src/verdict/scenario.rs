//! Who did what in the TCP scenario, as the init reports it on its EXPECT line.

use crate::console::BackendRun;

pub(super) struct Scenario {
    /// The server's listening port.
    pub port: u64,
    /// A port nothing listens on: the refused connect's.
    pub closed_port: u64,
    pub netns: u64,
    pub server: Actor,
    pub client: Actor,
    /// One connection to the server per address family.
    pub flows: Vec<Flow>,
}

pub(super) struct Actor {
    pub pid: u64,
    pub tid: u64,
    pub uid: u64,
    pub comm: String,
}

/// One accepted connection over loopback.
pub(super) struct Flow {
    pub family: &'static str,
    /// The loopback address: both ends'.
    pub addr: &'static str,
    /// The client's local port, as the client saw it.
    pub client_port: u64,
    /// The client's port, as the server saw it (must be the same).
    pub peer_port: u64,
}

pub(super) fn scenario(run: &BackendRun, ipv6: bool) -> Result<Scenario, String> {
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
    let flow = |family, addr, v: &str| -> Result<Flow, String> {
        Ok(Flow {
            family,
            addr,
            client_port: num(&format!("{v}_lport"))?,
            peer_port: num(&format!("{v}_peer_port"))?,
        })
    };
    let mut flows = vec![flow("ipv4", "127.0.0.1", "v4")?];
    if ipv6 {
        flows.push(flow("ipv6", "::1", "v6")?);
    }
    Ok(Scenario {
        port: num("port")?,
        closed_port: num("closed_port")?,
        netns: num("netns")?,
        server: actor("server")?,
        client: actor("client")?,
        flows,
    })
}
