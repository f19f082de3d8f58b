//! `.BTF` inside an ELF file, with a minimal ELF64 built by hand (no `object` write feature).

use super::builder::sample;
use super::live::live_bytes;
use crate::kernel::btf::{Btf, Field};

const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;

/// An ELF64 little-endian relocatable file with one data section named `section_name`
/// holding `data`, plus `.shstrtab`.
pub fn elf_with_section(section_name: &str, data: &[u8]) -> Vec<u8> {
    let mut names = vec![0u8];
    let data_name = names.len() as u32;
    names.extend_from_slice(section_name.as_bytes());
    names.push(0);
    let strtab_name = names.len() as u32;
    names.extend_from_slice(b".shstrtab\0");

    let data_off = 64u64;
    let names_off = data_off + data.len() as u64;
    let shoff = (names_off + names.len() as u64).next_multiple_of(8);

    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"); // 64-bit, LE, v1
    out.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
    out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    out.extend_from_slice(&0u64.to_le_bytes()); // entry
    out.extend_from_slice(&0u64.to_le_bytes()); // phoff
    out.extend_from_slice(&shoff.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    for half in [64u16, 0, 0, 64, 3, 2] {
        // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
        out.extend_from_slice(&half.to_le_bytes());
    }
    assert_eq!(out.len(), 64);
    out.extend_from_slice(data);
    out.extend_from_slice(&names);
    out.resize(shoff as usize, 0);

    let mut section = |name: u32, kind: u32, offset: u64, size: u64, align: u64| {
        out.extend_from_slice(&name.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // flags
        out.extend_from_slice(&0u64.to_le_bytes()); // addr
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // link
        out.extend_from_slice(&0u32.to_le_bytes()); // info
        out.extend_from_slice(&align.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // entsize
    };
    section(0, 0, 0, 0, 0);
    section(data_name, SHT_PROGBITS, data_off, data.len() as u64, 4);
    section(strtab_name, SHT_STRTAB, names_off, names.len() as u64, 1);
    out
}

#[test]
fn btf_section_of_an_elf_file_is_parsed() {
    let btf = Btf::from_file_bytes(elf_with_section(".BTF", &sample())).expect("ELF with .BTF");
    assert_eq!(btf.field("outer.d"), Ok(Field { offset: 6, size: 2 }));
}

#[test]
fn raw_btf_is_accepted_by_from_file_bytes() {
    let btf = Btf::from_file_bytes(sample()).expect("raw BTF");
    assert_eq!(btf.type_count(), 12);
}

#[test]
fn live_btf_wrapped_in_elf_matches_raw() {
    let btf = Btf::from_file_bytes(elf_with_section(".BTF", live_bytes())).expect("vmlinux ELF");
    assert_eq!(
        btf.field("sock_common.skc_dport"),
        Ok(Field {
            offset: 12,
            size: 2
        })
    );
}

#[test]
fn elf_without_btf_section_says_what_to_do() {
    let message = Btf::from_file_bytes(elf_with_section(".data", &sample()))
        .err()
        .expect("no .BTF")
        .to_string();
    assert!(
        message.starts_with("the ELF file has no .BTF section"),
        "{message}"
    );
    assert!(message.contains("CONFIG_DEBUG_INFO_BTF"));
}

#[test]
fn corrupt_btf_inside_elf_is_reported() {
    let mut blob = sample();
    blob[2] = 9; // version
    let message = Btf::from_file_bytes(elf_with_section(".BTF", &blob))
        .err()
        .expect("bad version")
        .to_string();
    assert!(message.contains("unsupported BTF version 9"), "{message}");
}

#[test]
fn truncated_elf_never_panics() {
    let elf = elf_with_section(".BTF", &sample());
    for len in 0..elf.len() {
        let mut bytes = elf.clone();
        bytes.truncate(len);
        let _ = Btf::from_file_bytes(bytes);
    }
    // Cut inside the section headers: the ELF reader must say so.
    let mut bytes = elf.clone();
    bytes.truncate(elf.len() - 10);
    assert!(Btf::from_file_bytes(bytes).is_err());
}
