//! Puts every outcome after its connect, and a close after both. The probes send each record
//! the moment it exists, without atomic operations (kernels before 5.12 have no fetch forms), so
//! an outcome can reach the rings first: the tracepoint backend reports a connect at the
//! syscall's return, after a loopback handshake has already ended, and per-CPU rings are read
//! one after another. An outcome whose connect has not been seen waits here, keyed by socket,
//! until it comes, for at most [`HOLD_NS`], and a close of that socket (a connection reset
//! before its connect() returned) waits with it; memory is bounded by [`CAP`] on both tables.

use std::collections::HashMap;

use crate::session::event::{WireEvent, KIND_CLOSE, KIND_CONNECT, KIND_ESTABLISHED, KIND_FAILED};

/// Longest an outcome waits for its connect (a connect record lost to a full ring, or a
/// connect no probe saw, such as io_uring's): then it is printed alone.
pub const HOLD_NS: u64 = 1_000_000_000;
/// Most sockets remembered as connected, and most outcomes held: beyond it the oldest go
/// (a held one is printed at once), so a storm cannot grow memory without bound.
pub const CAP: usize = 65_536;

/// An outcome waiting for its connect, and the socket's close if it came meanwhile.
struct Held {
    outcome: WireEvent,
    close: Option<WireEvent>,
    /// When the outcome arrived.
    at: u64,
}

impl Held {
    fn release(self, out: &mut dyn FnMut(&WireEvent)) {
        out(&self.outcome);
        if let Some(close) = &self.close {
            out(close);
        }
    }
}

#[derive(Default)]
pub struct Order {
    /// Sockets whose connect record went out, with when it arrived.
    connected: HashMap<u64, u64>,
    /// Outcomes waiting for their connect.
    held: HashMap<u64, Held>,
}

impl Order {
    /// One record that arrived at `now` (CLOCK_MONOTONIC ns), in time order within its batch;
    /// `out` gets it, or nothing yet, or it and what waited for it.
    pub fn push(&mut self, wire: &WireEvent, now: u64, out: &mut dyn FnMut(&WireEvent)) {
        match wire.kind {
            KIND_CONNECT => {
                out(wire);
                if let Some(held) = self.held.remove(&wire.sock) {
                    held.release(out);
                } else {
                    if self.connected.len() >= CAP {
                        evict_oldest(&mut self.connected, |&t| t);
                    }
                    self.connected.insert(wire.sock, now);
                }
            }
            KIND_ESTABLISHED | KIND_FAILED if self.connected.remove(&wire.sock).is_none() => {
                if self.held.len() >= CAP {
                    if let Some(early) = evict_oldest(&mut self.held, |h| h.at) {
                        early.release(out);
                    }
                }
                let held = Held {
                    outcome: *wire,
                    close: None,
                    at: now,
                };
                if let Some(older) = self.held.insert(wire.sock, held) {
                    older.release(out); // Two outcomes of one socket: never held back twice.
                }
            }
            KIND_CLOSE => match self.held.get_mut(&wire.sock) {
                Some(held) if held.close.is_none() => held.close = Some(*wire),
                _ => out(wire),
            },
            _ => out(wire),
        }
    }

