use super::test_elf::{asm, fields_section, ObjBuilder, Reloc};
use super::*;

const PERF_ARRAY: [u32; 5] = [4, 4, 4, 0, 0];
const HASH: [u32; 5] = [1, 8, 16, 1024, 1];

/// A kprobe loading map 1 at +8, and a tracepoint loading map 0 at +0 and reading a field.
fn good() -> ObjBuilder {
    let [l0, l1] = asm::lddw(1);
    let kprobe = [asm::mov_imm(0, 0), l0, l1, asm::EXIT];
    let tp = [
        l0,
        l1,
        asm::ldx(0x08, 2, 1, 0x7bad),
        asm::add_imm(3, 0x7badf00d),
        asm::EXIT,
    ];
    ObjBuilder::new()
        .program("kprobe/tcp_v4_connect", &kprobe)
        .program("tracepoint/syscalls/sys_exit_connect", &tp)
        .map("events", PERF_ARRAY)
        .map("filter", HASH)
        .map_reloc(0, 8, 1)
        .map_reloc(1, 0, 0)
        .fields(fields_section(&[
            (2, 16, 1, 0x7bad, 0, "sock_common.skc_dport"),
            (2, 24, 2, 0x7badf00d, 4, "sock_common.skc_v6_daddr"),
        ]))
}

fn error_of(b: &ObjBuilder) -> String {
    parse(&b.build())
        .expect_err("the object should be refused")
        .to_string()
}

#[track_caller]
fn assert_error(b: &ObjBuilder, needle: &str) {
    let e = error_of(b);
    assert!(e.starts_with("probe object: "), "{e}");
    assert!(e.contains(needle), "error `{e}` should contain `{needle}`");
}

#[test]
fn parses_programs_maps_and_relocations() {
    let obj = parse(&good().build()).unwrap();
    assert_eq!(obj.license, "GPL");
    assert_eq!(
        obj.maps,
        vec![
            MapDef {
                name: "events".into(),
                map_type: 4,
                key_size: 4,
                value_size: 4,
                max_entries: 0,
                flags: 0
            },
            MapDef {
                name: "filter".into(),
                map_type: 1,
                key_size: 8,
                value_size: 16,
                max_entries: 1024,
                flags: 1
            },
        ]
    );
    assert_eq!(obj.programs.len(), 2);
    let kp = obj.program("kprobe/tcp_v4_connect").unwrap();
    assert_eq!(
        kp.kind,
        ProgramKind::Kprobe {
            function: "tcp_v4_connect".into()
        }
    );
    assert_eq!(kp.kind.prog_type(), 2);
    assert_eq!(kp.insns.len(), 4);
    assert_eq!(kp.insns[3], asm::EXIT);
    assert_eq!(kp.map_relocs, vec![(1, 1)]);
    assert!(kp.field_relocs.is_empty());
    let tp = obj.program("tracepoint/syscalls/sys_exit_connect").unwrap();
    assert_eq!(
        tp.kind,
        ProgramKind::Tracepoint {
            category: "syscalls".into(),
            name: "sys_exit_connect".into()
        }
    );
    assert_eq!(tp.kind.prog_type(), 5);
    assert_eq!(tp.map_relocs, vec![(0, 0)]);
    assert_eq!(
        tp.field_relocs,
        vec![
            FieldReloc {
                insn_index: 2,
                kind: FieldRelocKind::Off,
                placeholder: 0x7bad,
                addend: 0,
                name: "sock_common.skc_dport".into()
            },
            FieldReloc {
                insn_index: 3,
                kind: FieldRelocKind::Imm,
                placeholder: 0x7badf00d,
                addend: 4,
                name: "sock_common.skc_v6_daddr".into()
            },
        ]
    );
    assert_eq!(obj.map("filter").unwrap().key_size, 8);
}

#[test]
fn section_names_give_the_kind() {
    assert_eq!(
        ProgramKind::from_section("kretprobe/inet_csk_accept").unwrap(),
        ProgramKind::Kretprobe {
            function: "inet_csk_accept".into()
        }
    );
    for bad in [
        "kprobe/",
        "kprobe/a/b",
        "tracepoint/syscalls",
        "tracepoint//x",
        "tracepoint/a/b/c",
        "socket",
        "xdp/foo",
    ] {
        let e = ProgramKind::from_section(bad).unwrap_err();
        assert!(
            e.contains(bad) && e.contains("tracepoint/CATEGORY/NAME"),
            "{e}"
        );
    }
}

