//! Ties the pieces together: parse, load, attach, read, print, clean up.

use std::ffi::OsString;
use std::io::{self, Write};
use std::time::Instant;

use crate::attach::{self, Attachment};
use crate::backend::{self, Role};
use crate::cli::{self, Command, FamilyFilter, TraceOptions};
use crate::event::{self, Kind, SockIds, WireEvent};
use crate::fields::{self, FieldSource};
use crate::filter::{FilterConfig, ANY_UID};
use crate::load::{self, LoadOptions, Loaded, ProgramFilter};
use crate::output::{Clock, Printer, Stream};
use crate::privileges;
use crate::probe_object::{self, ProgramKind};
use crate::ring::{self, PerfRings, Record, Wakeup};
use crate::selftest;
use crate::signals;
use crate::sys::{RealSys, Sys};
use std::os::fd::AsFd;

/// The probe object build.rs assembled from src/bpf/*.s.
pub static PROBES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probes.o"));
/// The same programs for kernels without BTF (src/bpf/variants/nobtf.s): no field outside the
/// built-in sock_common table.
pub static PROBES_NOBTF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probes-nobtf.o"));

/// The program's entry point; returns the exit status (0 done, 1 tracing failed, 2 bad usage).
pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    match command {
        Command::Help => {
            print!("{}", cli::help());
            0
        }
        Command::Version => {
            println!("{}", cli::version());
            0
        }
        Command::Check(opts) => crate::check::run(&RealSys, &opts),
        Command::Trace(opts) => match run(&RealSys, &opts) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("conntrace: {e}");
                1
            }
        },
    }
}

/// Counts for the summary line at exit.
#[derive(Debug, Default)]
struct Totals {
    events: u64,
    lost: u64,
    malformed: u64,
}

/// A traced session: everything that must stay alive while events are read. Fields drop in
/// order: probes are detached before the rings and maps go away.
struct Session<'s> {
    attachments: Vec<Attachment<'s>>,
    rings: PerfRings<'s>,
    loaded: Loaded,
    /// Why this backend, for the "attached" line.
    why: String,
    /// Without BTF: the families whose built-in layout the self-test must verify before the
    /// user's filters go in and tracing begins.
    verify: Option<Vec<selftest::Family>>,
}

fn run(sys: &dyn Sys, opts: &TraceOptions) -> Result<(), String> {
    signals::install();
    let mut session = start(sys, opts)?;
    if let Some(families) = session.verify.take() {
        // The self-test runs under a this-process-only filter; the user's go in afterwards.
        selftest::verify(&mut session.rings, &families)?;
        configure_filters(sys, &session.loaded, opts)?;
        let names: Vec<_> = families.iter().map(|f| f.name()).collect();
        eprintln!(
            "conntrace: no BTF: using the built-in sock_common layout (verified on loopback: \
             {}); off without BTF: {}",
            names.join(", "),
            fields::NO_BTF_LIMITS
        );
    }
    // From here on only rings, stdout and our own fds are used: see `privileges`.
    let dropped = privileges::drop_privileges(sys)?;
    if let Some(warning) = dropped.warning {
        eprintln!("conntrace: warning: {warning}");
    }
    eprintln!(
        "conntrace: attached {} probes: {}; Ctrl-C to stop",
        session.attachments.len(),
        session.why
    );
    let totals = read_events(sys, session, opts)?;
    let mut summary = format!("conntrace: {} events, {} lost", totals.events, totals.lost);
    if totals.malformed > 0 {
        summary.push_str(&format!(", {} malformed records skipped", totals.malformed));
    }
    eprintln!("{summary}");
    Ok(())
}

/// `conntrace check --btf none`: attaches as tracing would, runs the self-test, detaches.
/// Returns the families verified ("IPv4, IPv6").
pub fn verify_without_btf(sys: &dyn Sys) -> Result<String, String> {
    let opts = TraceOptions {
        btf: cli::BtfSource::None,
        ..TraceOptions::default()
    };
    let mut session = start(sys, &opts)?;
    let families = session.verify.take().unwrap_or_default();
    selftest::verify(&mut session.rings, &families)?;
    let names: Vec<_> = families.iter().map(|f| f.name()).collect();
    Ok(names.join(", "))
}

