//! The command line: `conntrace [OPTIONS]` traces, `conntrace check [--btf PATH|none]` checks
//! what the kernel supports. A pure function from arguments to a [`Command`]; every bad
//! argument is a [`CliError`] with a one-line message (the caller prints it and exits 2).
//!
//! Here: what parsing produces, and [`parse`]. `spec` is the option table, `parser` walks the
//! arguments (long, short clusters, `check`), `apply` turns one option into [`TraceOptions`],
//! `values` reads numbers and durations, `help` writes `--help` and `--version` from the table.

mod apply;
mod help;
mod parser;
mod spec;
#[cfg(test)]
mod tests;
mod values;

use crate::app::output::Format;
use crate::session::event::Kind;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::session::options::{
    BackendChoice, BtfSource, FamilyFilter, SessionOptions, DEFAULT_PAGES,
};
pub use help::{help, version, VERSION};
use parser::{unexpected, Parser};

/// PID_MAX_LIMIT on 64-bit kernels: no pid is larger.
const MAX_PID: u64 = 4_194_304;
/// `(uid_t)-1` means "no uid" to the kernel, and the in-kernel filter uses it for "any".
const MAX_UID: u64 = u32::MAX as u64 - 1;
/// The in-kernel port filter is a map of this many entries.
pub const MAX_PORTS: usize = 64;
const MAX_PAGES: u64 = 4096;
/// About 31 years: large enough for "forever", small enough that deadline arithmetic cannot
/// overflow.
const MAX_DURATION_SECS: u64 = 1_000_000_000;
/// The shortest `--count` interval: a table per poll of the rings would be noise.
const MIN_COUNT_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Trace(TraceOptions),
    Check(CheckOptions),
    /// Print [`help`] to stdout and exit 0.
    Help,
    /// Print [`version`] to stdout and exit 0.
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceOptions {
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    /// Distinct ports, in the order given; empty = any port.
    pub ports: Vec<u16>,
    pub family: FamilyFilter,
    pub events: EventSet,
    /// `--failed`: only failures (failed records, and connect records that carry an error).
    pub failed_only: bool,
    pub json: bool,
    /// `-c`/`--count [SECS]`: tables of counts instead of events.
    pub count: Option<CountOptions>,
    pub timestamps: bool,
    pub duration: Option<Duration>,
    pub max_events: Option<u64>,
    pub backend: BackendChoice,
    pub btf: BtfSource,
    /// Pages per CPU for the rings (a power of two): each perf ring, or half of the BPF ring buffer.
    pub pages: u32,
    /// `--cgroup PATH`: only tasks under this cgroup v2 directory (in the kernel); a path on
    /// the cgroup2 mount, or one below it (`/system.slice/...`).
    pub cgroup: Option<PathBuf>,
    /// `--container ID`: only sockets of a container whose id starts with this (lowercase hex).
    pub container: Option<String>,
    /// `--containers`: the table's CONTAINER column.
    pub containers: bool,
    /// `--metrics ADDR:PORT`: serve Prometheus metrics there.
    pub metrics: Option<SocketAddr>,
    /// `-q`: print no events (the metrics and the totals at exit only).
    pub quiet: bool,
    /// `--max-tracked N`: connects in flight the probes can track; None: from the machine.
    pub max_tracked: Option<u32>,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            pid: None,
            uid: None,
            ports: Vec::new(),
            family: FamilyFilter::Any,
            events: EventSet::ALL,
            failed_only: false,
            json: false,
            count: None,
            timestamps: false,
            duration: None,
            max_events: None,
            backend: BackendChoice::Auto,
            btf: BtfSource::Kernel,
            pages: DEFAULT_PAGES,
            cgroup: None,
            container: None,
            containers: false,
            metrics: None,
            quiet: false,
            max_tracked: None,
        }
    }
}

impl TraceOptions {
    /// Whether an event of this kind (with or without an error) should be printed.
    pub fn wants(&self, kind: Kind, has_error: bool) -> bool {
        if self.failed_only {
            return kind == Kind::Failed || (kind == Kind::Connect && has_error);
        }
        self.events.contains(kind)
    }

    /// What the session must set up for these options.
    pub fn session(&self) -> SessionOptions {
        let wanted = |kind| self.wants(kind, true) || self.wants(kind, false);
        SessionOptions {
            btf: self.btf.clone(),
            backend: self.backend,
            pid: self.pid,
            uid: self.uid,
            ports: self.ports.clone(),
            family: self.family,
            cgroup: self.cgroup.clone(),
            connects: [Kind::Connect, Kind::Established, Kind::Failed, Kind::Close]
                .into_iter()
                .any(wanted),
            accepts: wanted(Kind::Accept) || wanted(Kind::Close),
            pages: self.pages,
            max_tracked: self.max_tracked,
        }
    }

    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            Format::Text {
                timestamps: self.timestamps,
            }
        }
    }
}

/// `-c`/`--count [SECS]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountOptions {
    /// Print a table this often, besides the one at exit.
    pub every: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckOptions {
    pub btf: BtfSource,
}

/// A set of event kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSet {
    bits: u8,
}

impl EventSet {
    pub const ALL: EventSet = EventSet { bits: 0b1_1111 };
    pub const EMPTY: EventSet = EventSet { bits: 0 };

    fn bit(kind: Kind) -> u8 {
        match kind {
            Kind::Connect => 1,
            Kind::Established => 2,
            Kind::Failed => 4,
            Kind::Accept => 8,
            Kind::Close => 16,
        }
    }

    pub fn contains(self, kind: Kind) -> bool {
        self.bits & Self::bit(kind) != 0
    }

    pub fn with(self, kind: Kind) -> EventSet {
        EventSet {
            bits: self.bits | Self::bit(kind),
        }
    }
}

/// A bad command line, with a message ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub message: String,
}

impl CliError {
    fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: format!("conntrace: {}", message.into()),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Parses the arguments after the program name (`std::env::args_os().skip(1)`).
pub fn parse(args: &[OsString]) -> Result<Command, CliError> {
    let (is_check, args) = match args.split_first() {
        Some((first, rest)) if first.as_bytes() == b"check" => (true, rest),
        _ => (false, args),
    };
    let mut parser = Parser::default();
    let mut args = args.iter().map(|a| a.as_os_str()).peekable();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if bytes == b"--" {
            // Nothing takes positional arguments, so nothing may follow.
            if let Some(extra) = args.next() {
                return Err(unexpected(extra));
            }
            break;
        } else if let Some(long) = bytes.strip_prefix(b"--") {
            if let Some(cmd) = parser.long(long, &mut args)? {
                return Ok(cmd);
            }
        } else if let Some(cluster) = bytes.strip_prefix(b"-").filter(|c| !c.is_empty()) {
            if let Some(cmd) = parser.short_cluster(cluster, &mut args)? {
                return Ok(cmd);
            }
        } else {
            return Err(unexpected(arg));
        }
    }
    parser.finish(is_check)
}
