//! [`Sys`] over the real system calls.

use super::{
    AppendFile, HeldFile, MapCreate, PerfEventAttr, PerfEventIoctl, ProgLoad, Rlimit, Sys,
    SysError, SysResult, PERF_ATTR_SIZE,
};
use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;

use crate::kernel::abi::{
    BPF_BTF_LOAD, BPF_MAP_CREATE, BPF_MAP_GET_NEXT_KEY, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM,
    BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_LOAD, BPF_RAW_TRACEPOINT_OPEN, MEMBARRIER_CMD_GLOBAL,
};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct BtfLoadAttr {
    btf: u64,
    btf_log_buf: u64,
    btf_size: u32,
    btf_log_size: u32,
    btf_log_level: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// The part of `union bpf_attr` BPF_OBJ_GET_INFO_BY_FD reads, and writes `info_len` back to.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The part of `union bpf_attr` BPF_RAW_TRACEPOINT_OPEN reads.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct RawTracepointAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    _pad: u32,
}

// Where the uapi header puts them (union bpf_attr, BPF_PROG_LOAD).
const _: () = assert!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type) == 68);
const _: () = assert!(std::mem::offset_of!(ProgLoadAttr, attach_btf_id) == 108);

/// Object names are at most 15 bytes plus NUL, and only [A-Za-z0-9_.].
fn object_name(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' {
            b
        } else {
            b'_'
        };
    }
    out
}

