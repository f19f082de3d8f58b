//! The BPF instruction model that the assembler (bpf-asm) encodes with and conntrace's loader
//! decodes and patches with, after cilium/ebpf's `asm` package: an opcode is built from typed
//! fields, never spelled as a magic number, and `lddw` is one instruction that occupies two
//! 8-byte slots.
//!
//! [`OpCode`] is an enum whose every value is an instruction the eBPF ISA defines (the legacy
//! packet loads `LD ABS`/`LD IND` excepted: nothing here emits or patches them), so no
//! constructor can produce a byte the kernel would not recognise as an opcode; the only way in
//! from a raw byte, [`OpCode::from_byte`], checks. Decoding reports every problem as a
//! [`DecodeError`] value.
//!
//! `no_std` and allocation-free: conntrace is a static binary and pays for what it links.

#![no_std]
#![forbid(unsafe_code)]

mod display;
pub mod raw;
#[cfg(test)]
mod tests;

use core::fmt;
use core::ops::Deref;

/// ALU (32-bit, `wN`) or ALU64 (64-bit, `rN`): the class of an arithmetic instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluWidth {
    W32,
    W64,
}

/// JMP (compares 64-bit `rN`) or JMP32 (compares `wN`): the class of a conditional jump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JumpWidth {
    W32,
    W64,
}

/// Whether the second operand is `imm` (BPF_K) or `src_reg` (BPF_X).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Imm,
    Reg,
}

/// Access width of loads and stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

/// Width of a sign-extending load (ISA v4): there is no 64-bit one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignedSize {
    B,
    H,
    W,
}

/// Width of an atomic operation: 32 or 64 bits only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicSize {
    W,
    DW,
}

/// The two-operand ALU operations (negation and byte swaps are opcodes of their own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    /// Unsigned, or signed with `off` 1 (ISA v4).
    Div,
    Or,
    And,
    Lsh,
    Rsh,
    /// Unsigned, or signed with `off` 1 (ISA v4).
    Mod,
    Xor,
    /// With a register source and `off` 8, 16 or 32: sign-extending move (ISA v4).
    Mov,
    Arsh,
}

/// A byte swap; `imm` gives the width (16, 32 or 64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteSwap {
    /// `rN = le16 rN`: to little endian (ALU | END | K).
    Le,
    /// `rN = be16 rN`: to big endian (ALU | END | X).
    Be,
    /// `rN = bswap16 rN`: unconditional (ALU64 | END | K, ISA v4).
    Bswap,
}

/// The comparison of a conditional jump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    Eq,
    Gt,
    Ge,
    /// `dst & src != 0`.
    Set,
    Ne,
    Sgt,
    Sge,
    Lt,
    Le,
    Slt,
    Sle,
}

/// The operation of an atomic instruction, carried in its `imm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// An opcode byte, by its typed fields. Every value is a valid instruction opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// `dst OP= src|imm`.
    Alu {
        width: AluWidth,
        op: AluOp,
        source: Source,
    },
    /// `dst = -dst`.
    Neg(AluWidth),
    ByteSwap(ByteSwap),
    /// `if dst COND src|imm goto +off`.
    Jump {
        width: JumpWidth,
        cond: Condition,
        source: Source,
    },
    /// `goto +off` (JMP | JA).
    Goto,
    /// `gotol +imm` (JMP32 | JA, ISA v4): a 32-bit jump offset in `imm`.
    Gotol,
    /// `call imm`.
    Call,
    Exit,
    /// `lddw`: `dst = imm ll`, the only two-slot instruction.
    LoadImm64,
    /// `dst = *(size *)(src + off)`.
    Load(Size),
    /// `dst = *(sN *)(src + off)`, sign-extending (ISA v4).
    LoadSx(SignedSize),
    /// `*(size *)(dst + off) = imm` (ST) or `= src` (STX).
    Store {
        source: Source,
        size: Size,
    },
    /// `lock *(size *)(dst + off) OP= src` and the fetching forms; the operation is in `imm`.
    Atomic(AtomicSize),
}

