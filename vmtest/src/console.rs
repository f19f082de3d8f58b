//! Reads the serial console of a test VM: picks out the `CTVM ...` lines the init prints and
//! groups them per run (one run of conntrace: a backend's, or a fault pass's like
//! `kprobe-tracefs` or `cleanup-kprobe-sigint`; the names are listed in runs.rs, and
//! `<backend>` below is such a name). Everything else on the console (kernel messages) is kept only as
//! context for error messages.
//!
//! The line vocabulary, shared with `vmtest/init` (src/report.rs there):
//! ```text
//! CTVM INIT <free text>                          init started (uptime, kernel, arch)
//! CTVM NOTE <free text>                          something worth knowing, not a verdict
//! CTVM BTF present | absent                      whether /sys/kernel/btf/vmlinux exists
//! CTVM KPROBE_EVENTS_BEFORE <backend> entry <text>   one per line of tracefs kprobe_events
//! CTVM KPROBE_EVENTS_BEFORE <backend> end            listing complete
//! CTVM KPROBE_EVENTS_BEFORE <backend> unavailable <why>
//! CTVM KPROBE_EVENTS_DURING <backend> ...           same three forms, while attached (some runs)
//! CTVM KPROBE_EVENTS_AFTER  <backend> ...            same three forms, after conntrace exited
//! CTVM PID <backend> <pid>                           conntrace started with this pid
//! CTVM ATTACHED <backend> <seconds>                  conntrace printed "conntrace: attached"
//! CTVM ATTACH_FAILED <backend> <why>
//! CTVM EVENT <backend> <json>                        one conntrace stdout line
//! CTVM STDERR <backend> <text>                       one conntrace stderr line
//! CTVM EXIT <backend> code=<n> | signal=<n> | hung
//! CTVM EXPECT <backend> key=value ...                what the scenario did (pids, ports, ...)
//! CTVM SCENARIO_ERROR <backend> <text>               the scenario itself went wrong
//! CTVM PROGS <backend> before=<n> during=<n>|- after=<n>   loaded BPF programs (after settling)
//! CTVM PROGS <backend> unavailable <why>
//! CTVM RECURSION_MISSES <backend> <n>               runs of loaded BPF programs the kernel skipped
//! CTVM RECURSION_MISSES <backend> unavailable <why>  (counted from 6.7), just before the stop
//! CTVM SETUP <backend> ok <what> | failed <why>      a fault set up before the run
//! CTVM RESTORE <backend> ok <what> | failed <why>    the fault undone after it
//! CTVM CHECK_OUT <text>                              one line of `conntrace check`
//! CTVM CHECK_EXIT code=<n> | signal=<n> | <why it did not run>
//! CTVM DONE                                          init finished, powering off
//! ```

/// What the init said, per backend and overall.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Console {
    pub init: Option<String>,
    pub notes: Vec<String>,
    /// `Some(true)` when the kernel has /sys/kernel/btf/vmlinux.
    pub btf: Option<bool>,
    pub backends: Vec<BackendRun>,
    pub check_out: Vec<String>,
    pub check_exit: Option<String>,
    pub done: bool,
    /// CTVM lines we could not make sense of, verbatim.
    pub unparsed: Vec<String>,
}

/// One backend's run of conntrace and the scenario.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BackendRun {
    pub name: String,
    /// `Some(Ok(seconds))` after ATTACHED, `Some(Err(why))` after ATTACH_FAILED.
    pub attached: Option<Result<String, String>>,
    pub events: Vec<String>,
    pub stderr: Vec<String>,
    pub exit: Option<String>,
    pub expect: Vec<(String, String)>,
    pub scenario_errors: Vec<String>,
    pub kprobe_events_before: KprobeListing,
    pub kprobe_events_during: KprobeListing,
    pub kprobe_events_after: KprobeListing,
    pub pid: Option<String>,
    /// `Some(Err(why))` when the init could not count.
    pub progs: Option<Result<ProgCounts, String>>,
    /// Runs of the loaded BPF programs the kernel skipped (another BPF program was running on
    /// the CPU), summed just before conntrace was stopped; `Some(Err(why))` when unreadable.
    pub recursion_misses: Option<Result<u64, String>>,
    /// `Some(Ok(what))` / `Some(Err(why))` from SETUP and RESTORE.
    pub setup: Option<Result<String, String>>,
    pub restore: Option<Result<String, String>>,
}

