//! Field resolution on synthetic BTF: anonymous members, typedefs and qualifiers, sizes,
//! bitfields, name clashes, bad specs, and corrupt (cyclic) type graphs.

use super::builder::{sample, BtfBuilder};
use crate::kernel::btf::kind::*;
use crate::kernel::btf::{Btf, Field};

fn sample_btf() -> Btf {
    Btf::parse(sample()).expect("sample BTF")
}

fn field(offset: u32, size: u32) -> Result<Field, String> {
    Ok(Field { offset, size })
}

fn resolve(btf: &Btf, spec: &str) -> Result<Field, String> {
    btf.field(spec).map_err(|e| e.to_string())
}

#[test]
fn direct_members() {
    let btf = sample_btf();
    assert_eq!(resolve(&btf, "outer.a"), field(0, 4));
    assert_eq!(resolve(&btf, "outer.whole"), field(41, 1));
}

#[test]
fn members_of_anonymous_unions_and_structs() {
    let btf = sample_btf();
    assert_eq!(resolve(&btf, "outer.b"), field(4, 4));
    assert_eq!(resolve(&btf, "outer.c"), field(4, 2));
    assert_eq!(resolve(&btf, "outer.d"), field(6, 2));
}

#[test]
fn path_through_const_and_typedef() {
    let btf = sample_btf();
    assert_eq!(resolve(&btf, "outer.e"), field(8, 24));
    assert_eq!(resolve(&btf, "outer.e.x"), field(8, 8));
    assert_eq!(resolve(&btf, "outer.e.y"), field(16, 16), "array of 4 ints");
}

#[test]
fn pointer_size_follows_long() {
    let btf = sample_btf();
    assert_eq!(resolve(&btf, "outer.p"), field(32, 8));

    let mut b = BtfBuilder::new();
    let long = b.int("long int", 4);
    let ptr = b.refer(PTR, "", long);
    b.composite(STRUCT, "s32", 8, &[("l", long, 0), ("p", ptr, 32)]);
    let btf = Btf::parse(b.build()).expect("32-bit BTF");
    assert_eq!(resolve(&btf, "s32.p"), field(4, 4));
}

#[test]
fn path_cannot_follow_a_pointer() {
    let message = resolve(&sample_btf(), "outer.p.x").unwrap_err();
    assert!(
        message.contains("outer.p is a pointer, and a field path cannot follow pointers"),
        "{message}"
    );
}

#[test]
fn path_into_a_scalar_is_refused() {
    let message = resolve(&sample_btf(), "outer.a.x").unwrap_err();
    assert_eq!(
        message,
        "outer.a is a int, not a struct or union, so it has no field x"
    );
}

#[test]
fn kind_flag_bitfield_is_refused() {
    let message = resolve(&sample_btf(), "outer.flags").unwrap_err();
    assert_eq!(
        message,
        "outer.flags is a bitfield in this kernel's BTF; conntrace reads whole bytes and cannot use it"
    );
}

#[test]
fn unaligned_member_is_refused_as_bitfield() {
    let mut b = BtfBuilder::new();
    let u8_ = b.int("u8", 1);
    b.composite(STRUCT, "s", 2, &[("odd", u8_, 3)]);
    let btf = Btf::parse(b.build()).expect("blob");
    assert!(resolve(&btf, "s.odd")
        .unwrap_err()
        .contains("is a bitfield"));
}

#[test]
fn old_style_int_bitfield_is_refused() {
    let mut b = BtfBuilder::new();
    let four_bits = b.int_encoded("unsigned int", 4, 4); // nr_bits 4 in a 4-byte int
    let shifted = b.int_encoded("unsigned int", 4, (8 << 16) | 8); // bit offset 8
    let whole = b.int("unsigned int", 4);
    let wrapped = b.refer(VOLATILE, "", four_bits);
    b.composite(
        STRUCT,
        "s",
        16,
        &[("a", wrapped, 0), ("b", shifted, 32), ("c", whole, 64)],
    );
    let btf = Btf::parse(b.build()).expect("blob");
    assert!(resolve(&btf, "s.a").unwrap_err().contains("is a bitfield"));
    assert!(resolve(&btf, "s.b").unwrap_err().contains("is a bitfield"));
    assert_eq!(resolve(&btf, "s.c"), field(8, 4));
}

#[test]
fn kind_flag_whole_member_is_fine() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    b.composite_flagged(STRUCT, "s", 8, true, &[("a", int, 0), ("b", int, 32)]);
    let btf = Btf::parse(b.build()).expect("blob");
    assert_eq!(resolve(&btf, "s.b"), field(4, 4));
}

#[test]
fn unknown_struct_and_field_say_so() {
    let btf = sample_btf();
    assert_eq!(
        resolve(&btf, "missing.a").unwrap_err(),
        "struct missing is not in this kernel's BTF (needed for missing.a)"
    );
    assert_eq!(
        resolve(&btf, "outer.nope").unwrap_err(),
        "struct outer has no field nope in this kernel's BTF"
    );
    assert_eq!(
        resolve(&btf, "outer.e.nope").unwrap_err(),
        "struct inner has no field nope in this kernel's BTF"
    );
}

