//! `-c`/`--count` tables (`app::count`): text with a title line and aligned columns, or JSON
//! lines, one object per row.
//!
//! Text:
//! ```text
//! --- 2026-12-02T10:00:05.123456Z, 5.000 s, 3 rows
//! SIDE    PID     COMM             RADDR           LPORT RPORT CONN   EST    FAIL   ACC    CLOSE  TX_B       RX_B       P50(ms)   P99(ms)   ERRORS
//! connect 1234    curl             127.0.0.1       -     8080  5      5      0      -      5      55         110        0.012     0.014     -
//! ```
//! JSON: every key of [`FIELDS`] on every row, in that order, null where it does not apply
//! (see the README's "Count mode").

use super::addr::push_ip;
use super::clock::TimestampFormatter;
use super::digits::push_u64;
use super::error_name;
use super::escape::{push_json_plain, push_json_string, push_text_escaped};
use super::text::{end_line, push_cell, push_fixed, push_or_dash};
use crate::app::count::{Key, Row, Side, Table};

/// The keys of a JSON count row, in order.
pub const FIELDS: [&str; 25] = [
    "ts",
    "event",
    "since",
    "last",
    "rank",
    "rows",
    "side",
    "pid",
    "comm",
    "family",
    "raddr",
    "lport",
    "rport",
    "connects",
    "established",
    "failed",
    "errors",
    "accepts",
    "closes",
    "bytes_sent",
    "bytes_received",
    "sent_unknown",
    "latency_p50_us",
    "latency_p99_us",
    "folded_rows",
];

const COLUMNS: [(&str, usize); 16] = [
    ("SIDE", 7),
    ("PID", 7),
    ("COMM", 16),
    ("RADDR", 15),
    ("LPORT", 5),
    ("RPORT", 5),
    ("CONN", 6),
    ("EST", 6),
    ("FAIL", 6),
    ("ACC", 6),
    ("CLOSE", 6),
    ("TX_B", 10),
    ("RX_B", 10),
    ("P50(ms)", 9),
    ("P99(ms)", 9),
    ("ERRORS", 0),
];

/// One line of a table: a row of its own, or the folded ones.
enum Line<'t> {
    Row(&'t Key, &'t Row),
    Other(u64, &'t Row),
}

impl<'t> Line<'t> {
    fn row(&self) -> &'t Row {
        match self {
            Line::Row(_, r) | Line::Other(_, r) => r,
        }
    }

    fn side(&self) -> Option<Side> {
        match self {
            Line::Row(k, _) => Some(k.side),
            Line::Other(..) => None,
        }
    }

    /// Whether a count applies: connect counts on connect rows, accepts on accept rows,
    /// both on `other`.
    fn has(&self, side: Side) -> bool {
        self.side().is_none_or(|s| s == side)
    }
}

fn lines(table: &Table) -> impl Iterator<Item = Line<'_>> {
    table
        .rows
        .iter()
        .map(|(k, r)| Line::Row(k, r))
        .chain(table.other.iter().map(|(n, r)| Line::Other(*n, r)))
}

/// The text table. `first`: no blank line before it.
pub fn push_text(out: &mut Vec<u8>, table: &Table, unix_ns: i64, first: bool) {
    if !first {
        out.push(b'\n');
    }
    let count = table.rows.len() + usize::from(table.other.is_some());
    out.extend_from_slice(b"--- ");
    TimestampFormatter::default().push(out, unix_ns);
    out.extend_from_slice(b", ");
    let micros = table.at_ns.saturating_sub(table.since_ns) / 1000;
    push_fixed(out, micros / 1000, 1000, 3);
    out.extend_from_slice(b" s, ");
    push_u64(out, count as u64);
    out.extend_from_slice(if count == 1 { b" row" } else { b" rows" });
    if let Some((folded, _)) = &table.other {
        out.extend_from_slice(b"; ");
        push_u64(out, *folded);
        out.extend_from_slice(b" less active rows folded into other (at most ");
        push_u64(out, table.max_rows as u64);
        out.extend_from_slice(b" rows)");
    }
    if table.last {
        out.extend_from_slice(b" (at exit)");
    }
    out.push(b'\n');
    if count == 0 {
        return;
    }
    for column in COLUMNS {
        push_cell(out, column, |o| o.extend_from_slice(column.0.as_bytes()));
    }
    end_line(out);
    for line in lines(table) {
        push_text_line(out, &line);
    }
}

