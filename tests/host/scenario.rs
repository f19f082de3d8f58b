//! Building blocks of the tests: servers and clients with what they reported about themselves,
//! the records conntrace must print for them, and this host's netns and cgroup.

use crate::peer::{Peer, Report, CLIENT_COMM, SERVER_COMM};
use crate::record::{self, CloseWant, Expected, Host, Record, Task};
use crate::tracer::{Finished, Tracer};
use std::time::Duration;

pub const EINPROGRESS: u64 = libc::EINPROGRESS as u64;
pub const ECONNREFUSED: u64 = libc::ECONNREFUSED as u64;
/// How long records get to arrive after the last expected one, so that unwanted ones show up.
const GRACE: Duration = Duration::from_millis(400);
const RECORD_TIMEOUT: Duration = Duration::from_secs(10);

pub fn loopback(family: &str) -> &'static str {
    if family == "6" {
        "::1"
    } else {
        "127.0.0.1"
    }
}

fn family_name(family: &str) -> &'static str {
    if family == "6" {
        "ipv6"
    } else {
        "ipv4"
    }
}

/// A listening server peer that accepts a fixed number of connections.
pub struct Server {
    peer: Peer,
    pub family: &'static str,
    pub port: u16,
    pub task: Task,
}

impl Server {
    pub fn start(family: &'static str, connections: usize) -> Result<Server, String> {
        Server::spawned(
            family,
            Peer::spawn(&format!("server {family} {connections}"))?,
        )
    }

    /// A `talk-server` (tests/host/peer.rs): one connection that carries known bytes.
    pub fn talking(
        family: &'static str,
        send: u64,
        recv: u64,
        how: &str,
    ) -> Result<Server, String> {
        Server::spawned(
            family,
            Peer::spawn(&format!("talk-server {family} {send} {recv} {how}"))?,
        )
    }

    fn spawned(family: &'static str, mut peer: Peer) -> Result<Server, String> {
        let listening = peer.expect("listening")?;
        let task = Task {
            pid: listening.u32("pid"),
            tid: listening.u32("tid"),
            uid: 0,
            comm: SERVER_COMM.into(),
        };
        Ok(Server {
            peer,
            family,
            port: listening.u16("port"),
            task,
        })
    }