/// Loads, configures and attaches everything the options ask for.
fn start<'s>(sys: &'s dyn Sys, opts: &TraceOptions) -> Result<Session<'s>, String> {
    let fields = FieldSource::open(&opts.btf)?;
    let (backend, kprobes, why) = backend::choose(sys, opts.backend, fields.has_btf())?;
    let object =
        probe_object::parse(fields.probes()).map_err(|e| format!("embedded probe object: {e}"))?;
    // Without BTF every probe goes in, whatever -e asks: the self-test needs the connect and
    // accept records to verify the layout (unwanted kinds are dropped in user space).
    let verify = (!fields.has_btf()).then(|| selftest_families(opts));

    let wants_connect = [Kind::Connect, Kind::Established, Kind::Failed]
        .iter()
        .any(|&k| opts.wants(k, true) || opts.wants(k, false));
    let wants_accept = opts.wants(Kind::Accept, false);
    let probes: Vec<_> = backend
        .probes()
        .iter()
        .filter(|p| {
            verify.is_some()
                || match p.role {
                    Role::Connect => wants_connect,
                    Role::Accept => wants_accept,
                }
        })
        .collect();

    let cpus = ring::online_cpus(sys).map_err(|e| e.to_string())?;
    let nr_cpus = cpus.iter().max().map_or(1, |&c| c + 1);
    let load_opts = LoadOptions {
        nr_cpus,
        kern_version: load::kernel_version_code(),
        programs: ProgramFilter::Only(probes.iter().map(|p| p.section.to_string()).collect()),
    };
    let loaded = load::load(sys, &object, &fields, &load_opts).map_err(|e| e.to_string())?;
    match verify {
        None => configure_filters(sys, &loaded, opts)?,
        Some(_) => write_config(sys, &loaded, &selftest::filter_self())?,
    }

    let events = loaded
        .map_fd("events")
        .ok_or("probe object has no events map")?;
    let wakeup = Wakeup::Watermark(wakeup_watermark(opts.pages));
    let rings = PerfRings::open(sys, events, &cpus, opts.pages as usize, wakeup)
        .map_err(|e| e.to_string())?;

    let mut attachments = Vec::new();
    for probe in &probes {
        let program = loaded
            .program(probe.section)
            .ok_or_else(|| format!("program {} was not loaded", probe.section))?;
        let attached = match &program.kind {
            ProgramKind::Tracepoint { category, name } => {
                attach::attach_tracepoint(sys, program.fd.as_fd(), category, name)
            }
            _ => kprobes
                .method()
                .and_then(|method| attach::attach(sys, program, method)),
        };
        match attached {
            Ok(a) => attachments.push(a),
            Err(e) if probe.optional => eprintln!(
                "conntrace: warning: {e}; continuing without {}",
                probe.section
            ),
            Err(e) => return Err(e.to_string()),
        }
        for tracepoint in probe.extra_tracepoints {
            let (category, name) = tracepoint.split_once('/').unwrap_or(("", tracepoint));
            attachments.push(
                attach::attach_tracepoint(sys, program.fd.as_fd(), category, name)
                    .map_err(|e| e.to_string())?,
            );
        }
    }
    Ok(Session {
        attachments,
        rings,
        loaded,
        why,
        verify,
    })
}

/// The families the self-test verifies: IPv4, and IPv6 where the kernel has it and the user
/// did not ask for IPv4 only (then its fields are never read for an event that is shown).
fn selftest_families(opts: &TraceOptions) -> Vec<selftest::Family> {
    let mut families = vec![selftest::Family::Ipv4];
    if opts.family != FamilyFilter::Ipv4 && std::path::Path::new("/proc/sys/net/ipv6").exists() {
        families.push(selftest::Family::Ipv6);
    }
    families
}

/// Longest a record may wait in a ring that has not reached its wake-up watermark.
const QUIET_RING_POLL_MS: i32 = 50;

