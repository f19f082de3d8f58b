//! Finding the `.BTF` section of an ELF vmlinux (what `--btf PATH` usually points at).

use object::{CompressionFormat, Object, ObjectSection, ReadRef};

use super::{BtfError, MAX_BTF_BYTES};

const ELF_MAGIC: &[u8] = b"\x7fELF";

pub(super) fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(ELF_MAGIC)
}

/// A copy of the `.BTF` section's bytes. `data` is the whole file in memory, or a
/// `ReadCache` over it: a vmlinux with DWARF is hundreds of MiB, and only `.BTF` is needed.
pub(super) fn btf_section<'d, R: ReadRef<'d>>(data: R) -> Result<Vec<u8>, BtfError> {
    let file = object::File::parse(data)
        .map_err(|e| BtfError::new(format!("the file looks like ELF but cannot be read: {e}")))?;
    let section = file.section_by_name(".BTF").ok_or_else(|| {
        BtfError::new(
            "the ELF file has no .BTF section: it was built without CONFIG_DEBUG_INFO_BTF \
             (or stripped); use a vmlinux with BTF or the raw /sys/kernel/btf/vmlinux",
        )
    })?;
    // Checked before reading: a corrupt section header may claim any size.
    if section.size() > MAX_BTF_BYTES {
        return Err(BtfError::new(format!(
            "its .BTF section claims {} bytes, more than the {} MiB any kernel's BTF needs: \
             the file is corrupt",
            section.size(),
            MAX_BTF_BYTES >> 20
        )));
    }
    let data = section
        .compressed_data()
        .map_err(|e| BtfError::new(format!("cannot read the .BTF section: {e}")))?;
    if data.format != CompressionFormat::None {
        return Err(BtfError::new(
            "the .BTF section is compressed, which conntrace does not support; decompress \
             it first (e.g. objcopy --decompress-debug-sections)",
        ));
    }
    Ok(data.data.to_vec())
}
