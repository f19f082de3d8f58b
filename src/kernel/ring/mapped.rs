//! One CPU's mmap'd perf ring and the reader's half of the kernel protocol
//! (tools/include/linux/ring_buffer.h; libbpf's perf_event_read_simple does the same):
//! load data_head with Acquire, read the records between data_tail and it, then store
//! data_tail with Release so the kernel may reuse the space. One load and one store per batch.

use super::record::{self, Record, HEADER_SIZE};
use crate::kernel::abi::{PERF_MMAP_DATA_HEAD, PERF_MMAP_DATA_TAIL};
use crate::kernel::sys::{Sys, SysError};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// What one drain found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Records handed to the callback (samples and lost notices).
    pub records: usize,
    /// Sum of the counts in LOST records.
    pub lost: u64,
    /// Whether the batch held a malformed record (the rest of the batch was dropped).
    pub malformed: bool,
}

pub(super) struct MappedRing<'s> {
    sys: &'s dyn Sys,
    base: NonNull<u8>,
    mmap_len: usize,
    /// Where the data area starts: one page in.
    data_offset: usize,
    /// A power of two, so positions wrap with a mask.
    data_size: usize,
    /// Declared after the mapping fields; dropped after `Drop::drop` unmapped the ring.
    fd: OwnedFd,
}

impl<'s> MappedRing<'s> {
    /// Maps `page_size * (1 + data_pages)` bytes of `fd`. `data_pages` must be a power of two.
    pub fn map(
        sys: &'s dyn Sys,
        fd: OwnedFd,
        page_size: usize,
        data_pages: usize,
    ) -> Result<Self, (usize, SysError)> {
        debug_assert!(data_pages.is_power_of_two() && page_size.is_power_of_two());
        let data_size = page_size.saturating_mul(data_pages);
        let mmap_len = data_size.saturating_add(page_size);
        let base = sys
            .mmap_shared(fd.as_fd(), mmap_len)
            .map_err(|e| (mmap_len, e))?;
        Ok(MappedRing {
            sys,
            base,
            mmap_len,
            data_offset: page_size,
            data_size,
            fd,
        })
    }

    pub fn data_size(&self) -> usize {
        self.data_size
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: offset + 8 <= one page <= mmap_len and 8-aligned in a page-aligned mapping
        // that lives as long as `self`; the kernel accesses these words atomically too.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    /// Whether the kernel has published records we have not consumed.
    pub fn has_data(&self) -> bool {
        self.word(PERF_MMAP_DATA_HEAD).load(Ordering::Acquire)
            != self.word(PERF_MMAP_DATA_TAIL).load(Ordering::Relaxed)
    }

    /// Copies `out.len()` bytes starting at ring position `pos`, across the end if need be.
    /// Callers keep `out.len() <= data_size` and the bytes inside the published span.
    fn copy_out(&self, pos: u64, out: &mut [u8]) {
        let start = (pos as usize) & (self.data_size - 1);
        let first = out.len().min(self.data_size - start);
        let (a, b) = out.split_at_mut(first);
        // SAFETY: start + first <= data_size and b.len() <= start (as out.len() <= data_size),
        // so both source ranges lie in the data area; the kernel does not write the published
        // span [tail, head) until we move data_tail, so nothing changes under the copy.
        unsafe {
            let data = self.base.as_ptr().add(self.data_offset);
            std::ptr::copy_nonoverlapping(data.add(start), a.as_mut_ptr(), a.len());
            std::ptr::copy_nonoverlapping(data, b.as_mut_ptr(), b.len());
        }
    }

    /// The `len` bytes at ring position `pos`, if they do not cross the end of the ring.
    fn contiguous(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let start = (pos as usize) & (self.data_size - 1);
        if len > self.data_size - start {
            return None;
        }
        // SAFETY: [start, start + len) is inside the data area (checked above) and inside the
        // published span, which the kernel leaves alone until we store data_tail; the slice
        // cannot outlive the drain that stores it, since callbacks get it for one call only.
        Some(unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(self.data_offset + start), len)
        })
    }

    /// Hands every published record to `on_record`, then releases their space to the kernel.
    /// A malformed record ends the batch: everything up to data_head is dropped, because once
    /// one size is wrong the next record's start is unknown.
    pub fn drain(
        &self,
        cpu: u32,
        scratch: &mut Vec<u8>,
        on_record: &mut dyn FnMut(Record<'_>),
    ) -> Drained {
        let head = self.word(PERF_MMAP_DATA_HEAD).load(Ordering::Acquire);
        // Only we write data_tail.
        let tail = self.word(PERF_MMAP_DATA_TAIL).load(Ordering::Relaxed);
        let mut done = Drained::default();
        if head == tail {
            return done;
        }
        let mut pos = tail;
        if head.wrapping_sub(tail) > self.data_size as u64 {
            // More published than the ring holds: the head word itself is not to be trusted.
            done.malformed = true;
            pos = head;
        }
        while pos != head {
            let available = head.wrapping_sub(pos) as usize;
            match self.next_record(cpu, pos, available, scratch) {
                Ok((size, rec)) => {
                    if let Record::Lost { count, .. } = rec {
                        done.lost = done.lost.saturating_add(count);
                    }
                    on_record(rec);
                    done.records += 1;
                    pos = pos.wrapping_add(size as u64);
                }
                Err(record::RecordError::UnknownType { size, .. }) => {
                    pos = pos.wrapping_add(size as u64)
                }
                Err(_) => {
                    done.malformed = true;
                    pos = head;
                }
            }
        }
        self.word(PERF_MMAP_DATA_TAIL).store(pos, Ordering::Release);
        done
    }

    /// Parses the record at `pos`, copying it into `scratch` if it wraps. Returns its size.
    fn next_record<'a>(
        &'a self,
        cpu: u32,
        pos: u64,
        available: usize,
        scratch: &'a mut Vec<u8>,
    ) -> Result<(usize, Record<'a>), record::RecordError> {
        if available < HEADER_SIZE {
            return Err(record::RecordError::ShortHeader { len: available });
        }
        // The header itself may wrap, so it is always copied (8 bytes).
        let mut header = [0u8; HEADER_SIZE];
        self.copy_out(pos, &mut header);
        let size = record::parse_header(&header)?.size;
        if size > available {
            return Err(record::RecordError::Truncated { size, available });
        }
        let bytes = match self.contiguous(pos, size) {
            Some(bytes) => bytes,
            None => {
                // Reused across records: it grows to the largest wrapped record, then stays.
                scratch.clear();
                scratch.resize(size, 0);
                self.copy_out(pos, scratch);
                scratch
            }
        };
        record::parse_record(cpu, bytes).map(|rec| (size, rec))
    }
}

impl Drop for MappedRing<'_> {
    fn drop(&mut self) {
        // SAFETY: base/mmap_len are exactly what mmap_shared returned in `map`, and no slice
        // into the ring outlives a drain, which borrows `self`.
        unsafe { self.sys.munmap(self.base, self.mmap_len) };
    }
}
