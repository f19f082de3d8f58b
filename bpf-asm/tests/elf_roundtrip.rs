//! An object with maps, map relocations and field relocations reads back (with the `object`
//! crate) to the same instructions, maps and relocations, and llvm-objdump-19 disassembles it
//! to the text `bpf-asm --dump` shows.

mod common;

use bpf_asm::{FieldKind, Instruction, Program, Source};
use object::read::elf::ElfFile64;
use object::{
    Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SectionIndex,
    SymbolKind,
};
use std::collections::HashMap;
use std::process::Command;

const FIXTURE: &str = include_str!("fixtures/roundtrip.s");
const SOURCE: Source = Source {
    name: "roundtrip.s",
    text: FIXTURE,
};

fn program() -> Program {
    bpf_asm::parse(&[SOURCE]).unwrap_or_else(|e| panic!("{e}"))
}

fn object_bytes() -> Vec<u8> {
    bpf_asm::assemble(&[SOURCE]).unwrap_or_else(|e| panic!("{e}"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

#[test]
fn instructions_maps_and_relocations_read_back() {
    let program = program();
    let bytes = object_bytes();
    let file: ElfFile64 = ElfFile64::parse(&*bytes).unwrap();
    assert_eq!(file.architecture(), object::Architecture::Bpf);

    // Instructions: every program section decodes to what was assembled.
    for section in &program.sections {
        let elf = file.section_by_name(&section.name).unwrap();
        assert_eq!(elf.kind(), object::SectionKind::Text, "{}", section.name);
        assert_eq!(elf.align(), 8);
        let data = elf.data().unwrap();
        let mut at = 0;
        for insn in &section.insns {
            let decoded = Instruction::decode(&data[at..]).unwrap();
            assert_eq!(decoded, insn.instruction, "{} at byte {at}", section.name);
            at += insn.instruction.slots() * 8;
        }
        assert_eq!(at, data.len());
        // A global function symbol at its start, named after the section.
        let symbol = file
            .symbols()
            .find(|s| s.name() == Ok(&section.name.replace('/', "_")))
            .unwrap();
        assert_eq!(
            (symbol.kind(), symbol.address(), symbol.is_global()),
            (SymbolKind::Text, 0, true)
        );
        assert_eq!(symbol.section_index(), Some(elf.index()));
    }

    // Maps: bpf_map_def records in order, each with an object symbol at its offset.
    let maps = file.section_by_name("maps").unwrap();
    let data = maps.data().unwrap();
    assert_eq!(data.len(), 40);
    assert_eq!(program.maps.len(), 2);
    let expected = [
        ("events", [4u32, 4, 4, 0, 0]),
        ("starts", [1, 8, 8, 10240, 1]),
    ];
    let mut map_symbols = HashMap::new();
    for (i, (name, fields)) in expected.iter().enumerate() {
        let record: Vec<u32> = (0..5).map(|f| u32_at(data, i * 20 + f * 4)).collect();
        assert_eq!(record, fields, "map {name}");
        let symbol = file.symbols().find(|s| s.name() == Ok(*name)).unwrap();
        assert_eq!(
            (symbol.kind(), symbol.address(), symbol.size()),
            (SymbolKind::Data, i as u64 * 20, 20)
        );
        assert_eq!(symbol.section_index(), Some(maps.index()));
        map_symbols.insert(symbol.index(), *name);
    }

    // Relocations: one R_BPF_64_64 per `map NAME ll`, against that map's symbol.
    for section in &program.sections {
        let elf = file.section_by_name(&section.name).unwrap();
        let mut expected = Vec::new();
        let mut at = 0u64;
        for insn in &section.insns {
            if let Some(map) = &insn.map {
                expected.push((at, map.clone()));
            }
            at += insn.instruction.slots() as u64 * 8;
        }
        let found: Vec<(u64, String)> = elf
            .relocations()
            .map(|(offset, reloc)| {
                assert_eq!(
                    reloc.flags(),
                    RelocationFlags::Elf {
                        r_type: object::elf::R_BPF_64_64
                    }
                );
                let RelocationTarget::Symbol(symbol) = reloc.target() else {
                    panic!("not a symbol")
                };
                (offset, map_symbols[&symbol].to_string())
            })
            .collect();
        assert_eq!(found, expected, "{}", section.name);
    }
    assert_eq!(
        file.section_by_name("kprobe/tcp_v4_connect")
            .unwrap()
            .relocations()
            .count(),
        2
    );

    let license = file.section_by_name("license").unwrap();
    assert_eq!(license.data().unwrap(), b"GPL\0");
}

#[test]
fn field_relocations_read_back() {
    let bytes = object_bytes();
    let file: ElfFile64 = ElfFile64::parse(&*bytes).unwrap();
    let data = file
        .section_by_name(".conntrace.fields")
        .unwrap()
        .data()
        .unwrap();
    assert_eq!(&data[..4], b"TCFR");
    assert_eq!((u32_at(data, 4), u32_at(data, 8)), (1, 3));
    let strings_len = u32_at(data, 12) as usize;
    let strings = &data[16 + 3 * 24..];
    assert_eq!(strings.len(), strings_len);

    let mut records = Vec::new();
    for i in 0..3 {
        let r = 16 + i * 24;
        let section = file
            .section_by_index(SectionIndex(u32_at(data, r) as usize))
            .unwrap();
        let insn_offset = u32_at(data, r + 4) as usize;
        let kind = u32_at(data, r + 8);
        let placeholder = u32_at(data, r + 12) as i32;
        let addend = u32_at(data, r + 16) as i32;
        let name_at = u32_at(data, r + 20) as usize;
        let name_end = name_at + strings[name_at..].iter().position(|&b| b == 0).unwrap();
        let name = std::str::from_utf8(&strings[name_at..name_end])
            .unwrap()
            .to_string();
        // The instruction holds the placeholder the record names.
        let insn = Instruction::decode(&section.data().unwrap()[insn_offset..]).unwrap();
        match kind {
            1 => assert_eq!(i32::from(insn.off), placeholder),
            2 => assert_eq!(insn.imm, i64::from(placeholder)),
            _ => panic!("kind {kind}"),
        }
        records.push((
            section.name().unwrap().to_string(),
            insn_offset,
            kind,
            placeholder,
            addend,
            name,
        ));
    }
    let kp = "kprobe/tcp_v4_connect".to_string();
    assert_eq!(
        records,
        vec![
            (
                kp.clone(),
                16,
                FieldKind::Off as u32,
                0x7bad,
                0,
                "sock_common.skc_family".to_string()
            ),
            (
                kp,
                32,
                FieldKind::Imm as u32,
                0x7badf00d,
                4,
                "sock_common.skc_v6_daddr".to_string()
            ),
            (
                "tracepoint/sock/inet_sock_set_state".to_string(),
                0,
                FieldKind::Off as u32,
                0x7bad,
                0,
                "sock.__sk_common.skc_net.net".to_string()
            ),
        ]
    );
}

#[test]
fn no_sources_give_an_object_with_no_programs() {
    let bytes = bpf_asm::assemble(&[]).unwrap();
    let file: ElfFile64 = ElfFile64::parse(&*bytes).unwrap();
    assert!(file
        .sections()
        .all(|s| s.kind() != object::SectionKind::Text));
    let fields = file
        .section_by_name(".conntrace.fields")
        .unwrap()
        .data()
        .unwrap();
    assert_eq!(
        fields,
        [b"TCFR".as_slice(), &[1, 0, 0, 0], &[0; 8]].concat()
    );
}

/// `section name -> instruction texts` from `bpf-asm --dump`.
fn dump_texts(dump: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut current = String::new();
    for line in dump.lines() {
        if let Some(name) = line.strip_suffix(':') {
            current = name.to_string();
        } else {
            let text = line.split('\t').nth(1).unwrap();
            out.entry(current.clone())
                .or_default()
                .push(text.to_string());
        }
    }
    out
}

/// The same from `llvm-objdump -d`, jump-target annotations (` <sym+0x..>`) removed.
fn objdump_texts(listing: &str) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut current = String::new();
    for line in listing.lines() {
        if let Some(rest) = line.strip_prefix("Disassembly of section ") {
            current = rest.trim_end_matches(':').to_string();
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() == 3 && fields[0].trim_end().ends_with(':') {
            let text = fields[2].split(" <").next().unwrap();
            out.entry(current.clone())
                .or_default()
                .push(text.to_string());
        }
    }
    out
}

#[test]
fn llvm_objdump_shows_what_dump_shows() {
    let ours = dump_texts(&bpf_asm::dump(&program()));
    assert_eq!(
        ours["kprobe/tcp_v4_connect"][2],
        "w2 = *(u16 *)(r1 + 0x7bad)"
    );
    let Some(objdump) = common::llvm_tool("llvm-objdump-19") else {
        return;
    };
    let path = common::scratch("roundtrip.o");
    std::fs::write(&path, object_bytes()).unwrap();
    let output = Command::new(objdump)
        .args(["-d", "--mcpu=v4"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs = objdump_texts(&String::from_utf8(output.stdout).unwrap());
    assert_eq!(theirs.len(), 2, "{theirs:?}");
    assert_eq!(theirs, ours);
}
