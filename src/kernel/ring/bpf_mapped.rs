//! The BPF ring buffer's mappings (BPF_MAP_TYPE_RINGBUF, 5.8) and the reader's half of its
//! protocol (kernel/bpf/ringbuf.c; libbpf's ringbuf_process_ring does the same): load
//! producer_pos with Acquire, read each record's length word with Acquire (a busy one ends the
//! batch: it is reserved, not yet submitted), hand the sample over, then store consumer_pos
//! with Release so the kernel may reuse the space. The kernel maps the data area twice in a
//! row, so a record is always contiguous for the reader.

use super::record::{self, RingBufHeader};
use crate::kernel::sys::{Sys, SysError};
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// What one drain found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Samples handed to the callback.
    pub records: usize,
    /// Whether a malformed length word was met (everything published was dropped).
    pub malformed: bool,
}

pub(super) struct MappedBpfRing<'s> {
    sys: &'s dyn Sys,
    /// One page, read-write: consumer_pos in its first word.
    consumer: NonNull<u8>,
    page: usize,
    /// Read-only: producer_pos in the first word of its first page, then the data twice.
    producer: NonNull<u8>,
    producer_len: usize,
    /// A power of two, so positions wrap with a mask.
    data_size: usize,
}

impl<'s> MappedBpfRing<'s> {
    /// Maps the ring buffer behind `map` whose data area is `data_size` bytes (a power of
    /// two, a multiple of the page size, as the kernel requires of max_entries).
    pub fn map(
        sys: &'s dyn Sys,
        map: BorrowedFd<'_>,
        page: usize,
        data_size: usize,
    ) -> Result<Self, (usize, SysError)> {
        debug_assert!(data_size.is_power_of_two() && page.is_power_of_two());
        let consumer = sys.mmap_shared(map, page).map_err(|e| (page, e))?;
        let producer_len = data_size.saturating_mul(2).saturating_add(page);
        let producer = match sys.mmap_read_only(map, producer_len, page) {
            Ok(ptr) => ptr,
            Err(e) => {
                // SAFETY: exactly the mapping made above, used by nothing yet.
                unsafe { sys.munmap(consumer, page) };
                return Err((producer_len, e));
            }
        };
        Ok(MappedBpfRing {
            sys,
            consumer,
            page,
            producer,
            producer_len,
            data_size,
        })
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the first word of a page-aligned mapping that lives as long as `self`; the
        // kernel reads it atomically.
        unsafe { AtomicU64::from_ptr(self.consumer.as_ptr().cast()) }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: as for consumer_pos; the kernel writes it atomically.
        unsafe { AtomicU64::from_ptr(self.producer.as_ptr().cast()) }
    }

    /// Offset in the producer mapping of ring position `pos`.
    fn at(&self, pos: u64) -> usize {
        self.page + (pos as usize & (self.data_size - 1))
    }

    pub fn data_size(&self) -> usize {
        self.data_size
    }

    /// Whether the kernel has published records we have not consumed.
    pub fn has_data(&self) -> bool {
        self.producer_pos().load(Ordering::Acquire) != self.consumer_pos().load(Ordering::Relaxed)
    }

    /// Hands every submitted record up to the first busy one to `on_sample`, releasing each
    /// one's space after it. A malformed length word drops everything published, since the
    /// next record's start is unknown then.
    pub fn drain(&self, on_sample: &mut dyn FnMut(&[u8])) -> Drained {
        let mut done = Drained::default();
        // Only we write consumer_pos.
        let mut pos = self.consumer_pos().load(Ordering::Relaxed);
        let prod = self.producer_pos().load(Ordering::Acquire);
        if prod.wrapping_sub(pos) > self.data_size as u64 {
            // More published than the ring holds: the producer word itself is not trusted.
            done.malformed = true;
            self.consumer_pos().store(prod, Ordering::Release);
            return done;
        }
        while pos != prod {
            let at = self.at(pos);
            // SAFETY: `at` is 8-aligned (positions are) and inside the first copy of the data
            // area; the kernel stores the length word atomically when it submits.
            let word = unsafe { AtomicU32::from_ptr(self.producer.as_ptr().add(at).cast()) }
                .load(Ordering::Acquire);
            let available = prod.wrapping_sub(pos) as usize;
            let total = match record::parse_ringbuf_header(word, available) {
                Ok(RingBufHeader::Busy) => break,
                Ok(RingBufHeader::Discarded { total }) => total,
                Ok(RingBufHeader::Sample { len, total }) => {
                    // SAFETY: header + len <= available <= data_size bytes from `at`, which is
                    // inside the first copy: they end within the second, so inside the
                    // mapping. The kernel does not touch a submitted record before we move
                    // consumer_pos past it, which happens after the callback returns.
                    let sample = unsafe {
                        std::slice::from_raw_parts(
                            self.producer.as_ptr().add(at + record::RINGBUF_HEADER_SIZE),
                            len,
                        )
                    };
                    on_sample(sample);
                    done.records += 1;
                    total
                }
                Err(_) => {
                    done.malformed = true;
                    pos = prod;
                    break;
                }
            };
            pos = pos.wrapping_add(total as u64);
            self.consumer_pos().store(pos, Ordering::Release);
        }
        self.consumer_pos().store(pos, Ordering::Release);
        done
    }
}

impl Drop for MappedBpfRing<'_> {
    fn drop(&mut self) {
        // SAFETY: both are exactly what `map` got from the two mmap calls, and no slice into
        // them outlives a drain, which borrows `self`.
        unsafe {
            self.sys.munmap(self.producer, self.producer_len);
            self.sys.munmap(self.consumer, self.page);
        }
    }
}
