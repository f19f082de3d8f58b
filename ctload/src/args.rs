//! The command line: `ctload --count N --family 4|6 --port P [--rate R] [--duration SECS]
//! [--report-json]`, or `ctload syscalls --count N [--report-json]`. A pure parser over the
//! argument strings, so every error is testable.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Connections to make; `None`: until `duration` ends.
    pub count: Option<u64>,
    pub family: Family,
    /// The server's port on the loopback address; 0 lets the kernel pick one.
    pub port: u16,
    /// Connections per second to aim for; `None`: as fast as possible.
    pub rate: Option<f64>,
    /// Stop making connections after this long, even if `count` is not reached.
    pub duration: Option<Duration>,
    pub report_json: bool,
}

pub const USAGE: &str = "\
usage: ctload --count N --family 4|6 --port P [--rate R] [--duration SECS] [--report-json]
       ctload syscalls --count N [--report-json]

Makes N loopback TCP connect+accept pairs (127.0.0.1 or ::1) from one process: a server thread
accepts and closes, a client thread connects and closes. The server closes with SO_LINGER 0 (a
reset), which also ends the client's side, so no socket lingers in TIME_WAIT and 100,000
connections do not exhaust the ephemeral ports; no sysctl needs changing.

  --count N        connections to make (at least one of --count and --duration is needed)
  --family 4|6     IPv4 (127.0.0.1) or IPv6 (::1)
  --port P         the server's port (0: any free port, printed in the report)
  --rate R         aim for R connections per second (default: as fast as possible)
  --duration SECS  stop after SECS seconds (decimals allowed)
  --report-json    print the report as one JSON object instead of a sentence

`ctload syscalls` makes no connection: it calls getppid() N times in a tight loop and prints
the time per call, the cost a tracer adds to every syscall of the machine while attached.

Exit status: 0 if every connect succeeded and was accepted, 1 if not, 2 on bad usage.
";

/// `ctload syscalls`: how many getppid() calls to time.
#[derive(Debug, Clone, PartialEq)]
pub struct SyscallOptions {
    pub count: u64,
    pub report_json: bool,
}

/// What the command line asked for: a load run, a syscall loop, or the usage text.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Run(Options),
    Syscalls(SyscallOptions),
    Help,
}

pub fn parse(args: &[String]) -> Result<Parsed, String> {
    match args.split_first() {
        Some((first, rest)) if first == "syscalls" => parse_syscalls(rest),
        _ => parse_load(args),
    }
}

/// `ctload syscalls --count N [--report-json]`: only the two options a syscall loop has, so
/// that a load option given by mistake is an error, not silently ignored.
fn parse_syscalls(args: &[String]) -> Result<Parsed, String> {
    let mut count = None;
    let mut report_json = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = split_inline(arg);
        match name {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--report-json" => report_json = true,
            "--count" => {
                let v = option_value(name, inline, &mut it)?;
                count = Some(positive(name, &v)?);
            }
            _ => {
                return Err(format!(
                    "ctload syscalls: unknown argument '{arg}' (see --help)"
                ))
            }
        }
    }
    let count = count.ok_or("ctload syscalls: --count N is needed (see --help)")?;
    Ok(Parsed::Syscalls(SyscallOptions { count, report_json }))
}

/// `--name=value` as the name and its inline value; any other argument as itself.
fn split_inline(arg: &str) -> (&str, Option<String>) {
    match arg.split_once('=') {
        Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
        _ => (arg, None),
    }
}

/// An option's value: the inline one, else the next argument.
fn option_value(
    name: &str,
    inline: Option<String>,
    it: &mut std::slice::Iter<'_, String>,
) -> Result<String, String> {
    inline
        .or_else(|| it.next().cloned())
        .ok_or_else(|| format!("ctload: {name} needs a value (see --help)"))
}

/// A count: a whole number above 0.
fn positive(name: &str, v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| bad(name, v, "a positive whole number"))
}

