//! The command line: `conntrace [OPTIONS]` traces, `conntrace check [--btf PATH|none]` checks
//! what the kernel supports. A pure function from arguments to a [`Command`]; every bad
//! argument is a [`CliError`] with a one-line message (the caller prints it and exits 2).

use crate::event::Kind;
use crate::output::Format;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// PID_MAX_LIMIT on 64-bit kernels: no pid is larger.
const MAX_PID: u64 = 4_194_304;
/// `(uid_t)-1` means "no uid" to the kernel, and the in-kernel filter uses it for "any".
const MAX_UID: u64 = u32::MAX as u64 - 1;
/// The in-kernel port filter is a map of this many entries.
pub const MAX_PORTS: usize = 64;
/// 256 pages (1 MiB per CPU, ~7k events) ride out a reader descheduled for ~0.25 s at the full
/// loopback rate; 64 lost records on a busy 2-CPU machine (docs/benchmarks.md).
pub const DEFAULT_PAGES: u32 = 256;
const MAX_PAGES: u64 = 4096;
/// About 31 years: large enough for "forever", small enough that deadline arithmetic cannot
/// overflow.
const MAX_DURATION_SECS: u64 = 1_000_000_000;

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
    pub timestamps: bool,
    pub duration: Option<Duration>,
    pub max_events: Option<u64>,
    pub backend: Backend,
    pub btf: BtfSource,
    /// Data pages per CPU for each perf ring (a power of two).
    pub pages: u32,
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
            timestamps: false,
            duration: None,
            max_events: None,
            backend: Backend::Auto,
            btf: BtfSource::Kernel,
            pages: DEFAULT_PAGES,
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

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckOptions {
    pub btf: BtfSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyFilter {
    Any,
    Ipv4,
    Ipv6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Auto,
    Kprobe,
    Tracepoint,
}

/// Where struct layouts come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BtfSource {
    /// `/sys/kernel/btf/vmlinux`.
    #[default]
    Kernel,
    /// `--btf PATH`: raw BTF or an ELF vmlinux with a `.BTF` section.
    Path(PathBuf),
    /// `--btf none`: use the built-in offsets and verify them.
    None,
}

/// A set of event kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSet {
    bits: u8,
}

impl EventSet {
    pub const ALL: EventSet = EventSet { bits: 0b1111 };
    pub const EMPTY: EventSet = EventSet { bits: 0 };

