//! Containers without a container runtime: cgroup v2 leaves named as Docker, containerd (CRI,
//! in a kubepods pod slice), CRI-O and Podman name them, made under the cgroup2 mount in a
//! `conntrace-test-PID.slice` of our own and removed afterwards. Servers and clients are moved
//! into them (their pid written to `cgroup.procs`) before they accept or connect, so every
//! record must carry that leaf's cgroup id, path, container id and pod UID; and the filters
//! `--cgroup` (in the kernel) and `--container` (in user space) must show exactly theirs.

use crate::record::{self, Host};
use crate::scenario::{cgroup2_mount, collect, Client, Server, Window};
use crate::tracer::Tracer;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// Pod UIDs as Kubernetes writes them (with dashes), and container ids as runtimes do.
const POD_A: &str = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
const POD_B: &str = "9f8e7d6c-5b4a-4938-8271-605f4e3d2c1b";

fn id(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// A cgroup v2 directory made for a test, removed (with its parents up to the test's slice)
/// when dropped.
pub struct Leaf {
    pub dir: PathBuf,
    /// The path below the cgroup2 root, as conntrace prints it.
    pub path: String,
    pub id: u64,
    /// This test process's slice, the top of every leaf it makes.
    top: PathBuf,
}

impl Leaf {
    /// Makes `rel` (below this test's slice) under the cgroup2 mount.
    pub fn create(rel: &str) -> Result<Leaf, String> {
        let mount = cgroup2_mount().ok_or("no cgroup2 mount in /proc/self/mountinfo")?;
        let top = format!("/conntrace-test-{}.slice", std::process::id());
        let path = format!("{top}/{rel}");
        let top_dir = PathBuf::from(&mount).join(top.trim_start_matches('/'));
        let mut dir = PathBuf::from(&mount);
        for part in path.trim_start_matches('/').split('/') {
            dir.push(part);
            if !dir.exists() {
                std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
            }
        }
        let id = std::fs::metadata(&dir)
            .map_err(|e| format!("stat {}: {e}", dir.display()))?
            .ino();
        Ok(Leaf {
            dir,
            path,
            id,
            top: top_dir,
        })
    }

    /// Moves process `pid` into this cgroup.
    pub fn enter(&self, pid: u32) -> Result<(), String> {
        let procs = self.dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .map_err(|e| format!("write {pid} to {}: {e}", procs.display()))
    }

    /// What every record of a process in here must show.
    pub fn host(&self, window: &Window) -> Result<Host, String> {
        Ok(Host {
            cgroup: Some(self.id),
            cgroup_path: Some(self.path.clone()),
            owner: Some((
                conntrace::app::identity::container_id(self.path.as_bytes()),
                conntrace::app::identity::pod_uid(self.path.as_bytes()),
            )),
            ..window.host()?
        })
    }
}

impl Drop for Leaf {
    fn drop(&mut self) {
        // The leaf, then each parent up to our slice that no other leaf still uses. A process
        // that just exited may still count for a moment: retry briefly.
        let mut dir = self.dir.clone();
        loop {
            for _ in 0..50 {
                match std::fs::remove_dir(&dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => break,
                }
            }
            if dir == self.top || !dir.pop() || !dir.starts_with(&self.top) {
                break;
            }
        }
    }
}

/// Each runtime's naming: the leaf below our slice, and the container id and pod UID it names.
fn layouts() -> Vec<(&'static str, String, Option<String>, Option<&'static str>)> {
    let under = |uid: &str| uid.replace('-', "_");
    vec![
        (
            "docker (systemd driver)",
            format!("system.slice/docker-{}.scope", id(0xd1)),
            Some(id(0xd1)),
            None,
        ),
        (
            "docker (cgroupfs driver)",
            format!("docker/{}", id(0xd2)),
            Some(id(0xd2)),
            None,
        ),
        (
            "containerd CRI in a kubepods pod slice",
            format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{}.scope",
                under(POD_A),
                id(0xc1)
            ),
            Some(id(0xc1)),
            Some(POD_A),
        ),
        (
            "CRI-O",
            format!(
                "kubepods.slice/kubepods-pod{}.slice/crio-{}.scope",
                under(POD_B),
                id(0xc2)
            ),
            Some(id(0xc2)),
            Some(POD_B),
        ),
        (
            "podman",
            format!("machine.slice/libpod-{}.scope", id(0xb1)),
            Some(id(0xb1)),
            None,
        ),
        (
            "no container",
            "user.slice/session-1.scope".into(),
            None,
            None,
        ),
    ]
}

