//! The command line's tests: every option in every spelling, every error message verbatim.

use super::spec::SPECS;
use super::*;
use std::ffi::OsStr;

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
    assert_eq!(o.backend, BackendChoice::Auto);
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
    assert!(!o.session().connects && o.session().accepts);
    let o = trace(&["-e", "close"]);
    assert!(o.wants(Kind::Close, false) && !o.wants(Kind::Accept, false));
    // A close names the process that connected or accepted: both probes are needed.
    assert!(o.session().connects && o.session().accepts);
    assert_eq!(
        trace(&["-eestablished"]).events,
        EventSet::EMPTY.with(Kind::Established)
    );
    assert_eq!(
        error(&["-e", "connect,bogus"]),
        "conntrace: invalid event 'bogus' for -e: \
         expected connect, established, failed, accept or close"
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
fn count_with_and_without_an_interval() {
    let once = Some(CountOptions { every: None });
    let every = |secs: f64| {
        Some(CountOptions {
            every: Some(Duration::from_secs_f64(secs)),
        })
    };
    assert_eq!(trace(&[]).count, None);
    for list in [
        &["-c"][..],
        &["--count"],
        &["--count", "-j"],
        &["-cj"],
        &["-jc"],
    ] {
        assert_eq!(trace(list).count, once, "{list:?}");
    }
    for list in [
        &["--count", "5"][..],
        &["--count=5"],
        &["-c", "5"],
        &["-c5"],
        &["-jc", "5"],
        &["-jc5"],
        &["-c", "5.0", "-j"],
    ] {
        assert_eq!(trace(list).count, every(5.0), "{list:?}");
    }
    assert_eq!(trace(&["--count", ".5"]).count, every(0.5));
    assert_eq!(trace(&["-c0.1"]).count, every(0.1));
    let o = trace(&["-cj", "-P", "80"]);
    assert!(
        o.json && o.count == once && o.ports == [80],
        "-cj is -c and -j"
    );
    let o = trace(&["-c", "-d", "3"]);
    assert_eq!((o.count, o.duration), (once, Some(Duration::from_secs(3))));
    assert_eq!(trace(&["-c", "2", "-n", "7"]).max_events, Some(7));
}

#[test]
fn count_errors() {
    let expected = "expected seconds from 0.1 to 1000000000, like 5 or 0.5, or no value for one \
                    table at exit";
    assert_eq!(
        error(&["--count", "abc"]),
        format!("conntrace: invalid interval 'abc' for --count: {expected}")
    );
    assert_eq!(
        error(&["-c", "0"]),
        format!("conntrace: invalid interval '0' for -c: {expected}")
    );
    for bad in ["0.05", "", "1s", "1e3", "5,5", "1000000001"] {
        assert!(
            error(&[&format!("--count={bad}")])
                .starts_with(&format!("conntrace: invalid interval '{bad}' for --count")),
            "{bad}"
        );
    }
    assert!(error(&["-c5x"]).starts_with("conntrace: invalid interval '5x' for -c"));
    assert_eq!(
        error(&["-cx"]),
        "conntrace: unknown option '-x' (see conntrace --help)"
    );
    // Only one value: a second number is an argument of its own.
    assert_eq!(
        error(&["-c", "5", "6"]),
        "conntrace: unexpected argument '6' (see conntrace --help)"
    );
    assert_eq!(
        error(&["-c", "-q"]),
        "conntrace: -c/--count cannot be combined with -q/--quiet: the tables are its output"
    );
    assert_eq!(
        error(&["-t", "--count=1"]),
        "conntrace: -c/--count cannot be combined with -t/--timestamp: each table has its \
         time on its title line"
    );
    assert_eq!(
        error(&["--containers", "-c"]),
        "conntrace: -c/--count cannot be combined with --containers: the table has no \
         CONTAINER column"
    );
    assert!(error(&["check", "-c"]).contains("option -c does not apply to 'conntrace check'"));
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
            error(&["-d", bad]).starts_with(&format!("conntrace: invalid duration '{bad}' for -d")),
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
    assert_eq!(trace(&["--backend", "auto"]).backend, BackendChoice::Auto);
    assert_eq!(trace(&["--backend=kprobe"]).backend, BackendChoice::Kprobe);
    assert_eq!(
        trace(&["--backend", "tracepoint"]).backend,
        BackendChoice::Tracepoint
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
fn max_tracked() {
    assert_eq!(trace(&[]).max_tracked, None);
    assert_eq!(trace(&["--max-tracked", "8"]).max_tracked, Some(8));
    assert_eq!(
        trace(&["--max-tracked=16777216"]).max_tracked,
        Some(16_777_216)
    );
    assert_eq!(
        trace(&["--max-tracked", "100"]).session().max_tracked,
        Some(100)
    );
    for bad in ["0", "7", "16777217", "x", ""] {
        assert_eq!(
            error(&["--max-tracked", bad]),
            format!(
                "conntrace: invalid connect count '{bad}' for --max-tracked: \
                 expected a number from 8 to 16777216"
            )
        );
    }
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
        BackendChoice::Auto
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

/// The options part of `--help`: the lines between "Options:" and the blank line after them.
fn help_options() -> String {
    let text = help();
    let (_, after) = text
        .split_once("\nOptions:\n")
        .expect("help has an Options: section");
    let (options, _) = after
        .split_once("\n\n")
        .expect("a blank line ends the options");
    format!("{options}\n")
}

/// The first fenced block after README.md's "## Options" heading, without the fences.
fn readme_options() -> String {
    let readme = include_str!("../../../README.md");
    let (_, section) = readme
        .split_once("\n## Options\n")
        .expect("README.md has an ## Options section");
    let (_, fenced) = section
        .split_once("```\n")
        .expect("the Options section has a fenced block");
    let (block, _) = fenced.split_once("```").expect("the fenced block ends");
    block.to_string()
}

/// The README shows the options exactly as the binary prints them, so it cannot drift again.
#[test]
fn readme_options_are_the_help() {
    let (readme, help) = (readme_options(), help_options());
    assert!(
        readme == help,
        "README.md's ## Options block differs from conntrace --help; paste this in:\n{help}"
    );
}

/// The --pages line is a literal in the table, so check it names the real default.
#[test]
fn help_names_the_default_pages() {
    assert!(help().contains(&format!("(default {DEFAULT_PAGES})")));
}
