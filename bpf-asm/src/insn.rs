//! The typed instruction model and its encoding, after cilium/ebpf's `asm` package: an opcode
//! byte is built from typed fields (class, operation, source, size, mode), never spelled as a
//! magic number, and `lddw` is one instruction that occupies two 8-byte slots.

use std::fmt;

/// The low three bits of the opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Ld = 0x00,
    Ldx = 0x01,
    St = 0x02,
    Stx = 0x03,
    Alu = 0x04,
    Jmp = 0x05,
    Jmp32 = 0x06,
    Alu64 = 0x07,
}

/// Whether the second operand is `imm` (K) or `src_reg` (X).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Imm = 0x00,
    Reg = 0x08,
}

/// Access width of loads, stores and atomics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    W = 0x00,
    H = 0x08,
    B = 0x10,
    DW = 0x18,
}

/// Addressing mode of loads and stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Imm = 0x00,
    Mem = 0x60,
    /// ISA v4 sign-extending load.
    MemSx = 0x80,
    Atomic = 0xc0,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AluOp {
    Add = 0x00,
    Sub = 0x10,
    Mul = 0x20,
    Div = 0x30,
    Or = 0x40,
    And = 0x50,
    Lsh = 0x60,
    Rsh = 0x70,
    Neg = 0x80,
    Mod = 0x90,
    Xor = 0xa0,
    Mov = 0xb0,
    Arsh = 0xc0,
    /// Byte swap; the source bit selects big endian, the imm the width.
    End = 0xd0,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JumpOp {
    Ja = 0x00,
    Jeq = 0x10,
    Jgt = 0x20,
    Jge = 0x30,
    Jset = 0x40,
    Jne = 0x50,
    Jsgt = 0x60,
    Jsge = 0x70,
    Call = 0x80,
    Exit = 0x90,
    Jlt = 0xa0,
    Jle = 0xb0,
    Jslt = 0xc0,
    Jsle = 0xd0,
}

/// The operation of an atomic instruction, carried in its `imm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtomicOp {
    Add = 0x00,
    Or = 0x40,
    And = 0x50,
    Xor = 0xa0,
    Xchg = 0xe0,
    Cmpxchg = 0xf0,
}

/// Set in an atomic `imm` when the old value is returned in `src_reg` (or r0 for cmpxchg).
pub const ATOMIC_FETCH: i32 = 0x01;

/// A whole opcode byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpCode(pub u8);

impl OpCode {
    pub fn alu(wide: bool, op: AluOp, source: Source) -> Self {
        let class = if wide { Class::Alu64 } else { Class::Alu };
        OpCode(class as u8 | op as u8 | source as u8)
    }
    pub fn jump(jmp32: bool, op: JumpOp, source: Source) -> Self {
        let class = if jmp32 { Class::Jmp32 } else { Class::Jmp };
        OpCode(class as u8 | op as u8 | source as u8)
    }
    pub fn load(mode: Mode, size: Size) -> Self {
        OpCode(Class::Ldx as u8 | mode as u8 | size as u8)
    }
    pub fn store(source: Source, size: Size) -> Self {
        let class = match source {
            Source::Imm => Class::St,
            Source::Reg => Class::Stx,
        };
        OpCode(class as u8 | Mode::Mem as u8 | size as u8)
    }
    pub fn atomic(size: Size) -> Self {
        OpCode(Class::Stx as u8 | Mode::Atomic as u8 | size as u8)
    }
    /// `lddw`: the only two-slot instruction.
    pub fn load_imm64() -> Self {
        OpCode(Class::Ld as u8 | Mode::Imm as u8 | Size::DW as u8)
    }

