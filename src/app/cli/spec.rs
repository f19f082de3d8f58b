//! The option table: every option's spellings, value placeholder and help line. The parser
//! looks options up here and the help is printed from it, so the two cannot disagree.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opt {
    Pid,
    Uid,
    Port,
    Ipv4,
    Ipv6,
    Events,
    Failed,
    Json,
    Count,
    Timestamp,
    Duration,
    MaxEvents,
    Backend,
    Btf,
    Pages,
    MaxTracked,
    Cgroup,
    Container,
    Containers,
    Metrics,
    Quiet,
    Help,
    Version,
}

pub(super) struct Spec {
    pub(super) opt: Opt,
    pub(super) short: Option<u8>,
    pub(super) long: &'static str,
    /// Placeholder shown in the help; None = a flag without a value.
    pub(super) value: Option<&'static str>,
    /// The value may be left out (`--count`, `--count 5`, `--count=5`, `-c`, `-c5`): the next
    /// argument is the value unless it starts with `-`, and in a cluster only digits are.
    pub(super) optional: bool,
    pub(super) help: &'static str,
}

pub(super) const SPECS: [Spec; 23] = [
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
        "only these events: connect,established,failed,accept,close",
    ),
    spec(
        Opt::Failed,
        None,
        "failed",
        None,
        "only failures (failed handshakes, connects refused at once)",
    ),
    spec(
        Opt::Cgroup,
        None,
        "cgroup",
        Some("PATH"),
        "only processes in this cgroup v2 subtree (in the kernel)",
    ),
    spec(
        Opt::Container,
        None,
        "container",
        Some("ID"),
        "only the container whose id starts with ID",
    ),
    spec(
        Opt::Json,
        Some(b'j'),
        "json",
        None,
        "print JSON lines instead of a table",
    ),
    optional(spec(
        Opt::Count,
        Some(b'c'),
        "count",
        Some("[SECS]"),
        "count by process and peer: a table every SECS and at exit",
    )),
    spec(
        Opt::Timestamp,
        Some(b't'),
        "timestamp",
        None,
        "add a TIME(s) column (since first event)",
    ),
    spec(
        Opt::Containers,
        None,
        "containers",
        None,
        "add a CONTAINER column (short id) to the table",
    ),
    spec(
        Opt::Quiet,
        Some(b'q'),
        "quiet",
        None,
        "print no events (with --metrics: only serve them)",
    ),
    spec(
        Opt::Metrics,
        None,
        "metrics",
        Some("ADDR:PORT"),
        "serve Prometheus metrics at http://ADDR:PORT/metrics",
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
        "stop after N events (printed, or counted by -c)",
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
        "pages per CPU for the rings, a power of two (default 256)",
    ),
    spec(
        Opt::MaxTracked,
        None,
        "max-tracked",
        Some("N"),
        "connections each state map holds (default: per machine, see README)",
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
        optional: false,
        help,
    }
}

/// A spec whose value may be left out.
const fn optional(spec: Spec) -> Spec {
    Spec {
        optional: true,
        ..spec
    }
}
