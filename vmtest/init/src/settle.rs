//! Waiting for the kernel to finish closing a scenario's sockets before conntrace stops.
//!
//! A process that has closed its sockets and exited may leave them in the kernel, still on
//! their way to CLOSE: a LAST_ACK waiting for the peer's ACK (a FIN that met the peer's socket
//! as it turned into a timewait one is resent after the retransmission timeout, 200 ms or
//! more), a FIN_WAIT1 or CLOSING waiting for an ACK. Their close records come when they get
//! there; stopping conntrace earlier would call them missing. Timewait sockets (TIME_WAIT, and
//! FIN_WAIT2 timewait ones, which /proc/net/tcp shows as FIN_WAIT2) have had their close.

use std::time::{Duration, Instant};

/// /proc/net/tcp's state column (include/net/tcp_states.h) for the states that still end in
/// a close record: ESTABLISHED, FIN_WAIT1, CLOSE_WAIT, LAST_ACK, CLOSING.
const CLOSING_STATES: [u8; 5] = [0x01, 0x04, 0x08, 0x09, 0x0b];

/// How long a scenario's sockets may take to close (a few retransmissions under TCG).
const LIMIT: Duration = Duration::from_secs(5);

/// Waits until no socket with a local or remote port in `ports` is in one of
/// [`CLOSING_STATES`], or [`LIMIT`] passes; returns what was still open then (empty: none).
pub fn wait_closed(ports: &[u16]) -> Vec<String> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let open = still_closing(ports);
        if open.is_empty() || Instant::now() >= deadline {
            return open;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn still_closing(ports: &[u16]) -> Vec<String> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| closing_lines(&text, ports))
        .collect()
}

/// The "local remote state" of each line of a /proc/net/tcp table whose socket is on one of
/// `ports` and in one of [`CLOSING_STATES`].
fn closing_lines(table: &str, ports: &[u16]) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip(1);
            let (local, remote, state) = (words.next()?, words.next()?, words.next()?);
            let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
            let state = u8::from_str_radix(state, 16).ok()?;
            let ours = [port(local)?, port(remote)?]
                .iter()
                .any(|p| ports.contains(p));
            (ours && CLOSING_STATES.contains(&state))
                .then(|| format!("{local} {remote} {state:02X}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1068 0100007F:C0A6 09 00000000:00000000 01:00000014 00000001  2000        0 0 1 0000000000000000 20 4 0 10 -1
   1: 0100007F:C0A6 0100007F:1068 05 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   2: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   3: 0100007F:1069 0100007F:D000 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
";

    #[test]
    fn only_sockets_on_the_ports_still_on_their_way_to_close_count() {
        // 0x1068 = 4200: the LAST_ACK counts; its peer's FIN_WAIT2 timewait does not, nor
        // another port's listener or a TIME_WAIT.
        assert_eq!(
            closing_lines(TABLE, &[4200, 4201]),
            ["0100007F:1068 0100007F:C0A6 09"]
        );
        assert!(
            closing_lines(TABLE, &[22]).is_empty(),
            "a listener is not closing"
        );
        assert!(closing_lines("garbage\nno columns here", &[4200]).is_empty());
    }
}
