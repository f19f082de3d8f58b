//! Reading and rewriting the fields of one 8-byte BPF instruction, held as a little-endian u64:
//! byte 0 opcode, byte 1 dst_reg (low nibble) and src_reg (high nibble), bytes 2-3 `off` (i16),
//! bytes 4-7 `imm` (i32).

/// `lddw`: BPF_LD | BPF_IMM | BPF_DW, the first slot of a 16-byte 64-bit immediate load.
pub const LDDW: u8 = 0x18;

pub fn opcode(insn: u64) -> u8 {
    insn as u8
}

pub fn src_reg(insn: u64) -> u8 {
    ((insn >> 12) & 0xf) as u8
}

pub fn off(insn: u64) -> i16 {
    (insn >> 16) as u16 as i16
}

pub fn imm(insn: u64) -> i32 {
    (insn >> 32) as u32 as i32
}

pub fn with_src_reg(insn: u64, reg: u8) -> u64 {
    (insn & !(0xf << 12)) | (u64::from(reg & 0xf) << 12)
}

pub fn with_off(insn: u64, off: i16) -> u64 {
    (insn & !(0xffff << 16)) | (u64::from(off as u16) << 16)
}

pub fn with_imm(insn: u64, imm: i32) -> u64 {
    (insn & 0xffff_ffff) | (u64::from(imm as u32) << 32)
}

/// The number of bytes a load or store instruction accesses, or `None` for any other
/// instruction (ALU, jumps, lddw).
pub fn memory_access_size(insn: u64) -> Option<u32> {
    const CLASS_LDX: u8 = 0x01;
    const CLASS_ST: u8 = 0x02;
    const CLASS_STX: u8 = 0x03;
    const MODE_MEM: u8 = 0x60;
    const MODE_MEMSX: u8 = 0x80;
    const MODE_ATOMIC: u8 = 0xc0;
    let op = opcode(insn);
    let mode = op & 0xe0;
    let is_access = match op & 0x07 {
        CLASS_LDX => mode == MODE_MEM || mode == MODE_MEMSX,
        CLASS_ST => mode == MODE_MEM,
        CLASS_STX => mode == MODE_MEM || mode == MODE_ATOMIC,
        _ => false,
    };
    if !is_access {
        return None;
    }
    Some(match op & 0x18 {
        0x00 => 4,
        0x08 => 2,
        0x10 => 1,
        _ => 8,
    })
}

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
