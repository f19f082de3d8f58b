//! The one validating pass over the type section: checks every record the way libbpf's
//! `btf_parse_type_sec` and `btf_validate_type` do, and records where each record starts so
//! that type ids can be looked up in O(1) afterwards. On the way it notes what the resolver
//! needs and would otherwise scan every type again for: the named structs and unions (for
//! the name index) and the size of `long` (the pointer size). It allocates nothing but those
//! two tables, and reads the string section only for the names of `long`-sized INTs.
//!
//! The pass is most of the cost of loading BTF (a kernel has ~130k records and ~170k
//! trailing records: members, parameters, enumerators), so it is written for speed: each
//! record's layout and which of its words are names and type ids come from a table by kind
//! ([`SHAPES`]), its words are read from fixed-size arrays, and its trailing records are
//! folded into two maxima (names, type ids) checked once per record, so that the loop has
//! almost no branches that depend on the data. Only a record that fails is read again, by
//! [`refusal`], to report the first failed check exactly as checking each word in turn would.

use std::ops::Range;

use super::bytes::name_is;
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
    while let Some(record) = section.get(pos..).filter(|r| !r.is_empty()) {
        let id = table.starts.len() + 1;
        if id > MAX_TYPES {
            return Err(BtfError::new(format!(
                "corrupt BTF: more than {MAX_TYPES} types, the most BTF allows"
            )));
        }
        let id = id as u32;
        let Some(Checked {
            len,
            name_off,
            kind,
            size_or_type,
            max_type,
        }) = check_record(record, strings_len)
        else {
            return Err(refusal(record, id, strings_len));
        };
        refs.note(max_type, id);
        if is_composite(kind) && name_off != 0 {
            table.composites.push((id, name_off));
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
        // Selects rather than a branch: the highest id rises at no steady rate.
        let higher = target > self.target;
        self.from = if higher { from } else { self.from };
        self.target = self.target.max(target);
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

/// The little-endian word at `AT` of a fixed-size array: no bounds check at run time.
#[inline(always)]
fn word<const N: usize, const AT: usize>(bytes: &[u8; N]) -> u32 {
    match bytes.get(AT..AT + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// How a record of one kind is laid out and what its words are checked against.
#[derive(Clone, Copy)]
struct Shape {
    known: bool,
    /// Bytes after the 12-byte header, before any trailing records.
    fixed: usize,
    /// Bytes per trailing record; 0 if the kind has none (FUNC's vlen is its linkage).
    stride: usize,
    /// All ones if `size_or_type` is a type id.
    refers: u32,
    /// All ones if the two words after the header are type ids (an ARRAY's element and
    /// index types).
    array: u32,
    /// All ones if word 0 of each trailing record is a name.
    item_name: u32,
    /// All ones if word 0, or word 1, of each trailing record is a type id.
    item_type_0: u32,
    item_type_1: u32,
}

const fn shape(kind: u32) -> Shape {
    const ALL: u32 = u32::MAX;
    let none = Shape {
        known: true,
        fixed: 0,
        stride: 0,
        refers: 0,
        array: 0,
        item_name: 0,
        item_type_0: 0,
        item_type_1: 0,
    };
    match kind {
        INT => Shape { fixed: 4, ..none },
        FWD | FLOAT => none,
        VAR | DECL_TAG => Shape {
            fixed: 4,
            refers: ALL,
            ..none
        },
        ARRAY => Shape {
            fixed: 12,
            array: ALL,
            ..none
        },
        PTR | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | TYPE_TAG => Shape {
            refers: ALL,
            ..none
        },
        STRUCT | UNION => Shape {
            stride: MEMBER_LEN,
            item_name: ALL,
            item_type_1: ALL,
            ..none
        },
        FUNC_PROTO => Shape {
            stride: 8,
            refers: ALL,
            item_name: ALL,
            item_type_1: ALL,
            ..none
        },
        ENUM => Shape {
            stride: 8,
            item_name: ALL,
            ..none
        },
        ENUM64 => Shape {
            stride: 12,
            item_name: ALL,
            ..none
        },
        DATASEC => Shape {
            stride: 12,
            item_type_0: ALL,
            ..none
        },
        _ => Shape {
            known: false,
            ..none
        },
    }
}

/// `shape` of every value `kind_of` can return.
const SHAPES: [Shape; 32] = {
    let mut shapes = [shape(0); 32];
    let mut kind = 0;
    while kind < 32 {
        shapes[kind] = shape(kind as u32);
        kind += 1;
    }
    shapes
};

/// A valid record's length in bytes, the header fields the pass keeps, and the highest type
/// id it refers to.
struct Checked {
    len: usize,
    name_off: u32,
    kind: u32,
    size_or_type: u32,
    max_type: u32,
}

/// Checks the record at the start of `record`; `None` if it is invalid, and then
/// [`refusal`] says why. Referenced ids are only gathered, for the end of the pass.
#[inline(always)]
fn check_record(record: &[u8], strings_len: usize) -> Option<Checked> {
    let (header, rest) = record.split_first_chunk::<TYPE_HEADER_LEN>()?;
    let name_off = word::<12, 0>(header);
    let info = word::<12, 4>(header);
    let size_or_type = word::<12, 8>(header);
    let kind = kind_of(info);
    let shape = SHAPES.get(kind as usize).copied()?;
    let body_len = shape.fixed + vlen_of(info) * shape.stride;
    let body = rest.get(..body_len)?;
    let mut max_type = size_or_type & shape.refers;
    // Read whatever the kind (masked to nothing unless it is an ARRAY): the section goes on
    // past the header by 8 bytes nearly always, so this branch nearly always goes one way.
    if let Some(array) = rest.first_chunk::<8>() {
        max_type = max_type
            .max(word::<8, 0>(array) & shape.array) // element type
            .max(word::<8, 4>(array) & shape.array); // index type
    }
    let max_name = match shape.stride {
        12 => fold::<12>(body, &shape, &mut max_type),
        8 => fold::<8>(body, &shape, &mut max_type),
        _ => 0,
    }
    .max(name_off);
    (shape.known && (max_name as usize) < strings_len).then_some(Checked {
        len: TYPE_HEADER_LEN + body_len,
        name_off,
        kind,
        size_or_type,
        max_type,
    })
}

/// Why `check_record` refused the record at the start of `record` (type `id`): the first
/// failed check, in libbpf's order (header, name, kind, size, the trailing records' names).
#[cold]
#[inline(never)]
fn refusal(record: &[u8], id: u32, strings_len: usize) -> BtfError {
    let truncated = BtfError::new(format!(
        "corrupt BTF: the record of type {id} is cut off by the end of the type section"
    ));
    let bad_name = |name_off: u32| {
        BtfError::new(format!(
            "corrupt BTF: type {id} has a name offset {name_off} outside the \
             {strings_len}-byte string section"
        ))
    };
    let Some((header, rest)) = record.split_first_chunk::<TYPE_HEADER_LEN>() else {
        return truncated;
    };
    let name_off = word::<12, 0>(header);
    if name_off as usize >= strings_len {
        return bad_name(name_off);
    }
    let info = word::<12, 4>(header);
    let kind = kind_of(info);
    let shape = shape(kind);
    if !shape.known {
        return BtfError::new(format!(
            "unknown BTF kind {kind} in type {id}: this BTF is newer than conntrace \
             understands, or corrupt"
        ));
    }
    let Some(body) = rest.get(..shape.fixed + vlen_of(info) * shape.stride) else {
        return truncated;
    };
    let first_bad_name = body
        .chunks(shape.stride.max(1))
        .filter(|_| shape.item_name != 0)
        .filter_map(|item| item.first_chunk::<4>())
        .map(|&name| u32::from_le_bytes(name))
        .find(|&name_off| name_off as usize >= strings_len);
    match first_bad_name {
        Some(name_off) => bad_name(name_off),
        // Not reached: check_record refuses a record for no other reason.
        None => BtfError::new(format!("corrupt BTF: type {id} is invalid")),
    }
}

/// The highest name offset of the `STRIDE`-byte trailing records that make up `body`; the
/// highest type id among them raises `max_type`.
#[inline(always)]
fn fold<const STRIDE: usize>(body: &[u8], shape: &Shape, max_type: &mut u32) -> u32 {
    let (items, _) = body.as_chunks::<STRIDE>();
    let (mut max_name, mut types) = (0u32, *max_type);
    for item in items {
        let first = word::<STRIDE, 0>(item);
        let second = word::<STRIDE, 4>(item);
        max_name = max_name.max(first & shape.item_name);
        types = types.max((first & shape.item_type_0) | (second & shape.item_type_1));
    }
    *max_type = types;
    max_name
}
