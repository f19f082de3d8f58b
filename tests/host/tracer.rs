//! Runs conntrace under test: start it, wait until it says its probes are attached, collect its
//! output while the peers run, stop it with a signal and check how it ended.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const ATTACHED: &str = "conntrace: attached";
const ATTACH_TIMEOUT: Duration = Duration::from_secs(20);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The binary under test; CONNTRACE_TEST_BIN points the tests at another build of it.
pub fn binary() -> String {
    std::env::var("CONNTRACE_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_conntrace").into())
}

type Lines = Arc<Mutex<Vec<Vec<u8>>>>;

pub struct Tracer {
    child: Child,
    args: Vec<String>,
    stdout: Lines,
    stderr: Lines,
    readers: Vec<JoinHandle<()>>,
}

/// Everything a finished run printed, and how it exited.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<Vec<u8>>,
    pub stderr: Vec<Vec<u8>>,
}

impl Finished {
    pub fn stderr_text(&self) -> String {
        join_lossy(&self.stderr)
    }
}

fn join_lossy(lines: &[Vec<u8>]) -> String {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Tracer {
    pub fn start(args: &[&str]) -> Result<Tracer, String> {
        Tracer::start_env(args, &[])
    }

    /// [`Tracer::start`] with these environment variables set (conntrace's test knobs).
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Result<Tracer, String> {
        let mut child = Command::new(binary())
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary()))?;
        let stdout: Lines = Arc::default();
        let stderr: Lines = Arc::default();
        let readers = vec![
            collect_lines(child.stdout.take().expect("piped"), stdout.clone()),
            collect_lines(child.stderr.take().expect("piped"), stderr.clone()),
        ];
        let args = args.iter().map(|a| a.to_string()).collect();
        Ok(Tracer {
            child,
            args,
            stdout,
            stderr,
            readers,
        })
    }

    /// Starts conntrace and waits for its "attached" line.
    pub fn attached(args: &[&str]) -> Result<Tracer, String> {
        Tracer::attached_env(args, &[])
    }

    /// [`Tracer::attached`] with these environment variables set.
    pub fn attached_env(args: &[&str], env: &[(&str, &str)]) -> Result<Tracer, String> {
        let mut tracer = Tracer::start_env(args, env)?;
        tracer.wait_attached()?;
        Ok(tracer)
    }

    /// The "attached" line, once printed.
    pub fn attached_line(&self) -> Option<String> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with(ATTACHED.as_bytes()))
            .map(|l| String::from_utf8_lossy(l).into_owned())
    }

    fn wait_attached(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + ATTACH_TIMEOUT;
        loop {
            if self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.starts_with(ATTACHED.as_bytes()))
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers catch the last words before quoting them.
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "conntrace {:?} exited ({status}) before '{ATTACHED}'; stderr:\n{}",
                    self.args,
                    join_lossy(&self.stderr.lock().unwrap())
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "conntrace {:?} did not print '{ATTACHED}' within {} s; stderr:\n{}",
                    self.args,
                    ATTACH_TIMEOUT.as_secs(),
                    join_lossy(&self.stderr.lock().unwrap())
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `done` holds for the stdout lines so far, or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[Vec<u8>]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.stdout.lock().unwrap()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout_lines(&self) -> Vec<Vec<u8>> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` and collects the output; conntrace must exit within 10 s.
    pub fn stop(self, signal: i32) -> Result<Finished, String> {
        // SAFETY: kill() on our own child's pid, which is not reaped yet, so not reused.
        unsafe { libc::kill(self.pid(), signal) };
        self.wait()
    }

    /// Waits for conntrace to exit by itself (for -n and -d).
    pub fn wait(mut self) -> Result<Finished, String> {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!(
                    "conntrace {:?} still running {} s after it should have stopped; stderr:\n{}",
                    self.args,
                    EXIT_TIMEOUT.as_secs(),
                    join_lossy(&self.stderr.lock().unwrap())
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Ok(Finished {
            status,
            stdout: std::mem::take(&mut *self.stdout.lock().unwrap()),
            stderr: std::mem::take(&mut *self.stderr.lock().unwrap()),
        })
    }

    /// Stops with SIGINT and checks the orderly exit the contract promises.
    pub fn interrupt(self) -> Result<Finished, String> {
        let args = self.args.clone();
        let finished = self.stop(libc::SIGINT)?;
        check_clean_exit(&args, &finished)?;
        Ok(finished)
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a tracer attached.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Exit 0 and exactly one "attached" line.
pub fn check_clean_exit(args: &[String], finished: &Finished) -> Result<(), String> {
    if finished.status.code() != Some(0) {
        return Err(format!(
            "conntrace {args:?} ended with {} instead of exit 0; stderr:\n{}",
            finished.status,
            finished.stderr_text()
        ));
    }
    let attached = finished
        .stderr
        .iter()
        .filter(|l| l.starts_with(ATTACHED.as_bytes()))
        .count();
    if attached != 1 {
        return Err(format!(
            "conntrace printed '{ATTACHED}' {attached} times, want once; stderr:\n{}",
            finished.stderr_text()
        ));
    }
    Ok(())
}

/// Runs conntrace to completion (for argument errors): returns exit code, stdout, stderr.
pub fn run_to_end(args: &[&str]) -> Result<Finished, String> {
    Tracer::start(args)?.wait()
}

fn collect_lines(stream: impl Read + Send + 'static, into: Lines) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    into.lock().unwrap().push(line);
                }
            }
        }
    })
}
