//! BTF conntrace writes itself: the few types a socket-local storage map is created with.
//! The kernel insists on BTF for those maps' key and value on every version
//! (`bpf_local_storage_map_alloc_check`), even where it has no BTF of its own.

use super::kind::{ARRAY, INT};

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: u32 = 24;
/// BTF_INT_ENCODING: signed.
const INT_SIGNED: u32 = 1;

/// The BTF of a socket-local storage map whose values are `value_size` bytes, and the ids of
/// its key and value types in it: [1] `int` (the key the kernel demands, 4 bytes, signed),
/// [2] `unsigned char`, [3] `unsigned char[value_size]` (the value: the kernel checks only its
/// size).
pub fn storage_map_btf(value_size: u32) -> (Vec<u8>, StorageTypes) {
    let strings = b"\0int\0unsigned char\0";
    let int_name = 1;
    let uchar_name = 5;
    let words = [
        // struct btf_type: name_off, info (kind in bits 24-28), size; an INT's encoding word:
        // encoding in bits 24-27, bit offset in 16-23, bits in 0-7.
        int_name,
        INT << 24,
        4,
        (INT_SIGNED << 24) | 32,
        uchar_name,
        INT << 24,
        1,
        8,
        // An ARRAY: no name, no size; struct btf_array: element type, index type, count.
        0,
        ARRAY << 24,
        0,
        2,
        1,
        value_size,
    ];
    let types: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let mut out = Vec::with_capacity(HEADER_LEN as usize + types.len() + strings.len());
    out.extend_from_slice(&MAGIC.to_ne_bytes());
    out.push(1); // version
    out.push(0); // flags
                 // hdr_len, type_off, type_len, str_off, str_len
    for word in [
        HEADER_LEN,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    out.extend_from_slice(&types);
    out.extend_from_slice(strings);
    (out, StorageTypes { key: 1, value: 3 })
}

/// Type ids in the BTF of [`storage_map_btf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageTypes {
    pub key: u32,
    pub value: u32,
}
