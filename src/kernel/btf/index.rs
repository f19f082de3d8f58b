//! The one validating pass over the type section: checks every record the way libbpf's
//! `btf_parse_type_sec` and `btf_validate_type` do, and records where each record starts so
//! that type ids can be looked up in O(1) afterwards. On the way it notes what the resolver
//! needs and would otherwise scan every type again for: the named structs and unions (for
//! the name index) and the size of `long` (the pointer size). It allocates nothing but those
//! two tables, and reads the string section only for the names of `long`-sized INTs.

use std::ops::Range;

use super::bytes::{name_is, u32_at};
use super::kind::*;
use super::BtfError;

/// libbpf's BTF_MAX_TYPE: type ids are 20-bit in some encodings.
const MAX_TYPES: usize = 0xfffff;

/// What the pass learns about the types.
pub(super) struct TypeTable {
    /// The start offset (into the whole input) of each type record, in id order: entry `i`
    /// is type id `i + 1`, because id 0 is `void` and has no record.
    pub starts: Vec<u32>,
    /// `(id, name_off)` of every struct and union that has a name, in id order.
    pub composites: Vec<(u32, u32)>,
    /// The size of the first INT named like `long` whose size is 4 or 8: the pointer size.
    pub long_size: Option<u32>,
}

/// Validates every type record in `types` (a range of `bytes`) against the string section
/// `strings` (also a range of `bytes`, already checked by `header::parse`).
pub(super) fn index_types(
    bytes: &[u8],
    types: Range<usize>,
    strings: Range<usize>,
) -> Result<TypeTable, BtfError> {
    if u32::try_from(types.end).is_err() {
        return Err(BtfError::new(
            "the BTF data is larger than 4 GiB, which BTF offsets cannot address",
        ));
    }
    let section = bytes.get(types.clone()).unwrap_or_default();
    let strings = bytes.get(strings).unwrap_or_default();
    let strings_len = strings.len();
    // Records are at least 12 bytes; on vmlinux the average is ~25, so this rarely regrows.
    let mut table = TypeTable {
        starts: Vec::with_capacity(section.len() / 24),
        composites: Vec::new(),
        long_size: None,
    };
    let mut refs = HighestRef::default();
    let mut pos = 0;
    while pos < section.len() {
        let id = table.starts.len() + 1;
        if id > MAX_TYPES {
            return Err(BtfError::new(format!(
                "corrupt BTF: more than {MAX_TYPES} types, the most BTF allows"
            )));
        }
        let record = section.get(pos..).unwrap_or_default();
        let len = check_record(record, id as u32, strings_len, &mut refs)?;
        // Valid, so the header is there.
        let word = |off: usize| u32_at(record, off).unwrap_or(0);
        let (name_off, kind, size_or_type) = (word(0), kind_of(word(4)), word(8));
        if is_composite(kind) && name_off != 0 {
            table.composites.push((id as u32, name_off));
        } else if kind == INT
            && table.long_size.is_none()
            && matches!(size_or_type, 4 | 8)
            && is_long(strings, name_off)
        {
            table.long_size = Some(size_or_type);
        }
        // Fits: types.end was checked to fit in u32 above.
        table.starts.push((types.start + pos) as u32);
        pos += len;
    }
    refs.check(table.starts.len())?;
    Ok(table)
}

fn is_long(strings: &[u8], name_off: u32) -> bool {
    [
        "long",
        "long int",
        "unsigned long",
        "long unsigned int",
        "unsigned long int",
    ]
    .iter()
    .any(|long| name_is(strings, name_off, long.as_bytes()))
}

/// Referenced type ids may point forward, so instead of a second pass we remember the
/// highest one and check it against the type count at the end.
#[derive(Default)]
struct HighestRef {
    target: u32,
    from: u32,
}

impl HighestRef {
    fn note(&mut self, target: u32, from: u32) {
        if target > self.target {
            self.target = target;
            self.from = from;
        }
    }

    fn check(&self, type_count: usize) -> Result<(), BtfError> {
        if self.target as usize > type_count {
            return Err(BtfError::new(format!(
                "corrupt BTF: type {} refers to type {}, but there are only {type_count} types",
                self.from, self.target
            )));
        }
        Ok(())
    }
}

/// Validates the record at the start of `record` (type `id`) and returns its length in bytes.
fn check_record(
    record: &[u8],
    id: u32,
    strings_len: usize,
    refs: &mut HighestRef,
) -> Result<usize, BtfError> {
    let truncated = || {
        BtfError::new(format!(
            "corrupt BTF: the record of type {id} is cut off by the end of the type section"
        ))
    };
    let word = |off: usize| u32_at(record, off).ok_or_else(truncated);
    let check_name = |name_off: u32| {
        if name_off as usize >= strings_len {
            return Err(BtfError::new(format!(
                "corrupt BTF: type {id} has a name offset {name_off} outside the \
                 {strings_len}-byte string section"
            )));
        }
        Ok(())
    };

    let name_off = word(0)?;
    let info = word(4)?;
    let size_or_type = word(8)?;
    check_name(name_off)?;
    let kind = kind_of(info);
    let vlen = vlen_of(info);
    // (bytes after the 12-byte header, stride of vlen records)
    let (fixed, stride) = match kind {
        INT | VAR | DECL_TAG => (4, 0),
        ARRAY => (12, 0),
        PTR | FWD | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FLOAT | TYPE_TAG => (0, 0),
        STRUCT | UNION | DATASEC | ENUM64 => (0, 12),
        ENUM | FUNC_PROTO => (0, 8),
        _ => {
            return Err(BtfError::new(format!(
                "unknown BTF kind {kind} in type {id}: this BTF is newer than conntrace \
                 understands, or corrupt"
            )))
        }
    };
    let len = TYPE_HEADER_LEN + fixed + vlen * stride;
    let body = record.get(TYPE_HEADER_LEN..len).ok_or_else(truncated)?;

    if matches!(
        kind,
        PTR | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FUNC_PROTO | VAR | DECL_TAG | TYPE_TAG
    ) {
        refs.note(size_or_type, id);
    }
    if kind == ARRAY {
        refs.note(word(12)?, id); // element type
        refs.note(word(16)?, id); // index type
    }
    // The trailing records: which of their words are names and which are type ids.
    let (name_at, type_at) = match kind {
        STRUCT | UNION | FUNC_PROTO => (Some(0), Some(4)),
        ENUM | ENUM64 => (Some(0), None),
        DATASEC => (None, Some(0)),
        _ => (None, None),
    };
    if stride != 0 {
        for item in body.chunks_exact(stride) {
            if let Some(off) = name_at {
                check_name(u32_at(item, off).ok_or_else(truncated)?)?;
            }
            if let Some(off) = type_at {
                refs.note(u32_at(item, off).ok_or_else(truncated)?, id);
            }
        }
    }
    Ok(len)
}
