//! The ring reader against FakeSys (records written where the kernel would write them), and
//! once against the real kernel.

use super::*;
use crate::kernel::sys::fake::{
    perf_lost_record, perf_record_header, perf_sample_record, Call, FakeRing, FakeSys,
};
use crate::kernel::sys::{MapCreate, PerfEventIoctl, RealSys, Sys};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Sample(u32, Vec<u8>),
    Lost(u32, u64),
}

fn page() -> usize {
    crate::kernel::sys::host::page_size()
}

fn events_map(sys: &dyn Sys, entries: u32) -> OwnedFd {
    let req = MapCreate {
        name: "events",
        map_type: 4,
        key_size: 4,
        value_size: 4,
        max_entries: entries,
        flags: 0,
        btf: None,
    };
    sys.map_create(&req).expect("creating the events map")
}

fn open<'s>(fake: &'s FakeSys, map: &OwnedFd, cpus: &[u32], pages: usize) -> PerfRings<'s> {
    PerfRings::open(fake, map.as_fd(), cpus, pages, Wakeup::EveryRecord)
        .expect("opening fake rings")
}

fn poll(rings: &mut PerfRings<'_>) -> Vec<Got> {
    let mut got = Vec::new();
    let n = rings
        .poll(100, |r| match r {
            Record::Sample { cpu, data } => {
                got.push(Got::Sample(cpu.expect("a perf ring's CPU"), data.to_vec()))
            }
            Record::Lost { cpu, count } => got.push(Got::Lost(cpu, count)),
        })
        .expect("poll");
    assert_eq!(n, got.len(), "poll's count matches the records handed over");
    got
}

/// The data as the reader returns it: padded so 4 + len is a multiple of 8.
fn padded(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize((4 + data.len()).next_multiple_of(8) - 4, 0);
    v
}

fn assert_consumed(ring: &FakeRing<'_>) {
    assert_eq!(
        ring.data_tail(),
        ring.data_head(),
        "the reader released everything it read"
    );
}

#[test]
fn reads_several_records_in_order_from_several_cpus() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 4);
    let mut rings = open(&fake, &map, &[0, 2], 1);
    let r0 = fake.ring_by_cpu(0).unwrap();
    let r2 = fake.ring_by_cpu(2).unwrap();
    r0.push(&perf_sample_record(b"first"));
    r0.push(&perf_sample_record(&[7; 128]));
    r2.push(&perf_sample_record(b"on two"));
    r0.push(&perf_sample_record(b"third"));
    assert_eq!(
        poll(&mut rings),
        vec![
            Got::Sample(0, padded(b"first")),
            Got::Sample(0, padded(&[7; 128])),
            Got::Sample(0, padded(b"third")),
            Got::Sample(2, padded(b"on two")),
        ]
    );
    assert_consumed(&r0);
    assert_consumed(&r2);
    assert_eq!((rings.lost(), rings.malformed()), (0, 0));
}

#[test]
fn a_record_whose_header_wraps_the_end_is_reassembled() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 1);
    let mut rings = open(&fake, &map, &[0], 1);
    let ring = fake.ring_by_cpu(0).unwrap();
    let size = ring.data_size() as u64;
    // Positions are free-running: start one lap in, 4 bytes before the end.
    ring.set_position(size + size - 4);
    ring.push(&perf_sample_record(b"split header"));
    ring.push(&perf_sample_record(b"after"));
    assert_eq!(
        poll(&mut rings),
        vec![
            Got::Sample(0, padded(b"split header")),
            Got::Sample(0, padded(b"after"))
        ]
    );
    assert_consumed(&ring);
}

#[test]
fn a_record_whose_payload_wraps_the_end_is_reassembled() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 1);
    let mut rings = open(&fake, &map, &[0], 1);
    let ring = fake.ring_by_cpu(0).unwrap();
    let payload: Vec<u8> = (0..=255u8).cycle().take(300).collect();
    ring.set_position(ring.data_size() as u64 - 16);
    ring.push(&perf_sample_record(&payload));
    assert_eq!(poll(&mut rings), vec![Got::Sample(0, padded(&payload))]);
    // And again at a different split, through the same (reused) scratch buffer.
    ring.set_position(3 * ring.data_size() as u64 - 200);
    ring.push(&perf_sample_record(&payload[..250]));
    assert_eq!(
        poll(&mut rings),
        vec![Got::Sample(0, padded(&payload[..250]))]
    );
    assert_consumed(&ring);
}