    /// The server's report of its next accepted connection, checked against the client's.
    pub fn accepted(&mut self, client: &Client) -> Result<(), String> {
        let report = self.peer.expect("accepted")?;
        if report.u16("rport") != client.lport {
            return Err(format!(
                "server accepted peer port {}, but the client reports local port {}",
                report.u16("rport"),
                client.lport
            ));
        }
        if report.u32("tid") != self.task.tid {
            return Err("server accepted on another thread than it listened on".into());
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<(), String> {
        self.peer.finish()
    }
}

/// A finished client peer, as it reported itself.
pub struct Client {
    pub task: Task,
    pub family: &'static str,
    pub lport: u16,
    pub rport: u16,
    pub errno: u64,
    pub soerror: u64,
    /// The kernel holds exactly the comm the client set.
    pub comm_ok: bool,
}

impl Client {
    /// Spawns a client to loopback:`port` with extra `flags` and waits for it to finish.
    pub fn run(family: &'static str, port: u16, flags: &str) -> Result<Client, String> {
        let peer = Peer::spawn(&format!("client {} {port} {flags}", loopback(family)))?;
        Client::complete(peer, family, port, flags)
    }

    /// A `talk-client` (tests/host/peer.rs) to loopback:`port`, waited for until it is done.
    pub fn talk(
        family: &'static str,
        port: u16,
        send: u64,
        recv: u64,
        how: &str,
    ) -> Result<Client, String> {
        let peer = Peer::spawn(&format!(
            "talk-client {} {port} {send} {recv} {how}",
            loopback(family)
        ))?;
        Client::complete(peer, family, port, "")
    }

    /// A client that waits for `Peer::release` before connecting; returns the peer and its pid.
    pub fn waiting(family: &'static str, port: u16, flags: &str) -> Result<(Peer, u32), String> {
        let mut peer = Peer::spawn(&format!("client {} {port} wait {flags}", loopback(family)))?;
        let pid = peer.expect("waiting")?.u32("pid");
        Ok((peer, pid))
    }

    /// Releases a waiting client and collects its report.
    pub fn release(
        mut peer: Peer,
        family: &'static str,
        port: u16,
        flags: &str,
    ) -> Result<Client, String> {
        peer.release()?;
        Client::complete(peer, family, port, flags)
    }

    fn complete(
        mut peer: Peer,
        family: &'static str,
        port: u16,
        flags: &str,
    ) -> Result<Client, String> {
        let report: Report = peer.expect("client")?;
        peer.finish()?;
        let comm = if flags.contains("escape-comm") {
            crate::cases::escape_comm_in_json_form()
        } else {
            CLIENT_COMM.into()
        };
        Ok(Client {
            task: Task {
                pid: report.u32("pid"),
                tid: report.u32("tid"),
                uid: report.u32("uid"),
                comm,
            },
            family,
            lport: report.u16("lport"),
            rport: port,
            errno: report.get("errno"),
            soerror: report.get("soerror"),
            comm_ok: report.get("comm_ok") == 1,
        })
    }

    pub fn expect_errno(&self, errno: u64, soerror: u64) -> Result<(), String> {
        if (self.errno, self.soerror) != (errno, soerror) {
            return Err(format!(
                "client's connect gave errno {} and SO_ERROR {}, want {errno} and {soerror}",
                self.errno, self.soerror
            ));
        }
        if self.lport == 0 {
            return Err("client reports local port 0".into());
        }
        Ok(())
    }

    fn record(&self, event: &'static str, error: Option<&'static str>) -> Expected {
        let addr = loopback(self.family);
        Expected {
            event,
            task: self.task.clone(),
            family: family_name(self.family),
            laddr: addr,
            lport: self.lport,
            raddr: addr,
            rport: self.rport,
            error,
            close: None,
        }
    }

    pub fn connect(&self) -> Expected {
        self.record("connect", None)
    }

    pub fn established(&self) -> Expected {
        self.record("established", None)
    }

    pub fn failed(&self, error: &'static str) -> Expected {
        self.record("failed", Some(error))
    }

    /// The server's accept of this client's connection.
    pub fn accepted_by(&self, server: &Server) -> Expected {
        let addr = loopback(self.family);
        Expected {
            event: "accept",
            task: server.task.clone(),
            family: family_name(self.family),
            laddr: addr,
            lport: server.port,
            raddr: addr,
            rport: self.lport,
            error: None,
            close: None,
        }
    }

    /// The close of this client's end: `sent` and `received` payload bytes, who closed first
    /// (None: either, the test leaves it to a race), and the socket's error.
    pub fn closed(
        &self,
        sent: u64,
        received: u64,
        closed_by: Option<&'static str>,
        error: Option<&'static str>,
    ) -> Expected {
        Expected {
            close: Some(CloseWant {
                bytes_sent: sent,
                bytes_received: received,
                closed_by,
            }),
            ..self.record("close", error)
        }
    }

    /// The close of the server's end of this client's connection (bytes from the server's
    /// side).
    pub fn closed_by_server(
        &self,
        server: &Server,
        sent: u64,
        received: u64,
        closed_by: Option<&'static str>,
        error: Option<&'static str>,
    ) -> Expected {
        let accept = self.accepted_by(server);
        Expected {
            task: accept.task,
            laddr: accept.laddr,
            lport: accept.lport,
            raddr: accept.raddr,
            rport: accept.rport,
            ..self.closed(sent, received, closed_by, error)
        }
    }

    /// connect, established, the server's accept, and both ends' closes (no data: the
    /// client exits, the server drops the connection, in either order).
    pub fn full_connection(&self, server: &Server) -> Vec<Expected> {
        vec![
            self.connect(),
            self.established(),
            self.accepted_by(server),
            self.closed(0, 0, None, None),
            self.closed_by_server(server, 0, 0, None, None),
        ]
    }
}

/// The test's window and this machine's identity, for `record::check_exact`.
pub struct Window {
    start_us: u64,
}

impl Window {
    pub fn open() -> Window {
        Window {
            start_us: record::now_us(),
        }
    }

    pub fn host(&self) -> Result<Host, String> {
        let cgroup = cgroup_id()?;
        Ok(Host {
            netns: netns_inode()?,
            cgroup,
            cgroup_path: cgroup.and_then(|_| own_cgroup_path()),
            owner: None,
            window_us: (self.start_us, record::now_us()),
        })
    }
}

/// Waits for `count` stdout lines, gives stragglers a moment, stops conntrace with SIGINT.
pub fn collect(tracer: Tracer, count: usize) -> Result<Finished, String> {
    let arrived = tracer.wait_for(RECORD_TIMEOUT, |lines| lines.len() >= count);
    if !arrived {
        let lines = tracer.stdout_lines();
        let finished = tracer.interrupt();
        let stderr = finished.map(|f| f.stderr_text()).unwrap_or_else(|e| e);
        return Err(format!(
            "only {} of {count} expected stdout lines within {} s:\n{}\nstderr:\n{stderr}",
            lines.len(),
            RECORD_TIMEOUT.as_secs(),
            lines
                .iter()
                .map(|l| String::from_utf8_lossy(l))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    std::thread::sleep(GRACE);
    tracer.interrupt()
}

/// Collects a `--json` run and checks its records are exactly `expected`.
pub fn expect_json(
    tracer: Tracer,
    window: &Window,
    expected: &[Expected],
) -> Result<Vec<Record>, String> {
    let finished = collect(tracer, expected.len())?;
    let records = record::parse_lines(&finished.stdout)?;
    record::check_exact(&records, expected, &window.host()?)?;
    Ok(records)
}

/// The inode of our network namespace, which conntrace reports as netns.
pub fn netns_inode() -> Result<u64, String> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .map_err(|e| format!("stat /proc/self/ns/net: {e}"))
}

/// This process's cgroup v2 path (`0::PATH` in /proc/self/cgroup).
pub fn own_cgroup_path() -> Option<String> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(String::from)
}

/// The cgroup2 mount point, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        (after.split(' ').next()? == "cgroup2")
            .then(|| before.split(' ').nth(4).map(String::from))?
    })
}

