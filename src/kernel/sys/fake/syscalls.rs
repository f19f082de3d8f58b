//! The fake's answer to each `Sys` call: record it, consume the script, then behave like the
//! kernel would on success (real descriptors, zeroed ring memory, epoll readiness from data).

use super::ring::{page_size, FakeRing};
use super::{Call, FakeSys};
use crate::kernel::sys::{
    MapCreate, PerfEventAttr, PerfEventIoctl, ProgLoad, Rlimit, Sys, SysResult,
};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;

/// A real, harmless descriptor for the code under test to own and close.
fn new_fd() -> OwnedFd {
    match File::options().read(true).write(true).open("/dev/null") {
        Ok(f) => OwnedFd::from(f),
        Err(e) => panic!("FakeSys: cannot open /dev/null for a stand-in descriptor: {e}"),
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
            btf: req.btf,
            fd: result.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
        });
        result
    }

    fn btf_load(&self, btf: &[u8]) -> SysResult<OwnedFd> {
        let result = self
            .check("btf_load", "bpf(BPF_BTF_LOAD)")
            .map(|_| new_fd());
        self.record(Call::BtfLoad {
            btf: btf.to_vec(),
            fd: result.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
        });
        result
    }

    fn memlock_limit(&self) -> SysResult<Rlimit> {
        self.record(Call::MemlockLimit);
        self.check("memlock_limit", "getrlimit(RLIMIT_MEMLOCK)")?;
        Ok(self.memlock())
    }

    fn set_memlock_limit(&self, limit: Rlimit) -> SysResult<()> {
        self.record(Call::SetMemlockLimit { limit });
        self.check("set_memlock_limit", "setrlimit(RLIMIT_MEMLOCK)")?;
        self.set_memlock(limit);
        Ok(())
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

    fn obj_info(&self, fd: BorrowedFd<'_>, info: &mut [u8]) -> SysResult<usize> {
        self.record(Call::ObjInfo { fd: fd.as_raw_fd() });
        self.check("obj_info", "bpf(BPF_OBJ_GET_INFO_BY_FD)")?;
        info.fill(0);
        // A kernel that says nothing fills nothing.
        let v = self.state.borrow_mut().script.obj_infos.pop_front();
        let v = v.unwrap_or_default();
        let n = v.len().min(info.len());
        info[..n].copy_from_slice(&v[..n]);
        Ok(n)
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
            expected_attach_type: req.expected_attach_type,
            attach_btf_id: req.attach_btf_id,
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

    fn read_count(&self, fd: BorrowedFd<'_>) -> SysResult<u64> {
        let fd = fd.as_raw_fd();
        self.record(Call::ReadCount { fd });
        self.check("read_count", "read")?;
        let state = self.state.borrow();
        let cpu = state.perf_cpu.get(&fd).copied().unwrap_or(-1);
        Ok(state.perf_counts.get(&cpu).copied().unwrap_or(0))
    }

    fn ioctl(&self, fd: BorrowedFd<'_>, request: PerfEventIoctl) -> SysResult<i32> {
        self.record(Call::Ioctl {
            fd: fd.as_raw_fd(),
            request,
        });
        self.check("ioctl", "ioctl").map(|_| 0)
    }

    fn raw_tracepoint_open(&self, name: Option<&str>, prog: BorrowedFd<'_>) -> SysResult<OwnedFd> {
        let result = self
            .check("raw_tracepoint_open", "bpf(BPF_RAW_TRACEPOINT_OPEN)")
            .map(|_| new_fd());
        self.record(Call::RawTracepointOpen {
            name: name.map(str::to_string),
            prog: prog.as_raw_fd(),
            fd: result.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
        });
        result
    }

    fn mmap_shared(&self, fd: BorrowedFd<'_>, len: usize) -> SysResult<NonNull<u8>> {
        let fd = fd.as_raw_fd();
        self.record(Call::MmapShared { fd, len });
        self.check("mmap_shared", "mmap")?;
        let ptr = self.map_anonymous(fd, len, 0)?;
        let page = page_size();
        if len > page {
            // Like the kernel (4.1+), say where the data area starts and how big it is.
            FakeRing::new(ptr, len).set_data_area(page as u64, (len - page) as u64);
        }
        Ok(ptr)
    }

    fn mmap_read_only(
        &self,
        fd: BorrowedFd<'_>,
        len: usize,
        offset: usize,
    ) -> SysResult<NonNull<u8>> {
        let fd = fd.as_raw_fd();
        self.record(Call::MmapReadOnly { fd, len, offset });
        self.check("mmap_read_only", "mmap")?;
        // Writable after all: it is the test, through FakeBpfRing, that plays the kernel.
        self.map_anonymous(fd, len, offset)
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

    fn membarrier_global(&self) -> SysResult<()> {
        self.record(Call::Membarrier);
        self.check("membarrier_global", "membarrier")
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
