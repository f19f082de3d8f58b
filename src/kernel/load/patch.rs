//! Rewrites a program's instructions before BPF_PROG_LOAD: map loads get the map's fd, field
//! placeholders get the field's offset in the running kernel. Each patch decodes the
//! instruction with the shared model (bpf-insn), checks it is the one the relocation expects,
//! changes one field and encodes it back. Pure; each refusal explains.

use super::{FieldOffset, FieldResolver};
use crate::kernel::probe_object::{FieldReloc, FieldRelocKind, Program};
use bpf_insn::{decode_program, DecodeError, Instruction, OpCode, Reg, Size, Source};

/// The instruction starting at slot `index`, or `None` past the end of the program.
fn decode_at(insns: &[u64], index: usize) -> Option<Result<Instruction, DecodeError>> {
    let slots = insns.get(index..).filter(|slots| !slots.is_empty())?;
    Some(Instruction::decode_words(slots))
}

/// Writes `insn` over the slots it was decoded from at `index`.
fn encode_at(insns: &mut [u64], index: usize, insn: &Instruction) {
    let encoded = insn.to_bytes();
    for (slot, word) in insns.iter_mut().skip(index).zip(encoded.words()) {
        *slot = word;
    }
}

/// Points the lddw at `insn_index` at the map with descriptor `fd`.
pub fn map_fd(
    program: &Program,
    insns: &mut [u64],
    insn_index: usize,
    fd: i32,
) -> Result<(), String> {
    let at = format!("{}+{}", program.section, insn_index.saturating_mul(8));
    let Some(decoded) = decode_at(insns, insn_index) else {
        return Err(format!(
            "map relocation at {at} is past the end of the program"
        ));
    };
    let mut lddw = match decoded {
        Ok(insn) if insn.opcode == OpCode::LoadImm64 => insn,
        Ok(insn) => {
            return Err(format!(
                "map relocation at {at} is not on an lddw instruction (it is `{insn}`)"
            ))
        }
        Err(why) => {
            return Err(format!(
                "map relocation at {at} is not on an lddw instruction ({why})"
            ))
        }
    };
    // The assembler's placeholder: `rN = 0 ll` with a plain src.
    if lddw.src != Reg::R0 || lddw.imm != 0 {
        return Err(format!(
            "the lddw at {at} is already patched (src_reg {}, imm {})",
            lddw.src.number(),
            lddw.imm
        ));
    }
    lddw.src = Reg::PSEUDO_MAP_FD;
    // The fd fills the first slot's imm; the second slot's (the constant's upper half) stays 0.
    lddw.imm = i64::from(fd as u32);
    encode_at(insns, insn_index, &lddw);
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
    let Some(decoded) = decode_at(insns, reloc.insn_index) else {
        return Err(format!(
            "field relocation for {} at {at} is past the end of the program",
            reloc.name
        ));
    };
    let damaged = "the probe object is damaged; rebuild conntrace";
    let mut insn = decoded.map_err(|why| {
        format!(
            "the offset of {} goes into {at}, which is no instruction ({why}): {damaged}",
            reloc.name
        )
    })?;
    // An `off` relocation is a memory offset, an `imm` one an ALU immediate: anything else
    // would put the offset where the instruction means something else.
    let expected = match reloc.kind {
        FieldRelocKind::Off => insn.opcode.access_size().is_some(),
        FieldRelocKind::Imm => matches!(
            insn.opcode,
            OpCode::Alu {
                source: Source::Imm,
                ..
            }
        ),
    };
    if !expected {
        let wanted = match reloc.kind {
            FieldRelocKind::Off => "a load or store with the offset as its memory offset",
            FieldRelocKind::Imm => "an ALU operation with the offset as its immediate",
        };
        return Err(format!(
            "the instruction at {at} (`{insn}`) is not {wanted}, as the relocation for {} says: {damaged}",
            reloc.name
        ));
    }
    // A non-lddw imm is a sign-extended i32 (decoding guarantees it): the cast is lossless.
    let held = match reloc.kind {
        FieldRelocKind::Off => i32::from(insn.off),
        FieldRelocKind::Imm => insn.imm as i32,
    };
    if held != reloc.placeholder {
        return Err(format!(
            "the instruction at {at} holds {held:#x} where the offset of {} goes, not the placeholder {:#x}: {damaged}",
            reloc.name, reloc.placeholder
        ));
    }
    let field = resolver
        .field(&reloc.name)
        .map_err(|why| format!("{at} needs the offset of {}: {why}", reloc.name))?;
    let value = i64::from(field.offset) + i64::from(reloc.addend);
    match reloc.kind {
        FieldRelocKind::Off => {
            insn.off = i16::try_from(value).map_err(|_| {
                format!(
                    "{} is at offset {} (+ {}) in this kernel, beyond the 16-bit memory offset of the instruction at {at}: \
                     load the address with an ALU offset (r += offsetof(...)) instead",
                    reloc.name, field.offset, reloc.addend
                )
            })?;
            narrow_load(&mut insn, reloc, field);
            check_access_size(insn.opcode.access_size(), reloc, field, &at)?;
        }
        FieldRelocKind::Imm => {
            let imm = i32::try_from(value).map_err(|_| {
                format!(
                    "{} + {} = {value} does not fit the 32-bit immediate at {at}",
                    reloc.name, reloc.addend
                )
            })?;
            insn.imm = i64::from(imm);
        }
    }
    encode_at(insns, reloc.insn_index, &insn);
    Ok(())
}

