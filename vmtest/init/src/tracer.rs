//! Runs conntrace once and reports it on the console: the kprobe_events and BPF program
//! counts around it, its "attached" line, everything it printed and how it ended.

use crate::lines::{wait_timeout, Lines, Next};
use crate::report::{one_line, say, status_text};
use crate::{bpfprogs, kprobes};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONNTRACE: &str = "/bin/conntrace";
/// Attaching under TCG emulation is slow; generous, but bounded.
const ATTACH_LIMIT: Duration = Duration::from_secs(30);
pub const EXIT_LIMIT: Duration = Duration::from_secs(15);
/// How long freed programs may take to leave the kernel's id table.
const SETTLE_LIMIT: Duration = Duration::from_secs(3);

/// Where conntrace's stdout goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    Pipe,
    /// A pipe the init closes after reading one line (`conntrace | head -n 1`).
    PipeClosedAfterOneLine,
    /// /dev/full: the first write fails with ENOSPC.
    DevFull,
}

/// How to start conntrace for one run.
pub struct Launch<'a> {
    /// The run's name on the console (the host knows what to check by it).
    pub run: &'a str,
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    pub stdout: Stdout,
    /// Run as this uid (and gid), without capabilities, instead of root.
    pub uid: Option<u32>,
    /// List kprobe_events once attached (the tracefs method's entries must be there).
    pub list_kprobes_while_attached: bool,
}

/// A started conntrace.
pub struct Running {
    run: String,
    child: Child,
    stdout: Option<Lines>,
    stderr: Lines,
    pub attached: bool,
    progs_before: Result<u32, String>,
    progs_during: Option<u32>,
}

/// How a run ends.
#[derive(Clone, Copy)]
pub enum Finish {
    /// Send this signal, then wait.
    Signal(libc::c_int),
    /// conntrace ends by itself (-d, -n, a closed pipe, an error): only wait.
    Wait,
}

/// Starts conntrace and waits for its "attached" line; reports PID, ATTACHED or
/// ATTACH_FAILED, and the kprobe_events listing while attached if asked.
pub fn launch(l: &Launch) -> Option<Running> {
    kprobes::report("KPROBE_EVENTS_BEFORE", l.run);
    let progs_before = bpfprogs::count();
    let started = Instant::now();
    let mut cmd = Command::new(CONNTRACE);
    cmd.args(l.args)
        .envs(l.env.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    match l.stdout {
        Stdout::Pipe | Stdout::PipeClosedAfterOneLine => cmd.stdout(Stdio::piped()),
        Stdout::DevFull => match std::fs::OpenOptions::new().write(true).open("/dev/full") {
            Ok(f) => cmd.stdout(f),
            Err(e) => {
                say(
                    "ATTACH_FAILED",
                    &format!("{} cannot open /dev/full: {e}", l.run),
                );
                say("EXIT", &format!("{} not-started", l.run));
                return None;
            }
        },
    };
    if let Some(uid) = l.uid {
        // Leaving uid 0 for another uid clears every capability.
        cmd.uid(uid).gid(uid);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            say(
                "ATTACH_FAILED",
                &format!("{} cannot start {CONNTRACE}: {e}", l.run),
            );
            say("EXIT", &format!("{} not-started", l.run));
            return None;
        }
    };
    say("PID", &format!("{} {}", l.run, child.id()));
    let stdout = child.stdout.take().map(|pipe| match l.stdout {
        Stdout::PipeClosedAfterOneLine => Lines::spawn_closing_after(pipe, 1),
        _ => Lines::spawn(pipe),
    });
    let Some(stderr) = child.stderr.take().map(Lines::spawn) else {
        say(
            "ATTACH_FAILED",
            &format!("{} conntrace has no stderr pipe", l.run),
        );
        let _ = child.kill();
        let _ = child.wait();
        say("EXIT", &format!("{} hung", l.run));
        return None;
    };
    let mut running = Running {
        run: l.run.to_string(),
        child,
        stdout,
        stderr,
        attached: false,
        progs_before,
        progs_during: None,
    };
    running.await_attached(started);
    if running.attached {
        running.progs_during = bpfprogs::count().ok();
        if l.list_kprobes_while_attached {
            kprobes::report("KPROBE_EVENTS_DURING", l.run);
        }
    }
    Some(running)
}