    pub fn class(self) -> Class {
        match self.0 & 0x07 {
            0 => Class::Ld,
            1 => Class::Ldx,
            2 => Class::St,
            3 => Class::Stx,
            4 => Class::Alu,
            5 => Class::Jmp,
            6 => Class::Jmp32,
            _ => Class::Alu64,
        }
    }
    pub fn source(self) -> Source {
        if self.0 & 0x08 != 0 {
            Source::Reg
        } else {
            Source::Imm
        }
    }
    pub fn size(self) -> Size {
        match self.0 & 0x18 {
            0x00 => Size::W,
            0x08 => Size::H,
            0x10 => Size::B,
            _ => Size::DW,
        }
    }
    pub fn mode(self) -> Option<Mode> {
        match self.0 & 0xe0 {
            0x00 => Some(Mode::Imm),
            0x60 => Some(Mode::Mem),
            0x80 => Some(Mode::MemSx),
            0xc0 => Some(Mode::Atomic),
            _ => None,
        }
    }
    pub fn alu_op(self) -> Option<AluOp> {
        use AluOp::*;
        [
            Add, Sub, Mul, Div, Or, And, Lsh, Rsh, Neg, Mod, Xor, Mov, Arsh, End,
        ]
        .into_iter()
        .find(|op| *op as u8 == self.0 & 0xf0)
    }
    pub fn jump_op(self) -> Option<JumpOp> {
        use JumpOp::*;
        [
            Ja, Jeq, Jgt, Jge, Jset, Jne, Jsgt, Jsge, Call, Exit, Jlt, Jle, Jslt, Jsle,
        ]
        .into_iter()
        .find(|op| *op as u8 == self.0 & 0xf0)
    }
    pub fn is_load_imm64(self) -> bool {
        self == OpCode::load_imm64()
    }
}

/// A register, r0 to r10 (r10 is the read-only frame pointer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg(u8);

impl Reg {
    pub const R0: Reg = Reg(0);
    pub const R10: Reg = Reg(10);
    pub fn new(n: u8) -> Option<Reg> {
        (n <= 10).then_some(Reg(n))
    }
    pub fn number(self) -> u8 {
        self.0
    }
}

/// One instruction. `imm` holds the full 64-bit constant of `lddw` and a sign-extended i32
/// otherwise (the encoder checks nothing: the parser has range-checked every field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instruction {
    pub opcode: OpCode,
    pub dst: Reg,
    pub src: Reg,
    pub off: i16,
    pub imm: i64,
}

impl Instruction {
    /// How many 8-byte slots the instruction occupies.
    pub fn slots(&self) -> usize {
        if self.opcode.is_load_imm64() {
            2
        } else {
            1
        }
    }

    /// The little-endian encoding: 8 bytes, or 16 for `lddw` (the upper 32 bits of the
    /// constant go into the `imm` of a second, otherwise zero, slot).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.opcode.0);
        out.push(self.src.0 << 4 | self.dst.0);
        out.extend_from_slice(&self.off.to_le_bytes());
        let bits = self.imm as u64;
        out.extend_from_slice(&(bits as u32).to_le_bytes());
        if self.opcode.is_load_imm64() {
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&((bits >> 32) as u32).to_le_bytes());
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        self.encode(&mut out);
        out
    }

    /// Decodes one instruction from the front of `bytes`, if it is one this model prints.
    pub fn decode(bytes: &[u8]) -> Option<Instruction> {
        let head: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let opcode = OpCode(head[0]);
        let dst = Reg::new(head[1] & 0x0f)?;
        let src = Reg::new(head[1] >> 4)?;
        let off = i16::from_le_bytes([head[2], head[3]]);
        let low = i32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let imm = if opcode.is_load_imm64() {
            let high = u32::from_le_bytes(bytes.get(12..16)?.try_into().ok()?);
            ((u64::from(high) << 32) | u64::from(low as u32)) as i64
        } else {
            i64::from(low)
        };
        Some(Instruction {
            opcode,
            dst,
            src,
            off,
            imm,
        })
    }
}

/// Hex the way llvm-objdump prints numbers: `0x10`, `-0x8`.
fn hex(value: i64) -> String {
    if value < 0 {
        format!("-0x{:x}", value.unsigned_abs())
    } else {
        format!("0x{value:x}")
    }
}

fn size_name(size: Size) -> &'static str {
    match size {
        Size::B => "u8",
        Size::H => "u16",
        Size::W => "u32",
        Size::DW => "u64",
    }
}

