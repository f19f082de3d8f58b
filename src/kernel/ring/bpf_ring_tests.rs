//! The BPF ring buffer reader against FakeSys (records written where the kernel writes them,
//! in both copies of the data area), and once against the real kernel.

use super::*;
use crate::kernel::abi::BPF_MAP_TYPE_RINGBUF;
use crate::kernel::sys::fake::{Call, FakeBpfRing, FakeSys};
use crate::kernel::sys::{MapCreate, RealSys, Sys};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

fn page() -> usize {
    crate::kernel::sys::host::page_size()
}

fn ring_map(sys: &dyn Sys, bytes: usize) -> OwnedFd {
    let req = MapCreate {
        name: "ring",
        map_type: BPF_MAP_TYPE_RINGBUF,
        key_size: 0,
        value_size: 0,
        max_entries: bytes as u32,
        flags: 0,
        btf: None,
    };
    sys.map_create(&req).expect("creating the ring map")
}

fn fake_ring<'f>(fake: &'f FakeSys, map: &OwnedFd) -> FakeBpfRing<'f> {
    fake.bpf_ring_by_fd(map.as_raw_fd()).expect("both mappings")
}

/// A one-page ring buffer map on a fresh fake, opened, and the fake kernel's side of it.
fn with_ring(test: impl FnOnce(&FakeSys, &mut BpfRing<'_>, &FakeBpfRing<'_>)) {
    let fake = FakeSys::new();
    let map = ring_map(&fake, page());
    let mut ring = BpfRing::open(&fake, map.as_fd(), page()).unwrap();
    let kernel = fake_ring(&fake, &map);
    test(&fake, &mut ring, &kernel);
}

fn poll(ring: &mut BpfRing<'_>) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let n = ring
        .poll(100, |r| match r {
            Record::Sample { cpu: None, data } => got.push(data.to_vec()),
            other => panic!("the ring buffer gives samples without a CPU, not {other:?}"),
        })
        .expect("poll");
    assert_eq!(n, got.len(), "poll's count matches the samples handed over");
    got
}

#[test]
fn records_come_out_whole_in_order_and_their_space_is_released() {
    with_ring(|_, ring, kernel| {
        kernel.push(b"first");
        kernel.push(&[7; 144]);
        kernel.push(b"third, unpadded");
        assert_eq!(
            poll(ring),
            [b"first".to_vec(), vec![7; 144], b"third, unpadded".to_vec()]
        );
        assert_eq!(kernel.consumer_pos(), kernel.producer_pos());
        // (8 + 5 -> 16) + (8 + 144 = 152) + (8 + 15 -> 24)
        assert_eq!(kernel.consumer_pos(), 16 + 152 + 24);
        assert!(poll(ring).is_empty(), "nothing twice");
        assert_eq!(ring.malformed(), 0);
    });
}

#[test]
fn a_record_across_the_end_of_the_data_area_is_read_whole() {
    with_ring(|_, ring, kernel| {
        // 16 bytes before the end, then many times round: positions only grow.
        let start = 5 * page() as u64 - 16;
        kernel.set_position(start);
        let sample: Vec<u8> = (0..100u8).collect();
        kernel.push(&sample);
        kernel.push(b"next");
        assert_eq!(poll(ring), [sample, b"next".to_vec()]);
        assert_eq!(kernel.consumer_pos(), start + 112 + 16);
    });
}

#[test]
fn a_reserved_record_holds_back_the_ones_after_it_until_submitted() {
    with_ring(|_, ring, kernel| {
        kernel.push(b"before");
        let reserved = kernel.reserve(8);
        kernel.push(b"after");
        assert_eq!(poll(ring), [b"before".to_vec()]);
        assert_eq!(
            kernel.consumer_pos(),
            reserved,
            "stopped at the busy record"
        );
        kernel.submit_at(reserved);
        assert_eq!(poll(ring), [vec![0; 8], b"after".to_vec()]);
        assert_eq!(kernel.consumer_pos(), kernel.producer_pos());
    });
}

#[test]
fn discarded_records_are_skipped() {
    with_ring(|_, ring, kernel| {
        kernel.push_discarded(b"dropped by its program");
        kernel.push(b"kept");
        assert_eq!(poll(ring), [b"kept".to_vec()]);
        assert_eq!(kernel.consumer_pos(), kernel.producer_pos());
        assert_eq!(ring.malformed(), 0);
    });
}

#[test]
fn a_length_past_what_was_published_drops_the_batch_and_is_counted() {
    with_ring(|_, ring, kernel| {
        kernel.push(b"good");
        let bad = kernel.push_then_position(b"will be corrupted");
        kernel.push(b"lost with it");
        kernel.write_header(bad, 4000);
        assert_eq!(poll(ring), [b"good".to_vec()]);
        assert_eq!(ring.malformed(), 1);
        assert_eq!(kernel.consumer_pos(), kernel.producer_pos(), "all dropped");
        // The ring goes on.
        kernel.push(b"later");
        assert_eq!(poll(ring), [b"later".to_vec()]);
    });
}

#[test]
fn a_producer_position_beyond_the_ring_is_not_trusted() {
    with_ring(|_, ring, kernel| {
        kernel.set_producer_pos(page() as u64 + 8);
        assert!(poll(ring).is_empty());
        assert_eq!(ring.malformed(), 1);
        assert_eq!(kernel.consumer_pos(), page() as u64 + 8);
    });
}