    fn bit(kind: Kind) -> u8 {
        match kind {
            Kind::Connect => 1,
            Kind::Established => 2,
            Kind::Failed => 4,
            Kind::Accept => 8,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Pid,
    Uid,
    Port,
    Ipv4,
    Ipv6,
    Events,
    Failed,
    Json,
    Timestamp,
    Duration,
    MaxEvents,
    Backend,
    Btf,
    Pages,
    Help,
    Version,
}

struct Spec {
    opt: Opt,
    short: Option<u8>,
    long: &'static str,
    /// Placeholder shown in the help; None = a flag without a value.
    value: Option<&'static str>,
    help: &'static str,
}

const SPECS: [Spec; 16] = [
    spec(
        Opt::Pid,
        Some(b'p'),
        "pid",
        Some("PID"),
        "only this process (by tgid)",
    ),
    spec(
        Opt::Uid,
        Some(b'u'),
        "uid",
        Some("UID"),
        "only processes running as this numeric uid",
    ),
    spec(
        Opt::Port,
        Some(b'P'),
        "port",
        Some("PORT[,PORT...]"),
        "only these ports (remote for connect, local for accept), max 64",
    ),
    spec(
        Opt::Ipv4,
        Some(b'4'),
        "ipv4",
        None,
        "only IPv4 (IPv4-mapped IPv6 counts as IPv4)",
    ),
    spec(Opt::Ipv6, Some(b'6'), "ipv6", None, "only IPv6"),
    spec(
        Opt::Events,
        Some(b'e'),
        "events",
        Some("LIST"),
        "only these events: connect,established,failed,accept",
    ),
    spec(
        Opt::Failed,
        None,
        "failed",
        None,
        "only failures (failed handshakes, connects refused at once)",
    ),
    spec(
        Opt::Json,
        Some(b'j'),
        "json",
        None,
        "print JSON lines instead of a table",
    ),
    spec(
        Opt::Timestamp,
        Some(b't'),
        "timestamp",
        None,
        "add a TIME(s) column (since first event)",
    ),
    spec(
        Opt::Duration,
        Some(b'd'),
        "duration",
        Some("SECS"),
        "stop after this many seconds (fractions allowed)",
    ),
    spec(
        Opt::MaxEvents,
        Some(b'n'),
        "max-events",
        Some("N"),
        "stop after printing N events",
    ),
    spec(
        Opt::Backend,
        None,
        "backend",
        Some("NAME"),
        "auto (default: kprobe if possible), kprobe or tracepoint",
    ),
    spec(
        Opt::Btf,
        None,
        "btf",
        Some("PATH|none"),
        "kernel BTF (raw or ELF vmlinux); none: built-in offsets",
    ),
    spec(
        Opt::Pages,
        None,
        "pages",
        Some("N"),
        "ring data pages per CPU, a power of two (default 256)",
    ),
    spec(
        Opt::Help,
        Some(b'h'),
        "help",
        None,
        "print this help and exit",
    ),
    spec(
        Opt::Version,
        Some(b'V'),
        "version",
        None,
        "print the version and exit",
    ),
];

const fn spec(
    opt: Opt,
    short: Option<u8>,
    long: &'static str,
    value: Option<&'static str>,
    help: &'static str,
) -> Spec {
    Spec {
        opt,
        short,
        long,
        value,
        help,
    }
}

/// The `--help` text: usage, every option with a one-line description, examples.
pub fn help() -> String {
    let mut text = String::from(
        "conntrace: see every TCP connection this machine makes and accepts\n\
         \n\
         Usage: conntrace [OPTIONS]\n\
         \x20      conntrace check [--btf PATH|none]   report what this kernel supports\n\
         \n\
         Options:\n",
    );
    for s in &SPECS {
        let short = s
            .short
            .map(|c| format!("-{}, ", c as char))
            .unwrap_or_default();
        let value = s.value.map(|v| format!(" {v}")).unwrap_or_default();
        let left = format!("  {short:>4}--{}{value}", s.long);
        text.push_str(&format!("{left:<29} {}\n", s.help));
    }
    text.push_str(
        "\n\
         Examples:\n\
         \x20 conntrace                      every connect, outcome and accept, as a table\n\
         \x20 conntrace -j > conns.jsonl     the same as JSON lines\n\
         \x20 conntrace -p 1234 -t           one process, with timestamps\n\
         \x20 conntrace -P 80,443 -4         IPv4 connections on ports 80 and 443\n\
         \x20 conntrace --failed -d 60       connection failures during one minute\n\
         \x20 conntrace -e accept -n 10      the next ten accepted connections\n\
         \x20 conntrace --btf ./vmlinux      layouts from a vmlinux with BTF (a file named\n\
         \x20                                \"none\" is ./none)\n\
         \x20 conntrace check --btf none     can this kernel run without BTF?\n\
         \n\
         Exit status: 0 done, 1 tracing failed, 2 bad command line.\n",
    );
    text
}

/// The `--version` text.
pub fn version() -> String {
    format!("conntrace {VERSION}\n")
}

/// Parses the arguments after the program name (`std::env::args_os().skip(1)`).
pub fn parse(args: &[OsString]) -> Result<Command, CliError> {
    let (is_check, args) = match args.split_first() {
        Some((first, rest)) if first.as_bytes() == b"check" => (true, rest),
        _ => (false, args),
    };
    let mut parser = Parser::default();
    let mut args = args.iter().map(|a| a.as_os_str());
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

#[derive(Default)]
struct Parser {
    options: TraceOptions,
    /// -e was given (it conflicts with --failed).
    explicit_events: bool,
    /// The first option given that only tracing accepts, as the user spelled it.
    trace_only: Option<String>,
}

impl Parser {
    /// `--name` or `--name=value` (`long` is without the dashes).
    fn long<'a>(
        &mut self,
        long: &'a [u8],
        rest: &mut impl Iterator<Item = &'a OsStr>,
    ) -> Result<Option<Command>, CliError> {
        let (name, inline) = match long.iter().position(|&b| b == b'=') {
            Some(eq) => {
                let (name, eq_value) = long.split_at(eq);
                (
                    name,
                    Some(OsStr::from_bytes(eq_value.get(1..).unwrap_or_default())),
                )
            }
            None => (long, None),
        };
        let spec = SPECS
            .iter()
            .find(|s| s.long.as_bytes() == name)
            .ok_or_else(|| {
                CliError::new(format!(
                    "unknown option '--{}' (see conntrace --help)",
                    String::from_utf8_lossy(name)
                ))
            })?;
        if spec.value.is_none() && inline.is_some() {
            return Err(CliError::new(format!(
                "option --{} takes no value",
                spec.long
            )));
        }
        self.option(spec, &format!("--{}", spec.long), inline, rest)
    }

    /// A cluster of short options (`-jt`, `-p1234`, `-4jp 1234`): flags, the last of which may
    /// take a value, attached or as the next argument.
    fn short_cluster<'a>(
        &mut self,
        mut cluster: &'a [u8],
        rest: &mut impl Iterator<Item = &'a OsStr>,
    ) -> Result<Option<Command>, CliError> {
        while let Some((&c, after)) = cluster.split_first() {
            let spec = SPECS.iter().find(|s| s.short == Some(c)).ok_or_else(|| {
                CliError::new(format!(
                    "unknown option '-{}' (see conntrace --help)",
                    String::from_utf8_lossy(&[c])
                ))
            })?;
            let spelled = format!("-{}", char::from(c));
            let inline =
                (spec.value.is_some() && !after.is_empty()).then(|| OsStr::from_bytes(after));
            if let Some(cmd) = self.option(spec, &spelled, inline, rest)? {
                return Ok(Some(cmd));
            }
            if spec.value.is_some() {
                break; // the value used up the rest of the cluster
            }
            cluster = after;
        }
        Ok(None)
    }

    fn option<'a>(
        &mut self,
        spec: &Spec,
        spelled: &str,
        inline: Option<&'a OsStr>,
        rest: &mut impl Iterator<Item = &'a OsStr>,
    ) -> Result<Option<Command>, CliError> {
        if spec.opt != Opt::Btf && self.trace_only.is_none() {
            self.trace_only = Some(spelled.to_owned());
        }
        if spec.opt == Opt::Events {
            self.explicit_events = true;
        }
        apply(&mut self.options, spec, spelled, inline, rest)
    }

