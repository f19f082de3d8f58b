//! A scripted [`Sys`] for unit tests: no root, no kernel, fully deterministic.
//!
//! `FakeSys` records every call (see [`Call`]) so a test can assert what the code under test
//! asked the kernel for, lets a test script failures and results (errnos, a verifier log, file
//! contents, epoll readiness), and hands out real file descriptors (opened on `/dev/null`) so
//! dropping an `OwnedFd` is harmless. `mmap_shared` returns zeroed, page-aligned memory the fake
//! owns; a test writes perf records into it through [`FakeRing`], exactly where the kernel
//! would, and `epoll_wait` reports the rings that hold unread data.
//!
//! Always compiled (it is small) so integration tests and fuzz targets can use it too.

use super::{MapCreate, PerfEventAttr, ProgLoad, Sys, SysError, SysResult};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Offsets in `struct perf_event_mmap_page` (include/uapi/linux/perf_event.h).
const DATA_HEAD_OFFSET: usize = 1024;
const DATA_TAIL_OFFSET: usize = 1032;
const DATA_OFFSET_OFFSET: usize = 1040;
const DATA_SIZE_OFFSET: usize = 1048;

/// One call the code under test made, with its arguments (copied) and, where the fake created
/// a descriptor, its number (`fd`) so tests can follow it into later calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    MapCreate {
        name: String,
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        flags: u32,
        fd: RawFd,
    },
    MapUpdate {
        map: RawFd,
        key: Vec<u8>,
        value: Vec<u8>,
        flags: u64,
    },
    MapLookup {
        map: RawFd,
        key: Vec<u8>,
    },
    ProgLoad {
        name: String,
        prog_type: u32,
        insns: Vec<u64>,
        license: String,
        kern_version: u32,
        log_size: usize,
        fd: RawFd,
    },
    PerfEventOpen {
        attr: PerfEventAttr,
        pid: i32,
        cpu: i32,
        group_fd: i32,
        flags: u64,
        fd: RawFd,
    },
    Ioctl {
        fd: RawFd,
        request: u64,
        arg: u64,
    },
    MmapShared {
        fd: RawFd,
        len: usize,
    },
    Munmap {
        fd: RawFd,
        len: usize,
    },
    EpollCreate {
        fd: RawFd,
    },
    EpollAdd {
        epoll: RawFd,
        fd: RawFd,
        token: u64,
    },
    EpollWait {
        epoll: RawFd,
        capacity: usize,
        timeout_ms: i32,
    },
    Mount {
        source: String,
        target: PathBuf,
        fstype: String,
    },
    ReadFile {
        path: PathBuf,
    },
    WriteFile {
        path: PathBuf,
        data: Vec<u8>,
        append: bool,
    },
}

/// The names `fail_next`/`fail_nth`/`fail_always` accept: one per `Sys` method.
const CALL_NAMES: [&str; 14] = [
    "map_create",
    "map_update",
    "map_lookup",
    "prog_load",
    "perf_event_open",
    "ioctl",
    "mmap_shared",
    "munmap",
    "epoll_create",
    "epoll_add",
    "epoll_wait",
    "mount",
    "read_file",
    "write_file",
];

/// A region handed out by `mmap_shared`. The fake keeps it alive until the fake itself drops,
/// even after `munmap`, so a `FakeRing` a test still holds never dangles.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    fd: RawFd,
    unmapped: bool,
}

#[derive(Default)]
struct Script {
    /// Per call name: (calls still to let through, errno) pairs.
    failures: HashMap<&'static str, Vec<(usize, i32)>>,
    always: HashMap<&'static str, i32>,
    verifier_log: Option<Vec<u8>>,
    files: HashMap<PathBuf, Vec<u8>>,
    epoll_results: VecDeque<Vec<u64>>,
    /// Values the next map_lookup calls copy out, in order (zeros when none is left).
    lookup_values: VecDeque<Vec<u8>>,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    script: Script,
    mappings: Vec<Mapping>,
    /// perf event fd -> the cpu it was opened for (the latest, since fd numbers are reused).
    perf_cpu: HashMap<RawFd, i32>,
    /// epoll fd -> (fd, token) registrations, in order.
    epoll: BTreeMap<RawFd, Vec<(RawFd, u64)>>,
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

    /// Forgets the recorded calls (the script stays).
    pub fn clear_calls(&self) {
        self.state.borrow_mut().calls.clear();
    }

