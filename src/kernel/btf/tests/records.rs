//! Type-record validation: sizes of every kind, unknown kinds, truncation, name offsets and
//! referenced ids.

use super::builder::BtfBuilder;
use crate::kernel::btf::kind::*;
use crate::kernel::btf::{Btf, Field};

fn error_of(b: &BtfBuilder) -> String {
    match Btf::parse(b.build()) {
        Ok(_) => panic!("corrupt BTF was accepted"),
        Err(e) => e.to_string(),
    }
}

/// One record of every kind, each with trailing records where the kind has them, followed
/// by a struct that must still resolve: a wrong record size for any kind would misplace it.
#[test]
fn every_kind_is_sized_correctly() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4); // INT: +4
    let ptr = b.refer(PTR, "", int);
    b.array(int, int, 3); // ARRAY: +12
    let s = b.composite(STRUCT, "s", 8, &[("m", int, 0), ("n", ptr, 32)]);
    b.composite(UNION, "u", 4, &[("m", int, 0)]);
    let e1 = b.string("E1");
    let e2 = b.string("E2");
    b.raw(0, ENUM, 2, false, 4, &[e1, 0, e2, 1]); // ENUM: +8 each
    let fwd_name = b.string("fwd");
    b.raw(fwd_name, FWD, 0, false, 0, &[]);
    b.refer(TYPEDEF, "t", int);
    b.refer(VOLATILE, "", int);
    b.refer(CONST, "", int);
    b.refer(RESTRICT, "", ptr);
    let p = b.string("arg");
    let proto = b.raw(0, FUNC_PROTO, 2, false, int, &[p, int, 0, ptr]); // +8 each
    let f = b.string("f");
    b.raw(f, FUNC, 0, false, proto, &[]);
    let v = b.string("v");
    let var = b.raw(v, VAR, 0, false, int, &[1]); // VAR: +4
    let sec = b.string(".data");
    b.raw(sec, DATASEC, 1, false, 4, &[var, 0, 4]); // +12 each
    let fl = b.string("double");
    b.raw(fl, FLOAT, 0, false, 8, &[]);
    let tag = b.string("tag");
    b.raw(tag, DECL_TAG, 0, false, s, &[u32::MAX]); // DECL_TAG: +4
    b.refer(TYPE_TAG, "rcu", int);
    let e3 = b.string("E3");
    b.raw(0, ENUM64, 1, false, 8, &[e3, 1, 2]); // ENUM64: +12 each
    let last = b.int("last_int", 4);
    b.composite(STRUCT, "after_all_kinds", 8, &[("z", last, 32)]);

    let btf = Btf::parse(b.build()).expect("every kind");
    assert_eq!(btf.type_count(), 21);
    assert_eq!(
        btf.field("after_all_kinds.z"),
        Ok(Field { offset: 4, size: 4 })
    );
    assert_eq!(btf.field("s.n"), Ok(Field { offset: 4, size: 8 }));
}

#[test]
fn unknown_kind_is_refused() {
    let mut b = BtfBuilder::new();
    b.int("int", 4);
    b.raw(0, 20, 0, false, 0, &[]);
    let message = error_of(&b);
    assert!(
        message.contains("unknown BTF kind 20 in type 2"),
        "{message}"
    );
}

#[test]
fn kind_zero_is_refused() {
    let mut b = BtfBuilder::new();
    b.raw(0, 0, 0, false, 0, &[]);
    assert!(error_of(&b).contains("unknown BTF kind 0 in type 1"));
}

#[test]
fn record_cut_by_section_end_is_refused() {
    let mut b = BtfBuilder::new();
    b.int("int", 4);
    b.words(&[0, INT << 24]); // 8 of 16 bytes
    assert!(error_of(&b).contains("record of type 2 is cut off"));
}

#[test]
fn members_cut_by_section_end_are_refused() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    // vlen 2, but only one member follows.
    b.raw(0, STRUCT, 2, false, 8, &[0, int, 0]);
    assert!(error_of(&b).contains("record of type 2 is cut off"));
}