/// One server and one client in each runtime's leaf, under one tracer: every record names
/// the leaf's cgroup, path, container and pod.
pub fn runtime_cgroups_name_container_and_pod() -> Result<(), String> {
    let layouts = layouts();
    let mut leaves = Vec::new();
    let mut servers = Vec::new();
    for (_, rel, container, pod) in &layouts {
        let leaf = Leaf::create(rel)?;
        if conntrace::app::identity::container_id(leaf.path.as_bytes()) != *container
            || conntrace::app::identity::pod_uid(leaf.path.as_bytes()).as_deref() != *pod
        {
            return Err(format!("the test's own table disagrees for {}", leaf.path));
        }
        let server = Server::start("4", 1)?;
        leaf.enter(server.task.pid)?;
        leaves.push(leaf);
        servers.push(server);
    }
    let ports: Vec<String> = servers.iter().map(|s| s.port.to_string()).collect();
    let tracer = Tracer::attached(&["--json", "-P", &ports.join(",")])?;
    let window = Window::open();
    let mut clients = Vec::new();
    for (leaf, server) in leaves.iter().zip(&mut servers) {
        let (peer, pid) = Client::waiting("4", server.port, "")?;
        leaf.enter(pid)?;
        let client = Client::release(peer, "4", server.port, "")?;
        server.accepted(&client)?;
        server.finish()?;
        clients.push(client);
    }
    let finished = collect(tracer, 5 * layouts.len())?;
    let records = record::parse_lines(&finished.stdout)?;
    for (((name, ..), leaf), (client, server)) in layouts
        .iter()
        .zip(&leaves)
        .zip(clients.iter().zip(&servers))
    {
        let ours: Vec<_> = records
            .iter()
            .filter(|r| r.rport == server.port || r.lport == server.port)
            .cloned()
            .collect();
        record::check_exact(&ours, &client.full_connection(server), &leaf.host(&window)?)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// A server in a container's leaf, a client inside it and one outside, under `flags`: only
/// the inside client's connect, established and close, and the server's two accepts and
/// closes.
fn inside_only(flags: &[&str], leaf: &Leaf) -> Result<(), String> {
    let mut server = Server::start("4", 2)?;
    leaf.enter(server.task.pid)?;
    let port = server.port.to_string();
    let mut args = vec!["--json", "-P", &port];
    args.extend_from_slice(flags);
    let tracer = Tracer::attached(&args)?;
    let window = Window::open();
    let (peer, pid) = Client::waiting("4", server.port, "")?;
    leaf.enter(pid)?;
    let inside = Client::release(peer, "4", server.port, "")?;
    server.accepted(&inside)?;
    let outside = Client::run("4", server.port, "")?;
    server.accepted(&outside)?;
    server.finish()?;
    let finished = collect(tracer, 7)?;
    let records = record::parse_lines(&finished.stdout)?;
    if records.iter().any(|r| r.pid == Some(outside.task.pid)) {
        return Err(format!("{flags:?} showed the outside client: {records:?}"));
    }
    let (accept_outside, ours): (Vec<_>, Vec<_>) = records
        .into_iter()
        .partition(|r| r.lport == server.port && r.rport == outside.lport);
    record::check_exact(
        &ours,
        &inside.full_connection(&server),
        &leaf.host(&window)?,
    )?;
    let events: Vec<&str> = accept_outside.iter().map(|r| r.event.as_str()).collect();
    if events != ["accept", "close"] {
        return Err(format!(
            "want the server's accept and close of the outside client (the server is inside), \
             got {accept_outside:?}"
        ));
    }
    Ok(())
}

pub fn filter_cgroup_in_the_kernel() -> Result<(), String> {
    let leaf = Leaf::create(&format!("system.slice/docker-{}.scope", id(0xe1)))?;
    // Both spellings: below the mount, and the path on the mount itself.
    inside_only(&["--cgroup", &leaf.path.clone()], &leaf)?;
    let parent = leaf.dir.parent().ok_or("no parent")?.display().to_string();
    inside_only(&["--cgroup", &parent], &leaf)?;
    // A directory that is no cgroup is refused with a reason.
    let finished = crate::tracer::run_to_end(&["--cgroup", "/proc", "-d", "0.1"])?;
    if finished.status.code() != Some(1) || !finished.stderr_text().contains("--cgroup") {
        return Err(format!(
            "--cgroup /proc: want exit 1 naming --cgroup, got {:?}: {}",
            finished.status,
            finished.stderr_text()
        ));
    }
    Ok(())
}

pub fn filter_container_prefix() -> Result<(), String> {
    let leaf = Leaf::create(&format!("machine.slice/libpod-{}.scope", id(0xe2)))?;
    let prefix = id(0xe2)[..12].to_string();
    inside_only(&["--container", &prefix], &leaf)
}

/// The text table's CONTAINER column shows the short id.
pub fn text_container_column() -> Result<(), String> {
    let leaf = Leaf::create(&format!("system.slice/docker-{}.scope", id(0xe3)))?;
    let mut server = Server::start("4", 1)?;
    let port = server.port.to_string();
    let tracer = Tracer::attached(&["--containers", "-P", &port])?;
    let (peer, pid) = Client::waiting("4", server.port, "")?;
    leaf.enter(pid)?;
    let client = Client::release(peer, "4", server.port, "")?;
    server.accepted(&client)?;
    server.finish()?;
    // A header, connect, established, accept and the two ends' closes.
    let finished = collect(tracer, 6)?;
    let lines: Vec<String> = finished
        .stdout
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let short = &id(0xe3)[..12];
    let header_ok = lines.first().is_some_and(|h| h.contains(" CONTAINER "));
    let client_lines = lines
        .iter()
        .filter(|l| l.contains(&format!(" {short} ")))
        .count();
    let server_line = lines
        .iter()
        .any(|l| l.starts_with("accept") && l.contains(" ct-server ") && l.contains(" - "));
    if !header_ok || client_lines != 3 || !server_line {
        return Err(format!("want a CONTAINER column with {short} on the client's three lines and - on the accept:\n{}", lines.join("\n")));
    }
    Ok(())
}