#[test]
fn refuses_what_is_not_a_bpf_elf() {
    assert!(parse(b"")
        .unwrap_err()
        .to_string()
        .contains("not a 64-bit ELF file"));
    assert!(parse(b"\x7fELF\x01\x01\x01")
        .unwrap_err()
        .to_string()
        .contains("probe object: "));
    let mut b = good();
    b.machine = 62;
    assert_error(&b, "ELF machine 62, not BPF (247)");
    let mut bytes = good().build();
    bytes[5] = 2; // big-endian ident
    assert!(parse(&bytes).is_err());
}

#[test]
fn refuses_bad_program_sections() {
    let b = ObjBuilder::new().program("socket/filter", &[asm::EXIT]);
    assert_error(&b, "`socket/filter` is not named kprobe/FUNCTION");
    let b = ObjBuilder::new().program("kprobe/x", &[]);
    assert_error(&b, "program section `kprobe/x` is 0 bytes");
    let b = ObjBuilder::new();
    assert_error(&b, "has no program sections");
}

#[test]
fn refuses_a_missing_or_malformed_license() {
    let mut b = good();
    b.license = None;
    assert_error(&b, "has no `license` section");
    b.license = Some(b"GPL".to_vec());
    assert_error(&b, "not NUL-terminated");
    b.license = Some(b"\0".to_vec());
    assert_error(&b, "license string is empty");
    b.license = Some(b"\xff\0".to_vec());
    assert_error(&b, "not UTF-8");
}

#[test]
fn refuses_bad_map_tables() {
    let mut b = good();
    b.maps_bytes = Some(vec![0; 30]);
    assert_error(&b, "`maps` section is 30 bytes, not a multiple of 20");

    let mut b = good();
    b.maps[1].symbol_offset = 24;
    assert_error(
        &b,
        "map symbol `filter` is at offset 24 of `maps`, not on a 20-byte boundary",
    );

    let mut b = good();
    b.maps[1].symbol_offset = 40;
    assert_error(
        &b,
        "map symbol `filter` is at offset 40, past the end of `maps` (40 bytes)",
    );

    let mut b = good();
    b.maps[1].symbol_offset = 0;
    assert_error(&b, "map symbols `events` and `filter` both name offset 0");

    let mut b = good();
    b.maps_bytes = Some(vec![0; 60]);
    assert_error(
        &b,
        "the map definition at offset 40 of `maps` has no symbol naming it",
    );
}

#[test]
fn refuses_bad_map_relocations() {
    let mut b = good();
    b.relocs[0].offset = 12;
    assert_error(
        &b,
        "map relocation at kprobe/tcp_v4_connect+12 is not on an 8-byte instruction boundary",
    );

    let mut b = good();
    b.relocs[0].offset = 32;
    assert_error(
        &b,
        "map relocation at kprobe/tcp_v4_connect+32 is past the end of the program (32 bytes)",
    );

    let mut b = good();
    b.relocs[0].offset = 0;
    assert_error(
        &b,
        "map relocation at kprobe/tcp_v4_connect+0 is not on an lddw instruction",
    );

    // The lddw's second slot must exist: an lddw as the last instruction is truncated.
    let b = ObjBuilder::new()
        .program("kprobe/f", &[asm::EXIT, asm::lddw(1)[0]])
        .map("events", PERF_ARRAY)
        .map_reloc(0, 8, 0);
    assert_error(
        &b,
        "map relocation at kprobe/f+8 is not on an lddw instruction",
    );

    let mut b = good();
    b.relocs[0].r_type = 10;
    assert_error(
        &b,
        "relocation at kprobe/tcp_v4_connect+8 has type 10; only R_BPF_64_64 (1)",
    );

    let mut b = good();
    b.relocs[0].symbol = 99;
    assert_error(
        &b,
        "map relocation at kprobe/tcp_v4_connect+8 names symbol 99, which does not exist",
    );

    let mut b = good();
    b.relocs.push(Reloc {
        program: 0,
        offset: 8,
        symbol: 3,
        r_type: 1,
    }); // a program's symbol
    assert_error(&b, "relocation at kprobe/tcp_v4_connect+8 refers to symbol `kprobe_tcp_v4_connect`, which is not a map");
}

