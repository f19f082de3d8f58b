//! bpf-asm: an assembler for BPF in llvm's pseudo-C syntax (the text `llvm-objdump -d` prints
//! and `llvm-mc -triple bpf` accepts), writing relocatable ELF objects. See README.md for the
//! syntax and the object format.
//!
//! The pipeline: `macros` expands text macros and `.rept`/`.irp` (`repeat`) over all files of
//! the unit, `parser` turns each line (tokens from `lexer`, expressions from `expr`, llvm's
//! section/symbol/data directives from `directives`) into statements, `program` resolves
//! constants (`consts`), labels, maps, symbols and the license (`symbols`) and struct-field
//! references in a second pass into the typed model of `insn`, and `elf` writes the object.

mod consts;
mod directives;
pub mod elf;
pub mod error;
mod expr;
pub mod helpers;
pub mod insn;
mod lexer;
mod macros;
mod parser;
pub mod program;
mod repeat;
mod symbols;

pub use error::{Diagnostic, Error, Origin};
pub use insn::Instruction;
pub use program::{
    Binding, FieldKind, FieldRef, Insn, MapDef, Program, Section, SymType, Symbol, SymbolPlace,
};

/// One input file.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// Shown in error messages.
    pub name: &'a str,
    pub text: &'a str,
}

/// Parses and resolves one assembly unit (every file given at once) into the typed program.
pub fn parse(sources: &[Source]) -> Result<Program, Error> {
    let lines = macros::expand(sources)?;
    Ok(program::build(&lines)?)
}

/// Every `.equ`/`.set` constant of one unit (every file given at once, macros expanded) with
/// its value, in order of definition. Values are exact: -2^63 to 2^64-1, as the assembler
/// computes them. The unit must assemble: any error in it is returned, as [`parse`] would.
/// For tests that check layouts the sources share with Rust definitions.
pub fn constants(sources: &[Source]) -> Result<Vec<(String, i128)>, Error> {
    let lines = macros::expand(sources)?;
    Ok(program::build_with_constants(&lines)?.1)
}

/// Assembles one unit into the bytes of an ELF object.
pub fn assemble(sources: &[Source]) -> Result<Vec<u8>, Error> {
    elf::write(&parse(sources)?)
}

/// The listing of `bpf-asm --dump`: per section, each instruction as llvm-objdump-19
/// (`-d --mcpu=v4`) prints it, then its encoding as llvm-mc `-show-encoding` prints it, and any
/// map or field reference.
pub fn dump(program: &Program) -> String {
    let mut out = String::new();
    for section in &program.sections {
        out.push_str(&format!("{}:\n", section.name));
        let mut slot = 0;
        for insn in &section.insns {
            let bytes = insn.instruction.to_bytes();
            let encoding: Vec<String> = bytes.iter().map(|b| format!("0x{b:02x}")).collect();
            out.push_str(&format!(
                "{slot:>6}:\t{}\t# encoding: [{}]",
                insn.instruction,
                encoding.join(",")
            ));
            if let Some(map) = &insn.map {
                out.push_str(&format!(" map {map}"));
            }
            if let Some(field) = &insn.field {
                let kind = match field.kind {
                    FieldKind::Off => "off",
                    FieldKind::Imm => "imm",
                };
                out.push_str(&format!(" field {kind} {} {:+}", field.name, field.addend));
            }
            out.push('\n');
            slot += insn.instruction.slots();
        }
    }
    out
}