/// The cgroup v2 id of this process (peers inherit it): the inode of its cgroup2 directory.
/// None when no cgroup2 hierarchy is mounted (then only "non-zero" can be checked).
pub fn cgroup_id() -> Result<Option<u64>, String> {
    use std::os::unix::fs::MetadataExt;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let Some(path) = cgroups.lines().find_map(|l| l.strip_prefix("0::")) else {
        return Ok(None);
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    // Fields: id parent dev root mountpoint options ... - fstype source options
    let mount = mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        (after.split(' ').next()? == "cgroup2")
            .then(|| before.split(' ').nth(4).map(String::from))?
    });
    let Some(mount) = mount else { return Ok(None) };
    let dir = format!("{mount}{}", path.trim_end_matches('/'));
    std::fs::metadata(&dir)
        .map(|m| Some(m.ino()))
        .map_err(|e| format!("stat {dir}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Checks of the harness itself (`host -- --self-check`): no conntrace involved.

/// The peers behave as the tests assume: ports, errnos, uid, comm and the wait handshake.
pub fn self_check_peers() -> Result<(), String> {
    for family in ["4", "6"] {
        let mut server = Server::start(family, 2)?;
        let plain = Client::run(family, server.port, "")?;
        server.accepted(&plain)?;
        plain.expect_errno(0, 0)?;
        let nonblocking = Client::run(family, server.port, "nonblock")?;
        server.accepted(&nonblocking)?;
        nonblocking.expect_errno(EINPROGRESS, 0)?;
        server.finish()?;
        if plain.task.pid == server.task.pid || plain.task.tid != plain.task.pid {
            return Err(
                "client pid/tid do not look like a single-threaded child of its own".into(),
            );
        }
        let refusing = crate::peer::RefusingPort::new(family)?;
        Client::run(family, refusing.port, "")?.expect_errno(ECONNREFUSED, 0)?;
    }
    let mut server = Server::start("4", 2)?;
    let (waiting, pid) = Client::waiting("4", server.port, "uid=65534 escape-comm")?;
    let nobody = Client::release(waiting, "4", server.port, "uid=65534 escape-comm")?;
    server.accepted(&nobody)?;
    if nobody.task.pid != pid || nobody.task.uid != 65534 {
        return Err(format!(
            "waiting client: pid {} uid {}, want {pid} and 65534",
            nobody.task.pid, nobody.task.uid
        ));
    }
    let (waiting, _) = Client::waiting("4", server.port, "")?;
    let plain = Client::release(waiting, "4", server.port, "")?;
    server.accepted(&plain)?;
    server.finish()?;
    if !nobody.comm_ok || !plain.comm_ok {
        return Err("the kernel did not take the comm the client set".into());
    }
    Ok(())
}

/// netns and cgroup are read the way the kernel reports them: the nsfs inode behind the
/// /proc link (not the link's own inode), and a cgroup2 directory inode.
pub fn self_check_host_identity() -> Result<(), String> {
    let link = std::fs::read_link("/proc/self/ns/net").map_err(|e| e.to_string())?;
    let want = format!("net:[{}]", netns_inode()?);
    if link.to_string_lossy() != want {
        return Err(format!(
            "/proc/self/ns/net -> {link:?}, but netns_inode() gives {want}"
        ));
    }
    if cgroup_id()? == Some(0) {
        return Err("cgroup id 0".into());
    }
    Ok(())
}

/// The record checks accept a correct set of records and reject each kind of mistake.
pub fn self_check_matching() -> Result<(), String> {
    let task = |pid, comm: &str| Task {
        pid,
        tid: pid,
        uid: 0,
        comm: comm.into(),
    };
    let connect = Expected {
        event: "connect",
        task: task(100, CLIENT_COMM),
        family: "ipv4",
        laddr: "127.0.0.1",
        lport: 40000,
        raddr: "127.0.0.1",
        rport: 5000,
        error: None,
        close: None,
    };
    let established = Expected {
        event: "established",
        ..connect.clone()
    };
    let accept = Expected {
        event: "accept",
        task: task(200, SERVER_COMM),
        lport: 5000,
        rport: 40000,
        ..connect.clone()
    };
    let expected = [connect, established, accept];
    let window = Window::open();
    let host = Host {
        netns: 4026531840,
        cgroup: Some(1),
        cgroup_path: Some("/".into()),
        owner: Some((None, None)),
        window_us: (window.start_us, window.start_us + 2_000_000),
    };
    let ts = format_ts(window.start_us + 1000);
    let line = |e: &Expected, sock: &str, latency: &str| {
        format!(
            r#"{{"ts":"{ts}","event":"{}","pid":{},"tid":{},"uid":{},"comm":"{}","family":"{}","laddr":"{}","lport":{},"raddr":"{}","rport":{},"netns":4026531840,"cgroup":1,"sock":"{sock}","error":null,"latency_us":{latency},"duration_us":null,"bytes_sent":null,"bytes_received":null,"closed_by":null,"cgroup_path":"/","container_id":null,"pod_uid":null}}"#,
            e.event, e.task.pid, e.task.tid, e.task.uid, e.task.comm, e.family, e.laddr, e.lport, e.raddr, e.rport
        )
        .into_bytes()
    };
    let good = vec![
        line(&expected[0], "00000000000000aa", "null"),
        line(&expected[1], "00000000000000aa", "57"),
        line(&expected[2], "00000000000000bb", "null"),
    ];
    let check = |lines: &[Vec<u8>]| -> Result<(), String> {
        record::check_exact(&record::parse_lines(lines)?, &expected, &host)
    };
    check(&good).map_err(|e| format!("correct records rejected: {e}"))?;
    let text = |i: usize| String::from_utf8(good[i].clone()).unwrap();
    let mutations: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("missing record", good[..2].to_vec()),
        (
            "extra record",
            [good.clone(), vec![good[2].clone()]].concat(),
        ),
        (
            "outcome first",
            vec![good[1].clone(), good[0].clone(), good[2].clone()],
        ),
        (
            "wrong tid",
            vec![
                text(0).replace("\"tid\":100", "\"tid\":101").into(),
                good[1].clone(),
                good[2].clone(),
            ],
        ),
        (
            "sock differs",
            vec![
                good[0].clone(),
                text(1).replace("aa\"", "ab\"").into(),
                good[2].clone(),
            ],
        ),
        (
            "shared sock",
            vec![
                good[0].clone(),
                good[1].clone(),
                text(2).replace("bb\"", "aa\"").into(),
            ],
        ),
        (
            "latency null",
            vec![
                good[0].clone(),
                text(1)
                    .replace("\"latency_us\":57", "\"latency_us\":null")
                    .into(),
                good[2].clone(),
            ],
        ),
        (
            "latency on accept",
            vec![
                good[0].clone(),
                good[1].clone(),
                text(2)
                    .replace("\"latency_us\":null", "\"latency_us\":3")
                    .into(),
            ],
        ),
        (
            "error set",
            vec![
                text(0)
                    .replace("\"error\":null", "\"error\":\"EPERM\"")
                    .into(),
                good[1].clone(),
                good[2].clone(),
            ],
        ),
        (
            "key order",
            vec![
                text(0)
                    .replace("\"pid\":100,\"tid\":100", "\"tid\":100,\"pid\":100")
                    .into(),
                good[1].clone(),
                good[2].clone(),
            ],
        ),
        (
            "ts long ago",
            vec![
                text(0).replace(&ts, "2001-01-01T00:00:00.000000Z").into(),
                good[1].clone(),
                good[2].clone(),
            ],
        ),
        (
            "netns",
            vec![
                text(0).replace("4026531840", "4026531841").into(),
                good[1].clone(),
                good[2].clone(),
            ],
        ),
    ];
    for (what, lines) in mutations {
        if check(&lines).is_ok() {
            return Err(format!("records with mistake '{what}' accepted"));
        }
    }
    Ok(())
}

/// Microseconds since the epoch -> RFC 3339, the inverse of `record::parse_ts` (via search).
fn format_ts(us: u64) -> String {
    let secs = us / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let mut year = 1970;
    let mut month = 1;
    // Walk forward one month at a time: slow but obviously right, and only for the self-check.
    loop {
        let next = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let start =
            record::parse_ts(&format!("{:04}-{:02}-01T00:00:00.000000Z", next.0, next.1)).unwrap();
        if start / 86_400_000_000 > days {
            break;
        }
        (year, month) = next;
    }
    let first = record::parse_ts(&format!("{year:04}-{month:02}-01T00:00:00.000000Z")).unwrap()
        / 86_400_000_000;
    format!(
        "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        days - first + 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        us % 1_000_000
    )
}
