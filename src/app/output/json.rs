//! JSON lines: one object per record, keys in the documented order (README, "What it prints";
//! the order is `vmtest::verdict::FIELDS`).

use super::addr::push_ip;
use super::clock::TimestampFormatter;
use super::digits::{push_hex16, push_u64};
use super::error_name;
use super::escape::{push_json_plain, push_json_string};
use super::sink::{Line, Sink};
use crate::app::identity::Identity;
use crate::session::event::{Event, Loss};

/// Appends one event line, newline included.
/// `who` is the socket owner's identity (null keys when unknown).
pub fn push_event(
    out: &mut Vec<u8>,
    ev: &Event,
    who: Option<&Identity>,
    ts: &mut TimestampFormatter,
    unix_ns: i64,
) {
    let out = &mut Line::new(out);
    out.put(b"{\"ts\":\"");
    ts.push(out, unix_ns);
    out.put(b"\",\"event\":");
    push_json_plain(out, ev.kind.name());
    let owner = ev.owner.as_ref();
    for (key, value) in [
        (&b",\"pid\":"[..], owner.map(|o| o.pid)),
        (b",\"tid\":", owner.map(|o| o.tid)),
        (b",\"uid\":", owner.map(|o| o.uid)),
    ] {
        out.put(key);
        push_number_or_null(out, value.map(u64::from));
    }
    out.put(b",\"comm\":");
    match owner {
        Some(o) => push_json_string(out, o.comm.as_bytes()),
        None => out.put(b"null"),
    }
    out.put(b",\"family\":");
    push_json_plain(out, ev.family.name());
    out.put(b",\"laddr\":\"");
    push_ip(out, ev.local.ip());
    out.put(b"\",\"lport\":");
    push_u64(out, ev.local.port().into());
    out.put(b",\"raddr\":\"");
    push_ip(out, ev.remote.ip());
    out.put(b"\",\"rport\":");
    push_u64(out, ev.remote.port().into());
    out.put(b",\"netns\":");
    match ev.netns {
        Some(inum) => push_u64(out, inum.into()),
        None => out.put(b"null"),
    }
    out.put(b",\"cgroup\":");
    push_number_or_null(out, owner.map(|o| o.cgroup));
    out.put(b",\"sock\":\"");
    push_hex16(out, ev.sock_id);
    out.put(b"\",\"error\":");
    match ev.error {
        Some(errno) => {
            out.put_byte(b'"');
            error_name(out, errno);
            out.put_byte(b'"');
        }
        None => out.put(b"null"),
    }
    out.put(b",\"latency_us\":");
    push_number_or_null(out, ev.latency_ns.map(|ns| ns / 1000));
    let close = ev.close.as_ref();
    for (key, value) in [
        (
            &b",\"duration_us\":"[..],
            close.and_then(|c| c.duration_ns).map(|ns| ns / 1000),
        ),
        (b",\"bytes_sent\":", close.and_then(|c| c.bytes_sent)),
        (b",\"bytes_received\":", close.map(|c| c.bytes_received)),
    ] {
        out.put(key);
        push_number_or_null(out, value);
    }
    out.put(b",\"closed_by\":");
    match close {
        Some(c) => push_json_plain(out, c.closed_by.name()),
        None => out.put(b"null"),
    }
    out.put(b",\"cgroup_path\":");
    match who {
        Some(w) => push_json_string(out, &w.cgroup_path),
        None => out.put(b"null"),
    }
    for (key, value) in [
        (
            &b",\"container_id\":"[..],
            who.and_then(|w| w.container_id.as_deref()),
        ),
        (b",\"pod_uid\":", who.and_then(|w| w.pod_uid.as_deref())),
    ] {
        out.put(key);
        match value {
            Some(v) => push_json_string(out, v.as_bytes()),
            None => out.put(b"null"),
        }
    }
    out.put(b"}\n");
}

fn push_number_or_null(out: &mut impl Sink, value: Option<u64>) {
    match value {
        Some(n) => push_u64(out, n),
        None => out.put(b"null"),
    }
}

/// Appends a lost-records line:
/// `{"ts":...,"event":"lost","cpu":1,"count":17,"reason":"ring_full"}` (cpu null when the
/// loss belongs to no CPU).
pub fn push_lost(out: &mut Vec<u8>, ts: &mut TimestampFormatter, unix_ns: i64, loss: &Loss) {
    out.extend_from_slice(b"{\"ts\":\"");
    ts.push(out, unix_ns);
    out.extend_from_slice(b"\",\"event\":\"lost\",\"cpu\":");
    match loss.cpu {
        Some(cpu) => push_u64(out, cpu.into()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"count\":");
    push_u64(out, loss.count);
    out.extend_from_slice(b",\"reason\":\"");
    out.extend_from_slice(loss.reason.name().as_bytes());
    out.extend_from_slice(b"\"}\n");
}