    /// The next call of this kind fails with `errno`.
    /// `call` is a `Sys` method name such as `"prog_load"`; an unknown name panics (a typo in a
    /// test must not silently script nothing).
    pub fn fail_next(&self, call: &str, errno: i32) {
        self.fail_nth(call, 0, errno);
    }

    /// The `n`-th (0-based) future call of this kind fails with `errno`; the ones before succeed.
    pub fn fail_nth(&self, call: &str, n: usize, errno: i32) {
        let name = call_name(call);
        self.state
            .borrow_mut()
            .script
            .failures
            .entry(name)
            .or_default()
            .push((n, errno));
    }

    /// Every future call of this kind fails with `errno`.
    pub fn fail_always(&self, call: &str, errno: i32) {
        let name = call_name(call);
        self.state.borrow_mut().script.always.insert(name, errno);
    }

    /// Text `prog_load` copies into the caller's log buffer (truncated, NUL-terminated), on
    /// success and failure alike, as the kernel does with log_level 1.
    pub fn set_verifier_log(&self, text: &str) {
        self.state.borrow_mut().script.verifier_log = Some(text.as_bytes().to_vec());
    }

    /// What `read_file(path)` returns; unknown paths give `NotFound`.
    pub fn set_file(&self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) {
        self.state
            .borrow_mut()
            .script
            .files
            .insert(path.into(), contents.into());
    }

    /// The next `epoll_wait` reports exactly these tokens (truncated to the caller's buffer)
    /// instead of the rings that hold data.
    pub fn script_epoll_wait(&self, tokens: &[u64]) {
        self.state
            .borrow_mut()
            .script
            .epoll_results
            .push_back(tokens.to_vec());
    }

    /// The next `map_lookup` copies out this value (then zeros once the queue is empty).
    pub fn script_map_lookup(&self, value: &[u8]) {
        self.state
            .borrow_mut()
            .script
            .lookup_values
            .push_back(value.to_vec());
    }

    /// The ring `mmap_shared` gave out for this perf event fd, if any.
    pub fn ring_by_fd(&self, fd: RawFd) -> Option<FakeRing<'_>> {
        let state = self.state.borrow();
        let m = state
            .mappings
            .iter()
            .rev()
            .find(|m| m.fd == fd && !m.unmapped)?;
        Some(FakeRing {
            ptr: m.ptr,
            len: m.len,
            _fake: std::marker::PhantomData,
        })
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

    fn record(&self, call: Call) {
        self.state.borrow_mut().calls.push(call);
    }

    /// Consumes the script for one call of `name`: `Err(errno)` if it is due to fail.
    fn scripted(&self, name: &'static str) -> Result<(), i32> {
        let mut state = self.state.borrow_mut();
        if let Some(&errno) = state.script.always.get(name) {
            return Err(errno);
        }
        let Some(list) = state.script.failures.get_mut(name) else {
            return Ok(());
        };
        let due = list.iter().position(|&(left, _)| left == 0);
        let result = match due {
            Some(i) => Err(list.remove(i).1),
            None => Ok(()),
        };
        // Only the entries still waiting count this call, and only if it went through.
        if result.is_ok() {
            for entry in list.iter_mut() {
                entry.0 -= 1;
            }
        }
        result
    }

    fn check(&self, name: &'static str, call: &'static str) -> SysResult<()> {
        self.scripted(name)
            .map_err(|errno| SysError::new(call, errno))
    }

    fn ring_has_data(&self, fd: RawFd) -> bool {
        self.ring_by_fd(fd)
            .is_some_and(|r| r.data_head() != r.data_tail())
    }
}

fn call_name(call: &str) -> &'static str {
    match CALL_NAMES.iter().find(|&&n| n == call) {
        Some(n) => n,
        None => panic!("FakeSys: no Sys call named {call:?}; known: {CALL_NAMES:?}"),
    }
}