// The fields of an opcode byte (include/uapi/linux/bpf_common.h, linux/bpf.h).
const CLASS_LD: u8 = 0x00;
const CLASS_LDX: u8 = 0x01;
const CLASS_ST: u8 = 0x02;
const CLASS_STX: u8 = 0x03;
const CLASS_ALU: u8 = 0x04;
const CLASS_JMP: u8 = 0x05;
const CLASS_JMP32: u8 = 0x06;
const CLASS_ALU64: u8 = 0x07;
const SRC_X: u8 = 0x08;
const MODE_IMM: u8 = 0x00;
const MODE_MEM: u8 = 0x60;
const MODE_MEMSX: u8 = 0x80;
const MODE_ATOMIC: u8 = 0xc0;
const OP_NEG: u8 = 0x80;
const OP_END: u8 = 0xd0;
const OP_JA: u8 = 0x00;
const OP_CALL: u8 = 0x80;
const OP_EXIT: u8 = 0x90;

impl AluWidth {
    const fn class(self) -> u8 {
        match self {
            AluWidth::W32 => CLASS_ALU,
            AluWidth::W64 => CLASS_ALU64,
        }
    }
}

impl JumpWidth {
    const fn class(self) -> u8 {
        match self {
            JumpWidth::W32 => CLASS_JMP32,
            JumpWidth::W64 => CLASS_JMP,
        }
    }
}

impl Source {
    const fn bits(self) -> u8 {
        match self {
            Source::Imm => 0,
            Source::Reg => SRC_X,
        }
    }
    const fn of(byte: u8) -> Source {
        if byte & SRC_X != 0 {
            Source::Reg
        } else {
            Source::Imm
        }
    }
}

impl Size {
    /// How many bytes an access of this width reads or writes.
    pub const fn bytes(self) -> u32 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }
    const fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }
    const fn of(byte: u8) -> Size {
        match byte & 0x18 {
            0x00 => Size::W,
            0x08 => Size::H,
            0x10 => Size::B,
            _ => Size::DW,
        }
    }
}

impl SignedSize {
    /// The signed width of `size`; `None` for `DW`, which has no sign-extending load.
    pub const fn new(size: Size) -> Option<SignedSize> {
        match size {
            Size::B => Some(SignedSize::B),
            Size::H => Some(SignedSize::H),
            Size::W => Some(SignedSize::W),
            Size::DW => None,
        }
    }
    pub const fn size(self) -> Size {
        match self {
            SignedSize::B => Size::B,
            SignedSize::H => Size::H,
            SignedSize::W => Size::W,
        }
    }
}

impl AtomicSize {
    /// The atomic width of `size`; `None` for the byte and half-word widths atomics lack.
    pub const fn new(size: Size) -> Option<AtomicSize> {
        match size {
            Size::W => Some(AtomicSize::W),
            Size::DW => Some(AtomicSize::DW),
            Size::B | Size::H => None,
        }
    }
    pub const fn size(self) -> Size {
        match self {
            AtomicSize::W => Size::W,
            AtomicSize::DW => Size::DW,
        }
    }
}

impl AluOp {
    const ALL: [AluOp; 12] = [
        AluOp::Add,
        AluOp::Sub,
        AluOp::Mul,
        AluOp::Div,
        AluOp::Or,
        AluOp::And,
        AluOp::Lsh,
        AluOp::Rsh,
        AluOp::Mod,
        AluOp::Xor,
        AluOp::Mov,
        AluOp::Arsh,
    ];
    const fn bits(self) -> u8 {
        match self {
            AluOp::Add => 0x00,
            AluOp::Sub => 0x10,
            AluOp::Mul => 0x20,
            AluOp::Div => 0x30,
            AluOp::Or => 0x40,
            AluOp::And => 0x50,
            AluOp::Lsh => 0x60,
            AluOp::Rsh => 0x70,
            AluOp::Mod => 0x90,
            AluOp::Xor => 0xa0,
            AluOp::Mov => 0xb0,
            AluOp::Arsh => 0xc0,
        }
    }
}

impl Condition {
    const ALL: [Condition; 11] = [
        Condition::Eq,
        Condition::Gt,
        Condition::Ge,
        Condition::Set,
        Condition::Ne,
        Condition::Sgt,
        Condition::Sge,
        Condition::Lt,
        Condition::Le,
        Condition::Slt,
        Condition::Sle,
    ];
    const fn bits(self) -> u8 {
        match self {
            Condition::Eq => 0x10,
            Condition::Gt => 0x20,
            Condition::Ge => 0x30,
            Condition::Set => 0x40,
            Condition::Ne => 0x50,
            Condition::Sgt => 0x60,
            Condition::Sge => 0x70,
            Condition::Lt => 0xa0,
            Condition::Le => 0xb0,
            Condition::Slt => 0xc0,
            Condition::Sle => 0xd0,
        }
    }
}

/// A byte that is no opcode of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidOpcode(pub u8);

