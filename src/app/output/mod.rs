//! Printing decoded events: the text table (default) or JSON lines (`--json`).
//!
//! Everything is formatted into a caller-owned, reused `Vec<u8>` with hand-written integer and
//! address formatting: the per-event path neither allocates nor goes through `core::fmt`. The
//! caller writes the buffer to stdout (or stderr, see [`Printer::lost`]) and clears it.

mod addr;
pub mod clock;
mod digits;
mod escape;
pub mod json;
mod text;

pub use clock::Clock;

use crate::session::event::{Event, Loss};

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
}

impl Printer {
    pub fn new(format: Format, clock: Clock) -> Printer {
        Printer {
            format,
            clock,
            first_ts_ns: None,
            timestamps: Default::default(),
        }
    }

    /// Appends the table's header line (nothing for JSON).
    pub fn header(&mut self, out: &mut Vec<u8>) {
        if let Format::Text { timestamps } = self.format {
            text::push_header(out, timestamps);
        }
    }

    /// Appends one event's line.
    pub fn event(&mut self, ev: &Event, out: &mut Vec<u8>) {
        match self.format {
            Format::Json => {
                let unix_ns = self.clock.unix_ns(ev.ts_ns);
                json::push_event(out, ev, &mut self.timestamps, unix_ns)
            }
            Format::Text { timestamps: false } => text::push_event(out, ev, None),
            Format::Text { timestamps: true } => {
                let first = *self.first_ts_ns.get_or_insert(ev.ts_ns);
                text::push_event(out, ev, Some(ev.ts_ns.saturating_sub(first)))
            }
        }
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
fn error_name(out: &mut Vec<u8>, errno: i32) {
    match crate::kernel::errno::name(errno) {
        Some(name) => out.extend_from_slice(name.as_bytes()),
        None => {
            out.push(b'E');
            digits::push_i64(out, errno.into());
        }
    }
}

#[cfg(test)]
mod tests;
