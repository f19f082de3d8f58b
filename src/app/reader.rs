//! Reading a session: ring records to output, in time order, counted; the loop that ends on a
//! signal, -d, -n or a closed pipe, and prints a `-c` table every interval; the final drain,
//! the exact loss report and the last table.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::app::cli::{FamilyFilter, TraceOptions};
use crate::app::fleet::Fleet;
use crate::app::order::Order;
use crate::app::output::{Clock, Printer, Stream};
use crate::app::signals;
use crate::kernel::attach;
use crate::kernel::load::Loaded;
use crate::kernel::ring::Record;
use crate::kernel::sys::Sys;
use crate::session::backend::Backend;
use crate::session::event::{self, Loss, LossReason, SockIds, WireEvent};
use crate::session::nesting;
use crate::session::Session;

/// Longest a record may wait in a ring that has not reached its wake-up watermark.
const QUIET_RING_POLL_MS: i32 = 50;

/// Counts for the summary line at exit.
#[derive(Debug, Default)]
pub struct Totals {
    pub events: u64,
    pub lost: u64,
    pub malformed: u64,
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
    /// Outcomes waiting for their connect.
    order: Order,
    /// The batch of output not yet written to stdout.
    out: Vec<u8>,
    limit: u64,
    own_pid: u32,
    /// Identity, --container, metrics, -q: what each shown event goes through.
    fleet: Fleet,
}

impl Reader<'_> {
    fn on_record(&mut self, record: Record<'_>) {
        match record {
            Record::Sample { data, .. } => match event::wire_from_bytes(data) {
                Ok(wire) => self.batch.push(wire),
                Err(_) => self.totals.malformed += 1,
            },
            Record::Lost { cpu, count } => self.lost(Loss {
                cpu: Some(cpu),
                count,
                reason: LossReason::RingFull,
            }),
        }
    }

    /// Prints the batch in time order, each outcome after its connect (see `order`).
    fn finish_batch(&mut self) {
        self.batch.sort_by_key(|w| w.ts_ns);
        self.fleet.begin_batch();
        let now = Clock::monotonic_now_ns().unwrap_or(0);
        let mut batch = std::mem::take(&mut self.batch);
        let mut order = std::mem::take(&mut self.order);
        for wire in &batch {
            order.push(wire, now, &mut |w| self.print(w));
        }
        order.expire(now, &mut |w| self.print(w));
        self.order = order;
        batch.clear();
        self.batch = batch;
    }

    /// Prints what is still held (at exit).
    fn flush_held(&mut self) {
        let mut order = std::mem::take(&mut self.order);
        order.flush(&mut |w| self.print(w));
    }

    fn print(&mut self, wire: &WireEvent) {
        match event::decode(wire, &self.ids) {
            Ok(ev) if ev.pid() == Some(self.own_pid) => {}
            Ok(ev)
                if self.totals.events < self.limit
                    && self.opts.wants(ev.kind, ev.error.is_some()) =>
            {
                if self.fleet.event(&ev, &mut self.printer, &mut self.out) {
                    self.totals.events += 1;
                }
            }
            Ok(_) => {}
            Err(_) => self.totals.malformed += 1,
        }
    }

    /// JSON: a `lost` record in the output; text: a line on stderr, at once.
    fn lost(&mut self, loss: Loss) {
        if loss.count == 0 {
            return;
        }
        self.totals.lost += loss.count;
        if !self.fleet.lost(&loss) {
            return;
        }
        let now = Clock::monotonic_now_ns().unwrap_or(0);
        let mut line = Vec::new();
        match self.printer.lost(&loss, now, &mut line) {
            Stream::Stdout => self.out.extend_from_slice(&line),
            Stream::Stderr => {
                let _ = io::stderr().write_all(&line);
            }
        }
    }

    fn reached_limit(&self) -> bool {
        self.totals.events >= self.limit
    }

    /// With `-c`: the table of the interval ending now, into the output.
    fn count_table(&mut self, last: bool) {
        let now = Clock::monotonic_now_ns().unwrap_or(0);
        if let Some(table) = self.fleet.count_table(now, last) {
            self.printer.count_table(&table, &mut self.out);
        }
    }
}

