//! `-c`/`--count`: connections counted by process and peer instead of printed one by one, as a
//! table every interval and at exit (`output::count` prints it). Pure: events in, tables out.
//!
//! Rows, keyed by the process (pid and comm; none for a close whose owner is unknown), the
//! side it was on and the peer:
//! - `connect` rows: the remote address and port the process connected to. They count
//!   connects, their outcomes (established; failed by errno, connects the kernel refused
//!   before any SYN included), the handshake latencies of the established ones, and the closes
//!   of those connections with their payload bytes.
//! - `accept` rows: the remote address and this host's port (the service): the client's
//!   ephemeral port would make one row per connection. They count accepts, and the closes and
//!   bytes of the accepted connections.
//!
//! A close goes to the side its socket was opened on, remembered by socket id from the
//! `established` or `accept` record (at most [`MAX_OPEN`] sockets at once). A close of a socket
//! not remembered (opened before conntrace, its opening filtered out, or past that bound) goes
//! to the accept row of its local port or the connect row of its remote port when this table
//! has one, else to the side whose port is the lower one (the service's, usually).
//!
//! Each table counts what happened since the previous one. Memory is bounded: at most
//! [`MAX_ROWS`] rows; a new key beyond that first folds the least active quarter of the rows
//! into one `other` row (counted, and said in the output), so counts are never dropped and the
//! busiest peers keep rows of their own. A row is about 2.3 KiB at most (key and counts
//! 152 bytes, 16 errnos, a latency histogram of 1,880 bytes, see `histogram`), so a table
//! stays under about 2.5 MiB with the hash table's slack, and the socket sides (17 bytes a
//! slot, at most 131,072 slots) under about 2.2 MiB.

pub mod histogram;

use std::collections::HashMap;
use std::net::IpAddr;

use crate::session::event::{Event, Family, Kind};
use histogram::Histogram;

/// Most rows a table keeps before folding the least active ones into `other`.
pub const MAX_ROWS: usize = 1024;
/// Most open sockets whose side (connect or accept) is remembered for their close.
pub const MAX_OPEN: usize = 65_536;
/// Most distinct errnos a row names; further ones count under `other` of that row.
pub const MAX_ERRNOS: usize = 16;

/// Which side of the connection the process was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Connect,
    Accept,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Connect => "connect",
            Side::Accept => "accept",
        }
    }
}

/// What a row is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub side: Side,
    /// The process, or None for closes whose owner is unknown.
    pub process: Option<Process>,
    pub remote: IpAddr,
    /// connect: the remote port; accept: this host's port.
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Process {
    pub pid: u32,
    comm: [u8; 16],
    comm_len: u8,
}

impl Process {
    pub fn new(pid: u32, comm: &[u8]) -> Process {
        let mut bytes = [0u8; 16];
        let len = comm.len().min(16);
        bytes[..len].copy_from_slice(&comm[..len]);
        Process {
            pid,
            comm: bytes,
            comm_len: len as u8,
        }
    }

    pub fn comm(&self) -> &[u8] {
        &self.comm[..usize::from(self.comm_len)]
    }
}

impl Key {
    pub fn family(&self) -> Family {
        match self.remote {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }
}

/// The counts of one row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub connects: u64,
    pub established: u64,
    /// Failed handshakes and connects refused before any SYN.
    pub failed: u64,
    /// errno -> count of `failed`, ordered by errno; at most [`MAX_ERRNOS`] of them.
    pub errors: Vec<(i32, u64)>,
    /// Failures with an errno past [`MAX_ERRNOS`] distinct ones, or with none.
    pub errors_other: u64,
    pub accepts: u64,
    pub closes: u64,
    /// Payload bytes of the closed connections: sent (acknowledged by the peer) and received.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Closes whose sent bytes are unknown (a connection older than the probes): `bytes_sent`
    /// is then a lower bound.
    pub sent_unknown: u64,
    /// Handshake latencies of the established connects; allocated with the first one.
    pub latency: Option<Box<Histogram>>,
}

impl Row {
    /// How active the row was: the events it counted. Tables list the most active first.
    pub fn activity(&self) -> u64 {
        self.connects + self.established + self.failed + self.accepts + self.closes
    }

    fn bytes(&self) -> u64 {
        self.bytes_sent.saturating_add(self.bytes_received)
    }

    fn error(&mut self, errno: Option<i32>, n: u64) {
        let Some(errno) = errno else {
            self.errors_other += n;
            return;
        };
        match self.errors.binary_search_by_key(&errno, |&(e, _)| e) {
            Ok(i) => self.errors[i].1 += n,
            Err(i) if self.errors.len() < MAX_ERRNOS => self.errors.insert(i, (errno, n)),
            Err(_) => self.errors_other += n,
        }
    }

    /// Adds another row's counts (folding it into `other`).
    pub fn merge(&mut self, other: &Row) {
        self.connects += other.connects;
        self.established += other.established;
        self.failed += other.failed;
        for &(errno, n) in &other.errors {
            self.error(Some(errno), n);
        }
        self.errors_other += other.errors_other;
        self.accepts += other.accepts;
        self.closes += other.closes;
        self.bytes_sent = self.bytes_sent.saturating_add(other.bytes_sent);
        self.bytes_received = self.bytes_received.saturating_add(other.bytes_received);
        self.sent_unknown += other.sent_unknown;
        if let Some(h) = &other.latency {
            self.latency.get_or_insert_default().merge(h);
        }
    }
}