#[test]
fn lost_records_are_reported_and_counted_per_cpu() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 2);
    let mut rings = open(&fake, &map, &[0, 1], 1);
    let r1 = fake.ring_by_cpu(1).unwrap();
    r1.push(&perf_lost_record(1, 17));
    r1.push(&perf_sample_record(b"x"));
    r1.push(&perf_lost_record(1, 3));
    assert_eq!(
        poll(&mut rings),
        vec![
            Got::Lost(1, 17),
            Got::Sample(1, padded(b"x")),
            Got::Lost(1, 3)
        ]
    );
    assert_eq!(rings.lost(), 20);
    let per_cpu: Vec<_> = rings.per_cpu().collect();
    assert_eq!(
        per_cpu[0],
        CpuCounters {
            cpu: 0,
            lost: 0,
            malformed: 0
        }
    );
    assert_eq!(
        per_cpu[1],
        CpuCounters {
            cpu: 1,
            lost: 20,
            malformed: 0
        }
    );
}

#[test]
fn a_malformed_size_drops_the_rest_of_the_batch_and_resynchronises() {
    let bad_records: Vec<Vec<u8>> = vec![
        perf_record_header(9, 4),  // smaller than a header
        perf_record_header(9, 0),  // zero: would loop forever if trusted
        perf_record_header(9, 12), // not 8-aligned
        perf_record_header(9, 64), // runs past data_head
        {
            let mut r = perf_sample_record(b"abcd");
            r[8..12].copy_from_slice(&100u32.to_ne_bytes()); // raw size beyond its record
            r
        },
    ];
    for bad in bad_records {
        let fake = FakeSys::new();
        let map = events_map(&fake, 1);
        let mut rings = open(&fake, &map, &[0], 1);
        let ring = fake.ring_by_cpu(0).unwrap();
        ring.push(&perf_sample_record(b"good"));
        ring.push(&bad);
        ring.push(&perf_sample_record(b"lost with the batch"));
        assert_eq!(
            poll(&mut rings),
            vec![Got::Sample(0, padded(b"good"))],
            "{bad:?}"
        );
        assert_eq!(rings.malformed(), 1, "{bad:?}");
        assert_consumed(&ring);
        ring.push(&perf_sample_record(b"next"));
        assert_eq!(
            poll(&mut rings),
            vec![Got::Sample(0, padded(b"next"))],
            "{bad:?}"
        );
        assert_eq!(rings.malformed(), 1);
    }
}

#[test]
fn a_head_more_than_a_ring_ahead_is_malformed() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 1);
    let mut rings = open(&fake, &map, &[0], 1);
    let ring = fake.ring_by_cpu(0).unwrap();
    ring.set_data_head(ring.data_size() as u64 + 8);
    assert_eq!(poll(&mut rings), vec![]);
    assert_eq!(rings.malformed(), 1);
    assert_consumed(&ring);
}

#[test]
fn a_head_inside_a_header_is_malformed() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 1);
    let mut rings = open(&fake, &map, &[0], 1);
    let ring = fake.ring_by_cpu(0).unwrap();
    ring.push(&perf_sample_record(b"whole"));
    ring.set_data_head(ring.data_head() + 4);
    assert_eq!(poll(&mut rings), vec![Got::Sample(0, padded(b"whole"))]);
    assert_eq!(rings.malformed(), 1);
    assert_consumed(&ring);
}

#[test]
fn unknown_record_types_are_skipped_by_their_size() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 1);
    let mut rings = open(&fake, &map, &[0], 1);
    let ring = fake.ring_by_cpu(0).unwrap();
    let mut throttle = perf_record_header(5, 24);
    throttle.resize(24, 0xee);
    ring.push(&throttle);
    ring.push(&perf_sample_record(b"kept"));
    assert_eq!(poll(&mut rings), vec![Got::Sample(0, padded(b"kept"))]);
    assert_eq!(rings.malformed(), 0);
}

#[test]
fn an_empty_ring_waits_with_the_timeout_and_reads_nothing() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 1);
    let mut rings = open(&fake, &map, &[0], 1);
    fake.clear_calls();
    assert_eq!(poll(&mut rings), vec![]);
    let ring = fake.ring_by_cpu(0).unwrap();
    assert_eq!((ring.data_head(), ring.data_tail()), (0, 0));
    assert!(matches!(
        fake.calls().as_slice(),
        [Call::EpollWait {
            timeout_ms: 100,
            capacity: 1,
            ..
        }]
    ));
}

#[test]
fn waiting_data_is_read_without_waiting() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 1);
    let mut rings = open(&fake, &map, &[0], 1);
    fake.ring_by_cpu(0)
        .unwrap()
        .push(&perf_sample_record(b"ready"));
    fake.clear_calls();
    assert_eq!(poll(&mut rings).len(), 1);
    assert_eq!(fake.calls(), vec![]);
}

