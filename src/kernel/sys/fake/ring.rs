//! The fake's perf rings: memory laid out as the kernel lays out `mmap(perf_fd)`, which a test
//! fills through [`FakeRing`] and the code under test reads like a real ring.

use super::FakeSys;
use crate::kernel::sys::{SysError, SysResult};
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::kernel::abi::{
    PERF_MMAP_DATA_HEAD as DATA_HEAD_OFFSET, PERF_MMAP_DATA_OFFSET as DATA_OFFSET_OFFSET,
    PERF_MMAP_DATA_SIZE as DATA_SIZE_OFFSET, PERF_MMAP_DATA_TAIL as DATA_TAIL_OFFSET,
};

/// A region handed out by `mmap_shared`. The fake keeps it alive until the fake itself drops,
/// even after `munmap`, so a `FakeRing` a test still holds never dangles.
pub(super) struct Mapping {
    pub(super) ptr: NonNull<u8>,
    pub(super) len: usize,
    pub(super) fd: RawFd,
    /// The file offset it maps from (a BPF ring buffer's producer part is at one page).
    pub(super) offset: usize,
    pub(super) unmapped: bool,
}

impl FakeSys {
    /// Zeroed, page-aligned memory standing in for `len` bytes of `fd` at `offset`, kept until
    /// the fake drops.
    pub(super) fn map_anonymous(
        &self,
        fd: RawFd,
        len: usize,
        offset: usize,
    ) -> SysResult<NonNull<u8>> {
        if len == 0 {
            return Err(SysError::new("mmap", libc::EINVAL));
        }
        // SAFETY: a fresh private anonymous mapping at an address the kernel picks; it aliases
        // nothing. Anonymous memory is zeroed and page-aligned, like a fresh ring.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(SysError::last("mmap"));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(SysError::new("mmap", libc::ENOMEM))?;
        self.state.borrow_mut().mappings.push(Mapping {
            ptr,
            len,
            fd,
            offset,
            unmapped: false,
        });
        Ok(ptr)
    }

    /// The live mapping of `fd` at file offset `offset`, if any (the latest).
    pub(super) fn live_mapping(&self, fd: RawFd, offset: usize) -> Option<(NonNull<u8>, usize)> {
        let state = self.state.borrow();
        let m = state
            .mappings
            .iter()
            .rev()
            .find(|m| m.fd == fd && m.offset == offset && !m.unmapped)?;
        Some((m.ptr, m.len))
    }

    /// The ring `mmap_shared` gave out for this perf event fd, if any.
    pub fn ring_by_fd(&self, fd: RawFd) -> Option<FakeRing<'_>> {
        let (ptr, len) = self.live_mapping(fd, 0)?;
        Some(FakeRing::new(ptr, len))
    }

    /// The live ring of the perf event opened for `cpu`, if any.
    pub fn ring_by_cpu(&self, cpu: u32) -> Option<FakeRing<'_>> {
        let fd = {
            let state = self.state.borrow();
            let mut fds = state
                .perf_cpu
                .iter()
                .filter(|(_, &c)| c == cpu as i32)
                .map(|(&fd, _)| fd);
            let live = |fd: &RawFd| state.mappings.iter().any(|m| m.fd == *fd && !m.unmapped);
            fds.find(live)?
        };
        self.ring_by_fd(fd)
    }

    /// How many `mmap_shared` regions have not been `munmap`ed yet.
    pub fn live_mappings(&self) -> usize {
        self.state
            .borrow()
            .mappings
            .iter()
            .filter(|m| !m.unmapped)
            .count()
    }

    pub(super) fn ring_has_data(&self, fd: RawFd) -> bool {
        self.ring_by_fd(fd)
            .is_some_and(|r| r.data_head() != r.data_tail())
    }
}

/// The real page size, as the ring code under test sees it.
pub(super) use crate::kernel::sys::host::page_size;

/// A test's view of one fake perf ring: the metadata page then the data area, laid out as the
/// kernel lays out `mmap(perf_fd)`. Writes go where the kernel would write.
pub struct FakeRing<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _fake: std::marker::PhantomData<&'a FakeSys>,
}

impl FakeRing<'_> {
    /// A view of `len` bytes at `ptr`, which must be a live mapping of the fake the ring
    /// borrows.
    pub(super) fn new(ptr: NonNull<u8>, len: usize) -> Self {
        FakeRing {
            ptr,
            len,
            _fake: std::marker::PhantomData,
        }
    }

    /// Says where the data area starts and how big it is, as the kernel does (4.1+).
    pub(super) fn set_data_area(&self, offset: u64, size: u64) {
        self.word(DATA_OFFSET_OFFSET)
            .store(offset, Ordering::Relaxed);
        self.word(DATA_SIZE_OFFSET).store(size, Ordering::Relaxed);
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(
            offset.is_multiple_of(8) && offset + 8 <= self.len,
            "FakeRing: word at {offset} outside the {}-byte ring",
            self.len
        );
        // SAFETY: in bounds and 8-aligned (checked above; the mapping is page-aligned); the
        // memory lives as long as the FakeSys this ring borrows; everyone who touches the
        // head/tail words does so atomically, as with the real kernel.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(offset).cast()) }
    }

    /// Total mapped length, metadata page included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Size of the data area (everything after the first page).
    pub fn data_size(&self) -> usize {
        self.len.saturating_sub(page_size())
    }

    pub fn data_head(&self) -> u64 {
        self.word(DATA_HEAD_OFFSET).load(Ordering::Acquire)
    }

    pub fn data_tail(&self) -> u64 {
        self.word(DATA_TAIL_OFFSET).load(Ordering::Acquire)
    }

    pub fn set_data_head(&self, head: u64) {
        self.word(DATA_HEAD_OFFSET).store(head, Ordering::Release);
    }

    /// Moves both head and tail, e.g. to just before the end of the data area so the next
    /// record wraps.
    pub fn set_position(&self, pos: u64) {
        self.word(DATA_TAIL_OFFSET).store(pos, Ordering::Release);
        self.word(DATA_HEAD_OFFSET).store(pos, Ordering::Release);
    }

    /// Copies `bytes` into the data area at ring position `pos` (wrapping at its end) without
    /// publishing them.
    pub fn write_at(&self, pos: u64, bytes: &[u8]) {
        let size = self.data_size();
        assert!(
            size > 0 && bytes.len() <= size,
            "FakeRing: {} bytes do not fit a {size}-byte data area",
            bytes.len()
        );
        let data = page_size();
        for (i, &b) in bytes.iter().enumerate() {
            let at = data + ((pos as usize).wrapping_add(i) % size);
            // SAFETY: `at` is inside the data area of our mapping (page + (x % size) < len).
            unsafe { self.ptr.as_ptr().add(at).write_volatile(b) };
        }
    }

    /// Writes `bytes` at data_head and advances data_head past them, as the kernel publishes a
    /// record. Panics if the reader has not made room (the kernel would count it lost instead).
    pub fn push(&self, bytes: &[u8]) {
        let head = self.data_head();
        let used = head.wrapping_sub(self.data_tail());
        assert!(
            used + bytes.len() as u64 <= self.data_size() as u64,
            "FakeRing: ring full"
        );
        self.write_at(head, bytes);
        self.set_data_head(head.wrapping_add(bytes.len() as u64));
    }
}