/// A real, harmless descriptor for the code under test to own and close.
fn new_fd() -> OwnedFd {
    match File::options().read(true).write(true).open("/dev/null") {
        Ok(f) => OwnedFd::from(f),
        Err(e) => panic!("FakeSys: cannot open /dev/null for a stand-in descriptor: {e}"),
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the process; no memory is involved.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
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

impl Sys for FakeSys {
    fn map_create(&self, req: &MapCreate<'_>) -> SysResult<OwnedFd> {
        let result = self
            .check("map_create", "bpf(BPF_MAP_CREATE)")
            .map(|_| new_fd());
        self.record(Call::MapCreate {
            name: req.name.to_string(),
            map_type: req.map_type,
            key_size: req.key_size,
            value_size: req.value_size,
            max_entries: req.max_entries,
            flags: req.flags,
            fd: result.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
        });
        result
    }

    fn map_update(
        &self,
        map: BorrowedFd<'_>,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> SysResult<()> {
        self.record(Call::MapUpdate {
            map: map.as_raw_fd(),
            key: key.to_vec(),
            value: value.to_vec(),
            flags,
        });
        self.check("map_update", "bpf(BPF_MAP_UPDATE_ELEM)")
    }

    fn map_lookup(&self, map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> SysResult<()> {
        self.record(Call::MapLookup {
            map: map.as_raw_fd(),
            key: key.to_vec(),
        });
        self.check("map_lookup", "bpf(BPF_MAP_LOOKUP_ELEM)")?;
        value.fill(0);
        if let Some(v) = self.state.borrow_mut().script.lookup_values.pop_front() {
            let n = v.len().min(value.len());
            value[..n].copy_from_slice(&v[..n]);
        }
        Ok(())
    }

    fn prog_load(&self, req: &ProgLoad<'_>, log: &mut [u8]) -> SysResult<OwnedFd> {
        if let Some(text) = &self.state.borrow().script.verifier_log {
            if let Some(room) = log.len().checked_sub(1) {
                let n = text.len().min(room);
                log[..n].copy_from_slice(&text[..n]);
                log[n] = 0;
            }
        }
        let result = self
            .check("prog_load", "bpf(BPF_PROG_LOAD)")
            .map(|_| new_fd());
        self.record(Call::ProgLoad {
            name: req.name.to_string(),
            prog_type: req.prog_type,
            insns: req.insns.to_vec(),
            license: req.license.to_string(),
            kern_version: req.kern_version,
            log_size: log.len(),
            fd: result.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
        });
        result
    }

    fn perf_event_open(
        &self,
        attr: &PerfEventAttr,
        pid: i32,
        cpu: i32,
        group_fd: i32,
        flags: u64,
    ) -> SysResult<OwnedFd> {
        let result = self
            .check("perf_event_open", "perf_event_open")
            .map(|_| new_fd());
        let fd = result.as_ref().map_or(-1, |fd| fd.as_raw_fd());
        if fd >= 0 {
            self.state.borrow_mut().perf_cpu.insert(fd, cpu);
        }
        self.record(Call::PerfEventOpen {
            attr: *attr,
            pid,
            cpu,
            group_fd,
            flags,
            fd,
        });
        result
    }

    fn ioctl(&self, fd: BorrowedFd<'_>, request: u64, arg: u64) -> SysResult<i32> {
        self.record(Call::Ioctl {
            fd: fd.as_raw_fd(),
            request,
            arg,
        });
        self.check("ioctl", "ioctl").map(|_| 0)
    }

    fn mmap_shared(&self, fd: BorrowedFd<'_>, len: usize) -> SysResult<NonNull<u8>> {
        let fd = fd.as_raw_fd();
        self.record(Call::MmapShared { fd, len });
        self.check("mmap_shared", "mmap")?;
        if len == 0 {
            return Err(SysError::new("mmap", libc::EINVAL));
        }
        // SAFETY: a fresh private anonymous mapping at an address the kernel picks; it aliases
        // nothing. Anonymous memory is zeroed and page-aligned, like a fresh perf ring.
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
        let page = page_size();
        if len > page {
            // Like the kernel (4.1+), say where the data area starts and how big it is.
            let ring = FakeRing {
                ptr,
                len,
                _fake: std::marker::PhantomData,
            };
            ring.word(DATA_OFFSET_OFFSET)
                .store(page as u64, Ordering::Relaxed);
            ring.word(DATA_SIZE_OFFSET)
                .store((len - page) as u64, Ordering::Relaxed);
        }
        self.state.borrow_mut().mappings.push(Mapping {
            ptr,
            len,
            fd,
            unmapped: false,
        });
        Ok(ptr)
    }

    unsafe fn munmap(&self, ptr: NonNull<u8>, len: usize) {
        let mut state = self.state.borrow_mut();
        let Some(m) = state
            .mappings
            .iter_mut()
            .find(|m| m.ptr == ptr && !m.unmapped)
        else {
            drop(state);
            panic!("FakeSys: munmap of {ptr:p} which is not a live mmap_shared region");
        };
        if m.len != len {
            let mapped = m.len;
            drop(state);
            panic!("FakeSys: munmap of {len} bytes at {ptr:p}, but {mapped} were mapped");
        }
        // The memory stays until the fake drops (see `Mapping`); only the bookkeeping changes.
        m.unmapped = true;
        let fd = m.fd;
        state.calls.push(Call::Munmap { fd, len });
    }

    fn epoll_create(&self) -> SysResult<OwnedFd> {
        let result = self
            .check("epoll_create", "epoll_create1")
            .map(|_| new_fd());
        let fd = result.as_ref().map_or(-1, |fd| fd.as_raw_fd());
        if fd >= 0 {
            self.state.borrow_mut().epoll.insert(fd, Vec::new());
        }
        self.record(Call::EpollCreate { fd });
        result
    }

    fn epoll_add(&self, epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64) -> SysResult<()> {
        let (epoll, fd) = (epoll.as_raw_fd(), fd.as_raw_fd());
        self.record(Call::EpollAdd { epoll, fd, token });
        self.check("epoll_add", "epoll_ctl")?;
        self.state
            .borrow_mut()
            .epoll
            .entry(epoll)
            .or_default()
            .push((fd, token));
        Ok(())
    }

    fn epoll_wait(
        &self,
        epoll: BorrowedFd<'_>,
        tokens: &mut [u64],
        timeout_ms: i32,
    ) -> SysResult<usize> {
        let epoll = epoll.as_raw_fd();
        self.record(Call::EpollWait {
            epoll,
            capacity: tokens.len(),
            timeout_ms,
        });
        self.check("epoll_wait", "epoll_wait")?;
        let scripted = self.state.borrow_mut().script.epoll_results.pop_front();
        let ready: Vec<u64> = match scripted {
            Some(list) => list,
            None => {
                let regs = self
                    .state
                    .borrow()
                    .epoll
                    .get(&epoll)
                    .cloned()
                    .unwrap_or_default();
                regs.into_iter()
                    .filter(|&(fd, _)| self.ring_has_data(fd))
                    .map(|(_, t)| t)
                    .collect()
            }
        };
        // Never sleeps: with nothing ready this is a timeout that happened at once.
        let n = ready.len().min(tokens.len());
        tokens[..n].copy_from_slice(&ready[..n]);
        Ok(n)
    }

    fn mount(&self, source: &str, target: &Path, fstype: &str) -> SysResult<()> {
        self.record(Call::Mount {
            source: source.to_string(),
            target: target.to_path_buf(),
            fstype: fstype.to_string(),
        });
        self.check("mount", "mount")
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.record(Call::ReadFile {
            path: path.to_path_buf(),
        });
        self.scripted("read_file")
            .map_err(io::Error::from_raw_os_error)?;
        match self.state.borrow().script.files.get(path) {
            Some(contents) => Ok(contents.clone()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("FakeSys: no file {}", path.display()),
            )),
        }
    }

    fn write_file(&self, path: &Path, data: &[u8], append: bool) -> io::Result<()> {
        self.record(Call::WriteFile {
            path: path.to_path_buf(),
            data: data.to_vec(),
            append,
        });
        self.scripted("write_file")
            .map_err(io::Error::from_raw_os_error)
    }
}

/// A test's view of one fake perf ring: the metadata page then the data area, laid out as the
/// kernel lays out `mmap(perf_fd)`. Writes go where the kernel would write.
pub struct FakeRing<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _fake: std::marker::PhantomData<&'a FakeSys>,
}

impl FakeRing<'_> {
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

/// `PERF_RECORD_SAMPLE` with `PERF_SAMPLE_RAW`, as `bpf_perf_event_output` writes it: header,
/// u32 raw size, the data, zero padding so the raw part plus its size word is 8-aligned.
pub fn perf_sample_record(data: &[u8]) -> Vec<u8> {
    let raw = (4 + data.len()).next_multiple_of(8) - 4;
    let size = 8 + 4 + raw;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&9u32.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&(size as u16).to_ne_bytes());
    out.extend_from_slice(&(raw as u32).to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(size, 0);
    out
}

/// `PERF_RECORD_LOST`: header, u64 id, u64 count of lost records.
pub fn perf_lost_record(id: u64, lost: u64) -> Vec<u8> {
    let mut out = perf_record_header(2, 24);
    out.extend_from_slice(&id.to_ne_bytes());
    out.extend_from_slice(&lost.to_ne_bytes());
    out
}

/// A bare `struct perf_event_header` (type, misc 0, size), for hand-made or malformed records.
pub fn perf_record_header(kind: u32, size: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&size.to_ne_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

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
}
