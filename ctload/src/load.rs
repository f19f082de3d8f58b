//! The load itself: a server thread accepting and closing, a client thread connecting and
//! closing, in one process so that a tracer can single it out by pid or port.

use crate::args::Options;
use crate::sock;
use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How long the server may take, after the client's last connect, to accept what is queued.
const ACCEPT_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub family: &'static str,
    pub port: u16,
    pub pid: u32,
    pub connects_ok: u64,
    pub connects_failed: u64,
    pub accepts: u64,
    /// From the first connect to the last close, on the client thread.
    pub seconds: f64,
    /// The first connect error, for the user to see why.
    pub first_error: Option<String>,
}

impl Report {
    /// Successful connections per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.connects_ok as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Every connect succeeded and the server accepted each one.
    pub fn complete(&self) -> bool {
        self.connects_failed == 0 && self.accepts == self.connects_ok
    }
}

struct ClientTally {
    ok: u64,
    failed: u64,
    seconds: f64,
    first_error: Option<String>,
}

pub fn run(opts: &Options) -> io::Result<Report> {
    let listener = sock::listen(opts.family, opts.port).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot listen on {}: {e} (is the port in use?)",
                sock::loopback(opts.family, opts.port)
            ),
        )
    })?;
    let addr = listener.local_addr()?;
    let listener = Arc::new(listener);
    let accepts = Arc::new(AtomicU64::new(0));

    let server = {
        let listener = Arc::clone(&listener);
        let accepts = Arc::clone(&accepts);
        thread::Builder::new()
            .name("ctload-server".into())
            .spawn(move || {
                // Ends when `stop_accepting` makes accept fail.
                while let Ok((mut conn, _)) = listener.accept() {
                    // Wait for the client's close (EOF) before resetting: a reset that beats
                    // the client's own connect() return makes that connect fail.
                    let _ = conn.read(&mut [0u8; 1]);
                    let _ = sock::reset_on_close(&conn);
                    accepts.fetch_add(1, Ordering::Relaxed);
                }
            })?
    };
    let client = {
        let opts = opts.clone();
        thread::Builder::new()
            .name("ctload-client".into())
            .spawn(move || connect_loop(&opts, addr))?
    };
    let tally = client
        .join()
        .map_err(|_| io::Error::other("the client thread panicked"))?;

    let grace = Instant::now() + ACCEPT_GRACE;
    while accepts.load(Ordering::Relaxed) < tally.ok && Instant::now() < grace {
        thread::sleep(Duration::from_millis(1));
    }
    sock::stop_accepting(&listener);
    server
        .join()
        .map_err(|_| io::Error::other("the server thread panicked"))?;

    Ok(Report {
        family: opts.family.name(),
        port: addr.port(),
        pid: std::process::id(),
        connects_ok: tally.ok,
        connects_failed: tally.failed,
        accepts: accepts.load(Ordering::Relaxed),
        seconds: tally.seconds,
        first_error: tally.first_error,
    })
}

fn connect_loop(opts: &Options, addr: std::net::SocketAddr) -> ClientTally {
    let mut tally = ClientTally {
        ok: 0,
        failed: 0,
        seconds: 0.0,
        first_error: None,
    };
    let start = Instant::now();
    let deadline = opts.duration.map(|d| start + d);
    let count = opts.count.unwrap_or(u64::MAX);
    let mut made: u64 = 0;
    while made < count {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let Some(rate) = opts.rate {
            // Paced from the start, not from the previous connect, so delays do not add up.
            let due = start + Duration::from_secs_f64(made as f64 / rate);
            if due > now {
                thread::sleep(due - now);
            }
        }
        made += 1;
        match TcpStream::connect(addr) {
            // A plain close (FIN): the server's reset then takes this socket straight out of
            // FIN_WAIT2, so it never reaches TIME_WAIT either. Resetting here instead would
            // race the server's accept, and a socket reset before accept has lost its local
            // port by the time accept returns it.
            Ok(_conn) => tally.ok += 1,
            Err(e) => {
                tally.failed += 1;
                tally.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    tally.seconds = start.elapsed().as_secs_f64();
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Family;

    fn options(family: Family) -> Options {
        Options {
            count: Some(300),
            family,
            port: 0,
            rate: None,
            duration: None,
            report_json: false,
        }
    }

    #[test]
    fn every_connect_is_accepted_on_both_families() {
        for family in [Family::V4, Family::V6] {
            let r = run(&options(family)).unwrap();
            assert_eq!((r.connects_ok, r.connects_failed, r.accepts), (300, 0, 300));
            assert!(r.complete() && r.rate() > 0.0 && r.port != 0);
            assert_eq!(r.family, family.name());
        }
    }

    #[test]
    fn rate_paces_the_client() {
        let opts = Options {
            count: Some(50),
            rate: Some(500.0),
            ..options(Family::V4)
        };
        let r = run(&opts).unwrap();
        // 50 connections at 500/s: the 50th is due 98 ms after the first.
        assert!(r.seconds >= 0.098, "took {} s", r.seconds);
        assert_eq!(r.accepts, 50);
    }

    #[test]
    fn duration_stops_an_unbounded_run() {
        let opts = Options {
            count: None,
            rate: Some(1000.0),
            duration: Some(Duration::from_millis(200)),
            ..options(Family::V4)
        };
        let r = run(&opts).unwrap();
        assert!(r.seconds >= 0.2 && r.seconds < 1.0, "took {} s", r.seconds);
        assert!(r.connects_ok > 100 && r.connects_ok <= 201, "{r:?}");
        assert!(r.complete(), "{r:?}");
    }

    #[test]
    fn refused_connects_are_counted_with_the_reason() {
        // A port nobody listens on: bind one, learn its number, close it.
        let port = sock::listen(Family::V4, 0)
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = Options {
            count: Some(3),
            ..options(Family::V4)
        };
        let tally = connect_loop(&opts, sock::loopback(Family::V4, port));
        assert_eq!((tally.ok, tally.failed), (0, 3));
        assert!(tally.first_error.unwrap().contains("refused"));
    }

    #[test]
    fn a_busy_port_is_a_clear_error() {
        let held = sock::listen(Family::V4, 0).unwrap();
        let opts = Options {
            port: held.local_addr().unwrap().port(),
            ..options(Family::V4)
        };
        let err = run(&opts).unwrap_err().to_string();
        // SO_REUSEADDR does not allow two listeners on one port.
        assert!(err.contains("cannot listen on 127.0.0.1:"), "{err}");
    }
}