fn push_text_line(out: &mut Vec<u8>, line: &Line<'_>) {
    let [side, pid, comm, raddr, lport, rport, conn, est, fail, acc, close, tx, rx, p50, p99, errors] =
        COLUMNS;
    let r = line.row();
    let key = match line {
        Line::Row(k, _) => Some(*k),
        Line::Other(..) => None,
    };
    let process = key.and_then(|k| k.process.as_ref());
    push_cell(out, side, |o| {
        o.extend_from_slice(key.map_or("other", |k| k.side.name()).as_bytes())
    });
    push_cell(out, pid, |o| push_or_dash(o, process.map(|p| p.pid.into())));
    push_cell(out, comm, |o| match process {
        Some(p) => push_text_escaped(o, p.comm()),
        None => o.push(b'-'),
    });
    push_cell(out, raddr, |o| match key {
        Some(k) => push_ip(o, k.remote),
        None => o.push(b'-'),
    });
    let port = |side| key.filter(|k| k.side == side).map(|k| k.port.into());
    push_cell(out, lport, |o| push_or_dash(o, port(Side::Accept)));
    push_cell(out, rport, |o| push_or_dash(o, port(Side::Connect)));
    let connect = line.has(Side::Connect);
    let accept = line.has(Side::Accept);
    for (column, value, applies) in [
        (conn, r.connects, connect),
        (est, r.established, connect),
        (fail, r.failed, connect),
        (acc, r.accepts, accept),
        (close, r.closes, true),
    ] {
        push_cell(out, column, |o| push_or_dash(o, applies.then_some(value)));
    }
    push_cell(out, tx, |o| {
        push_u64(o, r.bytes_sent);
        if r.sent_unknown > 0 {
            // Some closes did not know their sent bytes: at least this many.
            o.push(b'+');
        }
    });
    push_cell(out, rx, |o| push_u64(o, r.bytes_received));
    for (column, per_mille) in [(p50, 500), (p99, 990)] {
        push_cell(out, column, |o| match percentile(r, per_mille) {
            Some(us) => push_fixed(o, us, 1000, 3),
            None => o.push(b'-'),
        });
    }
    push_cell(out, errors, |o| {
        if !connect || (r.errors.is_empty() && r.errors_other == 0) {
            o.push(b'-');
            return;
        }
        let mut sep = false;
        for &(errno, n) in &r.errors {
            if sep {
                o.push(b',');
            }
            sep = true;
            error_name(o, errno);
            o.push(b':');
            push_u64(o, n);
        }
        if r.errors_other > 0 {
            if sep {
                o.push(b',');
            }
            o.extend_from_slice(b"other:");
            push_u64(o, r.errors_other);
        }
    });
    end_line(out);
}

fn percentile(r: &Row, per_mille: u64) -> Option<u64> {
    r.latency.as_ref().and_then(|h| h.percentile_us(per_mille))
}

/// The JSON lines of a table, one per row (none for an empty table).
pub fn push_json(
    out: &mut Vec<u8>,
    table: &Table,
    ts: &mut TimestampFormatter,
    unix_ns: i64,
    since_unix_ns: i64,
) {
    let count = (table.rows.len() + usize::from(table.other.is_some())) as u64;
    let mut head = Vec::with_capacity(96);
    head.extend_from_slice(b"{\"ts\":\"");
    ts.push(&mut head, unix_ns);
    head.extend_from_slice(b"\",\"event\":\"count\",\"since\":\"");
    ts.push(&mut head, since_unix_ns);
    head.extend_from_slice(b"\",\"last\":");
    head.extend_from_slice(if table.last { b"true" } else { b"false" });
    for (rank, line) in lines(table).enumerate() {
        out.extend_from_slice(&head);
        out.extend_from_slice(b",\"rank\":");
        push_u64(out, rank as u64 + 1);
        out.extend_from_slice(b",\"rows\":");
        push_u64(out, count);
        push_json_line(out, &line);
    }
}

fn push_json_line(out: &mut Vec<u8>, line: &Line<'_>) {
    let r = line.row();
    let key = match line {
        Line::Row(k, _) => Some(*k),
        Line::Other(..) => None,
    };
    let process = key.and_then(|k| k.process.as_ref());
    out.extend_from_slice(b",\"side\":");
    push_json_plain(out, key.map_or("other", |k| k.side.name()));
    out.extend_from_slice(b",\"pid\":");
    push_number_or_null(out, process.map(|p| p.pid.into()));
    out.extend_from_slice(b",\"comm\":");
    match process {
        Some(p) => push_json_string(out, p.comm()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"family\":");
    match key {
        Some(k) => push_json_plain(out, k.family().name()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"raddr\":");
    match key {
        Some(k) => {
            out.push(b'"');
            push_ip(out, k.remote);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    let port = |side| key.filter(|k| k.side == side).map(|k| k.port.into());
    out.extend_from_slice(b",\"lport\":");
    push_number_or_null(out, port(Side::Accept));
    out.extend_from_slice(b",\"rport\":");
    push_number_or_null(out, port(Side::Connect));
    let connect = line.has(Side::Connect);
    for (name, value) in [
        (&b",\"connects\":"[..], r.connects),
        (b",\"established\":", r.established),
        (b",\"failed\":", r.failed),
    ] {
        out.extend_from_slice(name);
        push_number_or_null(out, connect.then_some(value));
    }
    out.extend_from_slice(b",\"errors\":");
    if connect {
        out.push(b'{');
        let mut sep = false;
        for &(errno, n) in &r.errors {
            if sep {
                out.push(b',');
            }
            sep = true;
            out.push(b'"');
            error_name(out, errno);
            out.extend_from_slice(b"\":");
            push_u64(out, n);
        }
        if r.errors_other > 0 {
            if sep {
                out.push(b',');
            }
            out.extend_from_slice(b"\"other\":");
            push_u64(out, r.errors_other);
        }
        out.push(b'}');
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"accepts\":");
    push_number_or_null(out, line.has(Side::Accept).then_some(r.accepts));
    for (name, value) in [
        (&b",\"closes\":"[..], r.closes),
        (b",\"bytes_sent\":", r.bytes_sent),
        (b",\"bytes_received\":", r.bytes_received),
        (b",\"sent_unknown\":", r.sent_unknown),
    ] {
        out.extend_from_slice(name);
        push_u64(out, value);
    }
    out.extend_from_slice(b",\"latency_p50_us\":");
    push_number_or_null(out, percentile(r, 500));
    out.extend_from_slice(b",\"latency_p99_us\":");
    push_number_or_null(out, percentile(r, 990));
    out.extend_from_slice(b",\"folded_rows\":");
    match line {
        Line::Other(n, _) => push_u64(out, *n),
        Line::Row(..) => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
}

fn push_number_or_null(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        Some(n) => push_u64(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests;