#[test]
fn a_full_ring_is_read_in_one_batch() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 1);
    let mut rings = open(&fake, &map, &[0], 1);
    let ring = fake.ring_by_cpu(0).unwrap();
    // Start mid-ring so the batch wraps; 128-byte events as conntrace sends them (144 each).
    ring.set_position(1000);
    let record_size = perf_sample_record(&[0; 128]).len();
    let count = ring.data_size() / record_size;
    for i in 0..count {
        ring.push(&perf_sample_record(&[i as u8; 128]));
    }
    let filler = ring.data_size() - count * record_size;
    if filler > 0 {
        let mut f = perf_record_header(99, filler as u16);
        f.resize(filler, 0);
        ring.push(&f);
    }
    assert_eq!(
        ring.data_head() - ring.data_tail(),
        ring.data_size() as u64,
        "the ring is full"
    );
    let got = poll(&mut rings);
    assert_eq!(got.len(), count);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(*g, Got::Sample(0, padded(&[i as u8; 128])));
    }
    assert_consumed(&ring);
    assert_eq!(rings.malformed(), 0);
}

#[test]
fn open_asks_for_a_bpf_output_event_ring_map_entry_and_epoll_per_cpu() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 8);
    fake.clear_calls();
    let rings = PerfRings::open(&fake, map.as_fd(), &[0, 1, 5], 4, Wakeup::EveryRecord).unwrap();
    assert_eq!(rings.cpus().collect::<Vec<_>>(), vec![0, 1, 5]);
    let calls = fake.calls();
    let Call::EpollCreate { fd: epoll } = calls[0] else {
        panic!("epoll first: {calls:?}")
    };
    let per_cpu = &calls[1..];
    assert_eq!(per_cpu.len(), 3 * 5);
    for (index, (cpu, chunk)) in [0u32, 1, 5].iter().zip(per_cpu.chunks(5)).enumerate() {
        let Call::PerfEventOpen {
            attr,
            pid,
            cpu: c,
            group_fd,
            flags,
            fd,
        } = chunk[0]
        else {
            panic!("perf_event_open first for CPU {cpu}: {chunk:?}")
        };
        assert_eq!((pid, c, group_fd, flags), (-1, *cpu as i32, -1, 8));
        assert_eq!(attr.type_, 1, "PERF_TYPE_SOFTWARE");
        assert_eq!(attr.config, 10, "PERF_COUNT_SW_BPF_OUTPUT");
        assert_eq!(attr.sample_type, 1 << 10, "PERF_SAMPLE_RAW");
        assert_eq!(attr.sample_period_or_freq, 1);
        assert_eq!(attr.wakeup_events_or_watermark, 1);
        assert_eq!(attr.flags, 0, "enabled, no watermark");
        assert_eq!(attr.size, 128);
        assert_eq!(
            chunk[1],
            Call::MmapShared {
                fd,
                len: 5 * page()
            }
        );
        assert_eq!(
            chunk[2],
            Call::MapUpdate {
                map: map.as_raw_fd(),
                key: cpu.to_ne_bytes().to_vec(),
                value: (fd as u32).to_ne_bytes().to_vec(),
                flags: 0
            }
        );
        assert_eq!(
            chunk[3],
            Call::Ioctl {
                fd,
                request: PerfEventIoctl::Enable
            }
        );
        assert_eq!(
            chunk[4],
            Call::EpollAdd {
                epoll,
                fd,
                token: index as u64
            }
        );
    }
    assert_eq!(fake.live_mappings(), 3);
    drop(rings);
    assert_eq!(fake.live_mappings(), 0);
    let unmaps = fake
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Munmap { len, .. } if *len == 5 * page()))
        .count();
    assert_eq!(unmaps, 3);
}

#[test]
fn watermark_wakeup_sets_the_flag_and_the_byte_count() {
    let attr = bpf_output_attr(Wakeup::Watermark(4096));
    assert_eq!(attr.flags, 1 << 14);
    assert_eq!(attr.wakeup_events_or_watermark, 4096);
}

#[test]
fn a_perf_event_open_failure_names_the_cpu_says_what_to_do_and_cleans_up() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 4);
    fake.fail_nth("perf_event_open", 1, libc::EACCES);
    let err = PerfRings::open(&fake, map.as_fd(), &[0, 3], 1, Wakeup::EveryRecord)
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(
        matches!(err, RingError::PerfEventOpen { cpu: 3, .. }),
        "{err:?}"
    );
    for needle in [
        "CPU 3",
        "perf_event_open failed",
        "Permission denied",
        "CAP_PERFMON",
        "perf_event_paranoid",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
    assert_eq!(fake.live_mappings(), 0, "CPU 0's ring was unmapped again");
}

