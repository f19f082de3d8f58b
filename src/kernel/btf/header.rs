//! The BTF header and string section, checked the way libbpf's `btf_parse_hdr` and
//! `btf_parse_str_sec` check them, before any type record is read.

use std::ops::Range;

use super::bytes::{u16_at, u32_at};
use super::BtfError;

const MAGIC: u16 = 0xeb9f;
/// The magic as a little-endian read sees it in big-endian BTF.
const MAGIC_SWAPPED: u16 = 0x9feb;
const VERSION: u8 = 1;
/// `sizeof(struct btf_header)`: magic, version, flags, hdr_len, type_off/len, str_off/len.
pub(super) const HEADER_LEN: usize = 24;
/// libbpf's BTF_MAX_STR_OFFSET: string offsets are 31-bit.
const MAX_STR_OFFSET: usize = 0x7fff_ffff;

/// Where the type and string sections lie, as absolute byte ranges of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sections {
    pub types: Range<usize>,
    pub strings: Range<usize>,
}

/// Validates the header and the string section and returns the two section ranges.
pub(super) fn parse(bytes: &[u8]) -> Result<Sections, BtfError> {
    let field = |off: usize| u32_at(bytes, off).map(|v| v as usize);
    let (Some(magic), Some(version), Some(hdr_len), true) = (
        u16_at(bytes, 0),
        bytes.get(2).copied(),
        field(4),
        bytes.len() >= HEADER_LEN,
    ) else {
        return Err(BtfError::new(format!(
            "the BTF data is {} bytes long, too short for the {HEADER_LEN}-byte BTF header",
            bytes.len()
        )));
    };
    if magic == MAGIC_SWAPPED {
        return Err(BtfError::new(
            "big-endian BTF not supported: conntrace reads only little-endian BTF",
        ));
    }
    if magic != MAGIC {
        return Err(BtfError::new(format!(
            "not BTF data: the magic number is {magic:#06x}, expected {MAGIC:#06x}"
        )));
    }
    if version != VERSION {
        return Err(BtfError::new(format!(
            "unsupported BTF version {version} (only version {VERSION} is known)"
        )));
    }
    if hdr_len < HEADER_LEN {
        return Err(BtfError::new(format!(
            "corrupt BTF header: it claims to be {hdr_len} bytes, less than the minimum {HEADER_LEN}"
        )));
    }
    if hdr_len > bytes.len() {
        return Err(BtfError::new(format!(
            "corrupt BTF header: it claims to be {hdr_len} bytes but the data is only {} bytes",
            bytes.len()
        )));
    }
    // A longer header comes from a newer format; the kernel accepts it only if the fields it
    // does not know are zero, and so do we.
    if bytes
        .get(HEADER_LEN..hdr_len)
        .is_some_and(|extra| extra.iter().any(|&b| b != 0))
    {
        return Err(BtfError::new(
            "unsupported BTF header: it has non-zero fields this version of conntrace does not know",
        ));
    }
    let (Some(type_off), Some(type_len), Some(str_off), Some(str_len)) =
        (field(8), field(12), field(16), field(20))
    else {
        return Err(BtfError::new("corrupt BTF header: truncated"));
    };
    let sections = locate_sections(bytes.len(), hdr_len, type_off, type_len, str_off, str_len)?;
    check_strings(bytes.get(sections.strings.clone()).unwrap_or_default())?;
    Ok(sections)
}

/// Offsets in the header count from the end of the header; both sections must fit in the
/// data, the type section must be 4-byte aligned and end before the string section starts.
fn locate_sections(
    total: usize,
    hdr_len: usize,
    type_off: usize,
    type_len: usize,
    str_off: usize,
    str_len: usize,
) -> Result<Sections, BtfError> {
    let data_len = total - hdr_len.min(total);
    let type_end = type_off.checked_add(type_len);
    let str_end = str_off.checked_add(str_len);
    if str_end.is_none_or(|end| end > data_len) {
        return Err(BtfError::new(format!(
            "corrupt BTF header: the string section ({str_len} bytes at offset {str_off}) \
             runs past the end of the {data_len} bytes of data"
        )));
    }
    if type_end.is_none_or(|end| end > str_off) {
        return Err(BtfError::new(format!(
            "corrupt BTF header: the type section ({type_len} bytes at offset {type_off}) \
             overlaps or follows the string section (at offset {str_off})"
        )));
    }
    if !type_off.is_multiple_of(4) {
        return Err(BtfError::new(format!(
            "corrupt BTF header: the type section offset {type_off} is not 4-byte aligned"
        )));
    }
    let abs = |off: usize, len: usize| hdr_len + off..hdr_len + off + len;
    Ok(Sections {
        types: abs(type_off, type_len),
        strings: abs(str_off, str_len),
    })
}

/// The string section starts with the empty string (offset 0 = no name) and ends with a NUL,
/// so every in-bounds offset reads as a terminated string.
fn check_strings(strings: &[u8]) -> Result<(), BtfError> {
    match (strings.first(), strings.last()) {
        (None, _) | (_, None) => Err(BtfError::new("corrupt BTF: the string section is empty")),
        _ if strings.len() - 1 > MAX_STR_OFFSET => Err(BtfError::new(format!(
            "corrupt BTF: the string section is {} bytes, more than BTF offsets can address",
            strings.len()
        ))),
        (Some(&first), _) if first != 0 => Err(BtfError::new(
            "corrupt BTF: the string section does not start with an empty string",
        )),
        (_, Some(&last)) if last != 0 => Err(BtfError::new(
            "corrupt BTF: the string section does not end with a NUL byte",
        )),
        _ => Ok(()),
    }
}
