//! The `.conntrace.fields` section: struct-field relocations the loader resolves from BTF.
//! Format (bpf-asm/README.md): a 16-byte header, `count` 24-byte records, a string table.

pub const MAGIC: u32 = 0x5246_4354;
pub const VERSION: u32 = 1;
pub const KIND_OFF: u32 = 1;
pub const KIND_IMM: u32 = 2;
const HEADER_LEN: usize = 16;
const RECORD_LEN: usize = 24;

/// One record as stored, before it is tied to a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFieldReloc {
    pub section: u32,
    pub insn_offset: u32,
    pub kind: u32,
    pub placeholder: i32,
    pub addend: i32,
    pub name: String,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let b: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// Parses the whole section; errors are phrased to follow "probe object: ".
pub fn parse(bytes: &[u8]) -> Result<Vec<RawFieldReloc>, String> {
    let header = |at| {
        u32_at(bytes, at).ok_or_else(|| {
            format!(
                ".conntrace.fields is {} bytes, shorter than its 16-byte header",
                bytes.len()
            )
        })
    };
    let (magic, version, count, strings_len) = (header(0)?, header(4)?, header(8)?, header(12)?);
    if magic != MAGIC {
        return Err(format!(".conntrace.fields has magic {magic:#010x}, expected {MAGIC:#010x}: not written by bpf-asm"));
    }
    if version != VERSION {
        return Err(format!(".conntrace.fields is version {version}, this conntrace reads version {VERSION}: rebuild with a matching bpf-asm"));
    }
    let records_len = (count as usize)
        .checked_mul(RECORD_LEN)
        .ok_or_else(|| format!(".conntrace.fields claims {count} records, too many"))?;
    let strings_start = HEADER_LEN.saturating_add(records_len);
    let needed = strings_start.checked_add(strings_len as usize);
    let strings = match needed.and_then(|end| bytes.get(strings_start..end)) {
        Some(s) => s,
        None => {
            return Err(format!(
                ".conntrace.fields claims {count} records and {strings_len} bytes of strings, but the section has only {} bytes",
                bytes.len()
            ))
        }
    };
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let at = HEADER_LEN + i * RECORD_LEN;
        let word = |k: usize| u32_at(bytes, at + 4 * k).unwrap_or(0); // in range: checked above
        let (section, insn_offset, kind, name_off) = (word(0), word(1), word(2), word(5));
        let placeholder = word(3) as i32;
        let addend = word(4) as i32;
        if kind != KIND_OFF && kind != KIND_IMM {
            return Err(format!(
                ".conntrace.fields record {i} has kind {kind}, expected 1 (off) or 2 (imm)"
            ));
        }
        if kind == KIND_OFF && i16::try_from(placeholder).is_err() {
            return Err(format!(".conntrace.fields record {i}: placeholder {placeholder:#x} does not fit the 16-bit off field"));
        }
        let name = string_at(strings, name_off)
            .map_err(|why| format!(".conntrace.fields record {i}: field name {why}"))?;
        out.push(RawFieldReloc {
            section,
            insn_offset,
            kind,
            placeholder,
            addend,
            name,
        });
    }
    Ok(out)
}

fn string_at(strings: &[u8], offset: u32) -> Result<String, String> {
    let tail = strings
        .get(offset as usize..)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            format!(
                "at string offset {offset} is past the {}-byte string table",
                strings.len()
            )
        })?;
    let len = tail
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| format!("at string offset {offset} is not NUL-terminated"))?;
    let text = std::str::from_utf8(&tail[..len])
        .map_err(|_| format!("at string offset {offset} is not UTF-8"))?;
    if text.is_empty() {
        return Err(format!("at string offset {offset} is empty"));
    }
    Ok(text.to_string())
}