#[test]
fn refuses_bad_field_relocations() {
    let with_fields = |bytes: Vec<u8>| {
        let mut b = good();
        b.fields = Some(bytes);
        b
    };
    assert_error(
        &with_fields(vec![0; 8]),
        ".conntrace.fields is 8 bytes, shorter than its 16-byte header",
    );

    let mut bytes = fields_section(&[(2, 16, 1, 0x7bad, 0, "a.b")]);
    bytes[0] = b'X';
    assert_error(&with_fields(bytes), "magic");

    let mut bytes = fields_section(&[(2, 16, 1, 0x7bad, 0, "a.b")]);
    bytes[4] = 2;
    assert_error(
        &with_fields(bytes),
        ".conntrace.fields is version 2, this conntrace reads version 1",
    );

    let mut bytes = fields_section(&[(2, 16, 1, 0x7bad, 0, "a.b")]);
    bytes[8] = 2; // count 2, only one record
    assert_error(&with_fields(bytes), "claims 2 records");

    let mut bytes = fields_section(&[(2, 16, 1, 0x7bad, 0, "a.b")]);
    bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(error_of(&with_fields(bytes)).contains("records"));

    let mut bytes = fields_section(&[(2, 16, 1, 0x7bad, 0, "a.b")]);
    bytes[12] = 200; // strings_len past the end
    assert_error(&with_fields(bytes), "200 bytes of strings");

    let mut bytes = fields_section(&[(2, 16, 1, 0x7bad, 0, "a.b")]);
    bytes[36..40].copy_from_slice(&50u32.to_le_bytes()); // name offset past the strings
    assert_error(
        &with_fields(bytes),
        "record 0: field name at string offset 50 is past the 5-byte string table",
    );

    let mut bytes = fields_section(&[(2, 16, 1, 0x7bad, 0, "a.b")]);
    let last = bytes.len() - 1;
    bytes[last] = b'x'; // drop the NUL
    assert_error(&with_fields(bytes), "is not NUL-terminated");

    let bytes = fields_section(&[(2, 16, 1, 0x7bad, 0, "")]);
    assert_error(&with_fields(bytes), "is empty");

    assert_error(
        &with_fields(fields_section(&[(2, 16, 3, 0, 0, "a.b")])),
        "record 0 has kind 3",
    );
    assert_error(
        &with_fields(fields_section(&[(2, 16, 1, 0x7badf00d, 0, "a.b")])),
        "does not fit the 16-bit off field",
    );
    assert_error(
        &with_fields(fields_section(&[(5, 16, 1, 0x7bad, 0, "a.b")])),
        "field relocation for `a.b` names section 5, which is not a program section",
    );
    assert_error(
        &with_fields(fields_section(&[(2, 12, 1, 0x7bad, 0, "a.b")])),
        "field relocation at tracepoint/syscalls/sys_exit_connect+12 is not on an 8-byte instruction boundary",
    );
    assert_error(
        &with_fields(fields_section(&[(2, 40, 1, 0x7bad, 0, "a.b")])),
        "field relocation at tracepoint/syscalls/sys_exit_connect+40 is past the end of the program (40 bytes)",
    );
}

/// Every truncation and every single-byte corruption of a valid object is either parsed or
/// refused with an error; none panics.
#[test]
fn never_panics_on_damaged_input() {
    let bytes = good().build();
    for len in 0..bytes.len() {
        let _ = parse(&bytes[..len]);
    }
    for i in 0..bytes.len() {
        for v in [0u8, 0xff, 0x80, 1] {
            let mut damaged = bytes.clone();
            damaged[i] = v;
            if let Err(e) = parse(&damaged) {
                assert!(e.to_string().starts_with("probe object: "));
            }
        }
    }
}

