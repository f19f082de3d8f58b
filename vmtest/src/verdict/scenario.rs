//! Who did what in the TCP scenario, as the init reports it on its EXPECT line: the flows,
//! the refused connect, and the lifecycle cases (vmtest/init/src/lifecycle.rs).

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
    /// The lifecycle cases' listening port (the server's).
    pub life_port: u64,
    /// The old pair's listening port.
    pub old_port: u64,
    /// The old pair's server: it accepts the `late` connections while conntrace runs.
    pub old_server: Actor,
    /// Every lifecycle connection, per family, in the init's order.
    pub lives: Vec<Life>,
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

/// How a lifecycle connection was made and ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LifeCase {
    /// The client closed first, the server after the client's FIN.
    ClientFirst,
    /// The server closed first.
    ServerFirst,
    /// The client aborted it (SO_LINGER {1, 0}: an RST).
    ClientReset,
    /// The server aborted it.
    ServerReset,
    /// Connected and accepted before conntrace started; the client closed first.
    Old,
    /// Connected before conntrace started, accepted after; the server closed first.
    Late,
}

impl LifeCase {
    pub const ALL: [LifeCase; 6] = [
        LifeCase::ClientFirst,
        LifeCase::ServerFirst,
        LifeCase::ClientReset,
        LifeCase::ServerReset,
        LifeCase::Old,
        LifeCase::Late,
    ];

    /// The case's name in the init's facts (vmtest/init/src/lifecycle.rs).
    pub fn token(self) -> &'static str {
        match self {
            LifeCase::ClientFirst => "cfirst",
            LifeCase::ServerFirst => "sfirst",
            LifeCase::ClientReset => "creset",
            LifeCase::ServerReset => "sreset",
            LifeCase::Old => "old",
            LifeCase::Late => "late",
        }
    }
}

/// One end of a lifecycle connection, as its process reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct End {
    /// The client's local port; for the server, the peer port it saw.
    pub port: u64,
    /// Payload bytes it wrote and read.
    pub sent: u64,
    pub received: u64,
}

/// One lifecycle connection.
pub(super) struct Life {
    pub family: &'static str,
    pub addr: &'static str,
    pub case: LifeCase,
    pub client: End,
    pub server: End,
}

/// `PORT:SENT:RECEIVED`.
fn parse_end(text: &str) -> Option<End> {
    let mut parts = text.split(':').map(|p| p.parse::<u64>().ok());
    let end = End {
        port: parts.next()??,
        sent: parts.next()??,
        received: parts.next()??,
    };
    parts.next().is_none().then_some(end)
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
    let end = |key: String| -> Result<End, String> {
        let text = run
            .expect_value(&key)
            .ok_or_else(|| format!("the scenario did not report {key}"))?;
        parse_end(text)
            .ok_or_else(|| format!("the scenario reported {key}={text}, not PORT:SENT:RECEIVED"))
    };
    let mut families = vec![("ipv4", "127.0.0.1", "v4")];
    if ipv6 {
        families.push(("ipv6", "::1", "v6"));
    }
    let mut flows = Vec::new();
    let mut lives = Vec::new();
    for &(family, addr, v) in &families {
        flows.push(flow(family, addr, v)?);
        for case in LifeCase::ALL {
            let key = |side: &str| format!("{v}_{}_{side}", case.token());
            lives.push(Life {
                family,
                addr,
                case,
                client: end(key("client"))?,
                server: end(key("server"))?,
            });
        }
    }
    Ok(Scenario {
        port: num("port")?,
        closed_port: num("closed_port")?,
        netns: num("netns")?,
        server: actor("server")?,
        client: actor("client")?,
        flows,
        life_port: num("life_port")?,
        old_port: num("old_port")?,
        old_server: actor("old_server")?,
        lives,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_parse_strictly() {
        assert_eq!(
            parse_end("40001:1000:501"),
            Some(End {
                port: 40001,
                sent: 1000,
                received: 501
            })
        );
        for bad in ["", "1:2", "1:2:3:4", "a:2:3", "1::3"] {
            assert_eq!(parse_end(bad), None, "{bad}");
        }
    }
}