#[test]
fn type_name_offset_out_of_bounds_is_refused() {
    let mut b = BtfBuilder::new();
    b.raw(1000, INT, 0, false, 4, &[32]);
    let message = error_of(&b);
    assert!(
        message.contains("type 1 has a name offset 1000 outside"),
        "{message}"
    );
}

#[test]
fn member_and_enumerator_name_offsets_are_checked() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    b.raw(0, STRUCT, 1, false, 4, &[5000, int, 0]);
    assert!(error_of(&b).contains("type 2 has a name offset 5000"));

    let mut b = BtfBuilder::new();
    b.raw(0, ENUM, 1, false, 4, &[5000, 0]);
    assert!(error_of(&b).contains("type 1 has a name offset 5000"));

    let mut b = BtfBuilder::new();
    b.raw(0, ENUM64, 1, false, 8, &[5000, 0, 0]);
    assert!(error_of(&b).contains("type 1 has a name offset 5000"));

    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    b.raw(0, FUNC_PROTO, 1, false, int, &[5000, int]);
    assert!(error_of(&b).contains("type 2 has a name offset 5000"));
}

#[test]
fn the_first_bad_name_of_a_record_is_the_one_reported() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let m = b.string("m");
    b.raw(
        0,
        STRUCT,
        3,
        false,
        12,
        &[m, int, 0, 7000, int, 32, 6000, int, 64],
    );
    let message = error_of(&b);
    assert!(
        message.contains("type 2 has a name offset 7000 outside"),
        "{message}"
    );

    // The record's own name is checked before its members', its kind before its members.
    let mut b = BtfBuilder::new();
    b.raw(8000, STRUCT, 1, false, 4, &[7000, 0, 0]);
    assert!(error_of(&b).contains("type 1 has a name offset 8000"));
    let mut b = BtfBuilder::new();
    b.raw(0, 25, 1, false, 4, &[7000, 0, 0]);
    assert!(error_of(&b).contains("unknown BTF kind 25 in type 1"));
    // A record cut off is that, whatever names it has before the cut.
    let mut b = BtfBuilder::new();
    b.raw(0, STRUCT, 2, false, 4, &[7000, 0, 0]);
    assert!(error_of(&b).contains("record of type 1 is cut off"));
}

#[test]
fn words_that_are_neither_names_nor_types_are_not_checked_as_either() {
    // Member offsets, enumerator values, array lengths, datasec offsets and sizes, int
    // encodings and var linkage may hold anything; FUNC's vlen is its linkage, not a count.
    let mut b = BtfBuilder::new();
    let int = b.raw(0, INT, 0, false, 4, &[u32::MAX]);
    let m = b.string("m");
    b.raw(0, STRUCT, 1, false, 4, &[m, int, u32::MAX]);
    b.raw(0, ENUM, 1, false, 4, &[m, u32::MAX]);
    b.raw(0, ENUM64, 1, false, 8, &[m, u32::MAX, u32::MAX]);
    b.raw(0, ARRAY, 0, false, 0, &[int, int, u32::MAX]);
    let var = b.raw(m, VAR, 0, false, int, &[u32::MAX]);
    b.raw(0, DATASEC, 1, false, 4, &[var, u32::MAX, u32::MAX]);
    let proto = b.raw(0, FUNC_PROTO, 0, false, int, &[]);
    b.raw(m, FUNC, 2, false, proto, &[]);
    let btf = Btf::parse(b.build()).expect("no name or type id out of bounds");
    assert_eq!(btf.type_count(), 9);
}

/// Adds a record that refers to the missing type 99; gets the id of a valid `int`.
type AddBadRef = Box<dyn Fn(&mut BtfBuilder, u32) -> u32>;

