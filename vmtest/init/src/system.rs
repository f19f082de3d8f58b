//! PID-1 chores: filesystems, the loopback interface, facts about the machine, power off.

use std::ffi::CString;
use std::io;

/// Mounts `fstype` on `target`, creating the directory first.
pub fn mount(source: &str, target: &str, fstype: &str) -> io::Result<()> {
    std::fs::create_dir_all(target)?;
    let cstr = |s: &str| {
        CString::new(s)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in mount argument"))
    };
    let (src, dst, fs) = (cstr(source)?, cstr(target)?, cstr(fstype)?);
    // SAFETY: all three pointers are valid NUL-terminated strings that outlive the call;
    // a null data pointer is allowed for these filesystems.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets IFF_UP on `lo`; the kernel then adds 127.0.0.1/8 and (with IPv6) ::1 by itself.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket() has no memory arguments; the fd is closed below on every path.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = set_up(fd);
    // SAFETY: fd is the socket opened above and not used afterwards.
    unsafe { libc::close(fd) };
    result
}

fn set_up(fd: libc::c_int) -> io::Result<()> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: req is a valid ifreq naming "lo"; SIOCGIFFLAGS writes only ifru_flags.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS just filled ifru_flags, so reading that union member is valid.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: req is a valid ifreq with the flags to set; the kernel only reads it.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The inode of our network namespace, as conntrace reports it in `netns`.
pub fn netns_inode() -> io::Result<u64> {
    let link = std::fs::read_link("/proc/self/ns/net")?;
    let text = link.to_string_lossy();
    text.strip_prefix("net:[")
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected /proc/self/ns/net link {text:?}")))
}

/// The calling thread's id.
pub fn gettid() -> u64 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u64 }
}

/// Kernel release and machine, from uname(2).
pub fn uname() -> (String, String) {
    // SAFETY: utsname is plain old data; all-zero is valid, and uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("?".into(), "?".into());
    }
    let field = |f: &[libc::c_char]| -> String {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (field(&u.release), field(&u.machine))
}

/// Seconds since boot, from /proc/uptime.
pub fn uptime() -> String {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Flushes filesystems and powers the VM off; qemu then exits.
pub fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers; RB_POWER_OFF does not return on success.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    // Only reached if reboot failed; exiting PID 1 panics the kernel, which with panic=-1
    // and qemu's -no-reboot also ends the VM.
    std::process::exit(1)
}
