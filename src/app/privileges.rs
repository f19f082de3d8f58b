//! Least privilege: once the probes are attached and the rings mapped, conntrace gives up every
//! privilege the rest of the run does not need, so a bug in decoding or output cannot be turned
//! into root.
//!
//! What the run still does after [`drop_privileges`], and why none of it needs a privilege:
//! - reads the mmap'd rings and epoll_waits on them: the fds and mappings are ours;
//! - writes stdout/stderr: already-open fds;
//! - detaches: PERF_EVENT_IOC_DISABLE and close() on our own perf fds;
//! - removes its tracefs `kprobe_events` entries (the fallback for kernels without the kprobe
//!   PMU): through a descriptor opened for appending before the drop (root-owned 0640 file),
//!   and the kernel checks permissions at open, not at write;
//! - reads the `drops` map at exit (BPF_MAP_LOOKUP_ELEM on a map fd we hold): since 5.19 the
//!   kernel allows that without capabilities whatever `kernel.unprivileged_bpf_disabled` says.
//!   On older kernels with that sysctl set, every bpf() call needs CAP_BPF (5.8+) or
//!   CAP_SYS_ADMIN (before 5.8), so exactly that one capability stays; see [`caps_to_keep`].
//!
//! The drop, in order: bounding set emptied (needs CAP_SETPCAP, so first), ambient set cleared,
//! supplementary groups cleared and gid/uid set to 65534 (`nobody`) when any id is 0 (root owns
//! most files, and uid 0 can write them without any capability), permitted/effective/inheritable
//! set to what stays, no-new-privs set (no execve can gain anything back), and the process made
//! non-dumpable (no process of the new uid can ptrace it and take its descriptors). Then each
//! step is read back. The capability calls are process-wide only for a single-threaded
//! process, so a second thread is an error.

use crate::kernel::sys::process::{self, capget, capset, resgid, resuid, CapSets};
use crate::kernel::sys::Sys;
use std::io;
use std::path::Path;

/// The uid and gid conntrace switches to: `nobody` on every distribution.
pub const UNPRIVILEGED_ID: u32 = 65534;

pub const CAP_SETGID: u32 = 6;
pub const CAP_SETUID: u32 = 7;
pub const CAP_SETPCAP: u32 = 8;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_BPF: u32 = 39;

/// The highest capability number the capability API can express (two 32-bit words).
const CAP_WORDS_BITS: u32 = 64;

/// What the process holds after [`drop_privileges`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Capabilities still effective and permitted (a bit per capability number).
    pub kept: u64,
    /// The real, effective and saved uid.
    pub uid: u32,
    pub gid: u32,
    /// Set when the process ran as uid or gid 0 but could not switch (no CAP_SETUID/SETGID).
    pub warning: Option<String>,
}

/// The capabilities the run still needs after setup, as a bit set: only for reading the
/// `drops` map at exit on kernels that gate every bpf() call. `kernel` is a KERNEL_VERSION
/// code, `unprivileged_bpf_disabled` the sysctl's value (None: no such sysctl, before 4.4).
pub fn caps_to_keep(kernel: u32, unprivileged_bpf_disabled: Option<u32>) -> u64 {
    const FD_OPS_UNGATED: u32 = (5 << 16) | (19 << 8);
    const HAS_CAP_BPF: u32 = (5 << 16) | (8 << 8);
    match unprivileged_bpf_disabled {
        None | Some(0) => 0,
        Some(_) if kernel >= FD_OPS_UNGATED => 0,
        Some(_) if kernel >= HAS_CAP_BPF => 1 << CAP_BPF,
        Some(_) => 1 << CAP_SYS_ADMIN,
    }
}