/// One printed table: what happened between `since_ns` and `at_ns` (CLOCK_MONOTONIC).
#[derive(Debug)]
pub struct Table {
    pub since_ns: u64,
    pub at_ns: u64,
    /// Printed at exit (the last one).
    pub last: bool,
    /// Most active first.
    pub rows: Vec<(Key, Row)>,
    /// The rows folded together to stay within `max_rows`, with the count of them.
    pub other: Option<(u64, Row)>,
    pub max_rows: usize,
}

/// The aggregate of the current interval.
#[derive(Debug)]
pub struct Counter {
    max_rows: usize,
    max_open: usize,
    since_ns: u64,
    rows: HashMap<Key, Row>,
    other: Option<(u64, Row)>,
    /// Socket id -> the side it was opened on, until its close.
    open: HashMap<u64, Side>,
}

impl Counter {
    pub fn new(since_ns: u64) -> Counter {
        Counter::with_limits(since_ns, MAX_ROWS, MAX_OPEN)
    }

    /// With other bounds (tests; `max_open` 0 when closes are not counted at all).
    pub fn with_limits(since_ns: u64, max_rows: usize, max_open: usize) -> Counter {
        Counter {
            max_rows: max_rows.max(4),
            max_open,
            since_ns,
            rows: HashMap::new(),
            other: None,
            open: HashMap::new(),
        }
    }

    /// Starts the current interval anew at `since_ns` (when tracing begins).
    pub fn restart(&mut self, since_ns: u64) {
        self.since_ns = since_ns;
    }

    /// Sockets whose side is remembered now.
    pub fn open_sockets(&self) -> usize {
        self.open.len()
    }

    /// Counts one event.
    pub fn record(&mut self, ev: &Event) {
        let side = match ev.kind {
            Kind::Connect | Kind::Established | Kind::Failed => Side::Connect,
            Kind::Accept => Side::Accept,
            Kind::Close => match self.open.remove(&ev.sock_id) {
                Some(side) => side,
                None => self.guess_side(ev),
            },
        };
        match ev.kind {
            Kind::Established | Kind::Accept => self.remember(ev.sock_id, side),
            _ => {}
        }
        let row = self.row(key(ev, side));
        match ev.kind {
            Kind::Connect => {
                row.connects += 1;
                if ev.error.is_some() {
                    row.failed += 1;
                    row.error(ev.error, 1);
                }
            }
            Kind::Established => {
                row.established += 1;
                if let Some(ns) = ev.latency_ns {
                    row.latency.get_or_insert_default().observe_ns(ns);
                }
            }
            Kind::Failed => {
                row.failed += 1;
                row.error(ev.error, 1);
            }
            Kind::Accept => row.accepts += 1,
            Kind::Close => {
                row.closes += 1;
                if let Some(close) = &ev.close {
                    match close.bytes_sent {
                        Some(n) => row.bytes_sent = row.bytes_sent.saturating_add(n),
                        None => row.sent_unknown += 1,
                    }
                    row.bytes_received = row.bytes_received.saturating_add(close.bytes_received);
                }
            }
        }
    }

    fn remember(&mut self, sock_id: u64, side: Side) {
        if self.open.len() < self.max_open || self.open.contains_key(&sock_id) {
            self.open.insert(sock_id, side);
        }
    }

    /// The side of a close whose opening was not seen: the row this table has for it, else
    /// the side whose port is the lower.
    fn guess_side(&self, ev: &Event) -> Side {
        for side in [Side::Accept, Side::Connect] {
            if self.rows.contains_key(&key(ev, side)) {
                return side;
            }
        }
        if ev.local.port() < ev.remote.port() {
            Side::Accept
        } else {
            Side::Connect
        }
    }

    fn row(&mut self, key: Key) -> &mut Row {
        if self.rows.len() >= self.max_rows && !self.rows.contains_key(&key) {
            self.fold_least_active();
        }
        self.rows.entry(key).or_default()
    }

    /// Moves the least active quarter of the rows into `other`: O(n log n) once per n/4 new
    /// keys, so a flood of distinct peers costs O(log n) per event.
    fn fold_least_active(&mut self) {
        let mut order: Vec<(u64, u64, Key)> = self
            .rows
            .iter()
            .map(|(k, r)| (r.activity(), r.bytes(), *k))
            .collect();
        order.sort_unstable();
        let (folded, other) = self.other.get_or_insert_with(Default::default);
        for (_, _, key) in order.iter().take(self.max_rows / 4) {
            if let Some(row) = self.rows.remove(key) {
                other.merge(&row);
                *folded += 1;
            }
        }
    }

    /// The table of the interval ending at `at_ns`; the next interval starts empty (the
    /// sides of open sockets are kept).
    pub fn take(&mut self, at_ns: u64, last: bool) -> Table {
        let mut rows: Vec<(Key, Row)> = self.rows.drain().collect();
        rows.sort_by(|(ka, a), (kb, b)| {
            (b.activity(), b.bytes())
                .cmp(&(a.activity(), a.bytes()))
                .then(ka.cmp(kb))
        });
        let table = Table {
            since_ns: self.since_ns,
            at_ns,
            last,
            rows,
            other: self.other.take(),
            max_rows: self.max_rows,
        };
        self.since_ns = at_ns;
        table
    }
}

fn key(ev: &Event, side: Side) -> Key {
    Key {
        side,
        process: ev.owner.map(|o| Process::new(o.pid, o.comm.as_bytes())),
        remote: ev.remote.ip(),
        port: match side {
            Side::Connect => ev.remote.port(),
            Side::Accept => ev.local.port(),
        },
    }
}

#[cfg(test)]
mod tests;
