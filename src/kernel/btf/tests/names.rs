//! Name lookup: the hash of a name in the string section and given alone, buckets shared by
//! names with a common prefix, the first definition of a name, comparisons that read no
//! further than the wanted name, and the pointer size from `long`.

use std::time::Instant;

use super::builder::BtfBuilder;
use crate::kernel::btf::bytes::{name_is, name_is_empty};
use crate::kernel::btf::kind::*;
use crate::kernel::btf::names::hash;
use crate::kernel::btf::{Btf, Field};

#[test]
fn a_name_hashes_alike_alone_and_in_the_string_section() {
    for name in [
        "",
        "a",
        "sock",
        "sock_com",
        "sock_common",
        "sock_common_sock_common",
        "sock_common_sock_common_",
        "trace_event_raw_inet_sock_set_state",
    ] {
        let mut section = name.as_bytes().to_vec();
        section.extend_from_slice(b"\0next_string_that_is_long\0");
        assert_eq!(hash(name.as_bytes()), hash(&section), "{name}");
        assert_eq!(
            hash(name.as_bytes()),
            hash(&section[..name.len() + 1]),
            "{name}"
        );
    }
    // Only the first 24 bytes count; the rest is told apart by comparing.
    let long = "x".repeat(100);
    assert_eq!(hash(long.as_bytes()), hash(&long.as_bytes()[..24]));
    assert_ne!(hash(b"sock"), hash(b"sock_common"));
    assert_ne!(hash(b"sock_com"), hash(b"sock_co"));
}

#[test]
fn name_comparison_reads_no_further_than_the_name() {
    let strings = b"\0sock\0sock_common\0";
    assert!(name_is(strings, 1, b"sock"));
    assert!(!name_is(strings, 1, b"soc"), "a prefix is not the name");
    assert!(!name_is(strings, 6, b"sock"));
    assert!(name_is(strings, 6, b"sock_common"));
    assert!(
        name_is(strings, 7, b"ock_common"),
        "an offset inside a string"
    );
    assert!(
        !name_is(strings, 1, b"sock\0sock"),
        "a NUL is never in a name"
    );
    assert!(!name_is(strings, 100, b"sock"));
    assert!(!name_is(strings, u32::MAX, b"sock"));
    assert!(name_is(strings, 0, b""));
    assert!(name_is_empty(strings, 5) && name_is_empty(strings, 100));
    assert!(!name_is_empty(strings, 1));
}

#[test]
fn names_sharing_the_hashed_prefix_are_told_apart() {
    let prefix = "trace_event_raw_inet_sock"; // longer than the 24 hashed bytes
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    for i in 0..50 {
        b.composite(
            STRUCT,
            &format!("{prefix}_{i}"),
            4 * (i + 1),
            &[("f", int, 32 * i)],
        );
    }
    // A second definition of a name in the same bucket: the first one wins.
    b.composite(STRUCT, &format!("{prefix}_7"), 4, &[("f", int, 0)]);
    let btf = Btf::parse(b.build()).expect("blob");
    for i in 0..50 {
        assert_eq!(
            btf.field(&format!("{prefix}_{i}.f")),
            Ok(Field {
                offset: 4 * i,
                size: 4
            })
        );
    }
    assert!(btf.field(&format!("{prefix}.f")).is_err());
    assert!(btf.field(&format!("{prefix}_50.f")).is_err());
}

#[test]
fn many_names_inside_one_huge_string_cost_no_more_than_the_input() {
    // Every struct is named by an offset into the same 1 MiB string, so each name is up to
    // 1 MiB long: hashing or comparing them in full would take minutes.
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let huge = b.string(&"x".repeat(1 << 20));
    for i in 0..20_000 {
        let m = b.string("m");
        b.raw(huge + i, STRUCT, 1, false, 4, &[m, int, 0]);
    }
    let int_name = b.string("sock");
    b.raw(int_name, STRUCT, 1, false, 4, &[int_name, int, 0]);
    let started = Instant::now();
    let btf = Btf::parse(b.build()).expect("blob");
    assert_eq!(btf.field("sock.sock"), Ok(Field { offset: 0, size: 4 }));
    assert!(btf.field("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.m").is_err());
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn pointer_size_is_the_first_long_of_a_pointer_size() {
    // A `long` of 16 bytes is no pointer size; the next `long` is, whatever comes after.
    let mut b = BtfBuilder::new();
    let wide = b.int("long", 16);
    let long = b.int("long unsigned int", 4);
    b.int("long int", 8);
    let ptr = b.refer(PTR, "", long);
    b.composite(STRUCT, "s", 8, &[("w", wide, 0), ("p", ptr, 0)]);
    let btf = Btf::parse(b.build()).expect("blob");
    assert_eq!(btf.field("s.p"), Ok(Field { offset: 0, size: 4 }));

    // No `long` at all: 8, as on every 64-bit kernel.
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let ptr = b.refer(PTR, "", int);
    b.composite(STRUCT, "s", 8, &[("p", ptr, 0)]);
    let btf = Btf::parse(b.build()).expect("blob");
    assert_eq!(btf.field("s.p"), Ok(Field { offset: 0, size: 8 }));
}