#[test]
fn anonymous_container_is_described_by_its_path() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let anon = b.composite(STRUCT, "", 4, &[("net", int, 0)]);
    let possible = b.refer(TYPEDEF, "possible_t", anon);
    b.composite(STRUCT, "holder", 4, &[("h", possible, 0)]);
    let btf = Btf::parse(b.build()).expect("blob");
    assert_eq!(resolve(&btf, "holder.h.net"), field(0, 4));
    assert_eq!(
        resolve(&btf, "holder.h.nope").unwrap_err(),
        "holder.h (an anonymous struct) has no field nope in this kernel's BTF"
    );
}

#[test]
fn malformed_specs_are_refused() {
    let btf = sample_btf();
    for spec in ["", "outer", "outer.", ".a", "outer..a", "outer.e."] {
        let message = resolve(&btf, spec).unwrap_err();
        assert!(
            message.starts_with(&format!("bad field spec `{spec}`")),
            "{spec}: {message}"
        );
    }
}

#[test]
fn first_complete_definition_of_a_name_wins() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let fwd = b.string("dup");
    b.raw(fwd, FWD, 0, false, 0, &[]);
    b.composite(STRUCT, "dup", 8, &[("x", int, 32)]);
    b.composite(STRUCT, "dup", 8, &[("x", int, 0)]);
    let btf = Btf::parse(b.build()).expect("blob");
    assert_eq!(resolve(&btf, "dup.x"), field(4, 4));
}

#[test]
fn a_union_can_be_the_root() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let long = b.int("long", 8);
    b.composite(UNION, "u", 8, &[("i", int, 0), ("l", long, 0)]);
    let btf = Btf::parse(b.build()).expect("blob");
    assert_eq!(resolve(&btf, "u.l"), field(0, 8));
}

#[test]
fn many_struct_names_are_all_found() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    for i in 0..2000 {
        b.composite(
            STRUCT,
            &format!("s{i}"),
            4 * (i + 1),
            &[(&format!("f{i}"), int, 32 * i)],
        );
    }
    let btf = Btf::parse(b.build()).expect("blob");
    for i in 0..2000 {
        assert_eq!(resolve(&btf, &format!("s{i}.f{i}")), field(4 * i, 4));
    }
}

#[test]
fn void_and_function_members_have_no_size() {
    let mut b = BtfBuilder::new();
    let proto = b.raw(0, FUNC_PROTO, 0, false, 0, &[]);
    b.composite(STRUCT, "s", 8, &[("v", 0, 0), ("f", proto, 0)]);
    let btf = Btf::parse(b.build()).expect("blob");
    assert_eq!(
        resolve(&btf, "s.v").unwrap_err(),
        "s.v has type void, which has no size"
    );
    assert!(resolve(&btf, "s.f")
        .unwrap_err()
        .contains("which has no size"));
}

#[test]
fn cyclic_typedefs_are_an_error_not_a_hang() {
    let mut b = BtfBuilder::new();
    let a = b.refer(TYPEDEF, "a", 2);
    b.refer(TYPEDEF, "b", a);
    b.composite(STRUCT, "s", 8, &[("m", a, 0)]);
    let btf = Btf::parse(b.build()).expect("blob");
    assert!(resolve(&btf, "s.m")
        .unwrap_err()
        .contains("nested more than 32 deep"));
    assert!(resolve(&btf, "s.m.x")
        .unwrap_err()
        .contains("chain more than 32 deep"));
}

#[test]
fn self_containing_anonymous_struct_is_an_error() {
    let mut b = BtfBuilder::new();
    // Type 1 contains itself as an anonymous member.
    b.composite(STRUCT, "loop", 4, &[("", 1, 0)]);
    let btf = Btf::parse(b.build()).expect("blob");
    let message = resolve(&btf, "loop.x").unwrap_err();
    assert!(message.contains("nested more than 32 deep"), "{message}");
}

#[test]
fn exponential_anonymous_fan_out_is_cut_off() {
    // Each level has 64 anonymous members of the next level: 64^8 paths without a budget.
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let mut level = b.composite(STRUCT, "", 4, &[("leaf", int, 0)]);
    for _ in 0..8 {
        let members: Vec<(&str, u32, u32)> = (0..64).map(|_| ("", level, 0)).collect();
        level = b.composite(STRUCT, "", 4, &members);
    }
    b.composite(STRUCT, "root", 4, &[("", level, 0)]);
    let btf = Btf::parse(b.build()).expect("blob");
    assert_eq!(
        resolve(&btf, "root.leaf"),
        field(0, 4),
        "the first path is found quickly"
    );
    let message = resolve(&btf, "root.absent").unwrap_err();
    assert!(message.contains("visits more than"), "{message}");
}

#[test]
fn huge_array_size_is_an_error() {
    let mut b = BtfBuilder::new();
    let long = b.int("long", 8);
    let big = b.array(long, long, u32::MAX);
    b.composite(STRUCT, "s", 8, &[("a", big, 0)]);
    let btf = Btf::parse(b.build()).expect("blob");
    assert!(resolve(&btf, "s.a")
        .unwrap_err()
        .contains("does not fit in 32 bits"));
}
