//! Ties the pieces together: parse, load, attach, read, print, clean up.

use std::ffi::OsString;
use std::io::{self, Write};
use std::time::Instant;

use crate::attach::{self, Attachment};
use crate::backend::{self, Role};
use crate::cli::{self, Command, FamilyFilter, TraceOptions};
use crate::event::{self, Kind, SockIds};
use crate::fields::FieldSource;
use crate::filter::{FilterConfig, ANY_UID};
use crate::load::{self, LoadOptions, Loaded, ProgramFilter};
use crate::output::{Clock, Printer, Stream};
use crate::probe_object::{self, ProgramKind};
use crate::ring::{self, PerfRings, Record, Wakeup};
use crate::signals;
use crate::sys::{RealSys, Sys};
use std::os::fd::AsFd;

/// The probe object build.rs assembled from src/bpf/*.s.
pub static PROBES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probes.o"));

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
    _loaded: Loaded,
    /// Why this backend, for the "attached" line.
    why: String,
}

fn run(sys: &dyn Sys, opts: &TraceOptions) -> Result<(), String> {
    signals::install();
    let session = start(sys, opts)?;
    eprintln!(
        "conntrace: attached {} probes: {}; Ctrl-C to stop",
        session.attachments.len(),
        session.why
    );
    let totals = read_events(session, opts)?;
    let mut summary = format!("conntrace: {} events, {} lost", totals.events, totals.lost);
    if totals.malformed > 0 {
        summary.push_str(&format!(", {} malformed records skipped", totals.malformed));
    }
    eprintln!("{summary}");
    Ok(())
}

/// Loads, configures and attaches everything the options ask for.
fn start<'s>(sys: &'s dyn Sys, opts: &TraceOptions) -> Result<Session<'s>, String> {
    let (backend, kprobes, why) = backend::choose(sys, opts.backend)?;
    let fields = FieldSource::open(&opts.btf)?;
    let object = probe_object::parse(PROBES).map_err(|e| format!("embedded probe object: {e}"))?;

    let wants_connect = [Kind::Connect, Kind::Established, Kind::Failed]
        .iter()
        .any(|&k| opts.wants(k, true) || opts.wants(k, false));
    let wants_accept = opts.wants(Kind::Accept, false);
    let probes: Vec<_> = backend
        .probes()
        .iter()
        .filter(|p| match p.role {
            Role::Connect => wants_connect,
            Role::Accept => wants_accept,
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
    configure_filters(sys, &loaded, opts)?;

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
        _loaded: loaded,
        why,
    })
}

/// Longest a record may wait in a ring that has not reached its wake-up watermark.
const QUIET_RING_POLL_MS: i32 = 50;

/// Bytes waiting in a ring before the kernel wakes the reader: an eighth of the ring. Waking
/// on every record cost a wake-up and a context switch per event, which at ~90k events/s on
/// 2 CPUs starved the reader and lost records (benchmarks: docs/benchmarks.md); an eighth
/// leaves seven eighths of the ring as headroom while the reader is woken.
fn wakeup_watermark(pages: u32) -> u32 {
    (pages.saturating_mul(4096) / 8).max(1)
}

/// Writes the in-kernel filters into the `config` and `ports` maps.
fn configure_filters(sys: &dyn Sys, loaded: &Loaded, opts: &TraceOptions) -> Result<(), String> {
    let config = FilterConfig {
        pid: opts.pid.unwrap_or(0),
        uid: opts.uid.unwrap_or(ANY_UID),
        family: match opts.family {
            FamilyFilter::Any => 0,
            FamilyFilter::Ipv4 => libc::AF_INET as u32,
            FamilyFilter::Ipv6 => libc::AF_INET6 as u32,
        },
        port_filter: u32::from(!opts.ports.is_empty()),
    };
    let map = |name| {
        loaded
            .map_fd(name)
            .ok_or_else(|| format!("probe object has no {name} map"))
    };
    let fail = |what: &str, e: crate::sys::SysError| format!("cannot set the {what} filter: {e}");
    sys.map_update(
        map("config")?,
        &0u32.to_ne_bytes(),
        bytemuck::bytes_of(&config),
        0,
    )
    .map_err(|e| fail("pid/uid/family", e))?;
    for &port in &opts.ports {
        sys.map_update(
            map("ports")?,
            &u32::from(port).to_ne_bytes(),
            &1u32.to_ne_bytes(),
            0,
        )
        .map_err(|e| fail("port", e))?;
    }
    Ok(())
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

fn read_events(mut session: Session<'_>, opts: &TraceOptions) -> Result<Totals, String> {
    let clock = Clock::now().map_err(|e| format!("cannot read the clocks: {e}"))?;
    let mut printer = Printer::new(opts.format(), clock);
    let ids = SockIds::new();
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let mut totals = Totals::default();
    let mut out: Vec<u8> = Vec::with_capacity(256 * 1024);
    let stdout = io::stdout();
    let mut stdout = stdout.lock();

    printer.header(&mut out);
    let mut stop = flush(&mut stdout, &mut out)?;
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
        let mut lost_lines = Vec::new();
        let limit = opts.max_events.unwrap_or(u64::MAX);
        session
            .rings
            .poll(timeout_ms, |record| match record {
                Record::Sample { data, .. } => match event::decode_bytes(data, &ids) {
                    Ok(ev) if totals.events < limit && opts.wants(ev.kind, ev.error.is_some()) => {
                        printer.event(&ev, &mut out);
                        totals.events += 1;
                    }
                    Ok(_) => {}
                    Err(_) => totals.malformed += 1,
                },
                Record::Lost { cpu, count } => {
                    totals.lost += count;
                    let now = Clock::monotonic_now_ns().unwrap_or(0);
                    if printer.lost(cpu, count, now, &mut lost_lines) == Stream::Stdout {
                        out.append(&mut lost_lines);
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        if !lost_lines.is_empty() {
            let _ = io::stderr().write_all(&lost_lines);
        }
        stop = flush(&mut stdout, &mut out)?
            .or_else(|| signals::stop_requested().map(|_| Stop::Signal))
            .or_else(|| (totals.events >= limit).then_some(Stop::MaxEvents));
    }
    totals.malformed += session.rings.malformed();
    Ok(totals)
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
