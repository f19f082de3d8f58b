//! Puts every outcome after its connect. The probes send each record the moment it exists,
//! without atomic operations (kernels before 5.12 have no fetch forms), so an outcome can reach
//! the rings first: the tracepoint backend reports a connect at the syscall's return, after a
//! loopback handshake has already ended, and per-CPU rings are read one after another. An
//! outcome whose connect has not been seen waits here, keyed by socket, until it comes, for at
//! most [`HOLD_NS`]; memory is bounded by [`CAP`] on both tables.

use std::collections::HashMap;

use crate::session::event::{WireEvent, KIND_CONNECT, KIND_ESTABLISHED, KIND_FAILED};

/// Longest an outcome waits for its connect (a connect record lost to a full ring, or a
/// connect no probe saw, such as io_uring's): then it is printed alone.
pub const HOLD_NS: u64 = 1_000_000_000;
/// Most sockets remembered as connected, and most outcomes held: beyond it the oldest go
/// (a held one is printed at once), so a storm cannot grow memory without bound.
pub const CAP: usize = 65_536;

#[derive(Default)]
pub struct Order {
    /// Sockets whose connect record went out, with when it arrived.
    connected: HashMap<u64, u64>,
    /// Outcomes waiting for their connect, with when they arrived.
    held: HashMap<u64, (WireEvent, u64)>,
}

impl Order {
    /// One record that arrived at `now` (CLOCK_MONOTONIC ns), in time order within its batch;
    /// `out` gets it, or nothing yet, or it and an outcome that waited for it.
    pub fn push(&mut self, wire: &WireEvent, now: u64, out: &mut impl FnMut(&WireEvent)) {
        match wire.kind {
            KIND_CONNECT => {
                out(wire);
                if let Some((outcome, _)) = self.held.remove(&wire.sock) {
                    out(&outcome);
                } else {
                    if self.connected.len() >= CAP {
                        evict_oldest(&mut self.connected, |&t| t);
                    }
                    self.connected.insert(wire.sock, now);
                }
            }
            KIND_ESTABLISHED | KIND_FAILED if self.connected.remove(&wire.sock).is_none() => {
                if self.held.len() >= CAP {
                    if let Some((early, _)) = evict_oldest(&mut self.held, |(_, t)| *t) {
                        out(&early);
                    }
                }
                if let Some((older, _)) = self.held.insert(wire.sock, (*wire, now)) {
                    out(&older); // Two outcomes of one socket: never held back twice.
                }
            }
            _ => out(wire),
        }
    }

    /// Releases the outcomes that have waited [`HOLD_NS`] by `now` (in time order) and forgets
    /// connects that old.
    pub fn expire(&mut self, now: u64, out: &mut impl FnMut(&WireEvent)) {
        let old = |t: u64| now.saturating_sub(t) >= HOLD_NS;
        self.connected.retain(|_, t| !old(*t));
        let mut due: Vec<WireEvent> = Vec::new();
        self.held.retain(|_, (w, t)| {
            let keep = !old(*t);
            if !keep {
                due.push(*w);
            }
            keep
        });
        release(due, out);
    }

    /// Releases every held outcome, in time order (at exit).
    pub fn flush(&mut self, out: &mut impl FnMut(&WireEvent)) {
        self.connected.clear();
        release(self.held.drain().map(|(_, (w, _))| w).collect(), out);
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

fn release(mut due: Vec<WireEvent>, out: &mut impl FnMut(&WireEvent)) {
    due.sort_by_key(|w| w.ts_ns);
    for w in &due {
        out(w);
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
