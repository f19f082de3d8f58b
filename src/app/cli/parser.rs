//! Walking the arguments: `--name[=value]`, clusters of short options, and the rules that
//! hold across options (`check` takes only `--btf`; `--failed` excludes `-e`).

use super::apply::apply;
use super::spec::{Opt, Spec, SPECS};
use super::{CheckOptions, CliError, Command, TraceOptions};
use std::ffi::OsStr;
use std::iter::Peekable;
use std::os::unix::ffi::OsStrExt;

/// The options so far, and what the cross-option rules need to know.
#[derive(Default)]
pub(super) struct Parser {
    options: TraceOptions,
    /// -e was given (it conflicts with --failed).
    explicit_events: bool,
    /// The first option given that only tracing accepts, as the user spelled it.
    trace_only: Option<String>,
}

impl Parser {
    /// `--name` or `--name=value` (`long` is without the dashes).
    pub(super) fn long<'a>(
        &mut self,
        long: &'a [u8],
        rest: &mut Peekable<impl Iterator<Item = &'a OsStr>>,
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
        let inline = match inline {
            None if spec.optional => next_value(rest),
            given => given,
        };
        self.option(spec, &format!("--{}", spec.long), inline, rest)
    }

    /// A cluster of short options (`-jt`, `-p1234`, `-4jp 1234`): flags, the last of which may
    /// take a value, attached or as the next argument.
    pub(super) fn short_cluster<'a>(
        &mut self,
        mut cluster: &'a [u8],
        rest: &mut Peekable<impl Iterator<Item = &'a OsStr>>,
    ) -> Result<Option<Command>, CliError> {
        while let Some((&c, after)) = cluster.split_first() {
            let spec = SPECS.iter().find(|s| s.short == Some(c)).ok_or_else(|| {
                CliError::new(format!(
                    "unknown option '-{}' (see conntrace --help)",
                    String::from_utf8_lossy(&[c])
                ))
            })?;
            let spelled = format!("-{}", char::from(c));
            // An optional value is the rest of the cluster when that is a number (`-c5`), else
            // the next argument when the cluster ends here (`-c 5`); `-cj` is -c and -j.
            let takes_rest = match after.first() {
                _ if spec.value.is_none() => false,
                Some(b) if spec.optional => b.is_ascii_digit() || *b == b'.',
                Some(_) => true,
                None => false,
            };
            let inline = if takes_rest {
                Some(OsStr::from_bytes(after))
            } else if spec.optional && after.is_empty() {
                next_value(rest)
            } else {
                None
            };
            if let Some(cmd) = self.option(spec, &spelled, inline, rest)? {
                return Ok(Some(cmd));
            }
            if takes_rest || (spec.value.is_some() && !spec.optional) {
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

    pub(super) fn finish(self, is_check: bool) -> Result<Command, CliError> {
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
        if self.options.count.is_some() {
            for (given, option, why) in [
                (
                    self.options.quiet,
                    "-q/--quiet",
                    "the tables are its output",
                ),
                (
                    self.options.timestamps,
                    "-t/--timestamp",
                    "each table has its time on its title line",
                ),
                (
                    self.options.containers,
                    "--containers",
                    "the table has no CONTAINER column",
                ),
            ] {
                if given {
                    return Err(CliError::new(format!(
                        "-c/--count cannot be combined with {option}: {why}"
                    )));
                }
            }
        }
        if self.options.failed_only && self.explicit_events {
            return Err(CliError::new(
                "--failed cannot be combined with -e/--events: --failed already picks the events",
            ));
        }
        Ok(Command::Trace(self.options))
    }
}

/// The next argument as an optional value, unless it is an option.
fn next_value<'a>(rest: &mut Peekable<impl Iterator<Item = &'a OsStr>>) -> Option<&'a OsStr> {
    rest.next_if(|a| !a.as_bytes().starts_with(b"-"))
}

pub(super) fn unexpected(arg: &OsStr) -> CliError {
    let shown = arg.to_string_lossy();
    if shown == "check" {
        CliError::new("'check' must come first: conntrace check [--btf PATH|none]")
    } else {
        CliError::new(format!(
            "unexpected argument '{shown}' (see conntrace --help)"
        ))
    }
}
