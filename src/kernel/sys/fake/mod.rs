//! A scripted [`Sys`] for unit tests: no root, no kernel, fully deterministic.
//!
//! `FakeSys` records every call (see [`Call`]) so a test can assert what the code under test
//! asked the kernel for, lets a test script failures and results (errnos, a verifier log, file
//! contents, epoll readiness), and hands out real file descriptors (opened on `/dev/null`) so
//! dropping an `OwnedFd` is harmless. `mmap_shared` returns zeroed, page-aligned memory the fake
//! owns; a test writes perf records into it through [`FakeRing`], exactly where the kernel
//! would, and `epoll_wait` reports the rings that hold unread data.
//!
//! Compiled for this crate's unit tests and, with the `test-util` feature, for the fuzz targets;
//! never into the binary. `calls` is what gets recorded, `script` what a test makes happen,
//! `syscalls` the fake's answer to each `Sys` call, `ring` the fake perf rings, `records` the
//! perf records a test writes into them.

mod bpf_ring;
mod calls;
mod records;
mod ring;
mod script;
mod syscalls;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::os::fd::RawFd;

pub use bpf_ring::FakeBpfRing;
pub use calls::Call;
pub use records::{perf_lost_record, perf_record_header, perf_sample_record};
pub use ring::FakeRing;
use ring::Mapping;
use script::Script;

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    script: Script,
    mappings: Vec<Mapping>,
    /// perf event fd -> the cpu it was opened for (the latest, since fd numbers are reused).
    perf_cpu: HashMap<RawFd, i32>,
    /// epoll fd -> (fd, token) registrations, in order.
    epoll: BTreeMap<RawFd, Vec<(RawFd, u64)>>,
    /// cpu -> what a counting perf event opened for it reads (0 where not set).
    perf_counts: HashMap<i32, u64>,
}

/// The scripted fake. Single-threaded (`RefCell` inside), like the tests that use it.
#[derive(Default)]
pub struct FakeSys {
    state: RefCell<State>,
}

impl FakeSys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.borrow().calls.clone()
    }

    /// What `read_count` of a perf event opened for `cpu` returns from now on.
    pub fn set_perf_count(&self, cpu: i32, count: u64) {
        self.state.borrow_mut().perf_counts.insert(cpu, count);
    }

    /// Forgets the recorded calls (the script stays).
    pub fn clear_calls(&self) {
        self.state.borrow_mut().calls.clear();
    }

    fn record(&self, call: Call) {
        self.state.borrow_mut().calls.push(call);
    }
}

impl Drop for FakeSys {
    fn drop(&mut self) {
        for m in self.state.get_mut().mappings.drain(..) {
            // SAFETY: the region came from our own anonymous mmap of exactly `len` bytes, and
            // every FakeRing borrowing it borrowed `self`, so none outlives this drop.
            unsafe {
                libc::munmap(m.ptr.as_ptr().cast(), m.len);
            }
        }
    }
}