/// When the next `-c` table is due, and how often.
struct Interval {
    every: Duration,
    next: Instant,
}

impl Interval {
    fn new(every: Duration) -> Interval {
        Interval {
            every,
            next: Instant::now() + every,
        }
    }

    /// Whether a table is due; if so the next one is an interval later (or from now, when the
    /// loop fell more than an interval behind).
    fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next += self.every;
        if self.next <= now {
            self.next = now + self.every;
        }
        true
    }
}

/// How long a poll may wait: until the next record of a quiet ring is due, the end of `-d` or
/// the next `-c` table, whichever comes first; None when `-d` is over.
fn poll_timeout(now: Instant, deadline: Option<Instant>, table: Option<&Interval>) -> Option<i32> {
    let mut ms = QUIET_RING_POLL_MS as u128;
    if let Some(d) = deadline {
        let left = d.saturating_duration_since(now);
        if left.is_zero() {
            return None;
        }
        ms = ms.min(left.as_millis());
    }
    if let Some(t) = table {
        ms = ms.min(t.next.saturating_duration_since(now).as_millis());
    }
    Some(ms.clamp(1, QUIET_RING_POLL_MS as u128) as i32)
}

pub fn read_events(
    sys: &dyn Sys,
    mut session: Session<'_>,
    opts: &TraceOptions,
    fleet: Fleet,
) -> Result<Totals, String> {
    let clock = Clock::now().map_err(|e| format!("cannot read the clocks: {e}"))?;
    let mut reader = Reader {
        opts,
        printer: Printer::new(opts.format(), clock).with_containers(opts.containers),
        ids: SockIds::new(),
        totals: Totals::default(),
        batch: Vec::with_capacity(4096),
        order: Order::default(),
        out: Vec::with_capacity(256 * 1024),
        limit: opts.max_events.unwrap_or(u64::MAX),
        // conntrace connects only in its self-test: a late record of it is never an event.
        own_pid: std::process::id(),
        fleet,
    };
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let mut tables = opts.count.and_then(|c| c.every).map(Interval::new);
    let stdout = io::stdout();
    let mut stdout = stdout.lock();

    if !reader.fleet.quiet() && !reader.fleet.counting_events() {
        reader.printer.header(&mut reader.out);
    }
    let mut stop = flush(&mut stdout, &mut reader.out)?;
    while stop.is_none() {
        let Some(timeout_ms) = poll_timeout(Instant::now(), deadline, tables.as_ref()) else {
            stop = Some(Stop::Duration);
            continue;
        };
        session
            .rings
            .poll(timeout_ms, |r| reader.on_record(r))
            .map_err(|e| e.to_string())?;
        reader.finish_batch();
        if tables.as_mut().is_some_and(|t| t.due(Instant::now())) {
            reader.count_table(false);
        }
        stop = flush(&mut stdout, &mut reader.out)?
            .or_else(|| signals::stop_requested().map(|_| Stop::Signal))
            .or_else(|| reader.reached_limit().then_some(Stop::MaxEvents));
    }

    // Perf's count of the socket frees (asked for: session::frees) ends while the probes
    // still run, and its events close here, before the probes' parallel closes.
    let undelivered = session
        .frees
        .take()
        .map(|check| check.finish(sys, &session.loaded));
    // Detach, so nothing new arrives, then take what the rings still hold: on a signal or at
    // the end of -d, every event that happened before is printed or counted as lost.
    let detached_at = Clock::monotonic_now_ns().unwrap_or(u64::MAX);
    let detached = attach::detach_all(std::mem::take(&mut session.attachments));
    for error in &detached.errors {
        eprintln!("conntrace: warning: {error}");
    }
    if stop != Some(Stop::ClosedOutput) {
        session.rings.drain(|r| reader.on_record(r));
        reader.finish_batch();
        reader.flush_held();
    }
    reader.totals.malformed += session.rings.malformed();

    // The kernel writes a LOST record only once a ring has room again; the in-kernel drop
    // counters are exact, so report what the records did not.
    let reported: Vec<(u32, u64)> = session
        .rings
        .per_cpu()
        .iter()
        .map(|c| (c.cpu, c.lost))
        .collect();
    for (cpu, reason, dropped) in dropped_per_cpu(sys, &session.loaded)? {
        let seen = match reason {
            LossReason::RingFull => reported
                .iter()
                .find(|(c, _)| *c == cpu)
                .map_or(0, |(_, n)| *n),
            _ => 0,
        };
        reader.lost(Loss {
            cpu: Some(cpu),
            count: dropped.saturating_sub(seen),
            reason,
        });
    }
    // Calls the kernel's return probes could not follow, as it counted them.
    let missed = detached.missed.iter().map(|(_, n)| n).sum();
    reader.lost(Loss {
        cpu: None,
        count: missed,
        reason: LossReason::ReturnMissed,
    });
    // Runs of the probes the kernel skipped and nothing made up, where it counts them
    // (session::nesting).
    match nesting::skipped_runs(sys, &session.loaded) {
        Ok(Some(skipped)) => reader.lost(Loss {
            cpu: None,
            count: skipped,
            reason: LossReason::Skipped,
        }),
        Ok(None) => {}
        Err(e) => eprintln!("conntrace: warning: {e}"),
    }
    // Socket frees the kernel ran no program for (session::frees).
    match undelivered {
        Some(Ok(count)) => reader.lost(Loss {
            cpu: None,
            count,
            reason: LossReason::Undelivered,
        }),
        Some(Err(e)) => eprintln!("conntrace: warning: {e}"),
        None => {}
    }
    // A kretprobe's missed return leaves its thread's `connecting` entry behind; the next call
    // of that thread counts it, and what is left at exit is counted here, unless it began so
    // shortly before the probes went that it was simply still running. (The tracepoint
    // backend's entries at exit are connect() calls still blocking: nothing missed.)
    if session.backend == Backend::Kprobe {
        reader.lost(Loss {
            cpu: None,
            count: unfinished_calls(sys, &session.loaded, opts, detached_at)?,
            reason: LossReason::ReturnMissed,
        });
    }
    if stop != Some(Stop::ClosedOutput) {
        // Everything the rings held is in it now.
        reader.count_table(true);
        flush(&mut stdout, &mut reader.out)?;
    }
    Ok(reader.totals)
}

