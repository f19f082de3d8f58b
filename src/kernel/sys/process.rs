//! The calling process's own identity and privileges: ids, capabilities, prctl flags.
//!
//! Safe free functions, not `Sys` methods: they act on this process, not on kernel objects a
//! test scripts, so a fake answer would only test the fake. The real ones are tested as root
//! (`app::privileges`' forked child, tests/privileges.rs).

use std::io;

/// A uid or gid: the kernel's uid_t and gid_t are u32.
pub type Id = u32;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The effective uid.
pub fn euid() -> Id {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The real uid.
pub fn uid() -> Id {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The calling thread's id.
pub fn tid() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// The real, effective and saved uid.
pub fn resuid() -> [Id; 3] {
    let mut ids = [0; 3];
    let [r, e, s] = &mut ids;
    // SAFETY: three valid, writable uid_t locations; getresuid cannot fail with them.
    unsafe { libc::getresuid(r, e, s) };
    ids
}

/// The real, effective and saved gid.
pub fn resgid() -> [Id; 3] {
    let mut ids = [0; 3];
    let [r, e, s] = &mut ids;
    // SAFETY: three valid, writable gid_t locations; getresgid cannot fail with them.
    unsafe { libc::getresgid(r, e, s) };
    ids
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// setresuid(id, id, id); libc applies it to every thread.
pub fn set_all_uids(id: Id) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setresuid(id, id, id) })
}

/// setresgid(id, id, id); libc applies it to every thread.
pub fn set_all_gids(id: Id) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setresgid(id, id, id) })
}

/// setgroups([]): no supplementary groups.
pub fn clear_groups() -> io::Result<()> {
    // SAFETY: an empty group list: size 0 and a null pointer the kernel does not read.
    check(unsafe { libc::setgroups(0, std::ptr::null()) })
}

/// The three capability sets, one bit per capability number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`; version 3 passes two of them (capabilities 0-31, 32-63).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// This thread's capability sets.
pub fn capget() -> io::Result<CapSets> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two CapData (the count version 3 implies) into `data` and may
    // write the header's version; both are live, writable and laid out as the kernel's structs.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | (u64::from(f(&data[1])) << 32);
    Ok(CapSets {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
    })
}

/// Sets this thread's capability sets.
pub fn capset(caps: &CapSets) -> io::Result<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |bits: u64| [bits as u32, (bits >> 32) as u32];
    let (e, p, i) = (
        split(caps.effective),
        split(caps.permitted),
        split(caps.inheritable),
    );
    let data = [0, 1].map(|w| CapData {
        effective: e[w],
        permitted: p[w],
        inheritable: i[w],
    });
    // SAFETY: capset reads the header and two CapData from live, correctly laid out values.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// prctl with integer arguments only, so any values are sound.
fn prctl(option: libc::c_int, arg: libc::c_ulong) -> libc::c_int {
    // SAFETY: every option used here takes integer arguments; no memory is passed.
    unsafe { libc::prctl(option, arg, 0, 0, 0) }
}

/// PR_CAPBSET_DROP: removes `cap` from the bounding set (EINVAL past the last capability).
pub fn drop_from_bounding_set(cap: u32) -> io::Result<()> {
    check(prctl(libc::PR_CAPBSET_DROP, cap.into()))
}

/// PR_CAPBSET_READ: whether `cap` is in the bounding set (an error past the last one).
pub fn in_bounding_set(cap: u32) -> io::Result<bool> {
    match prctl(libc::PR_CAPBSET_READ, cap.into()) {
        r if r < 0 => Err(io::Error::last_os_error()),
        r => Ok(r == 1),
    }
}

/// PR_CAP_AMBIENT_CLEAR_ALL (EINVAL before 4.3, which has no ambient set).
pub fn clear_ambient_capabilities() -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
}

/// PR_SET_KEEPCAPS: whether the permitted set survives a change away from uid 0.
pub fn set_keep_capabilities(keep: bool) -> io::Result<()> {
    check(prctl(libc::PR_SET_KEEPCAPS, keep.into()))
}

/// PR_SET_NO_NEW_PRIVS: no execve can gain privileges from now on.
pub fn set_no_new_privs() -> io::Result<()> {
    check(prctl(libc::PR_SET_NO_NEW_PRIVS, 1))
}

/// PR_GET_NO_NEW_PRIVS.
pub fn no_new_privs() -> bool {
    prctl(libc::PR_GET_NO_NEW_PRIVS, 0) == 1
}

/// PR_SET_DUMPABLE: whether processes of our uid may ptrace us or read our memory.
pub fn set_dumpable(dumpable: bool) -> io::Result<()> {
    check(prctl(libc::PR_SET_DUMPABLE, dumpable.into()))
}

/// Tests that need root: true as root, else one line `<what>: skipped: needs root (BPF)` on
/// stderr (the handle, not eprintln!, which libtest captures) and false; the caller returns.
#[cfg(test)]
pub fn root_or_skip(what: &str) -> bool {
    use std::io::Write;
    if euid() == 0 {
        return true;
    }
    let _ = writeln!(io::stderr(), "{what}: skipped: needs root (BPF)");
    false
}

/// Tests only: setuid(id).
#[cfg(test)]
pub fn set_uid(id: Id) -> io::Result<()> {
    // SAFETY: a plain integer argument.
    check(unsafe { libc::setuid(id) })
}

/// Tests only: this thread alone (not the process, unlike [`set_all_uids`]) moves to `id`,
/// through the raw syscall.
#[cfg(test)]
pub fn set_thread_uids(id: Id) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_setresuid, id, id, id) };
    check(ret as libc::c_int)
}

/// Tests only: runs `child` in a forked child process, which leaves with `_exit(child())`
/// and never returns into the (multi-threaded) test harness; returns the child's exit code,
/// or an error if it did not exit normally.
#[cfg(test)]
pub fn exit_code_of_forked(child: impl FnOnce() -> i32) -> io::Result<i32> {
    // SAFETY: the child only runs `child` and leaves with _exit, never returning into the
    // harness; glibc's fork resets malloc's locks in the child, so allocating is sound.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = child();
        // SAFETY: _exit ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid status pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    if waited != pid {
        return Err(io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) {
        return Err(io::Error::other(format!("child died: status {status:#x}")));
    }
    Ok(libc::WEXITSTATUS(status))
}

/// The inode number of this process's network namespace (/proc/self/ns/net), which the
/// kernel reports as a socket's netns (`net.ns.inum`).
pub fn netns_inode() -> io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata("/proc/self/ns/net")?.ino();
    u32::try_from(ino).map_err(|_| io::Error::other(format!("netns inode {ino} exceeds 32 bits")))
}