    fn finish(self, is_check: bool) -> Result<Command, CliError> {
        if is_check {
            if let Some(option) = self.trace_only {
                return Err(CliError::new(format!(
                    "option {option} does not apply to 'conntrace check' (it takes only --btf)"
                )));
            }
            return Ok(Command::Check(CheckOptions {
                btf: self.options.btf,
            }));
        }
        if self.options.failed_only && self.explicit_events {
            return Err(CliError::new(
                "--failed cannot be combined with -e/--events: --failed already picks the events",
            ));
        }
        Ok(Command::Trace(self.options))
    }
}

fn unexpected(arg: &OsStr) -> CliError {
    let shown = arg.to_string_lossy();
    if shown == "check" {
        CliError::new("'check' must come first: conntrace check [--btf PATH|none]")
    } else {
        CliError::new(format!(
            "unexpected argument '{shown}' (see conntrace --help)"
        ))
    }
}

/// Applies one option. Returns a command when the option ends parsing (help, version).
fn apply<'a>(
    options: &mut TraceOptions,
    spec: &Spec,
    spelled: &str,
    inline: Option<&'a OsStr>,
    rest: &mut impl Iterator<Item = &'a OsStr>,
) -> Result<Option<Command>, CliError> {
    let mut value = || -> Result<&'a OsStr, CliError> {
        inline.or_else(|| rest.next()).ok_or_else(|| {
            CliError::new(format!(
                "option {spelled} needs a value: {spelled} {}",
                spec.value.unwrap_or("VALUE")
            ))
        })
    };
    match spec.opt {
        Opt::Help => return Ok(Some(Command::Help)),
        Opt::Version => return Ok(Some(Command::Version)),
        Opt::Pid => {
            let v = utf8(value()?, spelled)?;
            let pid = number(v)
                .filter(|p| (1..=MAX_PID).contains(p))
                .ok_or_else(|| {
                    invalid(
                        "process id",
                        v,
                        spelled,
                        &format!("expected a number from 1 to {MAX_PID}"),
                    )
                })?;
            options.pid = Some(pid as u32);
        }
        Opt::Uid => {
            let v = utf8(value()?, spelled)?;
            let uid = number(v).filter(|&u| u <= MAX_UID).ok_or_else(|| {
                invalid(
                    "uid",
                    v,
                    spelled,
                    &format!("expected a number from 0 to {MAX_UID}"),
                )
            })?;
            options.uid = Some(uid as u32);
        }
        Opt::Port => {
            let v = utf8(value()?, spelled)?;
            for item in v.split(',') {
                let port = number(item)
                    .filter(|p| (1..=65535).contains(p))
                    .ok_or_else(|| invalid("port", item, spelled, "expected 1-65535"))?
                    as u16;
                if !options.ports.contains(&port) {
                    if options.ports.len() == MAX_PORTS {
                        return Err(CliError::new(format!(
                            "too many ports for {spelled}: at most {MAX_PORTS}"
                        )));
                    }
                    options.ports.push(port);
                }
            }
        }
        Opt::Ipv4 | Opt::Ipv6 => {
            let wanted = if spec.opt == Opt::Ipv4 {
                FamilyFilter::Ipv4
            } else {
                FamilyFilter::Ipv6
            };
            if options.family != FamilyFilter::Any && options.family != wanted {
                return Err(CliError::new(
                    "-4 and -6 cannot be combined: leave both out to trace IPv4 and IPv6",
                ));
            }
            options.family = wanted;
        }
        Opt::Events => {
            let v = utf8(value()?, spelled)?;
            let mut set = EventSet::EMPTY;
            for item in v.split(',') {
                let kind = [Kind::Connect, Kind::Established, Kind::Failed, Kind::Accept]
                    .into_iter()
                    .find(|k| k.name() == item)
                    .ok_or_else(|| {
                        invalid(
                            "event",
                            item,
                            spelled,
                            "expected connect, established, failed or accept",
                        )
                    })?;
                set = set.with(kind);
            }
            options.events = set;
        }
        Opt::Failed => options.failed_only = true,
        Opt::Json => options.json = true,
        Opt::Timestamp => options.timestamps = true,
        Opt::Duration => {
            let v = utf8(value()?, spelled)?;
            let duration = seconds(v).ok_or_else(|| {
                invalid(
                    "duration",
                    v,
                    spelled,
                    &format!(
                        "expected seconds above 0 and up to {MAX_DURATION_SECS}, like 10 or 0.5"
                    ),
                )
            })?;
            options.duration = Some(duration);
        }
        Opt::MaxEvents => {
            let v = utf8(value()?, spelled)?;
            let n = number(v)
                .filter(|&n| n >= 1)
                .ok_or_else(|| invalid("event count", v, spelled, "expected a number above 0"))?;
            options.max_events = Some(n);
        }
        Opt::Backend => {
            let v = utf8(value()?, spelled)?;
            options.backend = match v {
                "auto" => Backend::Auto,
                "kprobe" => Backend::Kprobe,
                "tracepoint" => Backend::Tracepoint,
                _ => {
                    return Err(invalid(
                        "backend",
                        v,
                        spelled,
                        "expected auto, kprobe or tracepoint",
                    ))
                }
            };
        }
        Opt::Btf => {
            let v = value()?;
            options.btf = match v.as_bytes() {
                b"none" => BtfSource::None,
                b"" => {
                    return Err(CliError::new(format!(
                        "empty path for {spelled}: expected a file or none"
                    )))
                }
                _ => BtfSource::Path(PathBuf::from(v)),
            };
        }
        Opt::Pages => {
            let v = utf8(value()?, spelled)?;
            let pages = number(v)
                .filter(|&n| (1..=MAX_PAGES).contains(&n) && n.is_power_of_two())
                .ok_or_else(|| {
                    invalid(
                        "page count",
                        v,
                        spelled,
                        &format!("expected a power of two from 1 to {MAX_PAGES}"),
                    )
                })?;
            options.pages = pages as u32;
        }
    }
    Ok(None)
}

