//! The fake's own tests: what it records, how scripts land, how rings and epoll agree.

use super::ring::page_size;
use super::*;
use crate::kernel::sys::{MapCreate, PerfEventAttr, ProgLoad, Sys, SysError};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

#[test]
fn records_calls_and_hands_out_distinct_real_fds() {
    let fake = FakeSys::new();
    let req = MapCreate {
        name: "events",
        map_type: 4,
        key_size: 4,
        value_size: 4,
        max_entries: 2,
        flags: 0,
        btf: None,
    };
    let a = fake.map_create(&req).unwrap();
    let b = fake.map_create(&req).unwrap();
    assert_ne!(a.as_raw_fd(), b.as_raw_fd());
    fake.map_update(a.as_fd(), &1u32.to_ne_bytes(), &7u32.to_ne_bytes(), 0)
        .unwrap();
    let calls = fake.calls();
    assert_eq!(calls.len(), 3);
    assert!(
        matches!(&calls[0], Call::MapCreate { name, map_type: 4, fd, .. } if name == "events" && *fd == a.as_raw_fd())
    );
    assert_eq!(
        calls[2],
        Call::MapUpdate {
            map: a.as_raw_fd(),
            key: vec![1, 0, 0, 0],
            value: vec![7, 0, 0, 0],
            flags: 0
        }
    );
}

#[test]
fn scripted_failures_hit_the_right_call() {
    let fake = FakeSys::new();
    fake.fail_nth("perf_event_open", 1, libc::EACCES);
    let attr = PerfEventAttr::default();
    assert!(fake.perf_event_open(&attr, -1, 0, -1, 0).is_ok());
    let err = fake.perf_event_open(&attr, -1, 1, -1, 0).unwrap_err();
    assert_eq!(err, SysError::new("perf_event_open", libc::EACCES));
    assert!(fake.perf_event_open(&attr, -1, 2, -1, 0).is_ok());
    assert!(matches!(
        fake.calls()[1],
        Call::PerfEventOpen { cpu: 1, fd: -1, .. }
    ));
}

#[test]
fn verifier_log_is_copied_truncated_and_terminated() {
    let fake = FakeSys::new();
    fake.set_verifier_log("R1 invalid mem access");
    fake.fail_next("prog_load", libc::EACCES);
    let req = ProgLoad {
        name: "p",
        prog_type: 2,
        insns: &[0x95],
        license: "GPL",
        kern_version: 0,
        expected_attach_type: 0,
        attach_btf_id: 0,
    };
    let mut log = [0xffu8; 8];
    assert_eq!(
        fake.prog_load(&req, &mut log).unwrap_err().errno,
        libc::EACCES
    );
    assert_eq!(&log, b"R1 inva\0");
    assert!(
        matches!(&fake.calls()[0], Call::ProgLoad { insns, log_size: 8, .. } if insns == &[0x95])
    );
}

#[test]
fn files_are_scripted_by_path() {
    let fake = FakeSys::new();
    fake.set_file("/sys/devices/system/cpu/online", "0-1\n");
    assert_eq!(
        fake.read_file(Path::new("/sys/devices/system/cpu/online"))
            .unwrap(),
        b"0-1\n"
    );
    assert_eq!(
        fake.read_file(Path::new("/nope")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
#[should_panic(expected = "no Sys call named")]
fn unknown_call_names_are_rejected() {
    FakeSys::new().fail_next("prog_lod", libc::EPERM);
}

#[test]
fn rings_report_readiness_through_epoll() {
    let fake = FakeSys::new();
    let perf = fake
        .perf_event_open(&PerfEventAttr::default(), -1, 3, -1, 0)
        .unwrap();
    let len = 3 * page_size();
    let ptr = fake.mmap_shared(perf.as_fd(), len).unwrap();
    let ep = fake.epoll_create().unwrap();
    fake.epoll_add(ep.as_fd(), perf.as_fd(), 42).unwrap();
    let mut tokens = [0u64; 4];
    assert_eq!(fake.epoll_wait(ep.as_fd(), &mut tokens, 10).unwrap(), 0);

    let ring = fake.ring_by_cpu(3).unwrap();
    assert_eq!(ring.data_size(), 2 * page_size());
    ring.push(&perf_lost_record(1, 5));
    assert_eq!(ring.data_head(), 24);
    assert_eq!(fake.epoll_wait(ep.as_fd(), &mut tokens, 10).unwrap(), 1);
    assert_eq!(tokens[0], 42);

    fake.script_epoll_wait(&[7, 8]);
    assert_eq!(
        fake.epoll_wait(ep.as_fd(), &mut tokens[..1], 10).unwrap(),
        1
    );
    assert_eq!(tokens[0], 7);

    assert_eq!(fake.live_mappings(), 1);
    // SAFETY: ptr/len came from this mmap_shared; `ring` is not used afterwards.
    unsafe { fake.munmap(ptr, len) };
    assert_eq!(fake.live_mappings(), 0);
    assert!(fake.ring_by_cpu(3).is_none());
}

#[test]
fn sample_records_are_padded_to_eight_bytes() {
    let rec = perf_sample_record(&[1, 2, 3]);
    assert_eq!(rec.len(), 16);
    assert_eq!(u16::from_ne_bytes([rec[6], rec[7]]), 16);
    assert_eq!(u32::from_ne_bytes([rec[8], rec[9], rec[10], rec[11]]), 4);
    assert_eq!(&rec[12..], &[1, 2, 3, 0]);
}