/// An object from llvm-mc-19 (source next to it: `llvm-mc-19 -triple bpf -filetype=obj`), so
/// the reader is checked against the real toolchain's layout, not only our own builder.
#[test]
fn reads_an_llvm_mc_object() {
    let obj = parse(include_bytes!("testdata/llvm-mc-map-load.o")).unwrap();
    assert_eq!(obj.license, "GPL");
    assert_eq!(obj.maps.len(), 1);
    assert_eq!(obj.maps[0].name, "events");
    assert_eq!(obj.maps[0].map_type, 4);
    let p = obj.program("kprobe/tcp_v4_connect").unwrap();
    assert_eq!(p.insns.len(), 4);
    assert_eq!(p.map_relocs, vec![(1, 0)]);
}

#[test]
fn reads_objects_at_any_alignment() {
    let mut shifted = vec![0u8];
    shifted.extend(good().build());
    assert_eq!(
        parse(&shifted[1..]).unwrap(),
        parse(&good().build()).unwrap()
    );
}

/// An object written by our own bpf-asm (`bpf-asm bpf-asm-fixture.s -o bpf-asm-fixture.o`),
/// field relocations included: the reader and the writer agree on the README format.
#[test]
fn reads_a_bpf_asm_object() {
    let obj = parse(include_bytes!("testdata/bpf-asm-fixture.o")).unwrap();
    assert_eq!(obj.license, "GPL");
    let names: Vec<&str> = obj.maps.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["events", "filter"]);
    assert_eq!((obj.maps[0].map_type, obj.maps[0].max_entries), (4, 0));
    assert_eq!(
        (
            obj.maps[1].map_type,
            obj.maps[1].key_size,
            obj.maps[1].value_size
        ),
        (1, 8, 16)
    );
    let kp = obj.program("kprobe/tcp_v4_connect").unwrap();
    assert_eq!(kp.insns.len(), 9);
    assert_eq!(kp.map_relocs, vec![(5, 1)]);
    let got: Vec<(usize, FieldRelocKind, i32, &str)> = kp
        .field_relocs
        .iter()
        .map(|f| (f.insn_index, f.kind, f.addend, f.name.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, FieldRelocKind::Off, 0, "sock_common.skc_dport"),
            (2, FieldRelocKind::Off, 4, "sock_common.skc_v6_daddr"),
            (4, FieldRelocKind::Imm, 0, "sock_common.skc_v6_rcv_saddr"),
        ]
    );
    assert_eq!(kp.field_relocs[0].placeholder, 0x7bad);
    assert_eq!(kp.field_relocs[2].placeholder, 0x7badf00d);
    let tp = obj.program("tracepoint/syscalls/sys_exit_connect").unwrap();
    assert_eq!(tp.map_relocs, vec![(0, 0)]);
    let all = [
        "sock_common.skc_dport",
        "sock_common.skc_v6_daddr",
        "sock_common.skc_v6_rcv_saddr",
    ];
    assert_eq!(obj.field_specs(|_| true), all);
    assert!(obj
        .field_specs(|p| p.section.starts_with("tracepoint/"))
        .is_empty());
}

#[test]
fn refuses_a_map_relocation_on_an_lddw_with_a_damaged_second_slot() {
    let [l0, _] = asm::lddw(1);
    // The second slot has a register: it is no lddw half (a kernel would refuse it too).
    let b = ObjBuilder::new()
        .program("kprobe/f", &[l0, 0x0100, asm::EXIT])
        .map("events", PERF_ARRAY)
        .map_reloc(0, 0, 0);
    assert_error(
        &b,
        "map relocation at kprobe/f+0 is not on an lddw instruction (the second slot of an lddw holds opcode 0x00, registers 0x01 and offset 0 where all must be 0)",
    );
    // Not an lddw at all: the message shows what is there.
    let b = ObjBuilder::new()
        .program("kprobe/f", &[asm::mov_imm(0, 0), asm::EXIT])
        .map("events", PERF_ARRAY)
        .map_reloc(0, 0, 0);
    assert_error(
        &b,
        "map relocation at kprobe/f+0 is not on an lddw instruction (it is `r0 = 0x0`)",
    );
}