/// The `drops` per-CPU counters: every record a probe could not send, by CPU and reason.
fn dropped_per_cpu(sys: &dyn Sys, loaded: &Loaded) -> Result<Vec<(u32, LossReason, u64)>, String> {
    let mut counts = Vec::new();
    for (key, reason) in LossReason::DROPS.iter().enumerate() {
        let values = loaded
            .lookup_per_cpu(sys, "drops", key as u32, 8)
            .map_err(|e| format!("cannot read the drop counters: {e}"))?
            .ok_or("probe object has no drops map")?;
        counts.extend(values.chunks_exact(8).enumerate().filter_map(|(cpu, v)| {
            let n = u64::from_ne_bytes(v.try_into().ok()?);
            (n > 0).then_some((cpu as u32, *reason, n))
        }));
    }
    Ok(counts)
}

/// Where a `connecting` entry holds the caller's sockaddr and the call's start (CALL_ADDR,
/// CALL_START in src/bpf/common.s; tests/bpf_layout.rs holds them equal).
pub const CALL_ADDR: usize = 8;
pub const CALL_START: usize = 40;
/// tcp_v4_connect does not sleep: a call that began this long before the probes were
/// detached and never returned had its return missed.
const STILL_RUNNING_NS: u64 = 1_000_000_000;