fn invalid(what: &str, value: &str, spelled: &str, expected: &str) -> CliError {
    CliError::new(format!(
        "invalid {what} '{value}' for {spelled}: {expected}"
    ))
}

fn utf8<'a>(value: &'a OsStr, spelled: &str) -> Result<&'a str, CliError> {
    value.to_str().ok_or_else(|| {
        CliError::new(format!(
            "invalid value '{}' for {spelled}: not valid UTF-8",
            value.to_string_lossy()
        ))
    })
}

/// A plain decimal number: digits only (no sign, no spaces), no overflow.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Seconds as `N`, `N.F` or `.F`: above zero, at most MAX_DURATION_SECS, nanosecond precision
/// (further digits are dropped).
fn seconds(s: &str) -> Option<Duration> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos: u32 = 0;
    for (i, digit) in fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .enumerate()
    {
        let _ = i;
        nanos = nanos * 10 + u32::from(digit - b'0');
    }
    let duration = Duration::new(secs, nanos);
    (!duration.is_zero() && duration <= Duration::from_secs(MAX_DURATION_SECS)).then_some(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn trace(list: &[&str]) -> TraceOptions {
        match parse(&args(list)) {
            Ok(Command::Trace(options)) => options,
            other => panic!("{list:?} gave {other:?}"),
        }
    }

    fn error(list: &[&str]) -> String {
        match parse(&args(list)) {
            Err(e) => e.message,
            other => panic!("{list:?} should fail, gave {other:?}"),
        }
    }

    #[test]
    fn no_arguments_traces_everything() {
        let o = trace(&[]);
        assert_eq!(o, TraceOptions::default());
        assert_eq!(o.pages, 256);
        assert_eq!(o.btf, BtfSource::Kernel);
        assert_eq!(o.backend, Backend::Auto);
        assert_eq!(o.format(), Format::Text { timestamps: false });
        for kind in [Kind::Connect, Kind::Established, Kind::Failed, Kind::Accept] {
            assert!(o.wants(kind, false) && o.wants(kind, true));
        }
    }

    #[test]
    fn pid_in_every_spelling() {
        for list in [
            &["-p", "1234"][..],
            &["-p1234"],
            &["--pid", "1234"],
            &["--pid=1234"],
        ] {
            assert_eq!(trace(list).pid, Some(1234), "{list:?}");
        }
        assert_eq!(trace(&["-p", "4194304"]).pid, Some(4194304));
    }

    #[test]
    fn pid_errors() {
        assert_eq!(
            error(&["-p", "abc"]),
            "conntrace: invalid process id 'abc' for -p: expected a number from 1 to 4194304"
        );
        assert!(error(&["--pid=0"]).contains("invalid process id '0' for --pid"));
        assert!(error(&["-p", "4194305"]).contains("invalid process id"));
        assert!(error(&["-p", "-5"]).contains("invalid process id '-5'"));
        assert!(error(&["-p", "+5"]).contains("invalid process id '+5'"));
        assert!(error(&["-p", " 5"]).contains("invalid process id"));
        assert!(error(&["-p", "99999999999999999999999"]).contains("invalid process id"));
        assert_eq!(error(&["-p"]), "conntrace: option -p needs a value: -p PID");
        assert_eq!(
            error(&["--pid"]),
            "conntrace: option --pid needs a value: --pid PID"
        );
        assert!(error(&["--pid="]).contains("invalid process id '' for --pid"));
    }

    #[test]
    fn uid() {
        assert_eq!(trace(&["-u", "0"]).uid, Some(0));
        assert_eq!(trace(&["--uid=1000"]).uid, Some(1000));
        assert_eq!(trace(&["-u4294967294"]).uid, Some(4294967294));
        assert_eq!(
            error(&["-u", "4294967295"]),
            "conntrace: invalid uid '4294967295' for -u: expected a number from 0 to 4294967294"
        );
        assert!(error(&["--uid", "root"]).contains("invalid uid 'root' for --uid"));
    }

    #[test]
    fn ports() {
        assert_eq!(trace(&["-P", "443"]).ports, [443]);
        assert_eq!(trace(&["--port=80,443,8080"]).ports, [80, 443, 8080]);
        assert_eq!(
            trace(&["-P80", "-P", "443,80"]).ports,
            [80, 443],
            "repeatable, deduplicated"
        );
        assert_eq!(trace(&["-P", "1,65535"]).ports, [1, 65535]);
        let all: Vec<String> = (1..=64).map(|p| p.to_string()).collect();
        assert_eq!(trace(&["-P", &all.join(",")]).ports.len(), 64);
    }

    #[test]
    fn port_errors() {
        assert_eq!(
            error(&["-P", "x"]),
            "conntrace: invalid port 'x' for -P: expected 1-65535"
        );
        assert_eq!(
            error(&["--port", "0"]),
            "conntrace: invalid port '0' for --port: expected 1-65535"
        );
        assert!(error(&["-P", "65536"]).contains("invalid port '65536'"));
        assert!(error(&["-P", "80,,443"]).contains("invalid port ''"));
        assert!(error(&["-P", "80,"]).contains("invalid port ''"));
        let too_many: Vec<String> = (1..=65).map(|p| p.to_string()).collect();
        assert_eq!(
            error(&["-P", &too_many.join(",")]),
            "conntrace: too many ports for -P: at most 64"
        );
    }

    #[test]
    fn families() {
        assert_eq!(trace(&["-4"]).family, FamilyFilter::Ipv4);
        assert_eq!(trace(&["--ipv6"]).family, FamilyFilter::Ipv6);
        assert_eq!(trace(&["-4", "-4"]).family, FamilyFilter::Ipv4);
        let both = "conntrace: -4 and -6 cannot be combined: leave both out to trace IPv4 and IPv6";
        assert_eq!(error(&["-4", "-6"]), both);
        assert_eq!(error(&["-64"]), both);
        assert_eq!(error(&["--ipv4", "--ipv6"]), both);
    }

    #[test]
    fn events() {
        let o = trace(&["-e", "connect,failed"]);
        assert!(o.wants(Kind::Connect, false) && o.wants(Kind::Failed, true));
        assert!(!o.wants(Kind::Established, false) && !o.wants(Kind::Accept, false));
        let o = trace(&["--events=accept"]);
        assert!(o.wants(Kind::Accept, false) && !o.wants(Kind::Connect, false));
        assert_eq!(
            trace(&["-eestablished"]).events,
            EventSet::EMPTY.with(Kind::Established)
        );
        assert_eq!(
            error(&["-e", "connect,bogus"]),
            "conntrace: invalid event 'bogus' for -e: \
             expected connect, established, failed or accept"
        );
        assert!(error(&["--events="]).contains("invalid event '' for --events"));
    }

    #[test]
    fn failed_only() {
        let o = trace(&["--failed"]);
        assert!(o.failed_only);
        assert!(o.wants(Kind::Failed, true));
        assert!(
            o.wants(Kind::Connect, true),
            "a connect refused before the SYN is a failure"
        );
        assert!(!o.wants(Kind::Connect, false));
        assert!(!o.wants(Kind::Established, false));
        assert!(!o.wants(Kind::Accept, false));
        assert!(error(&["--failed", "-e", "connect"]).contains("--failed cannot be combined"));
        assert!(error(&["-e", "accept", "--failed"]).contains("--failed cannot be combined"));
        assert_eq!(
            error(&["--failed=yes"]),
            "conntrace: option --failed takes no value"
        );
    }

    #[test]
    fn output_flags() {
        assert_eq!(trace(&["-j"]).format(), Format::Json);
        assert_eq!(trace(&["--json"]).format(), Format::Json);
        assert_eq!(trace(&["-t"]).format(), Format::Text { timestamps: true });
        assert_eq!(
            trace(&["--timestamp"]).format(),
            Format::Text { timestamps: true }
        );
        let o = trace(&["-jt4"]);
        assert!(
            o.json && o.timestamps && o.family == FamilyFilter::Ipv4,
            "clustered flags"
        );
        assert_eq!(
            error(&["--json=1"]),
            "conntrace: option --json takes no value"
        );
    }

    #[test]
    fn duration() {
        assert_eq!(trace(&["-d", "10"]).duration, Some(Duration::from_secs(10)));
        assert_eq!(
            trace(&["--duration=0.5"]).duration,
            Some(Duration::from_millis(500))
        );
        assert_eq!(trace(&["-d.25"]).duration, Some(Duration::from_millis(250)));
        assert_eq!(trace(&["-d", "3."]).duration, Some(Duration::from_secs(3)));
        assert_eq!(
            trace(&["-d", "0.0000000019"]).duration,
            Some(Duration::from_nanos(1))
        );
        assert_eq!(
            trace(&["-d", "1000000000"]).duration,
            Some(Duration::from_secs(1_000_000_000))
        );
        for bad in [
            "0",
            "0.0",
            ".",
            "",
            "-1",
            "1e3",
            "inf",
            "nan",
            "1.2.3",
            "1s",
            "1000000000.1",
        ] {
            assert!(
                error(&["-d", bad])
                    .starts_with(&format!("conntrace: invalid duration '{bad}' for -d")),
                "{bad}"
            );
        }
    }

    #[test]
    fn max_events() {
        assert_eq!(trace(&["-n", "1"]).max_events, Some(1));
        assert_eq!(
            trace(&["--max-events=18446744073709551615"]).max_events,
            Some(u64::MAX)
        );
        assert_eq!(
            error(&["-n", "0"]),
            "conntrace: invalid event count '0' for -n: expected a number above 0"
        );
        assert!(error(&["-n", "18446744073709551616"]).contains("invalid event count"));
    }

    #[test]
    fn backend() {
        assert_eq!(trace(&["--backend", "auto"]).backend, Backend::Auto);
        assert_eq!(trace(&["--backend=kprobe"]).backend, Backend::Kprobe);
        assert_eq!(
            trace(&["--backend", "tracepoint"]).backend,
            Backend::Tracepoint
        );
        assert_eq!(
            error(&["--backend", "fentry"]),
            "conntrace: invalid backend 'fentry' for --backend: \
             expected auto, kprobe or tracepoint"
        );
    }

    #[test]
    fn btf() {
        assert_eq!(trace(&["--btf", "none"]).btf, BtfSource::None);
        assert_eq!(
            trace(&["--btf=/boot/vmlinux"]).btf,
            BtfSource::Path("/boot/vmlinux".into())
        );
        assert_eq!(
            trace(&["--btf", "./none"]).btf,
            BtfSource::Path("./none".into())
        );
        assert_eq!(
            error(&["--btf="]),
            "conntrace: empty path for --btf: expected a file or none"
        );
        // Paths need not be UTF-8.
        let raw = OsString::from(OsStr::from_bytes(b"/tmp/\xff.btf"));
        let parsed = parse(&[OsString::from("--btf"), raw.clone()]).unwrap();
        assert_eq!(
            parsed,
            Command::Trace(TraceOptions {
                btf: BtfSource::Path(raw.into()),
                ..Default::default()
            })
        );
    }

    #[test]
    fn pages() {
        assert_eq!(trace(&["--pages", "1"]).pages, 1);
        assert_eq!(trace(&["--pages=128"]).pages, 128);
        assert_eq!(trace(&["--pages", "4096"]).pages, 4096);
        for bad in ["0", "3", "100", "8192", "x"] {
            assert_eq!(
                error(&["--pages", bad]),
                format!(
                    "conntrace: invalid page count '{bad}' for --pages: \
                     expected a power of two from 1 to 4096"
                )
            );
        }
    }

    #[test]
    fn help_and_version() {
        for list in [
            &["-h"][..],
            &["--help"],
            &["-p", "1", "-h"],
            &["check", "--help"],
            &["-jh"],
        ] {
            assert_eq!(parse(&args(list)), Ok(Command::Help), "{list:?}");
        }
        for list in [&["-V"][..], &["--version"]] {
            assert_eq!(parse(&args(list)), Ok(Command::Version), "{list:?}");
        }
        assert_eq!(
            version(),
            format!("conntrace {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(
            error(&["--help=x"]),
            "conntrace: option --help takes no value"
        );
    }

    #[test]
    fn help_lists_every_option() {
        let text = help();
        for s in &SPECS {
            let line = text
                .lines()
                .find(|l| l.contains(&format!("--{}", s.long)) && l.contains(s.help))
                .unwrap_or_else(|| panic!("--{} missing from the help", s.long));
            if let Some(c) = s.short {
                assert!(
                    line.contains(&format!("-{}, --{}", char::from(c), s.long)),
                    "{line}"
                );
            }
        }
        assert!(text.contains("Examples:"));
        assert!(text.contains("conntrace check"));
        assert!(
            text.lines().all(|l| l.len() <= 100),
            "help lines fit a terminal"
        );
    }

    #[test]
    fn check_subcommand() {
        assert_eq!(
            parse(&args(&["check"])),
            Ok(Command::Check(CheckOptions {
                btf: BtfSource::Kernel
            }))
        );
        assert_eq!(
            parse(&args(&["check", "--btf", "none"])),
            Ok(Command::Check(CheckOptions {
                btf: BtfSource::None
            }))
        );
        assert_eq!(
            parse(&args(&["check", "--btf=/x"])),
            Ok(Command::Check(CheckOptions {
                btf: BtfSource::Path("/x".into())
            }))
        );
        assert_eq!(
            error(&["check", "-j"]),
            "conntrace: option -j does not apply to 'conntrace check' (it takes only --btf)"
        );
        assert_eq!(
            error(&["-j", "check"]),
            "conntrace: 'check' must come first: conntrace check [--btf PATH|none]"
        );
        assert!(error(&["check", "extra"]).contains("unexpected argument 'extra'"));
    }

    #[test]
    fn unknown_and_unexpected_arguments() {
        assert_eq!(
            error(&["--bogus"]),
            "conntrace: unknown option '--bogus' (see conntrace --help)"
        );
        assert_eq!(
            error(&["-x"]),
            "conntrace: unknown option '-x' (see conntrace --help)"
        );
        assert_eq!(
            error(&["-jx"]),
            "conntrace: unknown option '-x' (see conntrace --help)"
        );
        assert_eq!(
            error(&["curl"]),
            "conntrace: unexpected argument 'curl' (see conntrace --help)"
        );
        assert!(error(&["-"]).contains("unexpected argument '-'"));
        assert_eq!(
            trace(&["-j", "--"]),
            TraceOptions {
                json: true,
                ..Default::default()
            }
        );
        assert!(error(&["--", "-j"]).contains("unexpected argument '-j'"));
        let bad = OsString::from(OsStr::from_bytes(b"\xff"));
        assert!(parse(&[OsString::from("-p"), bad.clone()])
            .unwrap_err()
            .message
            .contains("not valid UTF-8"));
        assert!(parse(&[bad])
            .unwrap_err()
            .message
            .contains("unexpected argument"));
    }

    #[test]
    fn later_values_override_earlier_ones() {
        assert_eq!(trace(&["-p", "1", "-p", "2"]).pid, Some(2));
        assert_eq!(
            trace(&["--backend=kprobe", "--backend=auto"]).backend,
            Backend::Auto
        );
    }

    /// Arbitrary argument bytes give a value or an error, never a panic.
    #[test]
    fn never_panics() {
        let pieces: [&[u8]; 14] = [
            b"-", b"--", b"=", b"p", b"P", b"d", b"check", b"1", b".", b",", b"\xff", b"btf", b"e",
            b"pages",
        ];
        let mut state = 0x853c_49e6_748f_ea9bu64;
        for _ in 0..20_000 {
            let mut list = Vec::new();
            for _ in 0..(state % 4) {
                let mut arg = Vec::new();
                for _ in 0..(state >> 8) % 4 {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    arg.extend_from_slice(pieces[(state % 14) as usize]);
                }
                list.push(OsString::from(OsStr::from_bytes(&arg)));
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let _ = parse(&list);
        }
    }
}
