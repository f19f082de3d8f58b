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
