//! Reading a child's pipe line by line with deadlines: a thread per pipe feeds a channel.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub struct Lines {
    rx: Receiver<String>,
    /// Every line received so far, in order.
    pub seen: Vec<String>,
}

pub enum Next {
    Line(String),
    Eof,
    Timeout,
}

impl Lines {
    pub fn spawn(pipe: impl Read + Send + 'static) -> Lines {
        Lines::spawn_closing_after(pipe, usize::MAX)
    }

    /// Like `spawn`, but closes the pipe after `limit` lines: the writer then gets EPIPE
    /// (or SIGPIPE), as it would from `conntrace | head -n LIMIT`.
    pub fn spawn_closing_after(pipe: impl Read + Send + 'static, limit: usize) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // The pipe is owned by the iterator and closed when this thread ends.
            for line in BufReader::new(pipe).lines().take(limit) {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line, waiting at most until `deadline`.
    pub fn next_until(&mut self, deadline: Instant) -> Next {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(wait) {
            Ok(line) => {
                self.seen.push(line.clone());
                Next::Line(line)
            }
            Err(RecvTimeoutError::Timeout) => Next::Timeout,
            Err(RecvTimeoutError::Disconnected) => Next::Eof,
        }
    }

    /// Reads until the writer closes the pipe or `deadline` passes; returns all lines seen.
    pub fn drain_until(mut self, deadline: Instant) -> Vec<String> {
        while let Next::Line(_) = self.next_until(deadline) {}
        self.seen
    }
}

/// Waits up to `limit` for a child to exit (killing it if it does not), then takes what it
/// printed: its status (None: it hung) and every line of `out`.
pub fn finish_child(
    child: &mut Child,
    out: Lines,
    limit: Duration,
) -> (Option<ExitStatus>, Vec<String>) {
    let status = wait_timeout(child, limit);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    (
        status,
        out.drain_until(Instant::now() + Duration::from_secs(2)),
    )
}

/// Waits for a child to exit, at most `limit`; None if it is still running.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}
