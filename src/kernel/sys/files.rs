//! Directories by descriptor, and poll(2): what resolving cgroup ids after the privilege drop
//! and the metrics server need.
//!
//! A directory opened before the drop stays usable after it: `open_dir_at` resolves a path
//! relative to it (needing only search permission on the directories below, which cgroupfs
//! grants everyone), and `read_dir` lists it with getdents64, whose records are parsed by the
//! pure [`parse_dirents`].

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One directory entry: its name, inode number and whether it is a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub is_dir: bool,
}

const O_DIR: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

fn c_path(path: &[u8]) -> io::Result<CString> {
    CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Opens the directory at `path`.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let path = c_path(path.as_os_str().as_bytes())?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), O_DIR) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory `rel` (a relative path, no symlinks followed at its end) below `dir`.
pub fn open_dir_at(dir: BorrowedFd<'_>, rel: &[u8]) -> io::Result<OwnedFd> {
    let rel = c_path(rel)?;
    // SAFETY: `rel` is a NUL-terminated string that outlives the call; `dir` is a live fd.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), rel.as_ptr(), O_DIR | libc::O_NOFOLLOW) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The inode number of an open file.
pub fn inode_of(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: stat is plain data, all-zero is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable for the call; `fd` is live.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.st_ino)
}

/// Every entry of the directory `dir` except `.` and `..`, read from its start.
pub fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<DirEntry>> {
    // SAFETY: lseek on a live fd has no memory effects.
    if unsafe { libc::lseek(dir.as_raw_fd(), 0, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut entries = Vec::new();
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which is live.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(entries);
        }
        let filled = buf.get(..n as usize).unwrap_or(&[]);
        entries
            .extend(parse_dirents(filled).filter(|e| e.name.as_slice() != b"." && e.name != b".."));
    }
}

const DT_DIR: u8 = 4;

/// The records of a getdents64 buffer (`d_ino` u64, `d_off` i64, `d_reclen` u16, `d_type` u8,
/// NUL-terminated name). Stops at the first record that does not fit; never panics.
pub fn parse_dirents(buf: &[u8]) -> impl Iterator<Item = DirEntry> + '_ {
    let mut rest = buf;
    std::iter::from_fn(move || {
        let ino = u64::from_ne_bytes(rest.get(..8)?.try_into().ok()?);
        let reclen = u16::from_ne_bytes(rest.get(16..18)?.try_into().ok()?) as usize;
        let d_type = *rest.get(18)?;
        let record = rest.get(..reclen).filter(|_| reclen > 19)?;
        let name = &record[19..];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        rest = &rest[reclen..];
        Some(DirEntry {
            name: name.to_vec(),
            ino,
            is_dir: d_type == DT_DIR,
        })
    })
}

/// An fd to wait on with [`poll`]: the events wanted (`libc::POLLIN`, ...) and those that came.
pub struct PollFd<'a> {
    pub fd: BorrowedFd<'a>,
    pub events: i16,
    pub revents: i16,
}

/// poll(2): waits up to `timeout_ms` for one of `fds` to be ready; EINTR counts as nothing ready.
pub fn poll(fds: &mut [PollFd<'_>], timeout_ms: i32) -> io::Result<usize> {
    let mut raw: Vec<libc::pollfd> = fds
        .iter()
        .map(|p| libc::pollfd {
            fd: p.fd.as_raw_fd(),
            events: p.events,
            revents: 0,
        })
        .collect();
    // SAFETY: `raw` holds `raw.len()` initialised pollfds the kernel may write revents into.
    let n = unsafe { libc::poll(raw.as_mut_ptr(), raw.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EINTR) {
            Ok(0)
        } else {
            Err(e)
        };
    }
    for (p, r) in fds.iter_mut().zip(&raw) {
        p.revents = r.revents;
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn record(ino: u64, d_type: u8, name: &[u8]) -> Vec<u8> {
        let reclen = (19 + name.len() + 1).next_multiple_of(8);
        let mut r = vec![0u8; reclen];
        r[..8].copy_from_slice(&ino.to_ne_bytes());
        r[16..18].copy_from_slice(&(reclen as u16).to_ne_bytes());
        r[18] = d_type;
        r[19..19 + name.len()].copy_from_slice(name);
        r
    }

    #[test]
    fn dirents_are_parsed_and_truncation_stops_cleanly() {
        let mut buf = record(7, DT_DIR, b"system.slice");
        buf.extend(record(9, 8, b"cgroup.procs"));
        let all: Vec<_> = parse_dirents(&buf).collect();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].ino, all[0].is_dir), (7, true));
        assert_eq!(all[0].name, b"system.slice");
        assert_eq!((all[1].ino, all[1].is_dir), (9, false));
        for cut in 0..buf.len() {
            assert!(parse_dirents(&buf[..cut]).count() <= 2);
        }
        // A zero reclen must not loop forever.
        let mut bad = record(1, DT_DIR, b"x");
        bad[16..18].copy_from_slice(&0u16.to_ne_bytes());
        assert_eq!(parse_dirents(&bad).count(), 0);
    }

    #[test]
    fn a_real_directory_is_listed_by_descriptor() {
        let dir = open_dir(Path::new("/proc/self")).unwrap();
        let entries = read_dir(dir.as_fd()).unwrap();
        assert!(entries.iter().any(|e| e.name == b"fd" && e.is_dir));
        let fd = open_dir_at(dir.as_fd(), b"fd").unwrap();
        assert!(inode_of(fd.as_fd()).unwrap() > 0);
    }
}