/// Loaded BPF programs before conntrace started, while attached (if it attached), and after
/// it exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgCounts {
    pub before: u32,
    pub during: Option<u32>,
    pub after: u32,
}

/// A listing of tracefs `kprobe_events`, as reported line by line.
#[derive(Debug, Default, Clone, PartialEq)]
pub enum KprobeListing {
    /// No line about it arrived (the VM died first, or the init skipped it).
    #[default]
    Missing,
    /// Entries arrived but no `end` yet.
    Partial(Vec<String>),
    Complete(Vec<String>),
    Unavailable(String),
}

impl BackendRun {
    /// Every value of `key` in this backend's EXPECT line(s), in order.
    pub fn expect_values(&self, key: &str) -> Vec<&str> {
        self.expect
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of `key` in this backend's EXPECT line(s).
    pub fn expect_value(&self, key: &str) -> Option<&str> {
        self.expect
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Console {
    pub fn backend(&self, name: &str) -> Option<&BackendRun> {
        self.backends.iter().find(|b| b.name == name)
    }

    fn backend_mut(&mut self, name: &str) -> &mut BackendRun {
        if let Some(i) = self.backends.iter().position(|b| b.name == name) {
            // The index was just found, so it is in bounds.
            &mut self.backends[i]
        } else {
            self.backends.push(BackendRun {
                name: name.to_string(),
                ..BackendRun::default()
            });
            let last = self.backends.len() - 1;
            &mut self.backends[last]
        }
    }
}

const PREFIX: &str = "CTVM ";

/// Parses a whole console capture. Kernel messages may precede a CTVM tag on the same line
/// (printk does not wait for our newline), so the tag is searched for, not required at col 0.
pub fn parse(text: &str) -> Console {
    let mut console = Console::default();
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if let Some(at) = line.find(PREFIX) {
            let body = &line[at + PREFIX.len()..];
            if !apply(&mut console, body) {
                console.unparsed.push(line[at..].to_string());
            }
        }
    }
    console
}

/// Splits off the first space-separated word.
fn word(text: &str) -> (&str, &str) {
    match text.split_once(' ') {
        Some((w, rest)) => (w, rest),
        None => (text, ""),
    }
}

/// Applies one CTVM line; false when it does not follow the vocabulary.
fn apply(c: &mut Console, body: &str) -> bool {
    let (tag, rest) = word(body);
    match tag {
        "INIT" => c.init = Some(rest.to_string()),
        "NOTE" => c.notes.push(rest.to_string()),
        "DONE" => c.done = true,
        "BTF" => {
            c.btf = Some(match rest {
                "present" => true,
                "absent" => false,
                _ => return false,
            })
        }
        "CHECK_OUT" => c.check_out.push(rest.to_string()),
        "CHECK_EXIT" => c.check_exit = Some(rest.to_string()),
        "KPROBE_EVENTS_BEFORE" | "KPROBE_EVENTS_DURING" | "KPROBE_EVENTS_AFTER" => {
            let (backend, rest) = word(rest);
            let (kind, text) = word(rest);
            let run = c.backend_mut(backend);
            let listing = match tag {
                "KPROBE_EVENTS_BEFORE" => &mut run.kprobe_events_before,
                "KPROBE_EVENTS_DURING" => &mut run.kprobe_events_during,
                _ => &mut run.kprobe_events_after,
            };
            return apply_listing(listing, kind, text);
        }
        "SETUP" | "RESTORE" => {
            let (backend, rest) = word(rest);
            let (kind, text) = word(rest);
            let result = match kind {
                "ok" => Ok(text.to_string()),
                "failed" => Err(text.to_string()),
                _ => return false,
            };
            let run = c.backend_mut(backend);
            if tag == "SETUP" {
                run.setup = Some(result);
            } else {
                run.restore = Some(result);
            }
        }
        "PROGS" => {
            let (backend, rest) = word(rest);
            let Some(progs) = parse_progs(rest) else {
                return false;
            };
            c.backend_mut(backend).progs = Some(progs);
        }
        "RECURSION_MISSES" => {
            let (backend, rest) = word(rest);
            let misses = match rest.strip_prefix("unavailable ") {
                Some(why) => Err(why.to_string()),
                None => match rest.parse() {
                    Ok(n) => Ok(n),
                    Err(_) => return false,
                },
            };
            c.backend_mut(backend).recursion_misses = Some(misses);
        }
        "ATTACHED" | "ATTACH_FAILED" | "EVENT" | "STDERR" | "EXIT" | "EXPECT"
        | "SCENARIO_ERROR" | "PID" => {
            let (backend, text) = word(rest);
            if backend.is_empty() {
                return false;
            }
            let run = c.backend_mut(backend);
            let text = text.to_string();
            match tag {
                "ATTACHED" => run.attached = Some(Ok(text)),
                "ATTACH_FAILED" => run.attached = Some(Err(text)),
                "EVENT" => run.events.push(text),
                "STDERR" => run.stderr.push(text),
                "EXIT" => run.exit = Some(text),
                "SCENARIO_ERROR" => run.scenario_errors.push(text),
                "PID" => run.pid = Some(text),
                _ => {
                    for pair in text.split_whitespace() {
                        let Some((k, v)) = pair.split_once('=') else {
                            return false;
                        };
                        run.expect.push((k.to_string(), v.to_string()));
                    }
                }
            }
        }
        _ => return false,
    }
    true
}

/// `before=3 during=9 after=3` (during may be `-`) or `unavailable <why>`.
fn parse_progs(text: &str) -> Option<Result<ProgCounts, String>> {
    if let Some(why) = text.strip_prefix("unavailable ") {
        return Some(Err(why.to_string()));
    }
    let mut words = text.split(' ');
    let mut value = |key: &str| words.next()?.strip_prefix(key)?.strip_prefix('=');
    let before = value("before")?.parse().ok()?;
    let during = match value("during")? {
        "-" => None,
        n => Some(n.parse().ok()?),
    };
    let after = value("after")?.parse().ok()?;
    if words.next().is_some() {
        return None;
    }
    Some(Ok(ProgCounts {
        before,
        during,
        after,
    }))
}

fn apply_listing(listing: &mut KprobeListing, kind: &str, text: &str) -> bool {
    let mut entries = match std::mem::take(listing) {
        KprobeListing::Partial(e) => e,
        _ => Vec::new(),
    };
    *listing = match kind {
        "entry" => {
            entries.push(text.to_string());
            KprobeListing::Partial(entries)
        }
        "end" => KprobeListing::Complete(entries),
        "unavailable" => KprobeListing::Unavailable(text.to_string()),
        _ => return false,
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
[    0.000000] Linux version 6.1.0\r
CTVM INIT uptime=1.92 kernel=6.1.0-28-cloud-amd64 arch=x86_64\r
CTVM BTF present\r
CTVM NOTE tracefs mounted at /sys/kernel/tracing\r
CTVM KPROBE_EVENTS_BEFORE kprobe end\r
CTVM ATTACHED kprobe 0.41\r
CTVM EVENT kprobe {\"event\":\"connect\"}\r
[    3.1] random: crng init done CTVM EVENT kprobe {\"event\":\"accept\"}\r
CTVM STDERR kprobe conntrace: attached 5 probes\r
CTVM EXIT kprobe code=0\r
CTVM EXPECT kprobe port=4200 client_comm=ct-client\r
CTVM KPROBE_EVENTS_AFTER kprobe entry p:kprobes/ct_1 tcp_v4_connect\r
CTVM KPROBE_EVENTS_AFTER kprobe end\r
CTVM PROGS kprobe before=0 during=6 after=0\r
CTVM RECURSION_MISSES kprobe 3\r
CTVM PID kprobe-tracefs 120\r
CTVM SETUP kprobe-tracefs ok online=0\r
CTVM KPROBE_EVENTS_DURING kprobe-tracefs entry p:kprobes/conntrace_120_0 tcp_v4_connect\r
CTVM KPROBE_EVENTS_DURING kprobe-tracefs end\r
CTVM RESTORE kprobe-tracefs failed cannot write\r
CTVM PROGS kprobe-tracefs unavailable bpf() refused\r
CTVM ATTACH_FAILED tracepoint conntrace exited with code=1 before attaching\r
CTVM KPROBE_EVENTS_AFTER tracepoint unavailable tracefs is not mounted\r
CTVM CHECK_OUT BTF: yes\r
CTVM CHECK_EXIT code=0\r
CTVM BOGUS thing\r
CTVM DONE\r
";

    #[test]
    fn groups_lines_per_backend() {
        let c = parse(SAMPLE);
        assert_eq!(
            c.init.as_deref(),
            Some("uptime=1.92 kernel=6.1.0-28-cloud-amd64 arch=x86_64")
        );
        assert!(c.done);
        assert_eq!(c.btf, Some(true));
        assert_eq!(c.backends.len(), 3);
        let k = c.backend("kprobe").unwrap();
        assert_eq!(k.attached, Some(Ok("0.41".to_string())));
        assert_eq!(
            k.events,
            vec!["{\"event\":\"connect\"}", "{\"event\":\"accept\"}"]
        );
        assert_eq!(k.stderr, vec!["conntrace: attached 5 probes"]);
        assert_eq!(k.exit.as_deref(), Some("code=0"));
        assert_eq!(k.expect_value("port"), Some("4200"));
        assert_eq!(k.expect_value("client_comm"), Some("ct-client"));
        assert_eq!(k.kprobe_events_before, KprobeListing::Complete(vec![]));
        assert_eq!(
            k.kprobe_events_after,
            KprobeListing::Complete(vec!["p:kprobes/ct_1 tcp_v4_connect".into()])
        );
        assert_eq!(
            k.progs,
            Some(Ok(ProgCounts {
                before: 0,
                during: Some(6),
                after: 0
            }))
        );
        assert_eq!(k.recursion_misses, Some(Ok(3)));
        let f = c.backend("kprobe-tracefs").unwrap();
        assert_eq!(f.pid.as_deref(), Some("120"));
        assert_eq!(f.setup, Some(Ok("online=0".into())));
        assert_eq!(f.restore, Some(Err("cannot write".into())));
        assert_eq!(
            f.kprobe_events_during,
            KprobeListing::Complete(vec!["p:kprobes/conntrace_120_0 tcp_v4_connect".into()])
        );
        assert_eq!(f.progs, Some(Err("bpf() refused".into())));
        let t = c.backend("tracepoint").unwrap();
        assert!(matches!(&t.attached, Some(Err(why)) if why.contains("before attaching")));
        assert_eq!(
            t.kprobe_events_after,
            KprobeListing::Unavailable("tracefs is not mounted".into())
        );
        assert_eq!(t.kprobe_events_before, KprobeListing::Missing);
        assert_eq!(c.check_out, vec!["BTF: yes"]);
        assert_eq!(c.check_exit.as_deref(), Some("code=0"));
        assert_eq!(c.unparsed, vec!["CTVM BOGUS thing"]);
    }

    #[test]
    fn a_cut_off_console_leaves_things_missing() {
        let cut = &SAMPLE[..SAMPLE.find("CTVM KPROBE_EVENTS_AFTER kprobe end").unwrap()];
        let c = parse(cut);
        assert!(!c.done);
        let k = c.backend("kprobe").unwrap();
        assert!(matches!(k.kprobe_events_after, KprobeListing::Partial(ref e) if e.len() == 1));
        assert!(c.backend("tracepoint").is_none());
        assert_eq!(c.check_exit, None);
    }

    #[test]
    fn malformed_lines_are_kept_as_unparsed() {
        let c = parse(
            "CTVM EXPECT kprobe novalue\nCTVM EVENT\nCTVM KPROBE_EVENTS_AFTER x weird\n\
             CTVM PROGS k before=1 after=1\nCTVM PROGS k before=1 during=x after=1\n\
             CTVM PROGS k before=1 during=- after=1 more\nCTVM SETUP k maybe\nCTVM BTF maybe\n\
             CTVM RECURSION_MISSES k many\n",
        );
        assert_eq!(c.unparsed.len(), 9, "{:?}", c.unparsed);
        let c = parse("CTVM RECURSION_MISSES k unavailable EPERM\n");
        assert_eq!(
            c.backend("k").unwrap().recursion_misses,
            Some(Err("EPERM".into()))
        );
        assert_eq!(c.btf, None);
        assert_eq!(parse("CTVM BTF absent\n").btf, Some(false));
        let c = parse("CTVM PROGS k before=1 during=- after=2\n");
        assert_eq!(
            c.backend("k").unwrap().progs,
            Some(Ok(ProgCounts {
                before: 1,
                during: None,
                after: 2
            }))
        );
    }
}
