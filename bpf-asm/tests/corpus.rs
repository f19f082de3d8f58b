//! Every instruction form, assembled by bpf-asm, compared byte for byte with llvm-mc-19: with
//! the encodings checked in (forms.hex, from regen.sh) and, where llvm-mc-19 exists, live.

mod common;

use object::{Object, ObjectSection};
use std::process::Command;

const FORMS: &str = include_str!("corpus/forms.s");
const FORMS_HEX: &str = include_str!("corpus/forms.hex");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn assembled_forms() -> bpf_asm::Program {
    bpf_asm::parse(&[bpf_asm::Source {
        name: "forms.s",
        text: FORMS,
    }])
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_form_matches_the_checked_in_llvm_encoding() {
    let program = assembled_forms();
    let [section] = program.sections.as_slice() else {
        panic!("forms.s has one section");
    };
    let expected: Vec<&str> = FORMS_HEX.lines().collect();
    assert_eq!(section.insns.len(), expected.len(), "instruction count");
    for (insn, want) in section.insns.iter().zip(expected) {
        assert_eq!(
            hex(&insn.instruction.to_bytes()),
            want,
            "{}:{}: `{}`",
            insn.origin.file,
            insn.origin.line,
            insn.origin.text
        );
    }
}

#[test]
fn every_form_matches_llvm_mc_live() {
    let Some(mc) = common::llvm_tool("llvm-mc-19") else {
        return;
    };
    let input = common::scratch("forms.s");
    let output = common::scratch("forms.o");
    std::fs::write(&input, FORMS).unwrap();
    let status = Command::new(mc)
        .args(["-triple", "bpf", "-filetype=obj", "-o"])
        .arg(&output)
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success(), "llvm-mc-19 rejected forms.s");
    let theirs = std::fs::read(&output).unwrap();
    let theirs = object::File::parse(&*theirs).unwrap();
    let text = theirs
        .section_by_name(".text")
        .unwrap()
        .data()
        .unwrap()
        .to_vec();

    let ours = bpf_asm::assemble(&[bpf_asm::Source {
        name: "forms.s",
        text: FORMS,
    }])
    .unwrap();
    let ours = object::File::parse(&*ours).unwrap();
    let ours_text = ours
        .section_by_name(".text")
        .unwrap()
        .data()
        .unwrap()
        .to_vec();
    assert_eq!(ours_text.len(), text.len());
    for (slot, (a, b)) in ours_text.chunks(8).zip(text.chunks(8)).enumerate() {
        assert_eq!(hex(a), hex(b), "slot {slot}");
    }
}

/// The corpus emits every opcode of the shared model (bpf-insn) and nothing else, and each
/// instruction decodes back to what the assembler built: encoder and decoder agree.
#[test]
fn the_corpus_covers_every_opcode_and_round_trips() {
    use bpf_asm::insn::OpCode;
    use std::collections::BTreeSet;

    let program = assembled_forms();
    let mut emitted = BTreeSet::new();
    for insn in &program.sections[0].insns {
        let bytes = insn.instruction.to_bytes();
        let decoded = bpf_asm::Instruction::decode(&bytes)
            .unwrap_or_else(|e| panic!("`{}`: {e}", insn.origin.text));
        assert_eq!(decoded, insn.instruction, "`{}`", insn.origin.text);
        emitted.insert(insn.instruction.opcode.byte());
    }
    let model: BTreeSet<u8> = (0..=u8::MAX)
        .filter(|&b| OpCode::from_byte(b).is_ok())
        .collect();
    assert_eq!(emitted, model, "forms.s and the model differ");
}