#[test]
fn referenced_ids_must_exist() {
    let cases: Vec<(&str, AddBadRef)> = vec![
        ("pointer", Box::new(|b, _| b.refer(PTR, "", 99))),
        ("typedef", Box::new(|b, _| b.refer(TYPEDEF, "t", 99))),
        ("type tag", Box::new(|b, _| b.refer(TYPE_TAG, "t", 99))),
        ("array element", Box::new(|b, int| b.array(99, int, 1))),
        ("array index", Box::new(|b, int| b.array(int, 99, 1))),
        (
            "member",
            Box::new(|b, _| b.composite(STRUCT, "s", 4, &[("m", 99, 0)])),
        ),
        (
            "return type",
            Box::new(|b, _| b.raw(0, FUNC_PROTO, 0, false, 99, &[])),
        ),
        (
            "parameter",
            Box::new(|b, int| b.raw(0, FUNC_PROTO, 1, false, int, &[0, 99])),
        ),
        ("var", Box::new(|b, _| b.raw(0, VAR, 0, false, 99, &[0]))),
        (
            "datasec entry",
            Box::new(|b, _| b.raw(0, DATASEC, 1, false, 4, &[99, 0, 4])),
        ),
        (
            "decl tag",
            Box::new(|b, _| b.raw(0, DECL_TAG, 0, false, 99, &[0])),
        ),
    ];
    for (what, add) in cases {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        add(&mut b, int);
        let message = error_of(&b);
        assert!(
            message.contains("type 2 refers to type 99, but there are only 2 types"),
            "{what}: {message}"
        );
    }
}

#[test]
fn forward_references_and_the_last_id_are_fine() {
    let mut b = BtfBuilder::new();
    let ptr = b.refer(PTR, "", 3); // refers forward, to the last type
    b.composite(STRUCT, "s", 8, &[("p", ptr, 0)]);
    b.int("long", 8);
    let btf = Btf::parse(b.build()).expect("forward reference");
    assert_eq!(btf.type_count(), 3);
    assert_eq!(btf.field("s.p"), Ok(Field { offset: 0, size: 8 }));

    let mut b = BtfBuilder::new();
    b.refer(PTR, "", 3);
    b.int("int", 4);
    assert!(error_of(&b).contains("type 1 refers to type 3, but there are only 2 types"));
}

#[test]
fn ids_start_at_one() {
    let mut b = BtfBuilder::new();
    let first = b.int("int", 4);
    assert_eq!(first, 1);
    b.composite(STRUCT, "s", 4, &[("m", first, 0)]);
    let btf = Btf::parse(b.build()).expect("ids");
    let t = btf.raw_type(1).expect("type 1");
    assert_eq!(t.kind(), INT);
    assert!(btf.raw_type(0).is_none(), "id 0 is void and has no record");
    assert!(btf.raw_type(3).is_none());
}

#[test]
fn empty_type_section_is_valid() {
    let b = BtfBuilder::new();
    let btf = Btf::parse(b.build()).expect("no types");
    assert_eq!(btf.type_count(), 0);
    assert!(btf.field("sock.sk_err").is_err());
}

#[test]
fn the_storage_map_btf_parses_with_an_int_key_and_a_value_of_the_size_asked() {
    use crate::kernel::btf::storage_map_btf;
    for size in [4, 64, 1000] {
        let (blob, ids) = storage_map_btf(size);
        let btf = Btf::parse(blob).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(btf.type_count(), 3);
        let key = btf.raw_type(ids.key).unwrap();
        assert_eq!((key.kind(), key.size_or_type), (INT, 4));
        assert_eq!(btf.name(key.name_off), b"int");
        let value = btf.raw_type(ids.value).unwrap();
        assert_eq!(value.kind(), ARRAY);
        let (element, count) = value.array().unwrap();
        assert_eq!(count, size);
        assert_eq!(btf.raw_type(element).unwrap().size_or_type, 1);
    }
}

#[test]
fn typedef_id_finds_a_typedef_by_name_and_nothing_else() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let n = b.string("btf_trace_x");
    let not_typedef = b.raw(n, STRUCT, 0, false, 0, &[]);
    let n = b.string("btf_trace_x");
    let typedef = b.raw(n, TYPEDEF, 0, false, int, &[]);
    let btf = Btf::parse(b.build()).unwrap();
    assert_ne!(not_typedef, typedef);
    assert_eq!(btf.typedef_id("btf_trace_x"), Some(typedef));
    assert_eq!(btf.typedef_id("btf_trace_y"), None);
    assert_eq!(btf.typedef_id("btf_trace_"), None);
}
