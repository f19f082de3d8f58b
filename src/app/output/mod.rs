//! Printing decoded events: the text table (default) or JSON lines (`--json`).
//!
//! Everything is formatted into a caller-owned, reused `Vec<u8>` with hand-written integer and
//! address formatting: the per-event path neither allocates nor goes through `core::fmt`. The
//! caller writes the buffer to stdout (or stderr, see [`Printer::lost`]) and clears it.

mod addr;
pub mod clock;
pub mod count;
mod digits;
mod escape;
pub mod json;
mod sink;
mod text;

pub use clock::Clock;

use crate::app::count::Table;
use crate::app::identity::Identity;
use crate::session::event::{Event, Loss};
use sink::Sink;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The table; `timestamps` adds a TIME(s) column, seconds since the first event (as bcc's
    /// `-t` does).
    Text { timestamps: bool },
    /// One JSON object per line.
    Json,
}

/// Where a formatted record belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

pub struct Printer {
    format: Format,
    clock: Clock,
    /// CLOCK_MONOTONIC of the first event, the zero of the TIME(s) column.
    first_ts_ns: Option<u64>,
    timestamps: clock::TimestampFormatter,
    /// The text table's CONTAINER column (`--containers`).
    containers: bool,
    /// Count tables printed so far (text separates them by a blank line).
    tables: u64,
}

impl Printer {
    pub fn new(format: Format, clock: Clock) -> Printer {
        Printer {
            format,
            clock,
            first_ts_ns: None,
            timestamps: Default::default(),
            containers: false,
            tables: 0,
        }
    }

    /// Adds the CONTAINER column (a 12-digit short id) to the text table.
    pub fn with_containers(mut self, containers: bool) -> Printer {
        self.containers = containers;
        self
    }

    /// Appends the table's header line (nothing for JSON).
    pub fn header(&mut self, out: &mut Vec<u8>) {
        if let Format::Text { timestamps } = self.format {
            text::push_header(out, timestamps, self.containers);
        }
    }

    /// Appends one event's line, its owner unknown (cgroup_path, container_id, pod_uid null).
    pub fn event(&mut self, ev: &Event, out: &mut Vec<u8>) {
        self.event_of(ev, None, out)
    }

    /// Appends one event's line with who owns the socket, as resolved from its cgroup id.
    pub fn event_of(&mut self, ev: &Event, who: Option<&Identity>, out: &mut Vec<u8>) {
        match self.format {
            Format::Json => {
                let unix_ns = self.clock.unix_ns(ev.ts_ns);
                json::push_event(out, ev, who, &mut self.timestamps, unix_ns)
            }
            Format::Text { timestamps } => {
                let elapsed = timestamps.then(|| {
                    let first = *self.first_ts_ns.get_or_insert(ev.ts_ns);
                    ev.ts_ns.saturating_sub(first)
                });
                let container = self
                    .containers
                    .then(|| who.and_then(|w| w.container_id.as_deref()));
                text::push_event(out, ev, elapsed, container)
            }
        }
    }

    /// Appends a `--count` table: a title line, a header and its rows, or one JSON line per
    /// row (nothing for an empty table).
    pub fn count_table(&mut self, table: &Table, out: &mut Vec<u8>) {
        let unix_ns = self.clock.unix_ns(table.at_ns);
        match self.format {
            Format::Json => {
                let since = self.clock.unix_ns(table.since_ns);
                count::push_json(out, table, &mut self.timestamps, unix_ns, since)
            }
            Format::Text { .. } => count::push_text(out, table, unix_ns, self.tables == 0),
        }
        self.tables += 1;
    }

    /// Appends a notice of lost records; `ts_ns` is CLOCK_MONOTONIC (perf's lost records
    /// carry no time: pass [`Clock::monotonic_now_ns`]). JSON makes it a record of the
    /// stream; text makes it a message for stderr, so that the table stays clean.
    pub fn lost(&mut self, loss: &Loss, ts_ns: u64, out: &mut Vec<u8>) -> Stream {
        match self.format {
            Format::Json => {
                json::push_lost(out, &mut self.timestamps, self.clock.unix_ns(ts_ns), loss);
                Stream::Stdout
            }
            Format::Text { .. } => {
                text::push_lost(out, loss);
                Stream::Stderr
            }
        }
    }
}

/// The errno's name, or `E<number>` for a number without one (kernel-internal values such as
/// 512, ERESTARTSYS, should never reach user space, but a probe could still see one).
fn error_name(out: &mut impl Sink, errno: i32) {
    match crate::kernel::errno::name(errno) {
        Some(name) => out.put(name.as_bytes()),
        None => {
            out.put_byte(b'E');
            digits::push_i64(out, errno.into());
        }
    }
}

#[cfg(test)]
mod tests;

/// The errno's name as [`error_name`] writes it, as a string (for the metrics' labels).
pub fn error_name_string(errno: i32) -> String {
    let mut out = Vec::new();
    error_name(&mut out, errno);
    String::from_utf8_lossy(&out).into_owned()
}
