//! Where the probes send their records: the BPF ring buffer (5.8: one ring for every CPU, in
//! the order records are reserved, no perf header or perf event per record) where the kernel
//! has it, else one perf ring per CPU. Chosen by probing (`Feature::RingBuf`); the embedded
//! object is the one written for the choice (src/bpf/rings/).

use crate::kernel::load::Loaded;
use crate::kernel::ring::{BpfRing, PerfRings, Rings, Wakeup};
use crate::kernel::sys::{host, Sys};
use std::os::fd::AsFd;

/// Test and diagnostic knob: `CONNTRACE_RING=perf` sends records through the perf rings where
/// the kernel has the BPF ring buffer too, so that path is exercised on a current kernel
/// (`ringbuf` forces the other); unset, empty or `auto` lets the kernel decide. Read here and
/// nowhere else.
pub const RING_ENV: &str = "CONNTRACE_RING";

/// The map each kind of object sends to (src/bpf/rings/).
pub const RINGBUF_MAP: &str = "ring";
pub const PERF_MAP: &str = "events";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingKind {
    /// BPF_MAP_TYPE_RINGBUF, read by [`BpfRing`].
    Bpf,
    /// BPF_MAP_TYPE_PERF_EVENT_ARRAY, read by [`PerfRings`].
    Perf,
}

impl RingKind {
    /// The BPF ring buffer where the kernel has it (`ringbuf`), or the kind `forced` names.
    pub fn choose(ringbuf: bool, forced: Option<&str>) -> Result<RingKind, String> {
        match forced.filter(|f| !f.is_empty() && *f != "auto") {
            None if ringbuf => Ok(RingKind::Bpf),
            None => Ok(RingKind::Perf),
            Some("ringbuf") => Ok(RingKind::Bpf),
            Some("perf") => Ok(RingKind::Perf),
            Some(name) => Err(format!(
                "{RING_ENV}={name:?} is not a kind of ring: use ringbuf, perf or auto, or unset it"
            )),
        }
    }
}

/// The ring this session takes: [`RingKind::choose`] with [`RING_ENV`].
pub fn ring_kind(ringbuf: bool) -> Result<RingKind, String> {
    let forced = std::env::var(RING_ENV).ok();
    RingKind::choose(ringbuf, forced.as_deref())
}

/// The BPF ring buffer's size for `pages` data pages per CPU on `cpus` CPUs: half of what the
/// perf rings would take together, rounded up to a power of two (the kernel requires one),
/// from a page to 1 GiB. Half, because the kernel maps its data twice into the reader and
/// all at once (RSS counts it twice), where a perf ring's pages count as they are touched:
/// the reader's RSS stays what it was with the perf rings, and one shared ring still gives a
/// burst on one CPU at least that CPU's perf ring (2 CPUs: 1 MiB, as before).
pub fn ringbuf_bytes(pages: u32, cpus: usize) -> u32 {
    let page = host::page_size().max(4096) as u64;
    let cpus = u64::try_from(cpus.max(1)).unwrap_or(u64::MAX);
    let bytes = u64::from(pages.max(1))
        .saturating_mul(page)
        .saturating_mul(cpus)
        / 2;
    bytes.clamp(page, 1 << 30).next_power_of_two() as u32
}

/// What the session loads beside the programs: the ring map's size.
pub fn map_size(kind: RingKind, pages: u32, cpus: usize) -> Option<(String, u32)> {
    (kind == RingKind::Bpf).then(|| (RINGBUF_MAP.to_string(), ringbuf_bytes(pages, cpus)))
}

/// Opens the rings of `kind` behind the loaded object's ring map.
pub fn open<'s>(
    sys: &'s dyn Sys,
    loaded: &Loaded,
    kind: RingKind,
    cpus: &[u32],
    pages: u32,
) -> Result<Rings<'s>, String> {
    let name = map_name(kind);
    let map = loaded
        .map(name)
        .ok_or_else(|| format!("probe object has no {name} map"))?;
    match kind {
        RingKind::Bpf => BpfRing::open(sys, map.fd.as_fd(), map.def.max_entries as usize)
            .map(Rings::Bpf)
            .map_err(|e| e.to_string()),
        RingKind::Perf => {
            let wakeup = Wakeup::Watermark(wakeup_watermark(pages));
            PerfRings::open(sys, map.fd.as_fd(), cpus, pages as usize, wakeup)
                .map(Rings::Perf)
                .map_err(|e| e.to_string())
        }
    }
}

fn map_name(kind: RingKind) -> &'static str {
    match kind {
        RingKind::Bpf => RINGBUF_MAP,
        RingKind::Perf => PERF_MAP,
    }
}

/// "the BPF ring buffer (1 MiB)", "perf rings (2 x 1 MiB)": for the "attached" line.
pub fn describe(rings: &Rings<'_>) -> String {
    match rings {
        Rings::Bpf(ring) => format!("the BPF ring buffer ({})", mib(ring.data_size())),
        Rings::Perf(perf) => {
            let n = perf.cpus().count();
            format!("perf rings ({n} x {})", mib(perf.data_size()))
        }
    }
}

fn mib(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// Bytes waiting in a perf ring before the kernel wakes the reader: an eighth of the ring.
/// Waking on every record cost a wake-up and a context switch per event, which at ~90k
/// events/s on 2 CPUs starved the reader and lost records (benchmarks: docs/benchmarks.md);
/// an eighth leaves seven eighths of the ring as headroom while the reader is woken. The BPF
/// ring buffer's programs wake it the same way (src/bpf/rings/ringbuf.s).
fn wakeup_watermark(pages: u32) -> u32 {
    let page = host::page_size().max(4096) as u32;
    (pages.saturating_mul(page) / 8).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_buffer_where_the_kernel_has_it_unless_forced() {
        assert_eq!(RingKind::choose(true, None), Ok(RingKind::Bpf));
        assert_eq!(RingKind::choose(false, None), Ok(RingKind::Perf));
        assert_eq!(RingKind::choose(true, Some("")), Ok(RingKind::Bpf));
        assert_eq!(RingKind::choose(true, Some("auto")), Ok(RingKind::Bpf));
        assert_eq!(RingKind::choose(true, Some("perf")), Ok(RingKind::Perf));
        assert_eq!(RingKind::choose(false, Some("ringbuf")), Ok(RingKind::Bpf));
        assert_eq!(
            RingKind::choose(true, Some("bpf")).unwrap_err(),
            "CONNTRACE_RING=\"bpf\" is not a kind of ring: use ringbuf, perf or auto, or unset it"
        );
    }

    #[test]
    fn the_ring_buffer_takes_half_what_the_perf_rings_would_to_a_power_of_two() {
        let page = host::page_size().max(4096) as u32;
        assert_eq!(ringbuf_bytes(256, 2), 256 * page);
        assert_eq!(ringbuf_bytes(256, 3), 512 * page, "384 pages round up");
        assert_eq!(ringbuf_bytes(256, 64), 8192 * page);
        assert_eq!(ringbuf_bytes(1, 1), page, "never below a page");
        assert_eq!(ringbuf_bytes(0, 0), page);
        assert_eq!(ringbuf_bytes(u32::MAX, 4096), 1 << 30, "at most 1 GiB");
        assert_eq!(map_size(RingKind::Perf, 256, 2), None);
        assert_eq!(
            map_size(RingKind::Bpf, 256, 2),
            Some(("ring".to_string(), 256 * page))
        );
    }
}