#[test]
fn opening_maps_the_consumer_page_and_the_data_twice_read_only_and_waits_on_the_map() {
    let fake = FakeSys::new();
    let size = 4 * page();
    let map = ring_map(&fake, size);
    fake.clear_calls();
    let ring = BpfRing::open(&fake, map.as_fd(), size).unwrap();
    let fd = map.as_raw_fd();
    let calls = fake.calls();
    assert!(
        calls.contains(&Call::MmapShared { fd, len: page() }),
        "{calls:?}"
    );
    assert!(
        calls.contains(&Call::MmapReadOnly {
            fd,
            len: page() + 2 * size,
            offset: page()
        }),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, Call::EpollAdd { fd: added, .. } if *added == fd)),
        "{calls:?}"
    );
    assert_eq!(fake.live_mappings(), 2);
    assert_eq!(ring.data_size(), size);
    drop(ring);
    assert_eq!(fake.live_mappings(), 0, "dropping unmaps both");
}

#[test]
fn a_failed_open_leaves_nothing_mapped_and_says_what_failed() {
    let fake = FakeSys::new();
    let map = ring_map(&fake, page());
    fake.fail_next("mmap_read_only", libc::EPERM);
    let msg = BpfRing::open(&fake, map.as_fd(), page())
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains(&format!(
            "cannot map {} bytes of the BPF ring buffer",
            3 * page()
        )),
        "{msg}"
    );
    assert_eq!(fake.live_mappings(), 0, "the consumer page was unmapped");

    fake.fail_next("epoll_add", libc::ENOMEM);
    let msg = BpfRing::open(&fake, map.as_fd(), page())
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("cannot add the BPF ring buffer to the epoll set"),
        "{msg}"
    );
    assert_eq!(fake.live_mappings(), 0);

    for bytes in [0, page() / 2, 3 * page()] {
        let msg = BpfRing::open(&fake, map.as_fd(), bytes)
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("power-of-two number of pages"), "{msg}");
    }
}

#[test]
fn a_poll_waits_only_when_nothing_is_waiting_and_an_interrupted_wait_is_no_error() {
    with_ring(|fake, ring, kernel| {
        let waits = |fake: &FakeSys| {
            fake.calls()
                .iter()
                .filter(|c| matches!(c, Call::EpollWait { .. }))
                .count()
        };
        kernel.push(b"waiting");
        assert_eq!(poll(ring).len(), 1);
        assert_eq!(waits(fake), 0, "data was waiting: no wait");
        assert!(poll(ring).is_empty());
        assert_eq!(waits(fake), 1);
        fake.fail_next("epoll_wait", libc::EINTR);
        assert!(poll(ring).is_empty());
        fake.fail_next("epoll_wait", libc::EBADF);
        let msg = ring.poll(-1, |_| {}).unwrap_err().to_string();
        assert!(msg.contains("waiting for ring data failed"), "{msg}");
    });
}

#[test]
fn ring_buffer_headers_parse_without_trusting_the_length() {
    use crate::kernel::abi::{BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT};
    assert_eq!(
        parse_ringbuf_header(144, 152),
        Ok(RingBufHeader::Sample {
            len: 144,
            total: 152
        })
    );
    assert_eq!(
        parse_ringbuf_header(5, 16),
        Ok(RingBufHeader::Sample { len: 5, total: 16 })
    );
    assert_eq!(
        parse_ringbuf_header(5 | BPF_RINGBUF_BUSY_BIT, 0),
        Ok(RingBufHeader::Busy)
    );
    assert_eq!(
        parse_ringbuf_header(5 | BPF_RINGBUF_DISCARD_BIT, 16),
        Ok(RingBufHeader::Discarded { total: 16 })
    );
    assert_eq!(
        parse_ringbuf_header(9, 16),
        Err(RecordError::RingBufTooLong {
            len: 9,
            available: 16
        })
    );
    // The largest length a word can hold, with room for it: no overflow.
    assert_eq!(
        parse_ringbuf_header(u32::MAX, usize::MAX),
        Ok(RingBufHeader::Busy)
    );
    assert_eq!(
        parse_ringbuf_header(u32::MAX >> 2, usize::MAX),
        Ok(RingBufHeader::Sample {
            len: (1 << 30) - 1,
            total: (1 << 30) + 8
        })
    );
}

/// The real kernel: as root the ring maps and a poll with a timeout returns nothing (no program
/// writes to it).
#[test]
fn a_real_ring_buffer_maps_and_polls_quietly() {
    if crate::kernel::sys::process::euid() != 0 {
        return;
    }
    let map = match RealSys.map_create(&MapCreate {
        name: "ct_test_ring",
        map_type: BPF_MAP_TYPE_RINGBUF,
        key_size: 0,
        value_size: 0,
        max_entries: (4 * page()) as u32,
        flags: 0,
        btf: None,
    }) {
        Ok(map) => map,
        // A kernel before 5.8: nothing to test.
        Err(e) if e.errno == libc::EINVAL => return,
        Err(e) => panic!("creating a ring buffer as root: {e}"),
    };
    let mut ring = BpfRing::open(&RealSys, map.as_fd(), 4 * page()).expect("as root");
    let start = std::time::Instant::now();
    let n = ring
        .poll(50, |r| panic!("no program writes here, yet got {r:?}"))
        .unwrap();
    assert_eq!(n, 0);
    assert!(start.elapsed() >= std::time::Duration::from_millis(40));
    assert_eq!(ring.malformed(), 0);
}
