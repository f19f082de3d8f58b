//! One backend's run of conntrace around the scenario, reported on the console.

use crate::lines::{wait_timeout, Lines, Next};
use crate::report::{one_line, say, status_text};
use crate::{kprobes, scenario};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONNTRACE: &str = "/bin/conntrace";
/// Attaching under TCG emulation is slow; generous, but bounded.
const ATTACH_LIMIT: Duration = Duration::from_secs(30);
const EXIT_LIMIT: Duration = Duration::from_secs(15);

pub fn run_backend(backend: &str, port: u16, ipv6: bool, netns: u64) {
    kprobes::report("KPROBE_EVENTS_BEFORE", backend);
    let started = Instant::now();
    let spawned = Command::new(CONNTRACE)
        .args(["--json", "--backend", backend])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            say(
                "ATTACH_FAILED",
                &format!("{backend} cannot start {CONNTRACE}: {e}"),
            );
            say("EXIT", &format!("{backend} not-started"));
            kprobes::report("KPROBE_EVENTS_AFTER", backend);
            return;
        }
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        say(
            "ATTACH_FAILED",
            &format!("{backend} conntrace has no pipes"),
        );
        return;
    };
    let stdout = Lines::spawn(stdout);
    let mut stderr = Lines::spawn(stderr);

    let deadline = started + ATTACH_LIMIT;
    loop {
        match stderr.next_until(deadline) {
            Next::Line(l) if l.starts_with("conntrace: attached") => {
                say(
                    "ATTACHED",
                    &format!("{backend} {:.2}", started.elapsed().as_secs_f64()),
                );
                break;
            }
            Next::Line(_) => {}
            Next::Eof => {
                let status = wait_timeout(&mut child, Duration::from_secs(2)).map(status_text);
                say(
                    "ATTACH_FAILED",
                    &format!(
                        "{backend} conntrace closed stderr ({}) before printing \"conntrace: attached\"",
                        status.unwrap_or_else(|| "still running".into())
                    ),
                );
                break;
            }
            Next::Timeout => {
                say(
                    "ATTACH_FAILED",
                    &format!(
                        "{backend} no \"conntrace: attached\" line within {}s",
                        ATTACH_LIMIT.as_secs()
                    ),
                );
                break;
            }
        }
    }

    // Run the scenario whatever happened above, so its part of the harness is always exercised.
    match scenario::run(port, port + 1, ipv6) {
        Ok(facts) => say(
            "EXPECT",
            &format!(
                "{backend} ipv6={} port={port} closed_port={} netns={netns} {}",
                u8::from(ipv6),
                port + 1,
                facts.join(" ")
            ),
        ),
        Err(e) => say("SCENARIO_ERROR", &format!("{backend} {}", one_line(&e))),
    }

    let exit = stop(&mut child);
    let grace = Instant::now() + Duration::from_secs(2);
    for line in stdout.drain_until(grace) {
        say("EVENT", &format!("{backend} {}", one_line(&line)));
    }
    for line in stderr.drain_until(grace) {
        say("STDERR", &format!("{backend} {}", one_line(&line)));
    }
    say("EXIT", &format!("{backend} {exit}"));
    kprobes::report("KPROBE_EVENTS_AFTER", backend);
}

/// SIGINT, then wait; SIGKILL if it does not exit in time.
fn stop(child: &mut std::process::Child) -> String {
    if let Ok(Some(status)) = child.try_wait() {
        return status_text(status);
    }
    // SAFETY: kill takes plain integers; the pid is our own unreaped child, so it cannot
    // have been recycled for another process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    match wait_timeout(child, EXIT_LIMIT) {
        Some(status) => status_text(status),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            "hung".to_string()
        }
    }
}

/// `conntrace check`: its report and exit status.
pub fn run_check() {
    let spawned = Command::new(CONNTRACE)
        .arg("check")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            say("CHECK_EXIT", &format!("not-started: {e}"));
            return;
        }
    };
    let out = child.stdout.take().map(Lines::spawn);
    let err = child.stderr.take().map(Lines::spawn);
    let status = match wait_timeout(&mut child, ATTACH_LIMIT) {
        Some(s) => status_text(s),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            "hung".to_string()
        }
    };
    let grace = Instant::now() + Duration::from_secs(2);
    for lines in [out, err].into_iter().flatten() {
        for line in lines.drain_until(grace) {
            say("CHECK_OUT", &one_line(&line));
        }
    }
    say("CHECK_EXIT", &status);
}
