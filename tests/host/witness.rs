//! The kernel's own count of state changes, taken by a second tracer (bpftrace, where it is
//! installed: scripts/test.sh installs it), for the scale tests. Linux 6.18 was seen to make
//! some state changes under storms without delivering `inet_sock_set_state` (nor, for an
//! orphaned socket, `tcp_destroy_sock`) to any BPF program: bpftrace's program missed the same
//! sockets conntrace's did. Against this count the tests hold conntrace exact for every change
//! the kernel delivers, and name the kernel's shortfall apart.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Witness {
    child: Child,
}

impl Witness {
    /// Counts `inet_sock_set_state` changes to CLOSE from `old` with the local port (`sport`)
    /// or remote port (`dport`) in `low..=high`, by old state. None where bpftrace is missing
    /// or cannot attach (then the tests want every change).
    pub fn closes(old: &[u8], low: u16, high: u16) -> Option<Witness> {
        let olds = old
            .iter()
            .map(|o| format!("args->oldstate == {o}"))
            .collect::<Vec<_>>()
            .join(" || ");
        let program = format!(
            "tracepoint:sock:inet_sock_set_state /args->newstate == 7 && ({olds}) && \
             ((args->sport >= {low} && args->sport <= {high}) || \
              (args->dport >= {low} && args->dport <= {high}))/ \
             {{ @[args->oldstate] = count(); }}"
        );
        let _ = std::fs::create_dir_all("/sys/kernel/debug");
        let _ = Command::new("mount")
            .args(["-t", "debugfs", "none", "/sys/kernel/debug"])
            .stderr(Stdio::null())
            .status();
        let mut child = Command::new("bpftrace")
            .args(["-e", &program])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // "Attaching 1 probe..." once it is in place.
        let stdout = child.stdout.take()?;
        let mut lines = BufReader::new(stdout);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut line = String::new();
        while Instant::now() < deadline {
            line.clear();
            if lines.read_line(&mut line).ok()? == 0 {
                let _ = child.wait();
                return None;
            }
            if line.starts_with("Attaching") {
                child.stdout = Some(lines.into_inner());
                std::thread::sleep(Duration::from_millis(300));
                return Some(Witness { child });
            }
        }
        let _ = child.kill();
        None
    }

    /// Stops it and returns its counts by old state.
    pub fn counts(mut self) -> Result<Vec<(u8, u64)>, String> {
        // SAFETY: signals the child this struct owns, which has not been reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            stdout
                .read_to_string(&mut out)
                .map_err(|e| format!("bpftrace's output: {e}"))?;
        }
        let _ = self.child.wait();
        // "@[5]: 99913"
        Ok(out
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("@[")?;
                let (state, n) = rest.split_once("]: ")?;
                Some((state.parse().ok()?, n.trim().parse().ok()?))
            })
            .collect())
    }
}

/// The count for `state` among `counts`.
pub fn count_of(counts: &[(u8, u64)], state: u8) -> u64 {
    counts
        .iter()
        .find(|(s, _)| *s == state)
        .map_or(0, |(_, n)| *n)
}
