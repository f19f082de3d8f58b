//! `--metrics ADDR:PORT`: counts of what conntrace saw, in Prometheus' text format at
//! `/metrics`. The reader records every event it shows (after every filter) into [`Metrics`];
//! `server` answers HTTP on a thread of its own, `http` parses requests (a pure function).
//!
//! The series (names and labels are a contract: dashboards use them):
//! - `conntrace_events_total{event,container}`: connect, established, failed, accept, close;
//! - `conntrace_errors_total{event,error,container}`: connects refused before any SYN
//!   (`event="connect"`) and failed handshakes (`event="failed"`), by errno name;
//! - `conntrace_handshake_latency_seconds{outcome,container}`: a histogram of SYN to
//!   established or failed, buckets [`LATENCY_BUCKETS`] seconds;
//! - `conntrace_bytes_total{direction,container}`: payload bytes of closed connections,
//!   `sent` (acknowledged by the peer) and `received`;
//! - `conntrace_lost_events_total{reason}`: records the kernel could not deliver.
//!
//! `container` is the full 64-hex container id, or empty for processes outside containers.
//! Label sets are bounded: at most [`MAX_CONTAINERS`] containers get their own label value,
//! later ones are counted under `container="other"`; errno names are a fixed set; never one
//! series per port or address.
//! A close whose owner is unknown (a connection older than conntrace) counts under
//! `container=""`; one whose sent bytes are unknown adds only its received bytes.

pub mod http;
pub mod server;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use crate::app::output::error_name_string;
use crate::session::event::{Event, Kind, LossReason};

/// Most containers with a label value of their own; the rest are `container="other"`.
pub const MAX_CONTAINERS: usize = 256;

/// Upper bounds of the latency histogram's buckets, in seconds (then +Inf).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

const KINDS: [Kind; 5] = Kind::ALL;

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_ns: u64,
}

impl Histogram {
    fn observe(&mut self, ns: u64) {
        let secs = ns as f64 / 1e9;
        for (bucket, le) in self.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if secs <= le {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }
}

/// The counts of one container label value.
#[derive(Debug, Default, Clone)]
struct Counts {
    events: [u64; KINDS.len()],
    /// (event: connect or failed, errno) -> count.
    errors: BTreeMap<(&'static str, i32), u64>,
    /// established, failed.
    latency: [Histogram; 2],
    /// Payload bytes (sent, received) of closed connections.
    bytes: [u64; 2],
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// Label value -> index into `counts`; "" is no container, "other" past the cap.
    labels: HashMap<Box<str>, usize>,
    counts: Vec<(Box<str>, Counts)>,
    lost: [u64; LossReason::ALL.len()],
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics::default();
        m.slot(None);
        m
    }

    fn slot(&mut self, container: Option<&str>) -> &mut Counts {
        let key = container.unwrap_or("");
        let index = match self.labels.get(key) {
            Some(&i) => i,
            None => {
                // "" and "other" do not count against the cap.
                let key = if key.is_empty() || self.labels.len() < MAX_CONTAINERS + 1 {
                    key
                } else {
                    "other"
                };
                match self.labels.get(key) {
                    Some(&i) => i,
                    None => {
                        self.counts.push((key.into(), Counts::default()));
                        self.labels.insert(key.into(), self.counts.len() - 1);
                        self.counts.len() - 1
                    }
                }
            }
        };
        &mut self.counts[index].1
    }

    /// Counts one shown event of a process in `container` (None: not in one).
    pub fn record(&mut self, ev: &Event, container: Option<&str>) {
        let c = self.slot(container);
        let kind_index = match ev.kind {
            Kind::Connect => 0,
            Kind::Established => 1,
            Kind::Failed => 2,
            Kind::Accept => 3,
            Kind::Close => 4,
        };
        c.events[kind_index] += 1;
        if let Some(close) = &ev.close {
            let sent = close.bytes_sent.unwrap_or(0);
            c.bytes[0] = c.bytes[0].saturating_add(sent);
            c.bytes[1] = c.bytes[1].saturating_add(close.bytes_received);
        }
        if let Some(errno) = ev.error {
            if matches!(ev.kind, Kind::Connect | Kind::Failed) {
                *c.errors.entry((ev.kind.name(), errno)).or_default() += 1;
            }
        }
        match (ev.kind, ev.latency_ns) {
            (Kind::Established, Some(ns)) => c.latency[0].observe(ns),
            (Kind::Failed, Some(ns)) => c.latency[1].observe(ns),
            _ => {}
        }
    }

    pub fn lost(&mut self, reason: LossReason, count: u64) {
        if let Some(i) = LossReason::ALL.iter().position(|&r| r == reason) {
            self.lost[i] = self.lost[i].saturating_add(count);
        }
    }

    /// The exposition, text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096 + self.counts.len() * 2048);
        let by_label = || {
            let mut v: Vec<&(Box<str>, Counts)> = self.counts.iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        header(
            &mut out,
            "conntrace_events_total",
            "counter",
            "Records conntrace showed, by event and container (empty: not in a container).",
        );
        for (label, c) in by_label() {
            for (kind, n) in KINDS.iter().zip(c.events) {
                let _ = writeln!(
                    out,
                    "conntrace_events_total{{event=\"{}\",container=\"{label}\"}} {n}",
                    kind.name()
                );
            }
        }
        header(
            &mut out,
            "conntrace_errors_total",
            "counter",
            "Connects refused before any SYN (event connect) and failed handshakes (event failed), by errno.",
        );
        for (label, c) in by_label() {
            for ((kind, errno), n) in &c.errors {
                let _ = writeln!(
                    out,
                    "conntrace_errors_total{{event=\"{kind}\",error=\"{}\",container=\"{label}\"}} {n}",
                    error_name_string(*errno)
                );
            }
        }
        header(
            &mut out,
            "conntrace_handshake_latency_seconds",
            "histogram",
            "Time from SYN to established or failed.",
        );
        for (label, c) in by_label() {
            for (outcome, h) in ["established", "failed"].iter().zip(&c.latency) {
                let labels = format!("outcome=\"{outcome}\",container=\"{label}\"");
                for (le, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                    let _ = writeln!(
                        out,
                        "conntrace_handshake_latency_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "conntrace_handshake_latency_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "conntrace_handshake_latency_seconds_sum{{{labels}}} {}",
                    h.sum_ns as f64 / 1e9
                );
                let _ = writeln!(
                    out,
                    "conntrace_handshake_latency_seconds_count{{{labels}}} {}",
                    h.count
                );
            }
        }
        header(
            &mut out,
            "conntrace_bytes_total",
            "counter",
            "Payload bytes of closed connections, by direction.",
        );
        for (label, c) in by_label() {
            let [sent, received] = c.bytes;
            let _ = writeln!(
                out,
                "conntrace_bytes_total{{direction=\"sent\",container=\"{label}\"}} {sent}"
            );
            let _ = writeln!(
                out,
                "conntrace_bytes_total{{direction=\"received\",container=\"{label}\"}} {received}"
            );
        }
        header(
            &mut out,
            "conntrace_lost_events_total",
            "counter",
            "Records the kernel could not deliver, by reason.",
        );
        for (reason, n) in LossReason::ALL.iter().zip(self.lost) {
            let _ = writeln!(
                out,
                "conntrace_lost_events_total{{reason=\"{}\"}} {n}",
                reason.name()
            );
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests;
