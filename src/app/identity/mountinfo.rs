//! Finding the cgroup v2 hierarchy in /proc/self/mountinfo: a pure function over its bytes.
//!
//! On a unified host it is mounted at /sys/fs/cgroup; on a hybrid v1/v2 host (systemd's
//! "hybrid" mode) at /sys/fs/cgroup/unified, next to the v1 controllers; inside a container it
//! may be a bind mount of a subtree (its `root` field is then that subtree, not `/`).

use std::fmt;

/// The cgroup2 mount: where it is, and which cgroup its root directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup2Mount {
    /// The mount point, unescaped (`\040` is a space in mountinfo).
    pub mount_point: Vec<u8>,
    /// The cgroup the mount point shows, below the hierarchy's root (`/` for the whole).
    pub root: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountinfoError {
    /// No line of type cgroup2 (a cgroup v1-only host).
    NoCgroup2,
    /// A cgroup2 line without the fields mountinfo always has.
    Malformed { line: usize },
}

impl fmt::Display for MountinfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountinfoError::NoCgroup2 => {
                f.write_str("no cgroup2 file system is mounted (see /proc/self/mountinfo)")
            }
            MountinfoError::Malformed { line } => write!(
                f,
                "line {line} of /proc/self/mountinfo names cgroup2 but lacks its root or mount point"
            ),
        }
    }
}

/// The cgroup2 mount a reader of the hierarchy should use: the last one listed (a later
/// mount over the same place hides the earlier), preferring one that shows the whole
/// hierarchy (`root` `/`) over a bind mount of a subtree.
pub fn cgroup2_mount(mountinfo: &[u8]) -> Result<Cgroup2Mount, MountinfoError> {
    let mut best: Option<Cgroup2Mount> = None;
    for (n, line) in mountinfo.split(|&b| b == b'\n').enumerate() {
        // Fields: id parent major:minor root mount-point options [optional...] - type source super
        let Some(dash) = find_separator(line) else {
            continue;
        };
        let after = &line[dash + 3..];
        if after.split(|&b| b == b' ').next() != Some(b"cgroup2") {
            continue;
        }
        let mut fields = line[..dash].split(|&b| b == b' ');
        let (Some(root), Some(mount_point)) = (fields.nth(3), fields.next()) else {
            return Err(MountinfoError::Malformed { line: n + 1 });
        };
        if root.is_empty() || mount_point.is_empty() {
            return Err(MountinfoError::Malformed { line: n + 1 });
        }
        let found = Cgroup2Mount {
            mount_point: unescape(mount_point),
            root: unescape(root),
        };
        let whole = |m: &Cgroup2Mount| m.root == b"/";
        if best.as_ref().is_none_or(|b| whole(&found) || !whole(b)) {
            best = Some(found);
        }
    }
    best.ok_or(MountinfoError::NoCgroup2)
}

/// The position of the ` - ` that ends the optional fields.
fn find_separator(line: &[u8]) -> Option<usize> {
    line.windows(3).position(|w| w == b" - ")
}

/// mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field.get(i + 1..i + 4).filter(|d| {
            field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &[u8] = b"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_host_has_it_at_unified() {
        let m = cgroup2_mount(HYBRID).unwrap();
        assert_eq!(m.mount_point, b"/sys/fs/cgroup/unified");
        assert_eq!(m.root, b"/");
    }

    #[test]
    fn unified_host_and_escapes() {
        let text =
            b"25 1 0:22 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(cgroup2_mount(text).unwrap().mount_point, b"/sys/fs/cgroup");
        let text = b"25 1 0:22 / /mnt/my\\040cg\\134x rw - cgroup2 none rw\n";
        assert_eq!(cgroup2_mount(text).unwrap().mount_point, b"/mnt/my cg\\x");
    }

    #[test]
    fn whole_hierarchy_wins_over_a_subtree_bind_mount() {
        let text = b"25 1 0:22 / /host/cgroup rw - cgroup2 cgroup2 rw
90 80 0:22 /kubepods.slice/pod /sys/fs/cgroup ro - cgroup2 cgroup2 rw
";
        let m = cgroup2_mount(text).unwrap();
        assert_eq!(m.mount_point, b"/host/cgroup");
        let only_sub = b"90 80 0:22 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(only_sub).unwrap().root, b"/docker/abc");
    }

    #[test]
    fn missing_and_malformed() {
        assert_eq!(cgroup2_mount(b""), Err(MountinfoError::NoCgroup2));
        assert_eq!(
            cgroup2_mount(b"1 2 - cgroup2 x y\n"),
            Err(MountinfoError::Malformed { line: 1 })
        );
        // Any bytes at all: an answer, never a panic.
        for cut in 0..HYBRID.len() {
            let _ = cgroup2_mount(&HYBRID[..cut]);
        }
        let _ = cgroup2_mount(b"\\\\\\3 - cgroup2\n - - - \\777 \\");
        assert!(cgroup2_mount(b"a b c d e\\3 - cgroup2 x").is_ok());
    }
}