    /// Releases the outcomes that have waited [`HOLD_NS`] by `now` (in time order) and forgets
    /// connects that old.
    pub fn expire(&mut self, now: u64, out: &mut dyn FnMut(&WireEvent)) {
        let old = |t: u64| now.saturating_sub(t) >= HOLD_NS;
        self.connected.retain(|_, t| !old(*t));
        let due: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, h)| old(h.at))
            .map(|(sock, _)| *sock)
            .collect();
        let due = due
            .iter()
            .filter_map(|sock| self.held.remove(sock))
            .collect();
        release(due, out);
    }

    /// Releases every held outcome, in time order (at exit).
    pub fn flush(&mut self, out: &mut dyn FnMut(&WireEvent)) {
        self.connected.clear();
        release(self.held.drain().map(|(_, h)| h).collect(), out);
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// Each held outcome (then its close), outcomes in time order.
fn release(mut due: Vec<Held>, out: &mut dyn FnMut(&WireEvent)) {
    due.sort_by_key(|h| h.outcome.ts_ns);
    for held in due {
        held.release(out);
    }
}

/// Removes the entry whose time `at` gives is smallest; returns it.
fn evict_oldest<V>(map: &mut HashMap<u64, V>, at: impl Fn(&V) -> u64) -> Option<V> {
    let key = map.iter().min_by_key(|(_, v)| at(v)).map(|(k, _)| *k)?;
    map.remove(&key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::event::KIND_ACCEPT;

    fn wire(kind: u8, sock: u64, ts_ns: u64) -> WireEvent {
        WireEvent {
            kind,
            sock,
            ts_ns,
            ..bytemuck::Zeroable::zeroed()
        }
    }

    fn run(order: &mut Order, records: &[WireEvent], now: u64) -> Vec<(u8, u64)> {
        let mut seen = Vec::new();
        for r in records {
            order.push(r, now, &mut |w| seen.push((w.kind, w.sock)));
        }
        seen
    }

    #[test]
    fn an_outcome_before_its_connect_waits_for_it() {
        let mut o = Order::default();
        let first = run(
            &mut o,
            &[wire(KIND_FAILED, 7, 20), wire(KIND_ACCEPT, 8, 21)],
            100,
        );
        assert_eq!(first, [(KIND_ACCEPT, 8)], "the outcome is held");
        assert_eq!(o.held(), 1);
        let next = run(&mut o, &[wire(KIND_CONNECT, 7, 10)], 200);
        assert_eq!(next, [(KIND_CONNECT, 7), (KIND_FAILED, 7)]);
        assert_eq!(o.held(), 0);
    }

    #[test]
    fn an_outcome_after_its_connect_goes_straight_out() {
        let mut o = Order::default();
        let seen = run(
            &mut o,
            &[wire(KIND_CONNECT, 1, 1), wire(KIND_ESTABLISHED, 1, 2)],
            0,
        );
        assert_eq!(seen, [(KIND_CONNECT, 1), (KIND_ESTABLISHED, 1)]);
        assert_eq!((o.held(), o.connected.len()), (0, 0), "nothing remembered");
    }

    #[test]
    fn a_lonely_outcome_is_released_after_the_hold_and_at_exit() {
        let mut o = Order::default();
        run(
            &mut o,
            &[wire(KIND_FAILED, 1, 5), wire(KIND_ESTABLISHED, 2, 3)],
            0,
        );
        let mut seen = Vec::new();
        o.expire(HOLD_NS - 1, &mut |w| seen.push(w.sock));
        assert!(seen.is_empty());
        o.expire(HOLD_NS, &mut |w| seen.push(w.sock));
        assert_eq!(seen, [2, 1], "in time order");
        run(&mut o, &[wire(KIND_FAILED, 3, 9)], HOLD_NS);
        o.flush(&mut |w| seen.push(w.sock));
        assert_eq!(seen, [2, 1, 3]);
    }

    #[test]
    fn a_close_waits_with_its_outcome_for_the_connect() {
        let mut o = Order::default();
        let first = run(
            &mut o,
            &[
                wire(KIND_ESTABLISHED, 7, 20),
                wire(KIND_CLOSE, 7, 30),
                wire(KIND_CLOSE, 9, 31),
            ],
            100,
        );
        assert_eq!(
            first,
            [(KIND_CLOSE, 9)],
            "a close of another socket goes out"
        );
        let next = run(&mut o, &[wire(KIND_CONNECT, 7, 10)], 200);
        assert_eq!(
            next,
            [(KIND_CONNECT, 7), (KIND_ESTABLISHED, 7), (KIND_CLOSE, 7)]
        );
        // Released by the hold too, still after its outcome.
        run(
            &mut o,
            &[wire(KIND_FAILED, 5, 1), wire(KIND_CLOSE, 5, 2)],
            0,
        );
        let mut seen = Vec::new();
        o.expire(HOLD_NS, &mut |w| seen.push(w.kind));
        assert_eq!(seen, [KIND_FAILED, KIND_CLOSE]);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut o = Order::default();
        let mut out = 0usize;
        for i in 0..(CAP as u64 + 10) {
            o.push(&wire(KIND_FAILED, i, i), i, &mut |_| out += 1);
            o.push(&wire(KIND_ACCEPT, i, i), i, &mut |_| out += 1);
        }
        assert_eq!(o.held(), CAP);
        assert_eq!(out, CAP + 10 + 10, "the 10 oldest outcomes went out early");
        for i in 0..(CAP as u64 + 10) {
            o.push(&wire(KIND_CONNECT, 1_000_000 + i, i), i, &mut |_| {});
        }
        assert_eq!(o.connected.len(), CAP);
    }
}
