//! Finding the `.BTF` section of an ELF vmlinux (what `--btf PATH` usually points at).

use object::{CompressionFormat, Object, ObjectSection};

use super::BtfError;

const ELF_MAGIC: &[u8] = b"\x7fELF";

pub(super) fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(ELF_MAGIC)
}

/// A copy of the `.BTF` section's bytes.
pub(super) fn btf_section(bytes: &[u8]) -> Result<Vec<u8>, BtfError> {
    let file = object::File::parse(bytes)
        .map_err(|e| BtfError::new(format!("the file looks like ELF but cannot be read: {e}")))?;
    let section = file.section_by_name(".BTF").ok_or_else(|| {
        BtfError::new(
            "the ELF file has no .BTF section: it was built without CONFIG_DEBUG_INFO_BTF \
             (or stripped); use a vmlinux with BTF or the raw /sys/kernel/btf/vmlinux",
        )
    })?;
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
