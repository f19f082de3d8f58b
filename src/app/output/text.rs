//! The default table: a header line, then one line per event, columns in the style of bcc's
//! tcpconnect/tcpaccept.

use super::addr::push_ip;
use super::digits::{push_u64, push_u64_zero_padded};
use super::error_name;
use super::escape::push_text_escaped;
use crate::session::event::{Event, Family, Loss};

/// Column titles and minimum widths. A wider value (a long IPv6 address) pushes the rest of
/// its line right rather than being cut: losing digits of an address would be worse.
const TIME: (&str, usize) = ("TIME(s)", 13);
/// With `--containers`, after COMM: the container's short id (its first 12 hex digits).
const CONTAINER: (&str, usize) = ("CONTAINER", 12);
const SHORT_ID: usize = 12;
const COLUMNS: [(&str, usize); 16] = [
    ("EVENT", 11),
    ("PID", 7),
    ("TID", 7),
    ("UID", 6),
    ("COMM", 16),
    ("IP", 2),
    ("LADDR", 15),
    ("LPORT", 5),
    ("RADDR", 15),
    ("RPORT", 5),
    ("LAT(ms)", 9),
    // close: lifetime, payload bytes each way (as tcplife, but exact bytes), who closed.
    ("DUR(ms)", 10),
    ("TX_B", 8),
    ("RX_B", 8),
    ("CLOSED", 6),
    ("ERROR", 0),
];

pub fn push_header(out: &mut Vec<u8>, timestamps: bool, containers: bool) {
    if timestamps {
        push_cell(out, TIME, |o| o.extend_from_slice(TIME.0.as_bytes()));
    }
    for column in COLUMNS {
        push_cell(out, column, |o| o.extend_from_slice(column.0.as_bytes()));
        if containers && column.0 == "COMM" {
            push_cell(out, CONTAINER, |o| {
                o.extend_from_slice(CONTAINER.0.as_bytes())
            });
        }
    }
    end_line(out);
}

/// Appends one event line. `elapsed_ns` is the TIME(s) column, when timestamps are on;
/// `container` the CONTAINER column, when shown (`Some(None)`: no container, `-`).
pub fn push_event(
    out: &mut Vec<u8>,
    ev: &Event,
    elapsed_ns: Option<u64>,
    container: Option<Option<&str>>,
) {
    if let Some(ns) = elapsed_ns {
        push_cell(out, TIME, |o| push_fixed(o, ns / 1000, 1_000_000, 6));
    }
    let [event, pid, tid, uid, comm, ip, laddr, lport, raddr, rport, latency, duration, tx, rx, closed, error] =
        COLUMNS;
    push_cell(out, event, |o| {
        o.extend_from_slice(ev.kind.name().as_bytes())
    });
    let owner = ev.owner.as_ref();
    push_cell(out, pid, |o| push_or_dash(o, owner.map(|w| w.pid.into())));
    push_cell(out, tid, |o| push_or_dash(o, owner.map(|w| w.tid.into())));
    push_cell(out, uid, |o| push_or_dash(o, owner.map(|w| w.uid.into())));
    push_cell(out, comm, |o| match owner {
        Some(w) => push_text_escaped(o, w.comm.as_bytes()),
        None => o.push(b'-'),
    });
    if let Some(id) = container {
        push_cell(out, CONTAINER, |o| match id {
            Some(id) => o.extend_from_slice(&id.as_bytes()[..id.len().min(SHORT_ID)]),
            None => o.push(b'-'),
        });
    }
    push_cell(out, ip, |o| {
        o.push(match ev.family {
            Family::Ipv4 => b'4',
            Family::Ipv6 => b'6',
        })
    });
    push_cell(out, laddr, |o| push_ip(o, ev.local.ip()));
    push_cell(out, lport, |o| push_u64(o, ev.local.port().into()));
    push_cell(out, raddr, |o| push_ip(o, ev.remote.ip()));
    push_cell(out, rport, |o| push_u64(o, ev.remote.port().into()));
    push_cell(out, latency, |o| match ev.latency_ns {
        Some(ns) => push_fixed(o, ns / 1000, 1000, 3),
        None => o.push(b'-'),
    });
    let close = ev.close.as_ref();
    push_cell(out, duration, |o| match close.and_then(|c| c.duration_ns) {
        Some(ns) => push_fixed(o, ns / 1000, 1000, 3),
        None => o.push(b'-'),
    });
    push_cell(out, tx, |o| {
        push_or_dash(o, close.and_then(|c| c.bytes_sent))
    });
    push_cell(out, rx, |o| {
        push_or_dash(o, close.map(|c| c.bytes_received))
    });
    push_cell(out, closed, |o| match close {
        Some(c) => o.extend_from_slice(c.closed_by.name().as_bytes()),
        None => o.push(b'-'),
    });
    push_cell(out, error, |o| match ev.error {
        Some(errno) => error_name(o, errno),
        None => o.push(b'-'),
    });
    end_line(out);
}

/// The notice for lost records, meant for stderr: `lost 17 events on CPU 1 (ring full)`.
pub fn push_lost(out: &mut Vec<u8>, loss: &Loss) {
    out.extend_from_slice(b"lost ");
    push_u64(out, loss.count);
    out.extend_from_slice(if loss.count == 1 {
        b" event"
    } else {
        b" events"
    });
    if let Some(cpu) = loss.cpu {
        out.extend_from_slice(b" on CPU ");
        push_u64(out, cpu.into());
    }
    out.extend_from_slice(b" (");
    out.extend_from_slice(loss.reason.describe().as_bytes());
    out.extend_from_slice(b")\n");
}

/// Writes a cell, then pads it to its width plus one separating space.
pub(super) fn push_cell(
    out: &mut Vec<u8>,
    (_, width): (&str, usize),
    write: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    write(out);
    let written = out.len() - start;
    out.extend(std::iter::repeat_n(b' ', width.saturating_sub(written) + 1));
}

/// The last column has no padding to keep; trailing spaces would only clutter the line.
pub(super) fn end_line(out: &mut Vec<u8>) {
    while out.last() == Some(&b' ') {
        out.pop();
    }
    out.push(b'\n');
}

pub(super) fn push_or_dash(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        Some(n) => push_u64(out, n),
        None => out.push(b'-'),
    }
}

/// `value / scale` with `decimals` fractional digits, e.g. 1234567 us at scale 1000 -> 1234.567.
pub(super) fn push_fixed(out: &mut Vec<u8>, value: u64, scale: u64, decimals: usize) {
    push_u64(out, value / scale);
    out.push(b'.');
    push_u64_zero_padded(out, value % scale, decimals);
}
