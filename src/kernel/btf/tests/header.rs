//! Header and string-section validation, one rule per test.

use super::builder::{sample, sample_builder, BtfBuilder};
use crate::kernel::btf::Btf;

fn error_of(bytes: Vec<u8>) -> String {
    match Btf::parse(bytes) {
        Ok(_) => panic!("corrupt BTF was accepted"),
        Err(e) => e.to_string(),
    }
}

fn assert_error(bytes: Vec<u8>, expected: &str) {
    let message = error_of(bytes);
    assert!(
        message.contains(expected),
        "error `{message}` does not mention `{expected}`"
    );
}

#[test]
fn valid_sample_parses() {
    let btf = Btf::parse(sample()).expect("sample BTF");
    assert_eq!(btf.type_count(), 12);
}

#[test]
fn shorter_than_header_is_refused() {
    for len in 0..24 {
        let mut bytes = sample();
        bytes.truncate(len);
        assert_error(bytes, "too short for the 24-byte BTF header");
    }
}

#[test]
fn wrong_magic_is_refused() {
    assert_error(
        sample_builder().build_with(|h| h.magic = 0x1234),
        "not BTF data: the magic number is 0x1234, expected 0xeb9f",
    );
}

#[test]
fn big_endian_magic_is_refused_by_name() {
    assert_error(
        sample_builder().build_with(|h| h.magic = 0x9feb),
        "big-endian BTF not supported",
    );
}

#[test]
fn unknown_version_is_refused() {
    assert_error(
        sample_builder().build_with(|h| h.version = 2),
        "unsupported BTF version 2",
    );
}

#[test]
fn header_length_below_minimum_is_refused() {
    assert_error(
        sample_builder().build_with(|h| h.hdr_len = 20),
        "claims to be 20 bytes, less than the minimum 24",
    );
}

#[test]
fn header_length_past_end_is_refused() {
    assert_error(
        sample_builder().build_with(|h| h.hdr_len = 100_000),
        "claims to be 100000 bytes but the data is only",
    );
}

#[test]
fn longer_header_with_zero_extra_fields_is_accepted() {
    let bytes = sample_builder().build_with(|h| {
        h.hdr_len = 32;
        h.extra = vec![0; 8];
    });
    let btf = Btf::parse(bytes).expect("extended header");
    assert_eq!(btf.field("outer.whole").map(|f| f.offset), Ok(41));
}

#[test]
fn longer_header_with_unknown_fields_is_refused() {
    let bytes = sample_builder().build_with(|h| {
        h.hdr_len = 32;
        h.extra = vec![0, 0, 0, 0, 1, 0, 0, 0];
    });
    assert_error(bytes, "non-zero fields");
}

#[test]
fn misaligned_type_section_is_refused() {
    assert_error(
        sample_builder().build_with(|h| {
            h.type_off = 2;
            h.type_len = 0;
        }),
        "type section offset 2 is not 4-byte aligned",
    );
}

#[test]
fn string_section_past_end_is_refused() {
    assert_error(
        sample_builder().build_with(|h| h.str_len += 1),
        "string section",
    );
    assert_error(
        sample_builder().build_with(|h| h.str_off = u32::MAX),
        "runs past the end",
    );
}

#[test]
fn type_section_overlapping_strings_is_refused() {
    assert_error(
        sample_builder().build_with(|h| h.type_len += 4),
        "overlaps or follows the string section",
    );
}

#[test]
fn type_section_after_strings_is_refused() {
    // Two sections laid out strings-first: libbpf requires types to come first.
    let mut b = BtfBuilder::new();
    b.int("int", 4);
    assert_error(
        b.build_with(|h| {
            h.str_off = 0;
            h.type_off = 8;
            h.type_len = 4;
        }),
        "overlaps or follows the string section",
    );
}

#[test]
fn empty_string_section_is_refused() {
    assert_error(
        sample_builder().build_with(|h| h.str_len = 0),
        "string section is empty",
    );
}

#[test]
fn string_section_must_start_with_nul() {
    let mut bytes = sample();
    let b = sample_builder();
    let str_start = 24 + b.header().str_off as usize;
    bytes[str_start] = b'x';
    assert_error(bytes, "does not start with an empty string");
}

#[test]
fn string_section_must_end_with_nul() {
    assert_error(
        sample_builder().build_with(|h| h.str_len -= 1),
        "does not end with a NUL byte",
    );
}