/// The value after `Key:` in /proc/PID/status text ("Threads:\t1" -> "1").
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// Drops every privilege the rest of the run does not need (see the module doc). `sys` reads
/// /proc and the sysctl. Call it once, single-threaded, after attaching.
pub fn drop_privileges(sys: &dyn Sys) -> Result<Dropped, String> {
    let fail = |what: &str, e: io::Error| {
        format!("cannot drop privileges after attaching: {what} failed ({e})")
    };
    if let Ok(status) = sys.read_file(Path::new("/proc/self/status")) {
        let threads = status_field(&String::from_utf8_lossy(&status), "Threads")
            .and_then(|n| n.parse::<u32>().ok());
        if threads.is_some_and(|n| n != 1) {
            return Err(format!(
                "cannot drop privileges: conntrace runs {} threads, and capabilities are per \
                 thread (a bug: setup must not start threads)",
                threads.unwrap_or(0)
            ));
        }
    }
    let sysctl = sys
        .read_file(Path::new("/proc/sys/kernel/unprivileged_bpf_disabled"))
        .ok()
        .and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok());
    let kept = caps_to_keep(crate::kernel::load::kernel_version_code(), sysctl);
    let held = capget().map_err(|e| fail("capget", e))?;

    if held.effective & (1 << CAP_SETPCAP) != 0 {
        for cap in 0..CAP_WORDS_BITS {
            if kept & (1 << cap) != 0 {
                continue;
            }
            if let Err(e) = process::drop_from_bounding_set(cap) {
                if e.raw_os_error() == Some(libc::EINVAL) {
                    break; // past the kernel's last capability
                }
                return Err(fail("PR_CAPBSET_DROP", e));
            }
        }
    }
    if let Err(e) = process::clear_ambient_capabilities() {
        // Kernels before 4.3 have no ambient set, so nothing to clear.
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(fail("clearing the ambient capabilities", e));
        }
    }

    let warning = switch_ids(&held, kept)?;

    let caps = CapSets {
        effective: kept,
        permitted: kept,
        inheritable: 0,
    };
    capset(&caps).map_err(|e| fail("capset", e))?;
    process::set_no_new_privs().map_err(|e| fail("PR_SET_NO_NEW_PRIVS", e))?;
    process::set_dumpable(false).map_err(|e| fail("PR_SET_DUMPABLE", e))?;

    let (uid, gid) = verify(kept, held.effective & (1 << CAP_SETPCAP) != 0)?;
    Ok(Dropped {
        kept,
        uid,
        gid,
        warning,
    })
}

/// Moves every uid and gid to 65534 when any is 0. Without CAP_SETUID/SETGID that cannot be
/// done: the capabilities still go, and the returned warning says what stays.
fn switch_ids(held: &CapSets, kept: u64) -> Result<Option<String>, String> {
    let (uids, gids) = (resuid(), resgid());
    if !uids.contains(&0) && !gids.contains(&0) {
        return Ok(None);
    }
    let needed = (1 << CAP_SETUID) | (1 << CAP_SETGID);
    if held.effective & needed != needed {
        return Ok(Some(format!(
            "cannot switch from uid {}/gid {} to {UNPRIVILEGED_ID} without CAP_SETUID and \
             CAP_SETGID: capabilities are dropped, but files owned by that id stay writable",
            uids[1], gids[1]
        )));
    }
    let fail = |what: &str, e: io::Error| {
        format!("cannot drop privileges after attaching: {what} failed ({e})")
    };
    if kept != 0 {
        // Keep the permitted set across the uid change, so capset can keep `kept`.
        process::set_keep_capabilities(true).map_err(|e| fail("PR_SET_KEEPCAPS", e))?;
    }
    let id = UNPRIVILEGED_ID;
    process::clear_groups().map_err(|e| fail("setgroups([])", e))?;
    process::set_all_gids(id).map_err(|e| fail(&format!("setresgid({id})"), e))?;
    process::set_all_uids(id).map_err(|e| fail(&format!("setresuid({id})"), e))?;
    if kept != 0 {
        let _ = process::set_keep_capabilities(false);
    }
    Ok(None)
}