/// Bytes waiting in a ring before the kernel wakes the reader: an eighth of the ring. Waking
/// on every record cost a wake-up and a context switch per event, which at ~90k events/s on
/// 2 CPUs starved the reader and lost records (benchmarks: docs/benchmarks.md); an eighth
/// leaves seven eighths of the ring as headroom while the reader is woken.
fn wakeup_watermark(pages: u32) -> u32 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
    (pages.saturating_mul(page) / 8).max(1)
}

/// Writes the in-kernel filters into the `config` and `ports` maps.
fn configure_filters(sys: &dyn Sys, loaded: &Loaded, opts: &TraceOptions) -> Result<(), String> {
    write_config(sys, loaded, &user_filter(opts))?;
    let ports = loaded
        .map_fd("ports")
        .ok_or("probe object has no ports map")?;
    for &port in &opts.ports {
        sys.map_update(
            ports,
            &u32::from(port).to_ne_bytes(),
            &1u32.to_ne_bytes(),
            0,
        )
        .map_err(|e| format!("cannot set the port filter: {e}"))?;
    }
    Ok(())
}

fn user_filter(opts: &TraceOptions) -> FilterConfig {
    FilterConfig {
        pid: opts.pid.unwrap_or(0),
        uid: opts.uid.unwrap_or(ANY_UID),
        family: match opts.family {
            FamilyFilter::Any => 0,
            FamilyFilter::Ipv4 => libc::AF_INET as u32,
            FamilyFilter::Ipv6 => libc::AF_INET6 as u32,
        },
        port_filter: u32::from(!opts.ports.is_empty()),
    }
}

/// Writes the pid/uid/family filter into the `config` map.
fn write_config(sys: &dyn Sys, loaded: &Loaded, config: &FilterConfig) -> Result<(), String> {
    let map = loaded
        .map_fd("config")
        .ok_or("probe object has no config map")?;
    sys.map_update(map, &0u32.to_ne_bytes(), bytemuck::bytes_of(config), 0)
        .map_err(|e| format!("cannot set the pid/uid/family filter: {e}"))
}

/// Why the reading loop ended.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    Signal,
    Duration,
    MaxEvents,
    /// stdout was closed (`| head`): end quietly.
    ClosedOutput,
}

/// Turns ring records into output, counting as it goes.
struct Reader<'o> {
    opts: &'o TraceOptions,
    printer: Printer,
    ids: SockIds,
    totals: Totals,
    /// The events of one poll, in ring order; reused.
    batch: Vec<WireEvent>,
    /// The batch of output not yet written to stdout.
    out: Vec<u8>,
    limit: u64,
    own_pid: u32,
}

impl Reader<'_> {
    fn on_record(&mut self, record: Record<'_>) {
        match record {
            Record::Sample { data, .. } => match event::wire_from_bytes(data) {
                Ok(wire) => self.batch.push(wire),
                Err(_) => self.totals.malformed += 1,
            },
            Record::Lost { cpu, count } => self.lost(cpu, count),
        }
    }

    /// Prints the batch in time order. Rings are per CPU: a connect sent on one CPU and its
    /// outcome sent just after on another can be read in the other order, but only within
    /// one batch (the outcome is sent after the connect), so sorting the batch restores it.
    fn finish_batch(&mut self) {
        self.batch.sort_by_key(|w| w.ts_ns);
        for wire in &self.batch {
            match event::decode(wire, &self.ids) {
                Ok(ev) if ev.pid == self.own_pid => {}
                Ok(ev)
                    if self.totals.events < self.limit
                        && self.opts.wants(ev.kind, ev.error.is_some()) =>
                {
                    self.printer.event(&ev, &mut self.out);
                    self.totals.events += 1;
                }
                Ok(_) => {}
                Err(_) => self.totals.malformed += 1,
            }
        }
        self.batch.clear();
    }

    /// JSON: a `lost` record in the output; text: a line on stderr, at once.
    fn lost(&mut self, cpu: u32, count: u64) {
        self.totals.lost += count;
        let now = Clock::monotonic_now_ns().unwrap_or(0);
        let mut line = Vec::new();
        match self.printer.lost(cpu, count, now, &mut line) {
            Stream::Stdout => self.out.extend_from_slice(&line),
            Stream::Stderr => {
                let _ = io::stderr().write_all(&line);
            }
        }
    }

    fn reached_limit(&self) -> bool {
        self.totals.events >= self.limit
    }
}