/// The bytes of each named section as llvm-mc-19 and bpf-asm assemble `text`; `None` without
/// llvm-mc-19 (see `common::llvm_tool`).
fn llvm_and_ours(name: &str, text: &str, sections: &[&str]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let mc = common::llvm_tool("llvm-mc-19")?;
    let input = common::scratch(name);
    let output = common::scratch(&format!("{name}.o"));
    std::fs::write(&input, text).unwrap();
    let result = Command::new(mc)
        .args(["-triple", "bpf", "-filetype=obj", "-o"])
        .arg(&output)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "llvm-mc-19 rejected {name}:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let theirs = std::fs::read(&output).unwrap();
    let theirs = object::File::parse(&*theirs).unwrap();
    let ours =
        bpf_asm::assemble(&[bpf_asm::Source { name, text }]).unwrap_or_else(|e| panic!("{e}"));
    let ours = object::File::parse(&*ours).unwrap();
    let data = |file: &object::File, section: &str| {
        file.section_by_name(section)
            .unwrap_or_else(|| panic!("no section `{section}`"))
            .data()
            .unwrap()
            .to_vec()
    };
    Some(
        sections
            .iter()
            .map(|s| (data(&ours, s), data(&theirs, s)))
            .collect(),
    )
}

fn assert_same_insns(ours: &[u8], theirs: &[u8], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}: length");
    for (slot, (a, b)) in ours.chunks(8).zip(theirs.chunks(8)).enumerate() {
        assert_eq!(hex(a), hex(b), "{what}: slot {slot}");
    }
}

#[test]
fn equ_expressions_evaluate_as_llvm_mc_does() {
    let text = include_str!("corpus/exprs.s");
    let Some(sections) = llvm_and_ours("exprs.s", text, &[".text"]) else {
        return;
    };
    assert_same_insns(&sections[0].0, &sections[0].1, "exprs.s .text");
}

/// The symbols a source names (`.globl`, `.type`, ...): llvm-mc also lists every other label as
/// a local NOTYPE symbol, plus file and section symbols, which bpf-asm does not write.
fn named_symbols(file: &object::File) -> Vec<String> {
    use object::{ObjectSymbol, SymbolKind};
    let mut out: Vec<String> = file
        .symbols()
        .filter(|s| matches!(s.kind(), SymbolKind::Text | SymbolKind::Data) || !s.is_local())
        .map(|s| {
            let section = s
                .section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .and_then(|sec| sec.name().ok().map(str::to_string))
                .unwrap_or_default();
            let binding = if s.is_weak() {
                "weak"
            } else if s.is_global() {
                "global"
            } else {
                "local"
            };
            format!(
                "{} {section}+{} size {} {:?} {binding}",
                s.name().unwrap_or(""),
                s.address(),
                s.size(),
                s.kind()
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn llvm_style_source_assembles_as_with_llvm_mc() {
    let text = include_str!("corpus/llvm_style.s");
    let sections = [".text", "kprobe/tcp_v4_connect", "license"];
    let ours = bpf_asm::assemble(&[bpf_asm::Source {
        name: "llvm_style.s",
        text,
    }])
    .unwrap_or_else(|e| panic!("{e}"));
    let ours_file = object::File::parse(&*ours).unwrap();
    let license = ours_file.section_by_name("license").unwrap();
    assert_eq!(license.data().unwrap(), b"GPL\0");
    assert_eq!(
        named_symbols(&ours_file),
        [
            "_license license+0 size 4 Data global",
            "f .text+0 size 48 Text global",
            "helper kprobe/tcp_v4_connect+32 size 16 Text local",
            "kp kprobe/tcp_v4_connect+0 size 32 Text global",
            "wk kprobe/tcp_v4_connect+48 size 0 Unknown weak",
        ]
    );

    let Some(pairs) = llvm_and_ours("llvm_style.s", text, &sections) else {
        return;
    };
    for (name, (ours, theirs)) in sections.iter().zip(&pairs) {
        if *name == "license" {
            assert_eq!(ours, theirs, "license");
        } else {
            assert_same_insns(ours, theirs, name);
        }
    }
    let output = common::scratch("llvm_style.s.o");
    let theirs = std::fs::read(output).unwrap();
    let theirs = object::File::parse(&*theirs).unwrap();
    assert_eq!(named_symbols(&ours_file), named_symbols(&theirs));
}