/// Reads back what the drop left: capabilities, bounding set (when we could empty it),
/// no-new-privs, and no id 0 where a switch happened. Returns the uid and gid.
fn verify(kept: u64, bounding_dropped: bool) -> Result<(u32, u32), String> {
    let bad = |what: String| format!("privileges were not dropped: {what}");
    let now = capget().map_err(|e| bad(format!("capget failed ({e})")))?;
    if now.effective != kept || now.permitted != kept || now.inheritable != 0 {
        return Err(bad(format!(
            "capabilities effective {:#x} permitted {:#x} inheritable {:#x}, want {kept:#x}",
            now.effective, now.permitted, now.inheritable
        )));
    }
    if bounding_dropped {
        for cap in 0..CAP_WORDS_BITS {
            let Ok(present) = process::in_bounding_set(cap) else {
                break; // past the last capability
            };
            if present && kept & (1 << cap) == 0 {
                return Err(bad(format!(
                    "capability {cap} is still in the bounding set"
                )));
            }
        }
    }
    if !process::no_new_privs() {
        return Err(bad("no_new_privs is not set".into()));
    }
    let (uids, gids) = (resuid(), resgid());
    Ok((uids[1], gids[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const V4_19: u32 = (4 << 16) | (19 << 8);
    const V5_10: u32 = (5 << 16) | (10 << 8);
    const V5_19: u32 = (5 << 16) | (19 << 8);
    const V6_1: u32 = (6 << 16) | (1 << 8) | 55;

    #[test]
    fn nothing_stays_where_held_fds_work_without_capabilities() {
        assert_eq!(caps_to_keep(V6_1, Some(2)), 0);
        assert_eq!(caps_to_keep(V5_19, Some(1)), 0);
        assert_eq!(caps_to_keep(V4_19, Some(0)), 0);
        assert_eq!(caps_to_keep(V4_19, None), 0);
    }

    #[test]
    fn old_kernels_with_bpf_gated_keep_exactly_the_capability_bpf_checks() {
        assert_eq!(caps_to_keep(V5_10, Some(2)), 1 << CAP_BPF);
        assert_eq!(caps_to_keep(V5_19 - 1, Some(1)), 1 << CAP_BPF);
        assert_eq!(caps_to_keep(V4_19, Some(1)), 1 << CAP_SYS_ADMIN);
    }

    #[test]
    fn status_fields() {
        let status = "Name:\tconntrace\nUid:\t0\t0\t0\t0\nThreads:\t1\nCapEff:\t0000000000000000\n";
        assert_eq!(status_field(status, "Threads"), Some("1"));
        assert_eq!(status_field(status, "Uid"), Some("0\t0\t0\t0"));
        assert_eq!(status_field(status, "CapEff"), Some("0000000000000000"));
        assert_eq!(status_field(status, "Cap"), None);
        assert_eq!(status_field("", "Threads"), None);
    }

    /// The real drop, in a child process (it cannot be undone, and the test harness has
    /// threads): the child reports what it holds afterwards through its exit code.
    #[test]
    fn drop_privileges_leaves_nothing_in_a_forked_child() {
        if process::euid() != 0 {
            // The stderr handle, not eprintln!: libtest captures only the macros.
            let _ = writeln!(
                io::stderr(),
                "app::privileges::tests::drop_privileges_leaves_nothing_in_a_forked_child: \
                 skipped: needs root (it drops real privileges)"
            );
            return;
        }
        let secret = std::env::temp_dir().join(format!("conntrace-privs-{}", std::process::id()));
        std::fs::write(&secret, "root only\n").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let code = process::exit_code_of_forked(|| {
            match drop_privileges(&crate::kernel::sys::RealSys) {
                Ok(d) if d.kept == 0 && d.uid == UNPRIVILEGED_ID && d.gid == UNPRIVILEGED_ID => {
                    // What the drop promises, seen from outside the module: root's powers are
                    // gone, so a root-only file cannot be opened and uid 0 cannot come back.
                    let regained = process::set_uid(0).is_ok();
                    let opened = std::fs::File::open(&secret).is_ok();
                    let caps = capget().map(|c| c.effective | c.permitted).unwrap_or(1);
                    match (regained, opened, caps) {
                        (false, false, 0) => 0,
                        _ => 3,
                    }
                }
                Ok(_) => 2,
                Err(_) => 1,
            }
        });
        let _ = std::fs::remove_file(&secret);
        assert_eq!(
            code.expect("the child exits"),
            0,
            "child exit 1: drop failed, 2: unexpected ids or caps, 3: root powers remained"
        );
    }
}
