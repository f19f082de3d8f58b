//! Real containers (Debian's `docker.io`; the test starts its own dockerd on a private socket
//! when none is running, with its data under $CONNTRACE_CACHE/docker, and stops it after):
//! - an image built `FROM scratch` (no registry) holding the static `ctload` connects and
//!   accepts on the host's loopback (`--network host`, so nothing leaves the machine); every
//!   record conntrace prints for it names that container's id, as `docker inspect` gives it;
//! - conntrace's own image (the repository's Dockerfile) traces from inside a container with
//!   the DaemonSet's capabilities, `--pid host` and the read-only mounts, and sees a host
//!   process's connection.
//!
//! Needs root; the static binaries are built first (`cargo build --target
//! x86_64-unknown-linux-musl`, a no-op when scripts/test.sh has built them).

#[path = "common/root.rs"]
mod root;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vmtest::json::{self, Value};

const TARGET: &str = "x86_64-unknown-linux-musl";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A docker daemon to talk to: the running one, or one of our own, stopped on drop.
struct Docker {
    host: Option<String>,
    own: Option<Child>,
    exec_root: PathBuf,
}

impl Docker {
    fn get() -> Result<Docker, String> {
        let mut default = Docker {
            host: None,
            own: None,
            exec_root: PathBuf::new(),
        };
        if default
            .cmd()
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Ok(default);
        }
        let cache =
            std::env::var("CONNTRACE_CACHE").unwrap_or_else(|_| "/var/cache/conntrace".into());
        let data = Path::new(&cache).join("docker");
        let exec_root =
            std::env::temp_dir().join(format!("conntrace-docker-{}", std::process::id()));
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&exec_root).map_err(|e| e.to_string())?;
        let sock = exec_root.join("docker.sock");
        let child = Command::new("dockerd")
            .arg(format!("--data-root={}", data.display()))
            .arg(format!("--exec-root={}", exec_root.join("exec").display()))
            .arg(format!(
                "--pidfile={}",
                exec_root.join("docker.pid").display()
            ))
            .arg(format!("--host=unix://{}", sock.display()))
            // Host networking only: no bridge, no iptables rules on the machine.
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(exec_root.join("dockerd.log")).map_err(|e| e.to_string())?,
            )
            .spawn()
            .map_err(|e| format!("cannot start dockerd (apt-get install docker.io): {e}"))?;
        default.host = Some(format!("unix://{}", sock.display()));
        default.own = Some(child);
        default.exec_root = exec_root;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !default
            .cmd()
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(default.exec_root.join("dockerd.log"))
                    .unwrap_or_default();
                return Err(format!("dockerd did not come up in 30 s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(default)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("docker");
        if let Some(h) = &self.host {
            c.env("DOCKER_HOST", h);
        }
        c
    }

    /// Builds an image from `dir` (holding a Dockerfile); no registry involved.
    fn build(&self, tag: &str, dir: &Path) -> Result<(), String> {
        run(self.cmd().args(["build", "-q", "-t", tag]).arg(dir)).map(|_| ())
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if let Some(mut child) = self.own.take() {
            // SAFETY: kill(2) on the pid of the dockerd this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&self.exec_root);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// conntrace on the host, printing JSON lines; returns them once `-n` is reached or it ends.
fn records_of(child: Child, want: usize, timeout: Duration) -> Result<Vec<Value>, String> {
    let mut child = child;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut records = Vec::new();
    while records.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => records.push(json::parse(&line)?),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(records)
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn wait_attached(child: &mut Child) -> Result<(), String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.starts_with("conntrace: attached") {
            return Ok(());
        }
        seen.push(line);
    }
    Err(format!("conntrace did not attach:\n{}", seen.join("\n")))
}

#[test]
fn containers_are_named_and_conntrace_runs_in_one() {
    if !root::root_or_skip("containers") {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Two builds: `--bin conntrace` would also narrow the ctload package to a bin of that name.
    for package in [
        &["-p", "conntrace", "--bin", "conntrace"][..],
        &["-p", "ctload"],
    ] {
        run(Command::new(&cargo)
            .current_dir(repo())
            .args(["build", "--release", "--target", TARGET])
            .args(package))
        .unwrap();
    }
    let docker = Docker::get().unwrap();
    let release = repo().join("target").join(TARGET).join("release");

    // The client image: FROM scratch with the static ctload.
    let ctx = std::env::temp_dir().join(format!("conntrace-client-image-{}", std::process::id()));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(release.join("ctload"), ctx.join("ctload")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY ctload /ctload\nENTRYPOINT [\"/ctload\"]\n",
    )
    .unwrap();
    docker.build("conntrace-test-client:latest", &ctx).unwrap();
    let _ = std::fs::remove_dir_all(&ctx);

    // 1. A container's connections name it.
    let port = free_port();
    let mut tracer = Command::new(env!("CARGO_BIN_EXE_conntrace"))
        .args(["--json", "-P", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_attached(&mut tracer).unwrap();
    let id = run(docker
        .cmd()
        .args([
            "run",
            "-d",
            "--network",
            "host",
            "conntrace-test-client:latest",
        ])
        // Paced (2 connections over about half a second): the container must outlive
        // conntrace's first look at its records, or its cgroup is gone before it is resolved.
        .args([
            "--count",
            "2",
            "--rate",
            "4",
            "--family",
            "4",
            "--port",
            &port.to_string(),
        ]))
    .unwrap();
    let records = records_of(tracer, 6, Duration::from_secs(20)).unwrap();
    run(docker.cmd().args(["wait", &id])).unwrap();
    let inspected = run(docker.cmd().args(["inspect", "--format", "{{.Id}}", &id])).unwrap();
    let _ = run(docker.cmd().args(["rm", "-f", &id]));
    assert_eq!(
        records.len(),
        6,
        "2 connects, 2 established, 2 accepts: {records:?}"
    );
    for r in &records {
        assert_eq!(str_of(r, "container_id"), Some(inspected.as_str()), "{r:?}");
        let path = str_of(r, "cgroup_path").unwrap_or_default();
        assert!(
            path.contains(&inspected),
            "cgroup_path {path:?} names {inspected}"
        );
        let comm = str_of(r, "comm").unwrap_or_default();
        assert!(comm.starts_with("ctload"), "comm {comm:?}: {r:?}");
    }

    // 2. conntrace's own image traces from inside a container.
    let ctx = std::env::temp_dir().join(format!("conntrace-image-{}", std::process::id()));
    std::fs::create_dir_all(ctx.join("target").join(TARGET).join("release")).unwrap();
    std::fs::copy(
        release.join("conntrace"),
        ctx.join("target")
            .join(TARGET)
            .join("release")
            .join("conntrace"),
    )
    .unwrap();
    std::fs::copy(repo().join("Dockerfile"), ctx.join("Dockerfile")).unwrap();
    docker.build("conntrace:test", &ctx).unwrap();
    let _ = std::fs::remove_dir_all(&ctx);
    let port = free_port();
    let mut inside = docker.cmd();
    inside.args([
        "run",
        "--rm",
        "--pid",
        "host",
        "--network",
        "host",
        "--cap-drop",
        "ALL",
    ]);
    // The DaemonSet's capabilities. Docker before 23 (Debian 12's docker.io is 20.10) knows
    // neither CAP_BPF nor CAP_PERFMON: there, CAP_SYS_ADMIN alone grants what they would.
    let knows_cap_bpf = docker
        .cmd()
        .args([
            "run",
            "--rm",
            "--cap-add",
            "BPF",
            "conntrace:test",
            "--version",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut caps = vec![
        ("SYS_ADMIN", 21),
        ("SYS_RESOURCE", 24),
        ("DAC_READ_SEARCH", 2),
        ("SETUID", 7),
        ("SETGID", 6),
        ("SETPCAP", 8),
    ];
    if knows_cap_bpf {
        caps.extend([("BPF", 39), ("PERFMON", 38)]);
    }
    // Only what this machine can grant at all (a VM's or container's bounding set may lack
    // CAP_SYS_RESOURCE; conntrace then cannot raise RLIMIT_MEMLOCK, which 5.11+ ignores).
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .unwrap_or(u64::MAX);
    let caps: Vec<&str> = caps
        .into_iter()
        .filter(|(_, bit)| bounding & (1u64 << bit) != 0)
        .map(|(name, _)| name)
        .collect();
    for cap in caps {
        inside.args(["--cap-add", cap]);
    }
    for m in ["/sys/kernel/btf", "/sys/kernel/tracing", "/sys/fs/cgroup"] {
        inside.args(["-v", &format!("{m}:{m}:ro")]);
    }
    inside
        .args([
            "conntrace:test",
            "--json",
            "-P",
            &port.to_string(),
            "-n",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut traced = inside.spawn().unwrap();
    wait_attached(&mut traced).unwrap();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let records = records_of(traced, 3, Duration::from_secs(20)).unwrap();
    drop((client, accepted));
    let events: Vec<&str> = records.iter().filter_map(|r| str_of(r, "event")).collect();
    assert_eq!(events.len(), 3, "{records:?}");
    for r in &records {
        assert_eq!(
            r.get("pid").and_then(Value::as_u64),
            Some(u64::from(std::process::id())),
            "the host's pid, seen from the container with --pid host: {r:?}"
        );
        assert_eq!(str_of(r, "container_id"), None, "{r:?}");
    }
}
