//! Reading and rewriting the fields of one 8-byte BPF instruction, held as a little-endian u64:
//! byte 0 opcode, byte 1 dst_reg (low nibble) and src_reg (high nibble), bytes 2-3 `off` (i16),
//! bytes 4-7 `imm` (i32). The encoding is bpf-insn's, shared with the assembler; the loader
//! patches through its typed `Instruction`, these raw accessors are for reading slots.

pub use bpf_insn::raw::{
    imm, memory_access_size, off, opcode, src_reg, with_imm, with_off, with_src_reg,
};

/// `lddw`: BPF_LD | BPF_IMM | BPF_DW, the first slot of a 16-byte 64-bit immediate load.
pub const LDDW: u8 = bpf_insn::OpCode::LoadImm64.byte();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        // r2 = *(u16 *)(r1 + 0x7bad): ldxh, dst 2, src 1.
        let insn = 0x69u64 | (0x12 << 8) | (0x7bad << 16);
        assert_eq!(opcode(insn), 0x69);
        assert_eq!(src_reg(insn), 1);
        assert_eq!(off(insn), 0x7bad);
        assert_eq!(memory_access_size(insn), Some(2));
        let patched = with_off(insn, -4);
        assert_eq!(off(patched), -4);
        assert_eq!(opcode(patched), 0x69);
        assert_eq!(src_reg(patched), 1);
        let patched = with_imm(with_src_reg(patched, 1), -2);
        assert_eq!(imm(patched), -2);
        assert_eq!(off(patched), -4);
        assert_eq!(patched & 0xff, 0x69);
    }

    #[test]
    fn access_sizes() {
        assert_eq!(memory_access_size(0x61), Some(4)); // ldxw
        assert_eq!(memory_access_size(0x79), Some(8)); // ldxdw
        assert_eq!(memory_access_size(0x71), Some(1)); // ldxb
        assert_eq!(memory_access_size(0x63), Some(4)); // stxw
        assert_eq!(memory_access_size(0x6a), Some(2)); // sth
        assert_eq!(memory_access_size(0xdb), Some(8)); // atomic dw
        assert_eq!(memory_access_size(0x91), Some(1)); // ldxsb (memsx)
        assert_eq!(memory_access_size(0x07), None); // r += imm
        assert_eq!(memory_access_size(u64::from(LDDW)), None);
        assert_eq!(memory_access_size(0x95), None); // exit
    }
}