fn parse_load(args: &[String]) -> Result<Parsed, String> {
    let mut count = None;
    let mut family = None;
    let mut port = None;
    let mut rate = None;
    let mut duration = None;
    let mut report_json = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = split_inline(arg);
        let mut value = || option_value(name, inline.clone(), &mut it);
        match name {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--report-json" => report_json = true,
            "--count" => {
                let v = value()?;
                count = Some(positive(name, &v)?);
            }
            "--family" => {
                let v = value()?;
                family = Some(match v.as_str() {
                    "4" => Family::V4,
                    "6" => Family::V6,
                    _ => return Err(bad(name, &v, "4 or 6")),
                });
            }
            "--port" => {
                let v = value()?;
                port = Some(
                    v.parse::<u16>()
                        .map_err(|_| bad(name, &v, "a port number, 0 to 65535"))?,
                );
            }
            "--rate" => {
                let v = value()?;
                rate = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r > 0.0)
                        .ok_or_else(|| bad(name, &v, "connections per second, above 0"))?,
                );
            }
            "--duration" => {
                let v = value()?;
                duration = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 1e9)
                        .map(Duration::from_secs_f64)
                        .ok_or_else(|| bad(name, &v, "seconds, above 0"))?,
                );
            }
            _ => return Err(format!("ctload: unknown argument '{arg}' (see --help)")),
        }
    }
    let family = family.ok_or("ctload: --family 4 or --family 6 is needed (see --help)")?;
    let port = port.ok_or("ctload: --port is needed (0 for any free port; see --help)")?;
    if count.is_none() && duration.is_none() {
        return Err("ctload: give --count, --duration or both, or it would never stop".into());
    }
    Ok(Parsed::Run(Options {
        count,
        family,
        port,
        rate,
        duration,
        report_json,
    }))
}

fn bad(name: &str, value: &str, wanted: &str) -> String {
    format!("ctload: invalid value '{value}' for {name}: expected {wanted}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args)? {
            Parsed::Run(o) => Ok(o),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn full_command_line() {
        let o = run(&[
            "--count",
            "100000",
            "--family",
            "6",
            "--port=40000",
            "--rate",
            "2500.5",
            "--duration",
            "1.5",
            "--report-json",
        ])
        .unwrap();
        assert_eq!(o.count, Some(100_000));
        assert_eq!(o.family, Family::V6);
        assert_eq!(o.port, 40000);
        assert_eq!(o.rate, Some(2500.5));
        assert_eq!(o.duration, Some(Duration::from_millis(1500)));
        assert!(o.report_json);
    }

    #[test]
    fn duration_alone_is_enough() {
        let o = run(&["--family", "4", "--port", "0", "--duration", "2"]).unwrap();
        assert_eq!((o.count, o.rate, o.report_json), (None, None, false));
    }

    #[test]
    fn errors_name_the_problem() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--family", "4", "--port", "1"],
                "give --count, --duration",
            ),
            (&["--count", "1", "--port", "1"], "--family 4 or --family 6"),
            (&["--count", "1", "--family", "4"], "--port is needed"),
            (&["--count", "0"], "invalid value '0' for --count"),
            (&["--count", "-3"], "invalid value '-3' for --count"),
            (&["--family", "5"], "expected 4 or 6"),
            (&["--port", "65536"], "invalid value '65536' for --port"),
            (&["--rate", "0"], "invalid value '0' for --rate"),
            (&["--rate", "NaN"], "invalid value 'NaN' for --rate"),
            (&["--duration", "inf"], "invalid value 'inf' for --duration"),
            (&["--count"], "--count needs a value"),
            (&["--bogus"], "unknown argument '--bogus'"),
        ];
        for (args, wanted) in cases {
            let err = run(args).unwrap_err();
            assert!(err.contains(wanted), "{args:?}: {err}");
        }
    }

    fn syscalls(args: &[&str]) -> Result<SyscallOptions, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args)? {
            Parsed::Syscalls(o) => Ok(o),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn syscalls_mode() {
        assert_eq!(
            syscalls(&["syscalls", "--count=1000000", "--report-json"]),
            Ok(SyscallOptions {
                count: 1_000_000,
                report_json: true
            })
        );
        assert_eq!(
            syscalls(&["syscalls", "--count", "5"]).map(|o| o.report_json),
            Ok(false)
        );
        let cases: &[(&[&str], &str)] = &[
            (&["syscalls"], "--count N is needed"),
            (
                &["syscalls", "--count", "0"],
                "invalid value '0' for --count",
            ),
            (&["syscalls", "--count"], "--count needs a value"),
            (
                &["syscalls", "--count", "1", "--port", "1"],
                "unknown argument '--port'",
            ),
        ];
        for (args, wanted) in cases {
            let err = syscalls(args).unwrap_err();
            assert!(err.contains(wanted), "{args:?}: {err}");
        }
        // Only as the first argument: elsewhere it is an unknown argument of the load.
        assert!(syscalls(&["--count", "1", "syscalls"])
            .unwrap_err()
            .contains("unknown argument 'syscalls'"));
    }

    #[test]
    fn help() {
        assert_eq!(parse(&["-h".to_string()]), Ok(Parsed::Help));
    }
}
