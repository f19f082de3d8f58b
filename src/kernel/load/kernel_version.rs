//! The kernel version code BPF_PROG_LOAD wants for kprobe programs on kernels before 5.0
//! (`KERNEL_VERSION(a, b, c)` of the running kernel; later kernels ignore it).

/// `KERNEL_VERSION(major, minor, patch)` of a release string such as "6.1.0-28-cloud-amd64";
/// the patch level saturates at 255 as the kernel's own macro does since 4.14.
pub fn parse_kernel_release(release: &str) -> Option<u32> {
    let mut parts = release.splitn(3, '.');
    let number = |part: Option<&str>| -> Option<u32> {
        let digits: String = part?.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    };
    let major = number(parts.next())?;
    let minor = number(parts.next())?;
    let patch = number(parts.next()).unwrap_or(0);
    if major > 255 || minor > 255 {
        return None;
    }
    Some((major << 16) | (minor << 8) | patch.min(255))
}

/// The running kernel's version code, from uname(2); 0 (which kernels since 5.0 accept) if the
/// release string cannot be read or parsed.
pub fn kernel_version_code() -> u32 {
    crate::kernel::sys::host::uname()
        .and_then(|u| parse_kernel_release(&u.release))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_release_strings() {
        assert_eq!(parse_kernel_release("6.18.44-fc-v595"), Some(0x06122c));
        assert_eq!(
            parse_kernel_release("5.10.0-28-cloud-amd64"),
            Some(0x050a00)
        );
        assert_eq!(parse_kernel_release("4.19.300"), Some(0x0413ff));
        assert_eq!(parse_kernel_release("6.1"), Some(0x060100));
        assert_eq!(parse_kernel_release("6.1-rc3"), Some(0x060100));
        assert_eq!(parse_kernel_release("4.9.0+"), Some(0x040900));
        assert_eq!(parse_kernel_release(""), None);
        assert_eq!(parse_kernel_release("linux"), None);
        assert_eq!(parse_kernel_release("6"), None);
        assert_eq!(parse_kernel_release("999.1.1"), None);
        assert_eq!(parse_kernel_release("99999999999999.1"), None);
    }

    #[test]
    fn reads_the_running_kernel() {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(
            kernel_version_code(),
            parse_kernel_release(release.trim()).unwrap()
        );
    }
}
