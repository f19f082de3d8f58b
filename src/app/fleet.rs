//! What the reader does with each event it is about to show, for a node among many: resolve
//! who owns the socket (`identity`), apply `--container`, count it for `--metrics`, and print
//! it unless `-q`, or with `-c` count it into the table (`count`) instead. Set up before privileges are dropped ([`Fleet::prepare`]: the cgroup2 mount
//! opened, the metrics port bound), started after ([`Fleet::start`]: the metrics thread).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::app::cli::TraceOptions;
use crate::app::count::{self, Counter, Table};
use crate::app::identity::Resolver;
use crate::app::metrics::{server, Metrics};
use crate::app::output::{Clock, Printer};
use crate::session::event::{Event, Kind, Loss};

pub struct Fleet {
    resolver: Resolver,
    container: Option<String>,
    quiet: bool,
    metrics: Option<Arc<Mutex<Metrics>>>,
    listener: Option<TcpListener>,
    /// `-c`: the table being counted, instead of printing events.
    count: Option<Counter>,
}

impl Fleet {
    /// Opens what needs privileges: the cgroup2 mount and the metrics port.
    pub fn prepare(opts: &TraceOptions) -> Result<Fleet, String> {
        let listener = opts.metrics.map(server::bind).transpose()?;
        let resolver = Resolver::open();
        if let (Some(why), Some(_)) = (&resolver.unavailable, &opts.container) {
            return Err(format!("--container needs the cgroup v2 hierarchy: {why}"));
        }
        Ok(Fleet {
            resolver,
            container: opts.container.clone(),
            quiet: opts.quiet,
            metrics: listener
                .as_ref()
                .map(|_| Arc::new(Mutex::new(Metrics::new()))),
            listener,
            count: opts.count.map(|_| {
                // Sockets are remembered only for their closes.
                let closes = opts.wants(Kind::Close, false) || opts.wants(Kind::Close, true);
                Counter::with_limits(0, count::MAX_ROWS, if closes { count::MAX_OPEN } else { 0 })
            }),
        })
    }

    /// A fleet that resolves nothing and only prints (tests, benchmarks).
    pub fn plain() -> Fleet {
        Fleet {
            resolver: Resolver::disabled("not asked for".into()),
            container: None,
            quiet: false,
            metrics: None,
            listener: None,
            count: None,
        }
    }

    /// Why cgroup paths will be null, if they will.
    pub fn unresolvable(&self) -> Option<&str> {
        self.resolver.unavailable.as_deref()
    }

    /// Starts serving metrics (after the privilege drop: it starts a thread), and the first
    /// count interval.
    pub fn start(&mut self) -> Result<(), String> {
        if let (Some(listener), Some(metrics)) = (self.listener.take(), &self.metrics) {
            server::spawn(listener, Arc::clone(metrics))?;
        }
        if let Some(count) = &mut self.count {
            count.restart(Clock::monotonic_now_ns().unwrap_or(0));
        }
        Ok(())
    }

    /// Whether events are counted into tables (`-c`) rather than printed.
    pub fn counting_events(&self) -> bool {
        self.count.is_some()
    }

    /// The table of the interval ending at `now_ns` (CLOCK_MONOTONIC), when counting; the next
    /// interval starts empty. `last`: the one at exit.
    pub fn count_table(&mut self, now_ns: u64, last: bool) -> Option<Table> {
        self.count.as_mut().map(|c| c.take(now_ns, last))
    }

    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// A new batch of events: a new time budget for resolving unknown cgroups.
    pub fn begin_batch(&mut self) {
        self.resolver.begin_batch();
    }

    /// Shows one event that passed the other filters; false when `--container` hides it.
    pub fn event(&mut self, ev: &Event, printer: &mut Printer, out: &mut Vec<u8>) -> bool {
        let who = ev
            .owner
            .and_then(|o| self.resolver.lookup(o.cgroup, ev.ts_ns));
        let container = who.and_then(|w| w.container_id.as_deref());
        if let Some(prefix) = &self.container {
            if !container.is_some_and(|c| c.starts_with(prefix.as_str())) {
                return false;
            }
        }
        if let Some(metrics) = &self.metrics {
            let mut m = metrics.lock().unwrap_or_else(|p| p.into_inner());
            m.record(ev, container);
        }
        if let Some(count) = &mut self.count {
            count.record(ev);
        } else if !self.quiet {
            printer.event_of(ev, who, out);
        }
        true
    }

    /// Counts lost records; true when they should be reported in the output too.
    pub fn lost(&mut self, loss: &Loss) -> bool {
        if let Some(metrics) = &self.metrics {
            let mut m = metrics.lock().unwrap_or_else(|p| p.into_inner());
            m.lost(loss.reason, loss.count);
        }
        !self.quiet
    }
}
