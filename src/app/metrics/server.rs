//! The metrics endpoint: a listener bound before privileges are dropped (a port below 1024
//! needs CAP_NET_BIND_SERVICE), served on a thread of its own started after the drop (the
//! drop is process-wide only for a single thread), so nothing a client does can stall the
//! reading of events.
//!
//! Non-blocking sockets multiplexed with poll(2). A client has [`CLIENT_DEADLINE`] to send its
//! request and take the response, else it is closed; a request is at most
//! [`http::MAX_REQUEST`] bytes; at most [`MAX_CLIENTS`] are served at once, and a new one past
//! that closes the oldest (the slowest: a scraper is never locked out by idle connections).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::{self, Parsed};
use super::Metrics;
use crate::kernel::sys::files::{poll, PollFd};

pub const MAX_CLIENTS: usize = 16;
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(5);

/// Binds the listening socket (non-blocking).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("--metrics {addr}: cannot listen: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("--metrics {addr}: {e}"))?;
    Ok(listener)
}

/// Serves `metrics` on `listener` on a new thread, for the rest of the process.
pub fn spawn(listener: TcpListener, metrics: Arc<Mutex<Metrics>>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || serve(&listener, &metrics))
        .map(|_| ())
        .map_err(|e| format!("cannot start the metrics thread: {e}"))
}

struct Client {
    stream: TcpStream,
    since: Instant,
    request: Vec<u8>,
    /// The response once the request is complete, and how much of it is written.
    response: Option<(Vec<u8>, usize)>,
}

fn serve(listener: &TcpListener, metrics: &Mutex<Metrics>) {
    let mut clients: Vec<Client> = Vec::new();
    loop {
        let now = Instant::now();
        clients.retain(|c| now.duration_since(c.since) < CLIENT_DEADLINE);
        let wait = clients
            .iter()
            .map(|c| CLIENT_DEADLINE.saturating_sub(now.duration_since(c.since)))
            .min()
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(clients.len() + 1);
        fds.push(PollFd {
            fd: listener.as_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        for c in &clients {
            fds.push(PollFd {
                fd: c.stream.as_fd(),
                events: if c.response.is_some() {
                    libc::POLLOUT
                } else {
                    libc::POLLIN
                },
                revents: 0,
            });
        }
        if poll(&mut fds, wait.as_millis() as i32 + 1).is_err() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let ready: Vec<bool> = fds.iter().map(|p| p.revents != 0).collect();
        drop(fds);
        let mut keep = Vec::with_capacity(clients.len());
        for (client, ready) in clients.drain(..).zip(&ready[1..]) {
            if !ready {
                keep.push(client);
            } else if let Some(client) = step(client, metrics) {
                keep.push(client);
            }
        }
        clients = keep;
        if ready[0] {
            accept_all(listener, &mut clients);
        }
    }
}

fn accept_all(listener: &TcpListener, clients: &mut Vec<Client>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                if clients.len() >= MAX_CLIENTS {
                    clients.remove(0);
                }
                clients.push(Client {
                    stream,
                    since: Instant::now(),
                    request: Vec::new(),
                    response: None,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // WouldBlock: all taken. Anything else (EMFILE, ...): try again at the next poll.
            Err(_) => return,
        }
    }
}

/// Reads or writes what the client is ready for; None when it is done with (or gone).
fn step(mut client: Client, metrics: &Mutex<Metrics>) -> Option<Client> {
    if let Some((response, written)) = client.response.as_mut() {
        match client.stream.write(&response[*written..]) {
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
        if *written == response.len() {
            let _ = client.stream.shutdown(std::net::Shutdown::Write);
            return None;
        }
        return Some(client);
    }
    let mut buf = [0u8; 2048];
    let room = http::MAX_REQUEST + 1 - client.request.len().min(http::MAX_REQUEST);
    match client.stream.read(&mut buf[..room.min(2048)]) {
        Ok(0) => return None,
        Ok(n) => client.request.extend_from_slice(&buf[..n]),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(client),
        Err(_) => return None,
    }
    let parsed = http::parse_request(&client.request);
    if parsed == Parsed::Incomplete && client.request.len() <= http::MAX_REQUEST {
        return Some(client);
    }
    let parsed = match parsed {
        Parsed::Incomplete => Parsed::Bad(431, "request headers too large"),
        other => other,
    };
    let response = http::respond(&parsed, || match metrics.lock() {
        Ok(m) => m.render(),
        Err(poisoned) => poisoned.into_inner().render(),
    });
    client.response = Some((response, 0));
    // Try at once: a scrape's response usually fits the socket buffer.
    step(client, metrics)
}