fn memory(base: Reg, off: i16) -> String {
    let sign = if off < 0 { '-' } else { '+' };
    format!("r{} {sign} {}", base.0, hex(i64::from(off).abs()))
}

fn alu_symbol(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div => "/=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Mod => "%=",
        AluOp::Xor => "^=",
        AluOp::Mov => "=",
        AluOp::Arsh => "s>>=",
        AluOp::Neg | AluOp::End => "?",
    }
}

pub(crate) fn jump_symbol(op: JumpOp) -> &'static str {
    match op {
        JumpOp::Jeq => "==",
        JumpOp::Jgt => ">",
        JumpOp::Jge => ">=",
        JumpOp::Jset => "&",
        JumpOp::Jne => "!=",
        JumpOp::Jsgt => "s>",
        JumpOp::Jsge => "s>=",
        JumpOp::Jlt => "<",
        JumpOp::Jle => "<=",
        JumpOp::Jslt => "s<",
        JumpOp::Jsle => "s<=",
        JumpOp::Ja | JumpOp::Call | JumpOp::Exit => "?",
    }
}

fn jump_offset(off: i64) -> String {
    if off < 0 {
        format!("-0x{:x}", off.unsigned_abs())
    } else {
        format!("+0x{off:x}")
    }
}

/// The text llvm-objdump-19 `-d --mcpu=v4` prints for an instruction (`<unknown>` when the
/// encoding is none this model produces).
impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.opcode;
        let (d, s) = (self.dst.0, self.src.0);
        let imm = self.imm;
        match op.class() {
            Class::Alu | Class::Alu64 => {
                let wide = op.class() == Class::Alu64;
                let r = if wide { 'r' } else { 'w' };
                let Some(alu) = op.alu_op() else {
                    return f.write_str("<unknown>");
                };
                match alu {
                    AluOp::Neg => write!(f, "{r}{d} = -{r}{d}"),
                    AluOp::End => {
                        let name = match (wide, op.source()) {
                            (false, Source::Reg) => "be",
                            (false, Source::Imm) => "le",
                            (true, _) => "bswap",
                        };
                        write!(f, "r{d} = {name}{imm} r{d}")
                    }
                    AluOp::Mov if op.source() == Source::Reg && self.off != 0 => {
                        write!(f, "{r}{d} = (s{}){r}{s}", self.off)
                    }
                    AluOp::Div | AluOp::Mod if self.off == 1 => {
                        let sym = alu_symbol(alu);
                        match op.source() {
                            Source::Reg => write!(f, "{r}{d} s{sym} {r}{s}"),
                            Source::Imm => write!(f, "{r}{d} s{sym} {}", hex(imm)),
                        }
                    }
                    _ => {
                        let sym = alu_symbol(alu);
                        match op.source() {
                            Source::Reg => write!(f, "{r}{d} {sym} {r}{s}"),
                            Source::Imm => write!(f, "{r}{d} {sym} {}", hex(imm)),
                        }
                    }
                }
            }
            Class::Jmp | Class::Jmp32 => {
                let r = if op.class() == Class::Jmp32 { 'w' } else { 'r' };
                match op.jump_op() {
                    Some(JumpOp::Ja) if op.class() == Class::Jmp32 => {
                        write!(f, "gotol {}", jump_offset(imm))
                    }
                    Some(JumpOp::Ja) => write!(f, "goto {}", jump_offset(i64::from(self.off))),
                    Some(JumpOp::Call) => write!(f, "call {}", hex(imm)),
                    Some(JumpOp::Exit) => f.write_str("exit"),
                    Some(jop) => {
                        let sym = jump_symbol(jop);
                        let target = jump_offset(i64::from(self.off));
                        match op.source() {
                            Source::Reg => write!(f, "if {r}{d} {sym} {r}{s} goto {target}"),
                            Source::Imm => write!(f, "if {r}{d} {sym} {} goto {target}", hex(imm)),
                        }
                    }
                    None => f.write_str("<unknown>"),
                }
            }
            Class::Ld if op.is_load_imm64() => {
                write!(f, "r{d} = {} ll", hex(imm))
            }
            Class::Ldx => {
                let size = op.size();
                let r = if size == Size::DW { 'r' } else { 'w' };
                match op.mode() {
                    Some(Mode::Mem) => {
                        write!(
                            f,
                            "{r}{d} = *({} *)({})",
                            size_name(size),
                            memory(self.src, self.off)
                        )
                    }
                    Some(Mode::MemSx) if size != Size::DW => {
                        let name = size_name(size).replace('u', "s");
                        write!(f, "r{d} = *({name} *)({})", memory(self.src, self.off))
                    }
                    _ => f.write_str("<unknown>"),
                }
            }
            Class::St if op.mode() == Some(Mode::Mem) => write!(
                f,
                "*({} *)({}) = {}",
                size_name(op.size()),
                memory(self.dst, self.off),
                hex(imm)
            ),
            Class::Stx if op.mode() == Some(Mode::Mem) => {
                let r = if op.size() == Size::DW { 'r' } else { 'w' };
                write!(
                    f,
                    "*({} *)({}) = {r}{s}",
                    size_name(op.size()),
                    memory(self.dst, self.off)
                )
            }
            Class::Stx if op.mode() == Some(Mode::Atomic) => self.fmt_atomic(f),
            _ => f.write_str("<unknown>"),
        }
    }
}

