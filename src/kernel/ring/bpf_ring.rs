//! The BPF ring buffer (BPF_MAP_TYPE_RINGBUF, 5.8): one ring all CPUs write to, in the order
//! they reserve, with no per-record perf header; and waiting on it.

use super::bpf_mapped::MappedBpfRing;
use super::rings::wait;
use super::{Record, RingError};
use crate::kernel::sys::{host, Sys};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The ring behind one BPF_MAP_TYPE_RINGBUF map, mapped and in an epoll set. Dropping it
/// unmaps the ring; the mapping held the map alive until then.
pub struct BpfRing<'s> {
    sys: &'s dyn Sys,
    ring: MappedBpfRing<'s>,
    epoll: OwnedFd,
    tokens: [u64; 1],
    malformed: u64,
}

impl<'s> BpfRing<'s> {
    /// Maps the ring buffer `map` whose max_entries (its data area) is `data_size` bytes and
    /// adds it to an epoll set. Any failure undoes what was done (drops).
    pub fn open(
        sys: &'s dyn Sys,
        map: BorrowedFd<'_>,
        data_size: usize,
    ) -> Result<Self, RingError> {
        let page = host::page_size();
        if !data_size.is_power_of_two() || data_size < page {
            return Err(RingError::BadBpfRingSize { bytes: data_size });
        }
        let epoll = sys
            .epoll_create()
            .map_err(|err| RingError::EpollCreate { err })?;
        let ring = MappedBpfRing::map(sys, map, page, data_size)
            .map_err(|(bytes, err)| RingError::BpfRingMmap { bytes, err })?;
        sys.epoll_add(epoll.as_fd(), map, 0)
            .map_err(|err| RingError::BpfRingEpollAdd { err })?;
        Ok(BpfRing {
            sys,
            ring,
            epoll,
            tokens: [0],
            malformed: 0,
        })
    }

    /// Waits up to `timeout_ms` (-1: forever) for data unless some is already waiting, then
    /// drains the ring once. Returns how many records it handed over. An interrupted wait
    /// (EINTR) is not an error.
    pub fn poll(
        &mut self,
        timeout_ms: i32,
        mut on_record: impl FnMut(Record<'_>),
    ) -> Result<usize, RingError> {
        if !self.ring.has_data() {
            wait(self.sys, self.epoll.as_fd(), &mut self.tokens, timeout_ms)?;
        }
        Ok(self.drain(&mut on_record))
    }

    /// Drains the ring once without waiting.
    pub fn drain(&mut self, mut on_record: impl FnMut(Record<'_>)) -> usize {
        let done = self
            .ring
            .drain(&mut |data| on_record(Record::Sample { cpu: None, data }));
        self.malformed += u64::from(done.malformed);
        done.records
    }

    /// Batches dropped because they held a malformed record.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// The size of its data area.
    pub fn data_size(&self) -> usize {
        self.ring.data_size()
    }
}