#[test]
fn other_open_failures_name_the_cpu_and_the_step() {
    for (call, needle) in [
        ("mmap_shared", "cannot map the 8192-byte perf ring of CPU 0"),
        (
            "map_update",
            "cannot put CPU 0's perf ring into the events map",
        ),
        ("ioctl", "cannot enable the perf event on CPU 0"),
        ("epoll_add", "cannot add CPU 0's perf ring to the epoll set"),
        ("epoll_create", "cannot create the epoll set"),
    ] {
        if page() != 4096 && call == "mmap_shared" {
            continue;
        }
        let fake = FakeSys::new();
        let map = events_map(&fake, 1);
        fake.fail_next(call, libc::ENOMEM);
        let msg = PerfRings::open(&fake, map.as_fd(), &[0], 1, Wakeup::EveryRecord)
            .err()
            .expect(call)
            .to_string();
        assert!(msg.contains(needle), "{call}: {msg}");
        assert_eq!(fake.live_mappings(), 0, "{call}");
    }
}

#[test]
fn ring_sizes_must_be_powers_of_two_and_cpus_non_empty() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 1);
    for pages in [0, 3, 6, usize::MAX] {
        let err = PerfRings::open(&fake, map.as_fd(), &[0], pages, Wakeup::EveryRecord)
            .err()
            .unwrap();
        assert!(err.to_string().contains("power of two"), "{pages}: {err}");
    }
    let err = PerfRings::open(&fake, map.as_fd(), &[], 1, Wakeup::EveryRecord)
        .err()
        .unwrap();
    assert!(matches!(err, RingError::NoCpus));
}

#[test]
fn an_interrupted_wait_is_not_an_error_but_a_broken_one_is() {
    let fake = FakeSys::new();
    let map = events_map(&fake, 1);
    let mut rings = open(&fake, &map, &[0], 1);
    fake.fail_next("epoll_wait", libc::EINTR);
    assert_eq!(rings.poll(-1, |_| panic!("nothing to read")).unwrap(), 0);
    fake.fail_next("epoll_wait", libc::EBADF);
    let msg = rings.poll(-1, |_| {}).unwrap_err().to_string();
    assert!(
        msg.contains("waiting for ring data failed: epoll_wait failed"),
        "{msg}"
    );
}

/// The real kernel: as root the rings open and a poll with a timeout returns nothing (no
/// program writes to them); without privileges opening fails with advice. As root both paths
/// run: the second on a thread that dropped its own credentials.
#[test]
fn real_rings_open_and_poll_quietly_or_explain_the_permission_error() {
    let cpus = online_cpus(&RealSys).expect("reading the online CPUs");
    let max_cpu = *cpus.iter().max().unwrap();
    let root = crate::kernel::sys::process::euid() == 0;
    if root {
        let map = events_map(&RealSys, max_cpu + 1);
        {
            let mut rings = PerfRings::open(&RealSys, map.as_fd(), &cpus, 2, Wakeup::EveryRecord)
                .expect("as root");
            let start = std::time::Instant::now();
            let n = rings
                .poll(50, |r| panic!("no program writes here, yet got {r:?}"))
                .unwrap();
            assert_eq!(n, 0);
            assert!(
                start.elapsed() >= std::time::Duration::from_millis(40),
                "poll waited for its timeout"
            );
            assert_eq!((rings.lost(), rings.malformed()), (0, 0));
        }
        let cpus_for_thread = cpus.clone();
        std::thread::spawn(move || {
            // The raw syscall changes only this thread's credentials (glibc's setresuid would
            // change every thread's); going from uid 0 to 65534 also clears its capabilities.
            crate::kernel::sys::process::set_thread_uids(65534)
                .expect("dropping privileges on the test thread");
            assert_permission_error(&map, &cpus_for_thread);
        })
        .join()
        .expect("unprivileged thread");
    } else {
        // Without root we cannot create the map either; use a stand-in fd: perf_event_open
        // comes first and fails before the map is touched.
        let stand_in = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        assert_permission_error(&stand_in, &cpus);
    }
}

fn assert_permission_error(map: &OwnedFd, cpus: &[u32]) {
    let err = PerfRings::open(&RealSys, map.as_fd(), cpus, 2, Wakeup::EveryRecord)
        .err()
        .expect("unprivileged open must fail");
    let msg = err.to_string();
    assert!(matches!(err, RingError::PerfEventOpen { .. }), "{err:?}");
    let errno = err.sys_error().unwrap().errno;
    assert!(errno == libc::EACCES || errno == libc::EPERM, "{msg}");
    assert!(
        msg.contains("CAP_PERFMON") && msg.contains("kernel.perf_event_paranoid"),
        "{msg}"
    );
}
