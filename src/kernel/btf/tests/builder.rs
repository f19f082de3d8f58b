//! A tiny BTF writer for tests: append types, get their ids, build the blob.

use crate::kernel::btf::kind::*;

/// The header fields, editable before the blob is assembled.
pub struct Header {
    pub magic: u16,
    pub version: u8,
    pub hdr_len: u32,
    pub type_off: u32,
    pub type_len: u32,
    pub str_off: u32,
    pub str_len: u32,
    /// Bytes after the 24-byte header (a newer format's fields); set hdr_len to match.
    pub extra: Vec<u8>,
}

pub struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl BtfBuilder {
    pub fn new() -> BtfBuilder {
        BtfBuilder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }

    /// Adds `s` to the string section; "" is offset 0.
    pub fn string(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    /// Appends raw words to the type section (for hand-made or broken records).
    pub fn words(&mut self, words: &[u32]) {
        for w in words {
            self.types.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Appends a record: header then `tail` words. Returns its type id.
    pub fn raw(
        &mut self,
        name_off: u32,
        kind: u32,
        vlen: u32,
        kind_flag: bool,
        size_or_type: u32,
        tail: &[u32],
    ) -> u32 {
        let info = (u32::from(kind_flag) << 31) | (kind << 24) | vlen;
        self.words(&[name_off, info, size_or_type]);
        self.words(tail);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn int(&mut self, name: &str, size: u32) -> u32 {
        let n = self.string(name);
        self.raw(n, INT, 0, false, size, &[size * 8])
    }

    /// An INT with an explicit encoding (bits 0-7 nr_bits, 16-23 bit offset).
    pub fn int_encoded(&mut self, name: &str, size: u32, encoding: u32) -> u32 {
        let n = self.string(name);
        self.raw(n, INT, 0, false, size, &[encoding])
    }

    /// PTR, TYPEDEF, CONST, VOLATILE, RESTRICT, TYPE_TAG: a record that refers to `target`.
    pub fn refer(&mut self, kind: u32, name: &str, target: u32) -> u32 {
        let n = self.string(name);
        self.raw(n, kind, 0, false, target, &[])
    }

    pub fn array(&mut self, element: u32, index: u32, count: u32) -> u32 {
        self.raw(0, ARRAY, 0, false, 0, &[element, index, count])
    }

    /// A struct or union; members are (name, type, bit offset).
    pub fn composite(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        self.composite_flagged(kind, name, size, false, members)
    }

    /// Same, with kind_flag set: member offsets may carry a bitfield size in the top byte.
    pub fn composite_flagged(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        kind_flag: bool,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let n = self.string(name);
        let mut tail = Vec::new();
        for &(member, ty, offset) in members {
            let m = self.string(member);
            tail.extend_from_slice(&[m, ty, offset]);
        }
        self.raw(n, kind, members.len() as u32, kind_flag, size, &tail)
    }

    pub fn header(&self) -> Header {
        Header {
            magic: 0xeb9f,
            version: 1,
            hdr_len: 24,
            type_off: 0,
            type_len: self.types.len() as u32,
            str_off: self.types.len() as u32,
            str_len: self.strings.len() as u32,
            extra: Vec::new(),
        }
    }

    pub fn build(&self) -> Vec<u8> {
        self.build_with(|_| {})
    }

    /// Builds with header fields edited by `edit`; sections stay where they are.
    pub fn build_with(&self, edit: impl FnOnce(&mut Header)) -> Vec<u8> {
        let mut h = self.header();
        edit(&mut h);
        let mut out = Vec::new();
        out.extend_from_slice(&h.magic.to_le_bytes());
        out.push(h.version);
        out.push(0); // flags
        for w in [h.hdr_len, h.type_off, h.type_len, h.str_off, h.str_len] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&h.extra);
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// A blob exercising the resolver: anonymous unions and structs, typedefs, qualifiers,
/// arrays, pointers and bitfields. Layout (byte offsets) of `struct outer`:
///   0 a: int; 4 (anon union { 4 b: int; 4 (anon struct { 4 c: short; 6 d: short }) });
///   8 e: const inner_t (typedef of struct inner { 0 x: long; 8 y: int[4] });
///   32 p: struct inner *; 40 flags: u8:3 (kind_flag bitfield); 41 whole: u8
pub fn sample() -> Vec<u8> {
    sample_builder().build()
}

pub fn sample_builder() -> BtfBuilder {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let short = b.int("short", 2);
    let long = b.int("long int", 8);
    let u8_ = b.int("unsigned char", 1);
    let anon_struct = b.composite(STRUCT, "", 4, &[("c", short, 0), ("d", short, 16)]);
    let anon_union = b.composite(UNION, "", 4, &[("b", int, 0), ("", anon_struct, 0)]);
    let int4 = b.array(int, int, 4);
    let inner = b.composite(STRUCT, "inner", 24, &[("x", long, 0), ("y", int4, 64)]);
    let inner_t = b.refer(TYPEDEF, "inner_t", inner);
    let const_inner = b.refer(CONST, "", inner_t);
    let inner_ptr = b.refer(PTR, "", inner);
    b.composite_flagged(
        STRUCT,
        "outer",
        48,
        true,
        &[
            ("a", int, 0),
            ("", anon_union, 32),
            ("e", const_inner, 64),
            ("p", inner_ptr, 256),
            ("flags", u8_, (3 << 24) | 320),
            ("whole", u8_, 328),
        ],
    );
    b
}

/// Every spec the sample can be asked about, valid or not (for robustness tests).
pub const SAMPLE_SPECS: &[&str] = &[
    "outer.a",
    "outer.b",
    "outer.c",
    "outer.d",
    "outer.e",
    "outer.e.x",
    "outer.e.y",
    "outer.p",
    "outer.p.x",
    "outer.flags",
    "outer.whole",
    "outer.nope",
    "inner.y",
    "missing.a",
];
