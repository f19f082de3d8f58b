//! Reading BTF from a file without trusting the file: raw BTF is read whole, but only up to
//! [`MAX_BTF_BYTES`]; an ELF vmlinux is read only where its `.BTF` section is.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use object::ReadCache;

use super::{elf, BtfError, MAX_BTF_BYTES};

/// The BTF bytes in the file at `path`: the whole file for raw BTF, the `.BTF` section for ELF.
/// Errors do not name the file; the caller does.
pub(super) fn read_btf_file(path: &Path) -> Result<Vec<u8>, BtfError> {
    let cannot_read = |e: io::Error| BtfError::new(format!("cannot read it: {e}"));
    let mut file = File::open(path).map_err(cannot_read)?;
    let meta = file.metadata().map_err(cannot_read)?;
    if meta.is_dir() {
        return Err(BtfError::new(
            "it is a directory; give the path of a BTF file or of a vmlinux",
        ));
    }
    if !meta.is_file() {
        // A pipe or a device: no size to check and no seeking, so read it (bounded) first.
        let bytes = read_bounded(file, 0)?;
        return if elf::is_elf(&bytes) {
            elf::btf_section(bytes.as_slice())
        } else {
            Ok(bytes)
        };
    }
    if starts_with_elf(&mut file)? {
        return elf::btf_section(&ReadCache::new(file));
    }
    // Refused before reading a byte; the bounded read still catches a file that grows.
    if meta.len() > MAX_BTF_BYTES {
        return Err(too_big(meta.len()));
    }
    read_bounded(file, meta.len())
}

/// Reads raw BTF at `path` (the kernel's /sys/kernel/btf/vmlinux), at most
/// [`MAX_BTF_BYTES`]: a bind mount or a damaged sysfs cannot make conntrace read without end.
pub(super) fn read_raw(path: &Path) -> io::Result<Result<Vec<u8>, BtfError>> {
    let file = File::open(path)?;
    let expected = file.metadata()?.len();
    Ok(read_bounded(file, expected))
}

/// Reads to the end, but no more than one byte past the limit, into a buffer of `expected`
/// bytes (the file's length, at most the limit), so that a file that does not grow is read
/// without the buffer growing and being copied as it fills.
fn read_bounded(file: File, expected: u64) -> Result<Vec<u8>, BtfError> {
    let mut bytes = Vec::with_capacity(expected.min(MAX_BTF_BYTES) as usize);
    file.take(MAX_BTF_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| BtfError::new(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_BTF_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Whether the file begins with the ELF magic; leaves it positioned at its start.
fn starts_with_elf(file: &mut File) -> Result<bool, BtfError> {
    let mut magic = [0u8; 4];
    let mut got = 0;
    let result = loop {
        match file.read(&mut magic[got..]) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                got += n;
                if got == magic.len() {
                    break Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    result
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .map_err(|e| BtfError::new(format!("cannot read it: {e}")))?;
    Ok(elf::is_elf(&magic[..got]))
}

fn too_big(len: u64) -> BtfError {
    BtfError::new(format!(
        "it is {} MiB or more, larger than the {} MiB limit for raw BTF (a kernel's is a few \
         MiB): this is not a BTF file; give /sys/kernel/btf/vmlinux or a vmlinux ELF",
        len >> 20,
        MAX_BTF_BYTES >> 20
    ))
}
