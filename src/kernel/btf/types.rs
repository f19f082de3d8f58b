//! Read access to validated type records by id.

use super::bytes::{c_str_at, name_is, name_is_empty, u32_at};
use super::kind::{kind_flag_of, kind_of, vlen_of, MEMBER_LEN, TYPE_HEADER_LEN};
use super::Btf;

/// One type record, borrowed from the BTF bytes.
#[derive(Clone, Copy)]
pub(super) struct RawType<'a> {
    pub name_off: u32,
    pub info: u32,
    /// `size` for INT/STRUCT/UNION/ENUM/FLOAT/DATASEC, the referenced type id for the others.
    pub size_or_type: u32,
    /// The bytes after the 12-byte header, up to the end of the type section.
    body: &'a [u8],
}

/// One `struct btf_member` of a struct or union.
pub(super) struct Member {
    pub name_off: u32,
    pub type_id: u32,
    /// With the struct's kind_flag: bitfield size << 24 | bit offset; without: bit offset.
    pub offset: u32,
}

impl<'a> RawType<'a> {
    pub fn kind(&self) -> u32 {
        kind_of(self.info)
    }

    pub fn kind_flag(&self) -> bool {
        kind_flag_of(self.info)
    }

    /// The members of a struct or union (meaningless for other kinds).
    pub fn members(&self) -> impl Iterator<Item = Member> + 'a {
        let count = vlen_of(self.info);
        let body = self.body;
        body.chunks_exact(MEMBER_LEN).take(count).map(|m| Member {
            name_off: u32_at(m, 0).unwrap_or(0),
            type_id: u32_at(m, 4).unwrap_or(0),
            offset: u32_at(m, 8).unwrap_or(0),
        })
    }

    /// `(element type, element count)` of an array.
    pub fn array(&self) -> Option<(u32, u32)> {
        Some((u32_at(self.body, 0)?, u32_at(self.body, 8)?))
    }

    /// An INT's encoding word: bits 0-7 nr_bits, 16-23 bit offset.
    pub fn int_encoding(&self) -> Option<u32> {
        u32_at(self.body, 0)
    }
}

impl Btf {
    /// The record of type `id`; `None` for id 0 (`void`) and ids past the end.
    pub(super) fn raw_type(&self, id: u32) -> Option<RawType<'_>> {
        let start = *self.starts.get((id as usize).checked_sub(1)?)? as usize;
        let header = self.bytes.get(start..self.sections.types.end)?;
        Some(RawType {
            name_off: u32_at(header, 0)?,
            info: u32_at(header, 4)?,
            size_or_type: u32_at(header, 8)?,
            body: header.get(TYPE_HEADER_LEN..)?,
        })
    }

    /// The string section.
    pub(super) fn strings(&self) -> &[u8] {
        self.bytes
            .get(self.sections.strings.clone())
            .unwrap_or_default()
    }

    /// The string at `name_off` in the string section; empty for anonymous types.
    pub(super) fn name(&self, name_off: u32) -> &[u8] {
        c_str_at(self.strings(), name_off as usize).unwrap_or_default()
    }

    /// Whether the string at `name_off` is `name`: `self.name(name_off) == name`, without
    /// reading further than `name`.
    pub(super) fn name_is(&self, name_off: u32, name: &[u8]) -> bool {
        name_is(self.strings(), name_off, name)
    }

    /// Whether the string at `name_off` is empty: `self.name(name_off).is_empty()`.
    pub(super) fn name_is_empty(&self, name_off: u32) -> bool {
        name_is_empty(self.strings(), name_off)
    }
}