impl fmt::Display for InvalidOpcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "opcode {:#04x} is not a BPF instruction", self.0)
    }
}

impl OpCode {
    /// The opcode byte.
    pub const fn byte(self) -> u8 {
        match self {
            OpCode::Alu { width, op, source } => width.class() | op.bits() | source.bits(),
            OpCode::Neg(width) => width.class() | OP_NEG,
            OpCode::ByteSwap(ByteSwap::Le) => CLASS_ALU | OP_END,
            OpCode::ByteSwap(ByteSwap::Be) => CLASS_ALU | OP_END | SRC_X,
            OpCode::ByteSwap(ByteSwap::Bswap) => CLASS_ALU64 | OP_END,
            OpCode::Jump {
                width,
                cond,
                source,
            } => width.class() | cond.bits() | source.bits(),
            OpCode::Goto => CLASS_JMP | OP_JA,
            OpCode::Gotol => CLASS_JMP32 | OP_JA,
            OpCode::Call => CLASS_JMP | OP_CALL,
            OpCode::Exit => CLASS_JMP | OP_EXIT,
            OpCode::LoadImm64 => CLASS_LD | MODE_IMM | Size::DW.bits(),
            OpCode::Load(size) => CLASS_LDX | MODE_MEM | size.bits(),
            OpCode::LoadSx(size) => CLASS_LDX | MODE_MEMSX | size.size().bits(),
            OpCode::Store {
                source: Source::Imm,
                size,
            } => CLASS_ST | MODE_MEM | size.bits(),
            OpCode::Store {
                source: Source::Reg,
                size,
            } => CLASS_STX | MODE_MEM | size.bits(),
            OpCode::Atomic(size) => CLASS_STX | MODE_ATOMIC | size.size().bits(),
        }
    }

    /// The opcode a byte spells, if it spells one.
    pub fn from_byte(byte: u8) -> Result<OpCode, InvalidOpcode> {
        let source = Source::of(byte);
        let op = byte & 0xf0;
        let mode = byte & 0xe0;
        let size = Size::of(byte);
        let opcode = match byte & 0x07 {
            class @ (CLASS_ALU | CLASS_ALU64) => {
                let width = if class == CLASS_ALU64 {
                    AluWidth::W64
                } else {
                    AluWidth::W32
                };
                match (op, width, source) {
                    (OP_NEG, _, Source::Imm) => Some(OpCode::Neg(width)),
                    (OP_END, AluWidth::W32, Source::Imm) => Some(OpCode::ByteSwap(ByteSwap::Le)),
                    (OP_END, AluWidth::W32, Source::Reg) => Some(OpCode::ByteSwap(ByteSwap::Be)),
                    (OP_END, AluWidth::W64, Source::Imm) => Some(OpCode::ByteSwap(ByteSwap::Bswap)),
                    _ => AluOp::ALL
                        .into_iter()
                        .find(|o| o.bits() == op)
                        .map(|op| OpCode::Alu { width, op, source }),
                }
            }
            class @ (CLASS_JMP | CLASS_JMP32) => {
                let width = if class == CLASS_JMP32 {
                    JumpWidth::W32
                } else {
                    JumpWidth::W64
                };
                match (op, width, source) {
                    (OP_JA, JumpWidth::W64, Source::Imm) => Some(OpCode::Goto),
                    (OP_JA, JumpWidth::W32, Source::Imm) => Some(OpCode::Gotol),
                    (OP_CALL, JumpWidth::W64, Source::Imm) => Some(OpCode::Call),
                    (OP_EXIT, JumpWidth::W64, Source::Imm) => Some(OpCode::Exit),
                    _ => Condition::ALL
                        .into_iter()
                        .find(|c| c.bits() == op)
                        .map(|cond| OpCode::Jump {
                            width,
                            cond,
                            source,
                        }),
                }
            }
            CLASS_LD => (byte == OpCode::LoadImm64.byte()).then_some(OpCode::LoadImm64),
            CLASS_LDX => match mode {
                MODE_MEM => Some(OpCode::Load(size)),
                MODE_MEMSX => SignedSize::new(size).map(OpCode::LoadSx),
                _ => None,
            },
            CLASS_ST => (mode == MODE_MEM).then_some(OpCode::Store {
                source: Source::Imm,
                size,
            }),
            _ => match mode {
                MODE_MEM => Some(OpCode::Store {
                    source: Source::Reg,
                    size,
                }),
                MODE_ATOMIC => AtomicSize::new(size).map(OpCode::Atomic),
                _ => None,
            },
        };
        opcode.ok_or(InvalidOpcode(byte))
    }

