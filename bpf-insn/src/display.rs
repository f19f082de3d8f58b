//! An instruction as llvm-objdump-19 `-d --mcpu=v4` prints it: the assembler's listing and
//! oracle tests compare with it, and the loader quotes it in its refusals.

use crate::{
    AluOp, AluWidth, AtomicSize, ByteSwap, Condition, Instruction, JumpWidth, OpCode, Reg,
    SignedSize, Size, Source, ATOMIC_FETCH,
};
use core::fmt;

/// Hex the way llvm-objdump prints numbers: `0x10`, `-0x8`.
struct Hex(i64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            write!(f, "-0x{:x}", self.0.unsigned_abs())
        } else {
            write!(f, "0x{:x}", self.0)
        }
    }
}

/// A jump offset: `+0x3`, `-0x2` (a [`Hex`] that always has a sign).
struct JumpOffset(i64);

impl fmt::Display for JumpOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 0 {
            f.write_str("+")?;
        }
        fmt::Display::fmt(&Hex(self.0), f)
    }
}

/// A memory operand's inside: `r1 + 0x10`, `r10 - 0x8`.
struct Memory(Reg, i16);

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.1 < 0 { '-' } else { '+' };
        write!(f, "r{} {sign} {}", self.0 .0, Hex(i64::from(self.1).abs()))
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

fn signed_size_name(size: SignedSize) -> &'static str {
    match size {
        SignedSize::B => "s8",
        SignedSize::H => "s16",
        SignedSize::W => "s32",
    }
}

/// `r` for a 64-bit register operand, `w` for its 32-bit half.
fn prefix(wide: bool) -> char {
    if wide {
        'r'
    } else {
        'w'
    }
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
    }
}

/// The comparison as the assembler's syntax spells it.
fn condition_symbol(cond: Condition) -> &'static str {
    match cond {
        Condition::Eq => "==",
        Condition::Gt => ">",
        Condition::Ge => ">=",
        Condition::Set => "&",
        Condition::Ne => "!=",
        Condition::Sgt => "s>",
        Condition::Sge => "s>=",
        Condition::Lt => "<",
        Condition::Le => "<=",
        Condition::Slt => "s<",
        Condition::Sle => "s<=",
    }
}

impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, s) = (self.dst.0, self.src.0);
        let imm = self.imm;
        match self.opcode {
            OpCode::Alu { width, op, source } => {
                let r = prefix(width == AluWidth::W64);
                // ISA v4: a register move with an offset sign-extends, division and modulo
                // with off 1 are signed.
                let signed = match op {
                    AluOp::Mov if source == Source::Reg && self.off != 0 => {
                        return write!(f, "{r}{d} = (s{}){r}{s}", self.off)
                    }
                    AluOp::Div | AluOp::Mod if self.off == 1 => "s",
                    _ => "",
                };
                let sym = alu_symbol(op);
                match source {
                    Source::Reg => write!(f, "{r}{d} {signed}{sym} {r}{s}"),
                    Source::Imm => write!(f, "{r}{d} {signed}{sym} {}", Hex(imm)),
                }
            }
            OpCode::Neg(width) => {
                let r = prefix(width == AluWidth::W64);
                write!(f, "{r}{d} = -{r}{d}")
            }
            OpCode::ByteSwap(kind) => {
                let name = match kind {
                    ByteSwap::Be => "be",
                    ByteSwap::Le => "le",
                    ByteSwap::Bswap => "bswap",
                };
                write!(f, "r{d} = {name}{imm} r{d}")
            }
            OpCode::Jump {
                width,
                cond,
                source,
            } => {
                let r = prefix(width == JumpWidth::W64);
                let sym = condition_symbol(cond);
                let target = JumpOffset(i64::from(self.off));
                match source {
                    Source::Reg => write!(f, "if {r}{d} {sym} {r}{s} goto {target}"),
                    Source::Imm => write!(f, "if {r}{d} {sym} {} goto {target}", Hex(imm)),
                }
            }
            OpCode::Goto => write!(f, "goto {}", JumpOffset(i64::from(self.off))),
            OpCode::Gotol => write!(f, "gotol {}", JumpOffset(imm)),
            OpCode::Call => write!(f, "call {}", Hex(imm)),
            OpCode::Exit => f.write_str("exit"),
            OpCode::LoadImm64 => write!(f, "r{d} = {} ll", Hex(imm)),
            OpCode::Load(size) => {
                let r = prefix(size == Size::DW);
                let mem = Memory(self.src, self.off);
                write!(f, "{r}{d} = *({} *)({mem})", size_name(size))
            }
            OpCode::LoadSx(size) => {
                let mem = Memory(self.src, self.off);
                write!(f, "r{d} = *({} *)({mem})", signed_size_name(size))
            }
            OpCode::Store { source, size } => {
                let mem = Memory(self.dst, self.off);
                let name = size_name(size);
                match source {
                    Source::Imm => write!(f, "*({name} *)({mem}) = {}", Hex(imm)),
                    Source::Reg => {
                        write!(f, "*({name} *)({mem}) = {}{s}", prefix(size == Size::DW))
                    }
                }
            }
            OpCode::Atomic(size) => self.fmt_atomic(f, size),
        }
    }
}

impl Instruction {
    /// The operation is in `imm`: `<unknown>` when it is none the kernel defines.
    fn fmt_atomic(&self, f: &mut fmt::Formatter<'_>, size: AtomicSize) -> fmt::Result {
        let s = self.src.0;
        let (r, size, wide) = match size {
            AtomicSize::DW => ('r', "u64", true),
            AtomicSize::W => ('w', "u32", false),
        };
        let mem = Memory(self.dst, self.off);
        let fetch = self.imm & i64::from(ATOMIC_FETCH) != 0;
        let (name, sym) = match self.imm & !i64::from(ATOMIC_FETCH) {
            0x00 => ("add", "+="),
            0x40 => ("or", "|="),
            0x50 => ("and", "&="),
            0xa0 => ("xor", "^="),
            0xe0 if fetch => {
                let xchg = if wide { "xchg_64" } else { "xchg32_32" };
                return write!(f, "{r}{s} = {xchg}({mem}, {r}{s})");
            }
            0xf0 if fetch => {
                let cmpxchg = if wide { "cmpxchg_64" } else { "cmpxchg32_32" };
                return write!(f, "{r}0 = {cmpxchg}({mem}, {r}0, {r}{s})");
            }
            _ => return f.write_str("<unknown>"),
        };
        if fetch {
            write!(f, "{r}{s} = atomic_fetch_{name}(({size} *)({mem}), {r}{s})")
        } else {
            write!(f, "lock *({size} *)({mem}) {sym} {r}{s}")
        }
    }
}