/// A plain load of a whole tracepoint-record field that is narrower in this kernel than in
/// the source (inet_sock_set_state's `protocol` is a u8 before 5.6, a u16 after) becomes a
/// load of the field's own width, as libbpf's CO-RE does: the value is the same,
/// zero-extended, and the neighbour is not read. Only tracepoint records (whose integer widths
/// do change between kernels): anywhere else a too-wide load is the source's mistake, which
/// the size check names.
fn narrow_load(insn: &mut Instruction, reloc: &FieldReloc, field: FieldOffset) {
    let OpCode::Load(size) = insn.opcode else {
        return;
    };
    if !reloc.name.starts_with("trace_event_raw_") {
        return;
    }
    let narrower = match field.size {
        1 => Size::B,
        2 => Size::H,
        4 => Size::W,
        _ => return,
    };
    if reloc.addend == 0 && narrower.bytes() < size.bytes() {
        insn.opcode = OpCode::Load(narrower);
    }
}

/// A load or store that starts inside the field must end inside it: a u32 read of a 2-byte
/// field would silently pick up its neighbour. Accesses meant to start elsewhere (an addend
/// outside the field) are the author's business.
fn check_access_size(
    access: Option<Size>,
    reloc: &FieldReloc,
    field: FieldOffset,
    at: &str,
) -> Result<(), String> {
    let Some(size) = access.map(Size::bytes) else {
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

/// Rewrites every call of helper `from` into a call of helper `to` (a kernel without `from`
/// has `to`, which takes the same arguments): decodes each instruction, takes only helper
/// calls (`call` with src_reg 0; 1 is a BPF-to-BPF call, 2 a kfunc), changes the number,
/// encodes it back. Returns how many calls it rewrote.
pub fn helper_calls(
    program: &Program,
    insns: &mut [u64],
    from: u32,
    to: u32,
) -> Result<usize, String> {
    let mut sites = Vec::new();
    for decoded in decode_program(insns) {
        let (slot, insn) = decoded.map_err(|e| {
            format!(
                "{}+{}: {}: the probe object is damaged; rebuild conntrace",
                program.section,
                e.slot.saturating_mul(8),
                e.error
            )
        })?;
        if insn.opcode == OpCode::Call && insn.src == Reg::R0 && insn.imm == i64::from(from) {
            sites.push((slot, insn));
        }
    }
    for (slot, mut call) in sites.iter().copied() {
        call.imm = i64::from(to);
        encode_at(insns, slot, &call);
    }
    Ok(sites.len())
}
