//! The fake's BPF ring buffer: the two mappings of a BPF_MAP_TYPE_RINGBUF map fd laid out as
//! the kernel lays them out (kernel/bpf/ringbuf.c), which a test fills through
//! [`FakeBpfRing`] as a BPF program would, and the code under test reads like a real ring.
//!
//! The kernel maps the data area twice in a row, so a record never wraps for the reader; the
//! fake has no second mapping of the same pages, so it writes each byte at both places.

use super::ring::page_size;
use super::FakeSys;
use crate::kernel::abi::{BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT, BPF_RINGBUF_HDR_SZ};
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

impl FakeSys {
    /// The BPF ring buffer mapped from this map fd (its consumer page at offset 0 and its
    /// producer page and data at one page), if both mappings are live.
    pub fn bpf_ring_by_fd(&self, fd: RawFd) -> Option<FakeBpfRing<'_>> {
        let page = page_size();
        let (consumer, consumer_len) = self.live_mapping(fd, 0)?;
        let (producer, producer_len) = self.live_mapping(fd, page)?;
        let data_size = producer_len.checked_sub(page)? / 2;
        (consumer_len >= page && data_size > 0).then_some(FakeBpfRing {
            consumer,
            producer,
            data_size,
            _fake: std::marker::PhantomData,
        })
    }
}

/// A test's view of one fake BPF ring buffer. Writes go where the kernel would write.
pub struct FakeBpfRing<'a> {
    consumer: NonNull<u8>,
    producer: NonNull<u8>,
    data_size: usize,
    _fake: std::marker::PhantomData<&'a FakeSys>,
}

impl FakeBpfRing<'_> {
    fn position(&self, base: NonNull<u8>) -> &AtomicU64 {
        // SAFETY: the first word of a live page-aligned mapping of the fake this ring borrows;
        // the code under test touches it atomically too.
        unsafe { AtomicU64::from_ptr(base.as_ptr().cast()) }
    }

    /// Where the reader has consumed up to.
    pub fn consumer_pos(&self) -> u64 {
        self.position(self.consumer).load(Ordering::Acquire)
    }

    pub fn producer_pos(&self) -> u64 {
        self.position(self.producer).load(Ordering::Acquire)
    }

    /// The size of the data area (a power of two).
    pub fn data_size(&self) -> usize {
        self.data_size
    }

    /// Moves both positions, e.g. to just before the end of the data area so the next record
    /// wraps.
    pub fn set_position(&self, pos: u64) {
        self.position(self.consumer).store(pos, Ordering::Release);
        self.position(self.producer).store(pos, Ordering::Release);
    }

    /// Publishes `sample` as a submitted record, as bpf_ringbuf_output does.
    pub fn push(&self, sample: &[u8]) {
        self.push_with(sample, 0);
    }

    /// Publishes `sample` as [`push`](Self::push) does; returns where its header is.
    pub fn push_then_position(&self, sample: &[u8]) -> u64 {
        self.push_with(sample, 0)
    }

    /// Publishes a record its program discarded: the reader must skip it.
    pub fn push_discarded(&self, sample: &[u8]) {
        self.push_with(sample, BPF_RINGBUF_DISCARD_BIT);
    }

    /// Reserves room for `len` bytes and publishes the reservation without submitting it: the
    /// reader must stop there until [`submit_at`](Self::submit_at) clears its busy bit.
    pub fn reserve(&self, len: usize) -> u64 {
        self.push_with(&vec![0; len], BPF_RINGBUF_BUSY_BIT)
    }

    /// Submits the record reserved at `pos`.
    pub fn submit_at(&self, pos: u64) {
        let word = self.header_word(pos).load(Ordering::Acquire) & !BPF_RINGBUF_BUSY_BIT;
        self.write_header(pos, word);
    }

    /// Writes a raw header word (len and flag bits) at ring position `pos`, e.g. a corrupt one.
    pub fn write_header(&self, pos: u64, word: u32) {
        for copy in self.copies(pos) {
            // SAFETY: `copy` is inside the data area of the producer mapping (see `copies`),
            // 8-aligned (positions are), and the reader loads it atomically.
            unsafe { AtomicU32::from_ptr(self.producer.as_ptr().add(copy).cast()) }
                .store(word, Ordering::Release);
        }
    }

    /// Sets the producer position without writing anything (to publish a hand-made record).
    pub fn set_producer_pos(&self, pos: u64) {
        self.position(self.producer).store(pos, Ordering::Release);
    }

    fn header_word(&self, pos: u64) -> &AtomicU32 {
        let at = self.copies(pos)[0];
        // SAFETY: as in `write_header`.
        unsafe { AtomicU32::from_ptr(self.producer.as_ptr().add(at).cast()) }
    }

    /// The two offsets (in the producer mapping) that hold ring position `pos`.
    fn copies(&self, pos: u64) -> [usize; 2] {
        let at = page_size() + (pos as usize & (self.data_size - 1));
        [at, at + self.data_size]
    }

    fn push_with(&self, sample: &[u8], flags: u32) -> u64 {
        let pos = self.producer_pos();
        let total = (BPF_RINGBUF_HDR_SZ + sample.len()).next_multiple_of(8);
        let used = pos.wrapping_sub(self.consumer_pos()) as usize;
        assert!(
            used + total <= self.data_size,
            "FakeBpfRing: ring full (the kernel would refuse the reservation)"
        );
        for (i, &b) in sample.iter().enumerate() {
            for copy in self.copies(pos.wrapping_add((BPF_RINGBUF_HDR_SZ + i) as u64)) {
                // SAFETY: inside the producer mapping's data area (see `copies`).
                unsafe { self.producer.as_ptr().add(copy).write_volatile(b) };
            }
        }
        // The header last, as the kernel publishes a submitted record.
        let len = u32::try_from(sample.len()).expect("a sample under 4 GiB");
        self.write_header(pos, len | flags);
        self.set_producer_pos(pos.wrapping_add(total as u64));
        pos
    }
}