    /// How many 8-byte slots an instruction with this opcode occupies.
    pub const fn slots(self) -> usize {
        match self {
            OpCode::LoadImm64 => 2,
            _ => 1,
        }
    }

    /// The width of the memory a load, store or atomic accesses at `off`; `None` for every
    /// other instruction (ALU, jumps, lddw).
    pub const fn access_size(self) -> Option<Size> {
        match self {
            OpCode::Load(size) | OpCode::Store { size, .. } => Some(size),
            OpCode::LoadSx(size) => Some(size.size()),
            OpCode::Atomic(size) => Some(size.size()),
            _ => None,
        }
    }
}

impl TryFrom<u8> for OpCode {
    type Error = InvalidOpcode;
    fn try_from(byte: u8) -> Result<OpCode, InvalidOpcode> {
        OpCode::from_byte(byte)
    }
}

impl From<OpCode> for u8 {
    fn from(opcode: OpCode) -> u8 {
        opcode.byte()
    }
}

/// A register, r0 to r10 (r10 is the read-only frame pointer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reg(u8);

impl Reg {
    pub const R0: Reg = Reg(0);
    pub const R1: Reg = Reg(1);
    pub const R2: Reg = Reg(2);
    pub const R3: Reg = Reg(3);
    pub const R4: Reg = Reg(4);
    pub const R5: Reg = Reg(5);
    pub const R6: Reg = Reg(6);
    pub const R7: Reg = Reg(7);
    pub const R8: Reg = Reg(8);
    pub const R9: Reg = Reg(9);
    pub const R10: Reg = Reg(10);
    /// In the `src` of an lddw, BPF_PSEUDO_MAP_FD: `imm` is a map's file descriptor, which
    /// the kernel replaces with the map's address. (The field is a register number elsewhere.)
    pub const PSEUDO_MAP_FD: Reg = Reg(1);

    pub const fn new(n: u8) -> Option<Reg> {
        if n <= 10 {
            Some(Reg(n))
        } else {
            None
        }
    }
    pub const fn number(self) -> u8 {
        self.0
    }
}

/// One instruction. `imm` holds the full 64-bit constant of `lddw` and a sign-extended i32
/// otherwise; encoding a non-lddw keeps its low 32 bits (the assembler has range-checked every
/// field, decoding gives only in-range values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Instruction {
    pub opcode: OpCode,
    pub dst: Reg,
    pub src: Reg,
    pub off: i16,
    pub imm: i64,
}

/// The little-endian encoding of one instruction: 8 bytes, or 16 for `lddw`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoded {
    bytes: [u8; 16],
    len: usize,
}

impl Encoded {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The encoding as the 8-byte slots the kernel takes (`struct bpf_insn`, as u64).
    pub fn words(&self) -> impl Iterator<Item = u64> + '_ {
        self.as_bytes().chunks_exact(8).map(|c| {
            let mut word = [0; 8];
            word.copy_from_slice(c);
            u64::from_le_bytes(word)
        })
    }
}

impl Deref for Encoded {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for Encoded {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Which register field of an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegField {
    Dst,
    Src,
}

/// Why bytes or slots are not an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than the 8 bytes (one slot) of an instruction.
    Truncated,
    Opcode(InvalidOpcode),
    /// A register field above r10.
    Register {
        field: RegField,
        number: u8,
    },
    /// An lddw in the last slot: its second half is missing.
    MissingSecondSlot,
    /// The second slot of an lddw must be opcode 0, registers 0 and offset 0 (only its `imm`,
    /// the constant's upper half, is used); this one is not: `word` is the slot.
    BadSecondSlot {
        word: u64,
    },
}

impl From<InvalidOpcode> for DecodeError {
    fn from(e: InvalidOpcode) -> DecodeError {
        DecodeError::Opcode(e)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("fewer than the 8 bytes of an instruction"),
            DecodeError::Opcode(e) => e.fmt(f),
            DecodeError::Register { field, number } => {
                let name = match field {
                    RegField::Dst => "dst_reg",
                    RegField::Src => "src_reg",
                };
                write!(f, "{name} {number} is not a register (r0 to r10)")
            }
            DecodeError::MissingSecondSlot => {
                f.write_str("an lddw in the last slot: its second 8 bytes are missing")
            }
            DecodeError::BadSecondSlot { word } => write!(
                f,
                "the second slot of an lddw holds opcode {:#04x}, registers {:#04x} and offset {} where all must be 0",
                raw::opcode(*word),
                (*word >> 8) as u8,
                raw::off(*word)
            ),
        }
    }
}

