//! A writer for the "newc" cpio format, the one the kernel unpacks as an initramfs.
//!
//! Uncompressed on purpose: every kernel we boot takes a plain cpio, and it spares a gzip
//! dependency.

use std::fmt;

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

/// Why an entry could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioError(pub String);

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CpioError {}

/// Builds an archive in memory, entry by entry; parents must be added before their children.
pub struct CpioWriter {
    out: Vec<u8>,
    next_ino: u32,
}

/// The fields of one header that differ between entries.
struct Entry<'a> {
    name: &'a str,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: &'a [u8],
}

impl Default for CpioWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CpioWriter {
    pub fn new() -> Self {
        CpioWriter {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    /// A directory, e.g. `dir("bin", 0o755)`.
    pub fn dir(&mut self, path: &str, perm: u32) -> Result<(), CpioError> {
        let name = checked_name(path)?;
        self.push(Entry {
            name,
            mode: S_IFDIR | (perm & 0o7777),
            nlink: 2,
            rdev: (0, 0),
            data: &[],
        })
    }

    /// A regular file with its contents.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<(), CpioError> {
        let name = checked_name(path)?;
        if u32::try_from(data.len()).is_err() {
            return Err(CpioError(format!(
                "cpio: {path} is {} bytes; the newc format holds at most 4 GiB per file",
                data.len()
            )));
        }
        self.push(Entry {
            name,
            mode: S_IFREG | (perm & 0o7777),
            nlink: 1,
            rdev: (0, 0),
            data,
        })
    }

    /// A character device node, e.g. `/dev/console` (5, 1) so init has a console before
    /// devtmpfs is mounted.
    pub fn char_dev(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        let name = checked_name(path)?;
        self.push(Entry {
            name,
            mode: S_IFCHR | (perm & 0o7777),
            nlink: 1,
            rdev: (major, minor),
            data: &[],
        })
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.write_header(
            0,
            &Entry {
                name: TRAILER,
                mode: 0,
                nlink: 1,
                rdev: (0, 0),
                data: &[],
            },
        );
        self.out
    }

    fn push(&mut self, entry: Entry<'_>) -> Result<(), CpioError> {
        let ino = self.next_ino;
        self.next_ino = self
            .next_ino
            .checked_add(1)
            .ok_or_else(|| CpioError("cpio: too many entries".to_string()))?;
        self.write_header(ino, &entry);
        self.out.extend_from_slice(entry.data);
        self.pad();
        Ok(())
    }

    fn write_header(&mut self, ino: u32, e: &Entry<'_>) {
        // Sizes were checked to fit in u32 before we got here; names are short paths.
        let fields = [
            ino,
            e.mode,
            0, // uid: root
            0, // gid: root
            e.nlink,
            0, // mtime: fixed, so the archive is reproducible
            e.data.len() as u32,
            0,
            0,
            e.rdev.0,
            e.rdev.1,
            e.name.len() as u32 + 1,
            0, // check: only used by the "crc" variant
        ];
        self.out.extend_from_slice(MAGIC);
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(e.name.as_bytes());
        self.out.push(0);
        self.pad();
    }

    /// Header+name and data each end on a 4-byte boundary.
    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
}

/// Archive names are relative ("bin/conntrace"); a leading '/' is accepted and dropped.
fn checked_name(path: &str) -> Result<&str, CpioError> {
    let name = path.trim_start_matches('/');
    if name.is_empty() || name.contains('\0') || name.split('/').any(|p| p.is_empty() || p == "..")
    {
        return Err(CpioError(format!(
            "cpio: bad entry name {path:?}: use a relative path like \"bin/conntrace\" without empty or '..' parts"
        )));
    }
    if name.len() > 4096 {
        return Err(CpioError(format!(
            "cpio: entry name is {} bytes long; keep it under 4096",
            name.len()
        )));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new();
        w.dir("bin", 0o755).unwrap();
        w.dir("/dev", 0o755).unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        w.file("init", 0o755, b"#!/bin/true\n").unwrap();
        w.file("bin/odd", 0o644, b"abcde").unwrap(); // 5 bytes: needs padding
        w.file("empty", 0o600, b"").unwrap();
        w.finish()
    }

    fn run_cpio(
        args: &[&str],
        dir: Option<&std::path::Path>,
        input: &[u8],
    ) -> (bool, String, String) {
        let mut cmd = Command::new("cpio");
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().expect("cpio is installed");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn cpio_lists_every_entry_with_its_mode() {
        let (ok, out, err) = run_cpio(&["-t", "-v", "--quiet"], None, &sample());
        assert!(ok, "cpio -t failed: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 6, "{out}");
        assert!(
            lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" bin"),
            "{out}"
        );
        assert!(
            lines[2].starts_with("crw-------")
                && lines[2].contains("5,")
                && lines[2].ends_with(" dev/console"),
            "{out}"
        );
        assert!(
            lines[3].starts_with("-rwxr-xr-x") && lines[3].ends_with(" init"),
            "{out}"
        );
        assert!(
            lines[4].starts_with("-rw-r--r--") && lines[4].ends_with(" bin/odd"),
            "{out}"
        );
        assert!(lines[5].ends_with(" empty"), "{out}");
    }

    #[test]
    fn cpio_extracts_the_same_bytes() {
        let dir = std::env::temp_dir().join(format!("vmtest-cpio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = CpioWriter::new();
        w.dir("bin", 0o755).unwrap();
        let big: Vec<u8> = (0..10_007u32).map(|i| (i * 31 % 251) as u8).collect();
        w.file("bin/big", 0o755, &big).unwrap();
        w.file("init", 0o700, b"x").unwrap();
        let (ok, _, err) = run_cpio(&["-i", "-d", "--quiet"], Some(&dir), &w.finish());
        assert!(ok, "cpio -i failed: {err}");
        assert_eq!(std::fs::read(dir.join("bin/big")).unwrap(), big);
        assert_eq!(std::fs::read(dir.join("init")).unwrap(), b"x");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("init"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn layout_is_aligned_and_ends_with_the_trailer() {
        let bytes = sample();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(&bytes[..6], MAGIC);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("TRAILER!!!\0"));
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        let mut w = CpioWriter::new();
        for bad in ["", "/", "a//b", "../etc", "a\0b"] {
            let err = w.file(bad, 0o644, b"").unwrap_err();
            assert!(err.0.contains("bad entry name"), "{bad:?}: {err}");
        }
    }
}
