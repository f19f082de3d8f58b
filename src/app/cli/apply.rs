//! What each option does to the [`TraceOptions`]: its value read and range-checked.

use super::spec::{Opt, Spec};
use super::values::{invalid, number, seconds, utf8};
use super::{
    BackendChoice, BtfSource, CliError, Command, CountOptions, EventSet, FamilyFilter,
    TraceOptions, MAX_DURATION_SECS, MAX_PAGES, MAX_PID, MAX_PORTS, MAX_UID, MIN_COUNT_INTERVAL,
};
use crate::session::capacity::{MAX_TRACKED, MIN_TRACKED};
use crate::session::event::Kind;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Applies one option. Returns a command when the option ends parsing (help, version).
pub(super) fn apply<'a>(
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
                let kind = Kind::ALL
                    .into_iter()
                    .find(|k| k.name() == item)
                    .ok_or_else(|| {
                        invalid(
                            "event",
                            item,
                            spelled,
                            "expected connect, established, failed, accept or close",
                        )
                    })?;
                set = set.with(kind);
            }
            options.events = set;
        }
        Opt::Cgroup => {
            let v = value()?;
            if v.is_empty() {
                return Err(CliError::new(format!(
                    "empty path for {spelled}: expected a cgroup v2 directory, like \
                     /sys/fs/cgroup/system.slice or /system.slice"
                )));
            }
            options.cgroup = Some(PathBuf::from(v));
        }
        Opt::Container => {
            let v = utf8(value()?, spelled)?;
            if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    "container id",
                    v,
                    spelled,
                    "expected 1 to 64 hex digits (a prefix of the id, as docker ps shows)",
                ));
            }
            options.container = Some(v.to_ascii_lowercase());
        }
        Opt::Containers => options.containers = true,
        Opt::Quiet => options.quiet = true,
        Opt::Metrics => {
            let v = utf8(value()?, spelled)?;
            let addr: std::net::SocketAddr = v
                .parse()
                .ok()
                .filter(|a: &std::net::SocketAddr| a.port() != 0)
                .ok_or_else(|| {
                    invalid(
                        "listen address",
                        v,
                        spelled,
                        "expected ADDR:PORT with a port from 1 to 65535, like 127.0.0.1:9479 \
                         or [::]:9479",
                    )
                })?;
            options.metrics = Some(addr);
        }
        Opt::Failed => options.failed_only = true,
        Opt::Json => options.json = true,
        Opt::Count => {
            // The parser found the value, if one was given (it is optional).
            let every = match inline {
                None => None,
                Some(v) => {
                    let v = utf8(v, spelled)?;
                    let every =
                        seconds(v)
                            .filter(|d| *d >= MIN_COUNT_INTERVAL)
                            .ok_or_else(|| {
                                invalid(
                                    "interval",
                                    v,
                                    spelled,
                                    &format!(
                                    "expected seconds from {} to {MAX_DURATION_SECS}, like 5 or \
                                     0.5, or no value for one table at exit",
                                    MIN_COUNT_INTERVAL.as_secs_f64()
                                ),
                                )
                            })?;
                    Some(every)
                }
            };
            options.count = Some(CountOptions { every });
        }
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
                "auto" => BackendChoice::Auto,
                "kprobe" => BackendChoice::Kprobe,
                "tracepoint" => BackendChoice::Tracepoint,
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
        Opt::MaxTracked => {
            let v = utf8(value()?, spelled)?;
            let n = number(v)
                .filter(|n| (MIN_TRACKED as u64..=MAX_TRACKED as u64).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "connect count",
                        v,
                        spelled,
                        &format!("expected a number from {MIN_TRACKED} to {MAX_TRACKED}"),
                    )
                })?;
            options.max_tracked = Some(n as u32);
        }
    }
    Ok(None)
}