/// Entries left in `connecting` by calls that began well before `detached_at` (CLOCK_MONOTONIC)
/// and never returned, whose peer the user's filters would have shown, counted.
fn unfinished_calls(
    sys: &dyn Sys,
    loaded: &Loaded,
    opts: &TraceOptions,
    detached_at: u64,
) -> Result<u64, String> {
    let Some(map) = loaded.map("connecting") else {
        return Ok(0);
    };
    let fd = map.fd.as_fd();
    let mut key = vec![0u8; map.def.key_size as usize];
    let mut next = key.clone();
    let mut value = vec![0u8; map.def.value_size as usize];
    let mut first = true;
    let (mut seen, mut count) = (0u64, 0u64);
    let failed = |e| format!("cannot read the connect calls in flight: {e}");
    // Bounded by the map's size: a map that changes under us cannot loop forever.
    while seen <= u64::from(map.def.max_entries) {
        if !sys
            .map_next_key(fd, (!first).then_some(&key[..]), &mut next)
            .map_err(failed)?
        {
            break;
        }
        first = false;
        seen += 1;
        std::mem::swap(&mut key, &mut next);
        match sys.map_lookup(fd, &key, &mut value) {
            Ok(()) if call_is_shown(&value, opts) && began_before(&value, detached_at) => {
                count += 1
            }
            Ok(()) => {}
            Err(e) if e.errno == libc::ENOENT => {}
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(count)
}

/// Whether a `connecting` entry's call began well before `detached_at`.
fn began_before(entry: &[u8], detached_at: u64) -> bool {
    let start = entry
        .get(CALL_START..CALL_START + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_ne_bytes);
    start != 0 && start.saturating_add(STILL_RUNNING_NS) < detached_at
}

/// Whether the caller's sockaddr in a `connecting` entry is an IPv4 or IPv6 peer that passes
/// the family and port filters.
fn call_is_shown(entry: &[u8], opts: &TraceOptions) -> bool {
    let Some(addr) = entry.get(CALL_ADDR..CALL_ADDR + 28) else {
        return false;
    };
    let family = u16::from_ne_bytes([addr[0], addr[1]]);
    let port = u16::from_be_bytes([addr[2], addr[3]]);
    let v4_mapped =
        family == libc::AF_INET6 as u16 && addr[8..18] == [0; 10] && addr[18..20] == [0xff; 2];
    let shown_family = match opts.family {
        FamilyFilter::Any => family == libc::AF_INET as u16 || family == libc::AF_INET6 as u16,
        FamilyFilter::Ipv4 => family == libc::AF_INET as u16 || v4_mapped,
        FamilyFilter::Ipv6 => family == libc::AF_INET6 as u16 && !v4_mapped,
    };
    shown_family && (opts.ports.is_empty() || opts.ports.contains(&port))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_due_every_interval_and_catch_up_once() {
        let start = Instant::now();
        let every = Duration::from_secs(5);
        let mut t = Interval {
            every,
            next: start + every,
        };
        assert!(!t.due(start + Duration::from_secs(4)));
        assert!(t.due(start + Duration::from_millis(5_010)));
        assert_eq!(t.next, start + Duration::from_secs(10), "no drift");
        // Stalled for three intervals: one table, then the next an interval from now.
        let late = start + Duration::from_secs(26);
        assert!(t.due(late));
        assert!(!t.due(late));
        assert_eq!(t.next, late + every);
    }

    #[test]
    fn polls_wake_for_the_next_table_and_the_deadline() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(poll_timeout(now, None, None), Some(QUIET_RING_POLL_MS));
        let soon = Interval {
            every: ms(100),
            next: now + ms(7),
        };
        assert_eq!(poll_timeout(now, None, Some(&soon)), Some(7));
        assert_eq!(poll_timeout(now, Some(now + ms(3)), Some(&soon)), Some(3));
        let due = Interval {
            every: ms(100),
            next: now,
        };
        assert_eq!(
            poll_timeout(now, None, Some(&due)),
            Some(1),
            "never a busy poll"
        );
        assert_eq!(poll_timeout(now, Some(now), Some(&soon)), None);
    }
}