impl Running {
    fn await_attached(&mut self, started: Instant) {
        let run = &self.run;
        let deadline = started + ATTACH_LIMIT;
        loop {
            match self.stderr.next_until(deadline) {
                Next::Line(l) if l.starts_with("conntrace: attached") => {
                    say(
                        "ATTACHED",
                        &format!("{run} {:.2}", started.elapsed().as_secs_f64()),
                    );
                    self.attached = true;
                    return;
                }
                Next::Line(_) => {}
                Next::Eof => {
                    let status =
                        wait_timeout(&mut self.child, Duration::from_secs(2)).map(status_text);
                    say(
                        "ATTACH_FAILED",
                        &format!(
                            "{run} conntrace closed stderr ({}) before printing \"conntrace: attached\"",
                            status.unwrap_or_else(|| "still running".into())
                        ),
                    );
                    return;
                }
                Next::Timeout => {
                    say(
                        "ATTACH_FAILED",
                        &format!(
                            "{run} no \"conntrace: attached\" line within {}s",
                            ATTACH_LIMIT.as_secs()
                        ),
                    );
                    return;
                }
            }
        }
    }

    /// Whether conntrace has exited (without reaping it for good: the status stays known).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits up to `limit` for the next stdout line; false if none came.
    pub fn await_line(&mut self, limit: Duration) -> bool {
        match &mut self.stdout {
            Some(out) => matches!(out.next_until(Instant::now() + limit), Next::Line(_)),
            None => false,
        }
    }

    /// Reports RECURSION_MISSES while conntrace's programs are still loaded; ends the run as
    /// `how` says and reports EVENT, STDERR and EXIT; then runs `restore` (undoing a fault the
    /// run was set up with) and reports KPROBE_EVENTS_AFTER and PROGS.
    pub fn finish(mut self, how: Finish, restore: &dyn Fn()) {
        let run = self.run.clone();
        if self.attached {
            match bpfprogs::recursion_misses() {
                Ok(n) => say("RECURSION_MISSES", &format!("{run} {n}")),
                Err(e) => say("RECURSION_MISSES", &format!("{run} unavailable {e}")),
            }
        }
        let exit = end(&mut self.child, how);
        let grace = Instant::now() + Duration::from_secs(2);
        for line in self
            .stdout
            .map(|o| o.drain_until(grace))
            .unwrap_or_default()
        {
            say("EVENT", &format!("{run} {}", one_line(&line)));
        }
        for line in self.stderr.drain_until(grace) {
            say("STDERR", &format!("{run} {}", one_line(&line)));
        }
        say("EXIT", &format!("{run} {exit}"));
        restore();
        kprobes::report("KPROBE_EVENTS_AFTER", &run);
        let during = self
            .progs_during
            .map_or_else(|| "-".to_string(), |n| n.to_string());
        match self.progs_before {
            Ok(before) => match bpfprogs::settle(before, SETTLE_LIMIT) {
                Ok(after) => say(
                    "PROGS",
                    &format!("{run} before={before} during={during} after={after}"),
                ),
                Err(e) => say("PROGS", &format!("{run} unavailable {e}")),
            },
            Err(e) => say("PROGS", &format!("{run} unavailable {e}")),
        }
    }
}

/// Signals (if asked) and waits; SIGKILL if conntrace does not exit in time.
fn end(child: &mut Child, how: Finish) -> String {
    if let Ok(Some(status)) = child.try_wait() {
        return status_text(status);
    }
    if let Finish::Signal(signal) = how {
        // SAFETY: kill takes plain integers; the pid is our own unreaped child, so it cannot
        // have been recycled for another process.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    }
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