fn bpf<T: bytemuck::Pod>(cmd: u32, attr: &mut T, call: &'static str) -> SysResult<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed #[repr(C)] bpf_attr prefix of the size we
    // pass; the kernel reads and writes only within it. Pointers inside it are the caller's job.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            libc::c_long::from(cmd),
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as u32,
        )
    };
    if ret < 0 {
        Err(SysError::last(call))
    } else {
        Ok(ret)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new descriptor to us and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// The real kernel. A zero-sized type: `&RealSys` is `'static`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSys;

impl Sys for RealSys {
    fn map_create(&self, req: &MapCreate<'_>) -> SysResult<OwnedFd> {
        let mut attr = MapCreateAttr {
            map_type: req.map_type,
            key_size: req.key_size,
            value_size: req.value_size,
            max_entries: req.max_entries,
            map_flags: req.flags,
            map_name: object_name(req.name),
            ..Default::default()
        };
        if let Some(btf) = &req.btf {
            attr.btf_fd = btf.fd as u32;
            attr.btf_key_type_id = btf.key_type_id;
            attr.btf_value_type_id = btf.value_type_id;
        }
        bpf(BPF_MAP_CREATE, &mut attr, "bpf(BPF_MAP_CREATE)").map(owned)
    }

    fn btf_load(&self, btf: &[u8]) -> SysResult<OwnedFd> {
        let mut attr = BtfLoadAttr {
            btf: btf.as_ptr() as u64,
            btf_size: u32::try_from(btf.len())
                .map_err(|_| SysError::new("bpf(BPF_BTF_LOAD)", libc::E2BIG))?,
            ..Default::default()
        };
        // The kernel reads btf_size bytes from `btf`, which the borrowed slice holds.
        bpf(BPF_BTF_LOAD, &mut attr, "bpf(BPF_BTF_LOAD)").map(owned)
    }

    fn memlock_limit(&self) -> SysResult<Rlimit> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
        if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
            return Err(SysError::last("getrlimit(RLIMIT_MEMLOCK)"));
        }
        Ok(Rlimit {
            soft: limit.rlim_cur,
            hard: limit.rlim_max,
        })
    }

    fn set_memlock_limit(&self, limit: Rlimit) -> SysResult<()> {
        let limit = libc::rlimit {
            rlim_cur: limit.soft,
            rlim_max: limit.hard,
        };
        // SAFETY: `limit` is a valid rlimit the call only reads.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) } != 0 {
            return Err(SysError::last("setrlimit(RLIMIT_MEMLOCK)"));
        }
        Ok(())
    }

    fn map_update(
        &self,
        map: BorrowedFd<'_>,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> SysResult<()> {
        let mut attr = MapElemAttr {
            map_fd: map.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            flags,
            ..Default::default()
        };
        // The kernel reads key_size/value_size bytes through these pointers; the slices were
        // sized from the same map definition by the caller.
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr, "bpf(BPF_MAP_UPDATE_ELEM)").map(|_| ())
    }

    fn map_lookup(&self, map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> SysResult<()> {
        let mut attr = MapElemAttr {
            map_fd: map.as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..Default::default()
        };
        // The kernel writes value_size (x possible CPUs for per-CPU maps) bytes: the caller
        // sized `value` from the map definition.
        bpf(BPF_MAP_LOOKUP_ELEM, &mut attr, "bpf(BPF_MAP_LOOKUP_ELEM)").map(|_| ())
    }

    fn obj_info(&self, fd: BorrowedFd<'_>, info: &mut [u8]) -> SysResult<usize> {
        let mut attr = InfoAttr {
            bpf_fd: fd.as_raw_fd() as u32,
            info_len: u32::try_from(info.len()).unwrap_or(u32::MAX),
            info: info.as_mut_ptr() as u64,
        };
        // The kernel writes at most info_len bytes to `info` and sets info_len to what it
        // filled (its own struct's size when that is smaller).
        bpf(
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr,
            "bpf(BPF_OBJ_GET_INFO_BY_FD)",
        )?;
        Ok((attr.info_len as usize).min(info.len()))
    }

    fn map_next_key(
        &self,
        map: BorrowedFd<'_>,
        key: Option<&[u8]>,
        next: &mut [u8],
    ) -> SysResult<bool> {
        let mut attr = MapElemAttr {
            map_fd: map.as_raw_fd() as u32,
            // No key asks for the first one.
            key: key.map_or(0, |k| k.as_ptr() as u64),
            value: next.as_mut_ptr() as u64,
            ..Default::default()
        };
        // The kernel writes key_size bytes to `next`: the caller sized it from the map.
        match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr, "bpf(BPF_MAP_GET_NEXT_KEY)") {
            Ok(_) => Ok(true),
            Err(e) if e.errno == libc::ENOENT => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn raw_tracepoint_open(&self, name: Option<&str>, prog: BorrowedFd<'_>) -> SysResult<OwnedFd> {
        let call = "bpf(BPF_RAW_TRACEPOINT_OPEN)";
        let name = name
            .map(CString::new)
            .transpose()
            .map_err(|_| SysError::new(call, libc::EINVAL))?;
        // `name` outlives the call; the kernel copies the string before it returns.
        let mut attr = RawTracepointAttr {
            name: name.as_ref().map_or(0, |n| n.as_ptr() as u64),
            prog_fd: prog.as_raw_fd() as u32,
            _pad: 0,
        };
        bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr, call).map(owned)
    }

    fn prog_load(&self, req: &ProgLoad<'_>, log: &mut [u8]) -> SysResult<OwnedFd> {
        let license = CString::new(req.license)
            .map_err(|_| SysError::new("bpf(BPF_PROG_LOAD)", libc::EINVAL))?;
        if let Some(first) = log.first_mut() {
            *first = 0;
        }
        let mut attr = ProgLoadAttr {
            prog_type: req.prog_type,
            insn_cnt: req.insns.len() as u32,
            insns: req.insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: if log.is_empty() { 0 } else { 1 },
            log_size: log.len() as u32,
            // No buffer must be a null pointer: the kernel refuses a pointer with size 0
            // (EINVAL), which made every load run twice, the second time with a full log.
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            kern_version: req.kern_version,
            prog_name: object_name(req.name),
            expected_attach_type: req.expected_attach_type,
            attach_btf_id: req.attach_btf_id,
            ..Default::default()
        };
        bpf(BPF_PROG_LOAD, &mut attr, "bpf(BPF_PROG_LOAD)").map(owned)
    }

    fn perf_event_open(
        &self,
        attr: &PerfEventAttr,
        pid: i32,
        cpu: i32,
        group_fd: i32,
        flags: u64,
    ) -> SysResult<OwnedFd> {
        let mut attr = *attr;
        attr.size = PERF_ATTR_SIZE;
        // SAFETY: `attr` is a complete perf_event_attr of the size it declares; config1 may
        // point at a NUL-terminated string the caller keeps alive across this call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                pid,
                cpu,
                group_fd,
                flags,
            )
        };
        if ret < 0 {
            Err(SysError::last("perf_event_open"))
        } else {
            Ok(owned(ret))
        }
    }

    fn ioctl(&self, fd: BorrowedFd<'_>, request: PerfEventIoctl) -> SysResult<i32> {
        let (request, arg) = request.encode();
        // SAFETY: the perf ioctls we issue take an integer argument, never a pointer.
        let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) };
        if ret < 0 {
            Err(SysError::last("ioctl"))
        } else {
            Ok(ret)
        }
    }

    fn read_count(&self, fd: BorrowedFd<'_>) -> SysResult<u64> {
        let mut count = [0u8; 8];
        // SAFETY: `count` is 8 writable bytes, and read(2) writes at most the length given.
        let n = unsafe { libc::read(fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
        match n {
            8 => Ok(u64::from_ne_bytes(count)),
            n if n < 0 => Err(SysError::last("read of a perf counter")),
            _ => Err(SysError::new("read of a perf counter", libc::EIO)),
        }
    }

    fn mmap_shared(&self, fd: BorrowedFd<'_>, len: usize) -> SysResult<NonNull<u8>> {
        map_shared(fd, len, 0, libc::PROT_READ | libc::PROT_WRITE)
    }

    fn mmap_read_only(
        &self,
        fd: BorrowedFd<'_>,
        len: usize,
        offset: usize,
    ) -> SysResult<NonNull<u8>> {
        map_shared(fd, len, offset, libc::PROT_READ)
    }

    unsafe fn munmap(&self, ptr: NonNull<u8>, len: usize) {
        // SAFETY: the caller promises ptr/len came from mmap_shared and are no longer used.
        unsafe {
            libc::munmap(ptr.as_ptr() as *mut libc::c_void, len);
        }
    }

    fn membarrier_global(&self) -> SysResult<()> {
        // SAFETY: no pointers; MEMBARRIER_CMD_GLOBAL takes no flags and no cpu.
        let ret = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
        if ret < 0 {
            Err(SysError::last("membarrier"))
        } else {
            Ok(())
        }
    }

    fn epoll_create(&self) -> SysResult<OwnedFd> {
        // SAFETY: no pointers involved.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            Err(SysError::last("epoll_create1"))
        } else {
            Ok(owned(fd as libc::c_long))
        }
    }

    fn epoll_add(&self, epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64) -> SysResult<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        let ret = unsafe {
            libc::epoll_ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        };
        if ret < 0 {
            Err(SysError::last("epoll_ctl"))
        } else {
            Ok(())
        }
    }

    fn epoll_wait(
        &self,
        epoll: BorrowedFd<'_>,
        tokens: &mut [u64],
        timeout_ms: i32,
    ) -> SysResult<usize> {
        const MAX: usize = 64;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX];
        let cap = tokens.len().min(MAX) as i32;
        // SAFETY: `events` has room for `cap` entries.
        let n =
            unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), cap, timeout_ms) };
        if n < 0 {
            return Err(SysError::last("epoll_wait"));
        }
        let n = n as usize;
        for (t, e) in tokens.iter_mut().zip(&events[..n]) {
            *t = e.u64;
        }
        Ok(n)
    }

    fn mount(&self, source: &str, target: &Path, fstype: &str) -> SysResult<()> {
        let bad = |_| SysError::new("mount", libc::EINVAL);
        let source = CString::new(source).map_err(bad)?;
        let target = CString::new(target.as_os_str().as_bytes()).map_err(bad)?;
        let fstype = CString::new(fstype).map_err(bad)?;
        // SAFETY: three NUL-terminated strings that outlive the call; no mount data.
        let ret = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if ret < 0 {
            Err(SysError::last("mount"))
        } else {
            Ok(())
        }
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn write_file(&self, path: &Path, data: &[u8], append: bool) -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)?;
        f.write_all(data)
    }

    fn open_append(&self, path: &Path) -> io::Result<AppendFile> {
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(AppendFile {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    fn open_held(&self, path: &Path) -> io::Result<HeldFile> {
        let file = std::fs::File::open(path)?;
        Ok(HeldFile {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    fn read_held(&self, file: &HeldFile) -> io::Result<Vec<u8>> {
        match &file.file {
            Some(f) => {
                use std::io::{Read, Seek};
                let mut f: &std::fs::File = f;
                // tracefs files are seq_files: back to 0 reads them anew.
                f.seek(io::SeekFrom::Start(0))?;
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)?;
                Ok(bytes)
            }
            None => self.read_file(&file.path),
        }
    }

    fn append(&self, file: &AppendFile, data: &[u8]) -> io::Result<()> {
        match &file.file {
            Some(f) => {
                let mut f: &std::fs::File = f;
                f.write_all(data)
            }
            None => self.write_file(&file.path, data, true),
        }
    }
}

/// mmap(MAP_SHARED) of `len` bytes of `fd` at `offset`, with protection `prot`.
fn map_shared(
    fd: BorrowedFd<'_>,
    len: usize,
    offset: usize,
    prot: libc::c_int,
) -> SysResult<NonNull<u8>> {
    let offset = libc::off_t::try_from(offset).map_err(|_| SysError::new("mmap", libc::EINVAL))?;
    // SAFETY: a fresh mapping at an address the kernel picks; it aliases no Rust object.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(SysError::last("mmap"));
    }
    NonNull::new(ptr as *mut u8).ok_or(SysError::new("mmap", libc::ENOMEM))
}
