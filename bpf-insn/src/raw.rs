//! The fields of one 8-byte instruction slot held as a little-endian u64, the way a loader
//! keeps a program for BPF_PROG_LOAD: byte 0 opcode, byte 1 dst_reg (low nibble) and src_reg
//! (high nibble), bytes 2-3 `off` (i16), bytes 4-7 `imm` (i32). No checks: for reading what
//! the kernel will see and for tests; patch through [`crate::Instruction`] instead.

use crate::OpCode;

pub const fn opcode(insn: u64) -> u8 {
    insn as u8
}

pub const fn dst_reg(insn: u64) -> u8 {
    ((insn >> 8) & 0xf) as u8
}

pub const fn src_reg(insn: u64) -> u8 {
    ((insn >> 12) & 0xf) as u8
}

pub const fn off(insn: u64) -> i16 {
    (insn >> 16) as u16 as i16
}

pub const fn imm(insn: u64) -> i32 {
    (insn >> 32) as u32 as i32
}

pub const fn with_src_reg(insn: u64, reg: u8) -> u64 {
    (insn & !(0xf << 12)) | (((reg & 0xf) as u64) << 12)
}

pub const fn with_off(insn: u64, off: i16) -> u64 {
    (insn & !(0xffff << 16)) | ((off as u16 as u64) << 16)
}

pub const fn with_imm(insn: u64, imm: i32) -> u64 {
    (insn & 0xffff_ffff) | ((imm as u32 as u64) << 32)
}

/// The number of bytes a load, store or atomic instruction accesses, or `None` for any other
/// instruction (ALU, jumps, lddw) and for bytes that are no opcode.
pub fn memory_access_size(insn: u64) -> Option<u32> {
    let opcode = OpCode::from_byte(opcode(insn)).ok()?;
    opcode.access_size().map(|size| size.bytes())
}