impl Instruction {
    /// `opcode` with every other field 0.
    pub const fn new(opcode: OpCode) -> Instruction {
        Instruction {
            opcode,
            dst: Reg::R0,
            src: Reg::R0,
            off: 0,
            imm: 0,
        }
    }

    /// How many 8-byte slots the instruction occupies.
    pub const fn slots(&self) -> usize {
        self.opcode.slots()
    }

    /// The little-endian encoding: 8 bytes, or 16 for `lddw` (the upper 32 bits of the
    /// constant go into the `imm` of a second, otherwise zero, slot).
    pub fn to_bytes(&self) -> Encoded {
        let mut bytes = [0; 16];
        bytes[0] = self.opcode.byte();
        bytes[1] = self.src.0 << 4 | self.dst.0;
        bytes[2..4].copy_from_slice(&self.off.to_le_bytes());
        let bits = self.imm as u64;
        bytes[4..8].copy_from_slice(&(bits as u32).to_le_bytes());
        let len = if self.opcode == OpCode::LoadImm64 {
            bytes[12..16].copy_from_slice(&((bits >> 32) as u32).to_le_bytes());
            16
        } else {
            8
        };
        Encoded { bytes, len }
    }

    /// Decodes the instruction at the front of `words` (the kernel's slots, as u64): one slot,
    /// or two for `lddw`, whose second slot is checked to be opcode, registers and offset 0.
    pub fn decode_words(words: &[u64]) -> Result<Instruction, DecodeError> {
        let Some((&first, rest)) = words.split_first() else {
            return Err(DecodeError::Truncated);
        };
        let opcode = OpCode::from_byte(raw::opcode(first))?;
        let reg = |field, number| Reg::new(number).ok_or(DecodeError::Register { field, number });
        let dst = reg(RegField::Dst, raw::dst_reg(first))?;
        let src = reg(RegField::Src, raw::src_reg(first))?;
        let low = raw::imm(first);
        let imm = if opcode == OpCode::LoadImm64 {
            let &second = rest.first().ok_or(DecodeError::MissingSecondSlot)?;
            if second & 0xffff_ffff != 0 {
                return Err(DecodeError::BadSecondSlot { word: second });
            }
            ((second & 0xffff_ffff_0000_0000) | u64::from(low as u32)) as i64
        } else {
            i64::from(low)
        };
        Ok(Instruction {
            opcode,
            dst,
            src,
            off: raw::off(first),
            imm,
        })
    }

    /// Decodes the instruction at the front of little-endian `bytes`, like
    /// [`Instruction::decode_words`].
    pub fn decode(bytes: &[u8]) -> Result<Instruction, DecodeError> {
        let word = |slot: usize| {
            let chunk = bytes.get(slot * 8..slot * 8 + 8)?;
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            Some(u64::from_le_bytes(word))
        };
        match (word(0), word(1)) {
            (None, _) => Err(DecodeError::Truncated),
            (Some(first), None) => Instruction::decode_words(&[first]),
            (Some(first), Some(second)) => Instruction::decode_words(&[first, second]),
        }
    }
}

/// A [`DecodeError`] in a program, at slot `slot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramError {
    pub slot: usize,
    pub error: DecodeError,
}

impl fmt::Display for ProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "instruction slot {}: {}", self.slot, self.error)
    }
}

/// Decodes a whole program: each instruction with the slot it starts at. Stops after the
/// first error.
pub fn decode_program(words: &[u64]) -> Instructions<'_> {
    Instructions {
        words,
        slot: 0,
        failed: false,
    }
}

/// The iterator of [`decode_program`].
#[derive(Clone, Debug)]
pub struct Instructions<'a> {
    words: &'a [u64],
    slot: usize,
    failed: bool,
}

impl Iterator for Instructions<'_> {
    type Item = Result<(usize, Instruction), ProgramError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.words.get(self.slot..).filter(|r| !r.is_empty())?;
        if self.failed {
            return None;
        }
        let slot = self.slot;
        match Instruction::decode_words(rest) {
            Ok(insn) => {
                self.slot += insn.slots();
                Some(Ok((slot, insn)))
            }
            Err(error) => {
                self.failed = true;
                Some(Err(ProgramError { slot, error }))
            }
        }
    }
}
