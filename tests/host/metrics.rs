//! `--metrics`: a real Prometheus (Debian's `prometheus`, started here on loopback with a
//! config and data directory of its own) scrapes conntrace while known connections are made,
//! and its HTTP API must return exactly those counts; `promtool check metrics` must accept
//! the exposition; malformed, oversized and slow HTTP clients are refused and never stop the
//! tracing or a scrape.

use crate::containers::Leaf;
use crate::peer::RefusingPort;
use crate::scenario::{Client, Server};
use crate::tracer::Tracer;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vmtest::json::{self, Value};

const CONTAINER: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Sends `request` and reads the whole response (the server closes after it).
fn exchange(addr: SocketAddr, request: &[u8]) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(request).map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// The exposition's samples that are not 0, for failure messages.
fn nonzero(metrics: SocketAddr) -> String {
    match get(metrics, "/metrics") {
        Ok((_, body)) => body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.ends_with(" 0") && !l.contains("_bucket"))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => e,
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prometheus, scraping `target` every second, killed and its directory removed on drop.
struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
    api: SocketAddr,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Result<Prometheus, String> {
        let dir = std::env::temp_dir().join(format!("conntrace-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: conntrace\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={api}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("cannot start prometheus (apt-get install prometheus): {e}"))?;
        Ok(Prometheus { child, dir, api })
    }

    /// The value of the instant query `q` (a single sample), or None if it has none yet.
    fn value(&self, q: &str) -> Result<Option<f64>, String> {
        let (status, body) = get(
            self.api,
            &format!("/api/v1/query?query={}", percent_encode(q)),
        )?;
        if status != 200 {
            return Ok(None);
        }
        let v = json::parse(&body)?;
        let result = v.get("data").and_then(|d| d.get("result"));
        let Some(Value::Array(samples)) = result else {
            return Err(format!("unexpected answer {body}"));
        };
        let Some(sample) = samples.first() else {
            return Ok(None);
        };
        let Some(Value::Array(pair)) = sample.get("value") else {
            return Err(format!("unexpected sample in {body}"));
        };
        Ok(pair
            .get(1)
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()))
    }

    /// Waits until every query gives its value; the first disagreement after the timeout fails.
    fn expect(&self, wants: &[(String, f64)], timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut wrong = None;
            for (q, want) in wants {
                let got = self.value(q).unwrap_or(None);
                if got != Some(*want) {
                    wrong = Some(format!("{q} is {got:?}, want {want}"));
                    break;
                }
            }
            match wrong {
                None => return Ok(()),
                Some(w) if Instant::now() > deadline => {
                    let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    return Err(format!(
                        "prometheus: {w}\nits log ends:\n{}",
                        tail.join("\n")
                    ));
                }
                Some(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn metrics_scraped_by_prometheus_are_exact() -> Result<(), String> {
    let leaf = Leaf::create(&format!("system.slice/docker-{CONTAINER}.scope"))?;
    let mut server = Server::start("4", 4)?;
    leaf.enter(server.task.pid)?;
    let refusing = RefusingPort::new("4")?;
    // Outside the container: one connection that carries known bytes each way.
    let mut talker = Server::talking("4", 2749, 1237, "second")?;
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse().unwrap();
    let ports = format!("{},{},{}", server.port, refusing.port, talker.port);
    let tracer = Tracer::attached(&["-q", "-P", &ports, "--metrics", &metrics.to_string()])?;
    let prometheus = Prometheus::start(metrics)?;

    // Three connections from inside the container, two refused ones from outside.
    for _ in 0..3 {
        let (peer, pid) = Client::waiting("4", server.port, "")?;
        leaf.enter(pid)?;
        let client = Client::release(peer, "4", server.port, "")?;
        server.accepted(&client)?;
    }
    for _ in 0..2 {
        Client::run("4", refusing.port, "")?;
    }
    let talk = Client::talk("4", talker.port, 1237, 2749, "first")?;
    talker.accepted(&talk)?;
    talker.finish()?;
    let c = format!("container=\"{CONTAINER}\"");
    let wants = |connects_inside: f64| {
        vec![
            (format!("conntrace_events_total{{event=\"connect\",{c}}}"), connects_inside),
            (format!("conntrace_events_total{{event=\"established\",{c}}}"), connects_inside),
            (format!("conntrace_events_total{{event=\"accept\",{c}}}"), connects_inside),
            ("conntrace_events_total{event=\"connect\",container=\"\"}".into(), 3.0),
            ("conntrace_events_total{event=\"failed\",container=\"\"}".into(), 2.0),
            ("conntrace_events_total{event=\"established\",container=\"\"}".into(), 1.0),
            ("conntrace_events_total{event=\"accept\",container=\"\"}".into(), 1.0),
            ("conntrace_events_total{event=\"close\",container=\"\"}".into(), 2.0),
            // Each end counts what it sent and received: 1237 + 2749 either way.
            ("conntrace_bytes_total{direction=\"sent\",container=\"\"}".into(), 3986.0),
            ("conntrace_bytes_total{direction=\"received\",container=\"\"}".into(), 3986.0),
            (
                "conntrace_errors_total{event=\"failed\",error=\"ECONNREFUSED\",container=\"\"}".into(),
                2.0,
            ),
            (
                format!("conntrace_handshake_latency_seconds_count{{outcome=\"established\",{c}}}"),
                connects_inside,
            ),
            (
                format!(
                    "conntrace_handshake_latency_seconds_bucket{{outcome=\"established\",{c},le=\"+Inf\"}}"
                ),
                connects_inside,
            ),
            // Both ends of each inside connection are inside: the client's and the server's.
            (
                format!("conntrace_events_total{{event=\"close\",{c}}}"),
                2.0 * connects_inside,
            ),
            (format!("conntrace_bytes_total{{direction=\"sent\",{c}}}"), 0.0),
            ("count(conntrace_events_total)".into(), 10.0),
            ("sum(conntrace_lost_events_total)".into(), 0.0),
        ]
    };
    prometheus
        .expect(&wants(3.0), Duration::from_secs(20))
        .map_err(|e| format!("{e}\nconntrace's /metrics:\n{}", nonzero(metrics)))?;

    // The exposition is valid by promtool's rules.
    let (status, body) = get(metrics, "/metrics")?;
    if status != 200 {
        return Err(format!("GET /metrics: {status}"));
    }
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool: {e}"))?;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = check.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }

    // Hostile clients: each refused with its status, slow ones held open meanwhile.
    let slow: Vec<TcpStream> = (0..40)
        .filter_map(|_| {
            let mut s = TcpStream::connect(metrics).ok()?;
            s.write_all(b"GET /metr").ok()?;
            Some(s)
        })
        .collect();
    for (request, want) in [
        (
            &b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"[..],
            400,
        ),
        (
            b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            405,
        ),
        (b"GET / HTTP/1.1\r\n\r\n", 404),
        (b"GET /metrics HTTP/1.1\r\nbroken header\r\n\r\n", 400),
        (&[b'A'; 20_000][..], 431),
    ] {
        let (status, _) = exchange(metrics, request)?;
        if status != want {
            return Err(format!(
                "{:?}...: status {status}, want {want}",
                &request[..8]
            ));
        }
    }
    // A scrape still gets through while the slow ones hang, and tracing went on.
    let (peer, pid) = Client::waiting("4", server.port, "")?;
    leaf.enter(pid)?;
    let client = Client::release(peer, "4", server.port, "")?;
    server.accepted(&client)?;
    server.finish()?;
    let started = Instant::now();
    let (status, _) = get(metrics, "/metrics")?;
    if status != 200 || started.elapsed() > Duration::from_secs(2) {
        return Err(format!(
            "a scrape among slow clients: {status} after {:?}",
            started.elapsed()
        ));
    }
    prometheus
        .expect(&wants(4.0), Duration::from_secs(20))
        .map_err(|e| format!("{e}\nconntrace's /metrics:\n{}", nonzero(metrics)))?;
    drop(slow);
    let finished = tracer.interrupt()?;
    if !finished.stdout.is_empty() {
        return Err(format!("-q printed events: {:?}", finished.stdout.first()));
    }
    Ok(())
}