impl Instruction {
    fn fmt_atomic(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, s) = (self.dst.0, self.src.0);
        let (r, size, bits) = match self.opcode.size() {
            Size::DW => ('r', "u64", "64"),
            Size::W => ('w', "u32", "32_32"),
            _ => return f.write_str("<unknown>"),
        };
        let mem = memory(self.dst, self.off);
        let fetch = self.imm & i64::from(ATOMIC_FETCH) != 0;
        let name = match self.imm & !i64::from(ATOMIC_FETCH) {
            0x00 => "add",
            0x40 => "or",
            0x50 => "and",
            0xa0 => "xor",
            0xe0 if fetch => {
                let xchg = if bits == "64" { "xchg_64" } else { "xchg32_32" };
                return write!(f, "{r}{s} = {xchg}({mem}, {r}{s})");
            }
            0xf0 if fetch => {
                let cmpxchg = if bits == "64" {
                    "cmpxchg_64"
                } else {
                    "cmpxchg32_32"
                };
                return write!(f, "{r}0 = {cmpxchg}({mem}, {r}0, {r}{s})");
            }
            _ => return f.write_str("<unknown>"),
        };
        let _ = d;
        if fetch {
            write!(f, "{r}{s} = atomic_fetch_{name}(({size} *)({mem}), {r}{s})")
        } else {
            let sym = match name {
                "add" => "+=",
                "or" => "|=",
                "and" => "&=",
                _ => "^=",
            };
            write!(f, "lock *({size} *)({mem}) {sym} {r}{s}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lddw_splits_negative_constants_into_two_slots() {
        let insn = Instruction {
            opcode: OpCode::load_imm64(),
            dst: Reg(1),
            src: Reg(0),
            off: 0,
            imm: -2,
        };
        assert_eq!(
            insn.to_bytes(),
            [0x18, 0x01, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(Instruction::decode(&insn.to_bytes()), Some(insn));
        assert_eq!(insn.to_string(), "r1 = -0x2 ll");
    }

    #[test]
    fn opcode_fields_compose() {
        assert_eq!(OpCode::alu(true, AluOp::Add, Source::Reg).0, 0x0f);
        assert_eq!(OpCode::jump(true, JumpOp::Jslt, Source::Imm).0, 0xc6);
        assert_eq!(OpCode::load(Mode::Mem, Size::B).0, 0x71);
        assert_eq!(OpCode::store(Source::Imm, Size::DW).0, 0x7a);
        assert_eq!(OpCode::atomic(Size::W).0, 0xc3);
        let op = OpCode(0xdb);
        assert_eq!(
            (op.class(), op.mode(), op.size()),
            (Class::Stx, Some(Mode::Atomic), Size::DW)
        );
    }
}