fn read_events(
    sys: &dyn Sys,
    mut session: Session<'_>,
    opts: &TraceOptions,
) -> Result<Totals, String> {
    let clock = Clock::now().map_err(|e| format!("cannot read the clocks: {e}"))?;
    let mut reader = Reader {
        opts,
        printer: Printer::new(opts.format(), clock),
        ids: SockIds::new(),
        totals: Totals::default(),
        batch: Vec::with_capacity(4096),
        out: Vec::with_capacity(256 * 1024),
        limit: opts.max_events.unwrap_or(u64::MAX),
        // conntrace connects only in its self-test: a late record of it is never an event.
        own_pid: std::process::id(),
    };
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let stdout = io::stdout();
    let mut stdout = stdout.lock();

    reader.printer.header(&mut reader.out);
    let mut stop = flush(&mut stdout, &mut reader.out)?;
    while stop.is_none() {
        let timeout_ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    stop = Some(Stop::Duration);
                    continue;
                }
                left.as_millis().clamp(1, QUIET_RING_POLL_MS as u128) as i32
            }
            None => QUIET_RING_POLL_MS,
        };
        session
            .rings
            .poll(timeout_ms, |r| reader.on_record(r))
            .map_err(|e| e.to_string())?;
        reader.finish_batch();
        stop = flush(&mut stdout, &mut reader.out)?
            .or_else(|| signals::stop_requested().map(|_| Stop::Signal))
            .or_else(|| reader.reached_limit().then_some(Stop::MaxEvents));
    }

    // Detach, so nothing new arrives, then take what the rings still hold: on a signal or at
    // the end of -d, every event that happened before is printed or counted as lost.
    session.attachments.clear();
    if stop != Some(Stop::ClosedOutput) {
        session.rings.drain(|r| reader.on_record(r));
        reader.finish_batch();
    }
    reader.totals.malformed += session.rings.malformed();

    // The kernel writes a LOST record only once a ring has room again; the in-kernel drop
    // counter is exact, so report what the records did not.
    let reported: Vec<(u32, u64)> = session.rings.per_cpu().map(|c| (c.cpu, c.lost)).collect();
    for (cpu, dropped) in dropped_per_cpu(sys, &session.loaded)? {
        let seen = reported
            .iter()
            .find(|(c, _)| *c == cpu)
            .map_or(0, |(_, n)| *n);
        if dropped > seen {
            reader.lost(cpu, dropped - seen);
        }
    }
    if stop != Some(Stop::ClosedOutput) {
        flush(&mut stdout, &mut reader.out)?;
    }
    Ok(reader.totals)
}

/// The `drops` per-CPU counter: every record a probe could not write, by CPU.
fn dropped_per_cpu(sys: &dyn Sys, loaded: &Loaded) -> Result<Vec<(u32, u64)>, String> {
    let map = loaded
        .map_fd("drops")
        .ok_or("probe object has no drops map")?;
    let possible = ring::possible_cpus(sys).map_err(|e| e.to_string())?;
    let slots = possible.iter().max().map_or(1, |&m| m as usize + 1);
    let mut values = vec![0u8; slots * 8];
    sys.map_lookup(map, &0u32.to_ne_bytes(), &mut values)
        .map_err(|e| format!("cannot read the drop counters: {e}"))?;
    Ok(values
        .chunks_exact(8)
        .enumerate()
        .filter_map(|(cpu, v)| {
            let n = u64::from_ne_bytes(v.try_into().ok()?);
            (n > 0).then_some((cpu as u32, n))
        })
        .collect())
}

/// Writes what the batch produced, at once: a pipe sees each event without waiting for more.
/// A closed pipe (`| head`) ends the run quietly; any other write error is an error.
fn flush(stdout: &mut impl Write, out: &mut Vec<u8>) -> Result<Option<Stop>, String> {
    if out.is_empty() {
        return Ok(None);
    }
    let result = stdout.write_all(out).and_then(|_| stdout.flush());
    out.clear();
    match result {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Some(Stop::ClosedOutput)),
        Err(e) => Err(format!("cannot write the output: {e}")),
    }
}
