//! Rewrites a program's instructions before BPF_PROG_LOAD: map loads get the map's fd, field
//! placeholders get the field's offset in the running kernel. Pure; each refusal explains.

use super::{FieldOffset, FieldResolver};
use crate::probe_object::{insn, FieldReloc, FieldRelocKind, Program};

/// `src_reg` of an lddw that loads a map by fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// Points the lddw at `insn_index` at the map with descriptor `fd`.
pub fn map_fd(
    program: &Program,
    insns: &mut [u64],
    insn_index: usize,
    fd: i32,
) -> Result<(), String> {
    let at = format!("{}+{}", program.section, insn_index.saturating_mul(8));
    let second_is_empty = insn_index
        .checked_add(1)
        .and_then(|i| insns.get(i))
        .is_some_and(|&i| i == 0);
    let Some(slot) = insns.get_mut(insn_index) else {
        return Err(format!(
            "map relocation at {at} is past the end of the program"
        ));
    };
    let first = *slot;
    if insn::opcode(first) != insn::LDDW || !second_is_empty {
        return Err(format!(
            "map relocation at {at} is not on an lddw instruction"
        ));
    }
    if insn::src_reg(first) != 0 || insn::imm(first) != 0 {
        return Err(format!(
            "the lddw at {at} is already patched (src_reg {}, imm {})",
            insn::src_reg(first),
            insn::imm(first)
        ));
    }
    *slot = insn::with_imm(insn::with_src_reg(first, BPF_PSEUDO_MAP_FD), fd);
    Ok(())
}

/// Writes `field.offset + reloc.addend` where the assembler left `reloc.placeholder`.
pub fn field(
    program: &Program,
    insns: &mut [u64],
    reloc: &FieldReloc,
    resolver: &dyn FieldResolver,
) -> Result<(), String> {
    let at = format!("{}+{}", program.section, reloc.insn_index.saturating_mul(8));
    let Some(slot) = insns.get_mut(reloc.insn_index) else {
        return Err(format!(
            "field relocation for {} at {at} is past the end of the program",
            reloc.name
        ));
    };
    let current = *slot;
    let held = match reloc.kind {
        FieldRelocKind::Off => i32::from(insn::off(current)),
        FieldRelocKind::Imm => insn::imm(current),
    };
    if held != reloc.placeholder {
        return Err(format!(
            "the instruction at {at} holds {held:#x} where the offset of {} goes, not the placeholder {:#x}: \
             the probe object is damaged; rebuild conntrace",
            reloc.name, reloc.placeholder
        ));
    }
    let field = resolver
        .field(&reloc.name)
        .map_err(|why| format!("{at} needs the offset of {}: {why}", reloc.name))?;
    let value = i64::from(field.offset) + i64::from(reloc.addend);
    *slot = match reloc.kind {
        FieldRelocKind::Off => {
            let off = i16::try_from(value).map_err(|_| {
                format!(
                    "{} is at offset {} (+ {}) in this kernel, beyond the 16-bit memory offset of the instruction at {at}: \
                     load the address with an ALU offset (r += offsetof(...)) instead",
                    reloc.name, field.offset, reloc.addend
                )
            })?;
            check_access_size(current, reloc, field, &at)?;
            insn::with_off(current, off)
        }
        FieldRelocKind::Imm => {
            let imm = i32::try_from(value).map_err(|_| {
                format!(
                    "{} + {} = {value} does not fit the 32-bit immediate at {at}",
                    reloc.name, reloc.addend
                )
            })?;
            insn::with_imm(current, imm)
        }
    };
    Ok(())
}

/// A load or store that starts inside the field must end inside it: a u32 read of a 2-byte
/// field would silently pick up its neighbour. Accesses meant to start elsewhere (an addend
/// outside the field) are the author's business.
fn check_access_size(
    insn_word: u64,
    reloc: &FieldReloc,
    field: FieldOffset,
    at: &str,
) -> Result<(), String> {
    let Some(size) = insn::memory_access_size(insn_word) else {
        return Ok(());
    };
    let starts_inside = reloc.addend >= 0 && (reloc.addend as u32) < field.size;
    if !starts_inside || field.size == 0 {
        return Ok(());
    }
    let end = u64::from(reloc.addend as u32) + u64::from(size);
    if end > u64::from(field.size) {
        let place = if reloc.addend == 0 {
            String::new()
        } else {
            format!(" at +{}", reloc.addend)
        };
        return Err(format!(
            "the {size}-byte access at {at}{place} runs past the end of {}, which is {} bytes in this kernel: \
             make the access {} bytes wide",
            reloc.name,
            field.size,
            field.size - reloc.addend as u32
        ));
    }
    Ok(())
}
