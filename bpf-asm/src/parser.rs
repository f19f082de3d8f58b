//! Parses one (macro-expanded) line into statements. Instructions come out with every field
//! known at this point filled in, and the rest (constants, labels, maps, struct offsets) as
//! unresolved references for the second pass in `resolve`.

pub use crate::directives::{DataPiece, SymAttr, SymType};
use crate::error::{Diagnostic, Origin};
pub use crate::expr::Expr;
use crate::insn::{
    AluOp, AluWidth, AtomicOp, AtomicSize, ByteSwap, Condition, Instruction, JumpWidth, OpCode,
    Reg, SignedSize, Size, Source, ATOMIC_FETCH,
};
use crate::lexer::{lex, Tok, Token};
use crate::macros::is_register_name;

/// What range an immediate must fit once evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImmRange {
    /// Sign-extended 32-bit: 64-bit ALU and jumps, stores, calls.
    I32,
    /// 32-bit operations take either spelling of 32 bits, as llvm does.
    Bits32,
    /// `lddw`.
    Bits64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Relative(Expr),
    Label(String, usize),
}

/// An instruction with its not-yet-resolved parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingInsn {
    pub insn: Instruction,
    pub imm: Option<(Expr, ImmRange, bool)>, // bool: offsetof allowed
    pub off: Option<Expr>,
    /// Jump target; for `gotol` it lands in `imm`.
    pub target: Option<Target>,
    pub map: Option<(String, usize)>,
    pub col: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    Label(String, usize),
    Insn(Box<PendingInsn>),
    /// `.text`, `.data`, `.section NAME[, FLAGS...]`: `code` for a program section.
    Section {
        name: String,
        code: bool,
        col: usize,
    },
    /// `.globl`, `.local`, `.weak`, `.type`, `.size`: `(symbol, attribute, column)`.
    Symbols(Vec<(String, SymAttr, usize)>),
    /// `.byte`, `.asciz`, `.zero`, ...
    Data(Vec<DataPiece>, usize),
    /// `.p2align`, `.align`, `.balign`, in bytes.
    Align {
        bytes: u64,
        col: usize,
    },
    /// A directive that changes nothing in the object (`.file`, `.cfi_*`, ...).
    Nothing,
    License(String),
    Equ(String, Expr, usize),
    /// `.map NAME, TYPE, KEY, VALUE, MAX [, FLAGS]`: TYPE is an expression or a type name.
    Map {
        name: String,
        values: Vec<Expr>,
        col: usize,
    },
}

/// Map type names of `.map`, numbered as in `enum bpf_map_type`.
pub const MAP_TYPES: &[(&str, i128)] = &[
    ("hash", 1),
    ("array", 2),
    ("prog_array", 3),
    ("perf_event_array", 4),
    ("percpu_hash", 5),
    ("percpu_array", 6),
    ("lru_hash", 9),
    ("lru_percpu_hash", 10),
    ("cgroup_array", 8),
    ("sk_storage", 24),
    ("ringbuf", 27),
];

type PResult<T> = Result<T, Diagnostic>;

pub(crate) struct Parser<'a> {
    pub(crate) origin: &'a Origin,
    pub(crate) tokens: Vec<Token>,
    pub(crate) pos: usize,
    pub(crate) code_end: usize,
    /// Nodes of the expression being parsed (see `expr`).
    pub(crate) expr_nodes: usize,
}

/// Parses one line into its statements (labels first, then at most one instruction or
/// directive).
pub fn parse_line(origin: &Origin) -> PResult<Vec<Stmt>> {
    let line = lex(&origin.text);
    let mut p = Parser {
        origin,
        tokens: line.tokens,
        pos: 0,
        code_end: line.code_end,
        expr_nodes: 0,
    };
    let mut out = Vec::new();
    while let (Some(Tok::Ident(name)), Some(Tok::Punct(":"))) = (p.peek_tok(0), p.peek_tok(1)) {
        let name = name.clone();
        let col = p.col();
        // `.L` names are llvm's local labels; other names with a dot first are directives.
        let dotted = name.starts_with('.') && !name.starts_with(".L");
        if is_register_name(&name) || dotted || KEYWORDS.contains(&name.as_str()) {
            return Err(p.error_at(
                col,
                format!("`{name}` cannot be a label: it is a register, keyword or directive"),
            ));
        }
        out.push(Stmt::Label(name, col));
        p.pos += 2;
    }
    if p.at_end() {
        return Ok(out);
    }
    out.push(p.statement()?);
    p.expect_end()?;
    Ok(out)
}

/// The directive list of the unknown-directive error.
const KNOWN_DIRECTIVES: &str =
    "bpf-asm knows .section .text .data .bss .rodata .license .equ .set .map \
.macro/.endm .rept/.irp/.endr .globl .global .local .weak .type .size .p2align .align .balign \
.byte .short .half .2byte .long .int .word .4byte .quad .dword .8byte .ascii .asciz .string \
.zero .space .skip, and ignores .file .ident .addrsig .addrsig_sym .cfi_*";

pub(crate) const KEYWORDS: &[&str] = &[
    "if", "goto", "gotol", "call", "exit", "lock", "ll", "map", "offsetof",
];

fn size_of(name: &str) -> Option<(Size, bool)> {
    Some(match name {
        "u8" => (Size::B, false),
        "u16" => (Size::H, false),
        "u32" => (Size::W, false),
        "u64" => (Size::DW, false),
        "s8" => (Size::B, true),
        "s16" => (Size::H, true),
        "s32" => (Size::W, true),
        _ => return None,
    })
}

fn alu_op(punct: &str) -> Option<(AluOp, bool)> {
    Some(match punct {
        "+=" => (AluOp::Add, false),
        "-=" => (AluOp::Sub, false),
        "*=" => (AluOp::Mul, false),
        "/=" => (AluOp::Div, false),
        "%=" => (AluOp::Mod, false),
        "|=" => (AluOp::Or, false),
        "&=" => (AluOp::And, false),
        "^=" => (AluOp::Xor, false),
        "<<=" => (AluOp::Lsh, false),
        ">>=" => (AluOp::Rsh, false),
        "s>>=" => (AluOp::Arsh, false),
        "s/=" => (AluOp::Div, true),
        "s%=" => (AluOp::Mod, true),
        _ => return None,
    })
}

fn condition(punct: &str) -> Option<Condition> {
    Some(match punct {
        "==" => Condition::Eq,
        "!=" => Condition::Ne,
        ">" => Condition::Gt,
        ">=" => Condition::Ge,
        "<" => Condition::Lt,
        "<=" => Condition::Le,
        "s>" => Condition::Sgt,
        "s>=" => Condition::Sge,
        "s<" => Condition::Slt,
        "s<=" => Condition::Sle,
        "&" => Condition::Set,
        _ => return None,
    })
}

/// A register operand: its number and whether it was spelled `wN`.
#[derive(Clone, Copy)]
struct RegOp {
    reg: Reg,
    w: bool,
    col: usize,
}

impl RegOp {
    /// ALU64 for `rN`, ALU for `wN`.
    fn alu_width(self) -> AluWidth {
        if self.w {
            AluWidth::W32
        } else {
            AluWidth::W64
        }
    }
    /// JMP32 compares `wN`, JMP `rN`.
    fn jump_width(self) -> JumpWidth {
        if self.w {
            JumpWidth::W32
        } else {
            JumpWidth::W64
        }
    }
}

impl<'a> Parser<'a> {
    pub(crate) fn peek_tok(&self, ahead: usize) -> Option<&Tok> {
        self.tokens.get(self.pos + ahead).map(|t| &t.tok)
    }
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }
    /// Column of the next token, or just past the code at the end of the line.
    pub(crate) fn col(&self) -> usize {
        match self.tokens.get(self.pos) {
            Some(t) => t.col,
            None => {
                let code = self.origin.text.get(..self.code_end).unwrap_or("");
                code.trim_end().chars().count() + 1
            }
        }
    }
    pub(crate) fn error_at(&self, col: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(self.origin, col, message)
    }
    fn describe_next(&self) -> String {
        match self.peek_tok(0) {
            None => "the end of the line".to_string(),
            Some(Tok::Ident(s)) => format!("`{s}`"),
            Some(Tok::Num(n)) => format!("`{n}`"),
            Some(Tok::BadNumber(s)) => format!("`{s}`"),
            Some(Tok::Str(_)) | Some(Tok::UnterminatedStr) => "a string".to_string(),
            Some(Tok::Punct(p)) => format!("`{p}`"),
            Some(Tok::Other(c)) => format!("`{c}`"),
        }
    }
    pub(crate) fn unexpected(&self, wanted: &str) -> Diagnostic {
        let message = match self.peek_tok(0) {
            Some(Tok::BadNumber(s)) => format!("`{s}` is not a number that fits in 64 bits"),
            Some(Tok::UnterminatedStr) => "string has no closing `\"`".to_string(),
            _ => format!("expected {wanted}, found {}", self.describe_next()),
        };
        self.error_at(self.col(), message)
    }
    pub(crate) fn eat(&mut self, punct: &str) -> bool {
        if matches!(self.peek_tok(0), Some(Tok::Punct(p)) if *p == punct) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    pub(crate) fn expect(&mut self, punct: &str) -> PResult<()> {
        if self.eat(punct) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{punct}`")))
        }
    }
    fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek_tok(0), Some(Tok::Ident(w)) if w == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    pub(crate) fn ident(&mut self, what: &str) -> PResult<(String, usize)> {
        match self.peek_tok(0) {
            Some(Tok::Ident(s)) => {
                let s = s.clone();
                let col = self.col();
                self.pos += 1;
                Ok((s, col))
            }
            _ => Err(self.unexpected(what)),
        }
    }
    fn expect_end(&self) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.error_at(
                self.col(),
                format!(
                    "unexpected {} after the end of the statement",
                    self.describe_next()
                ),
            ))
        }
    }

    fn peek_is_reg(&self) -> bool {
        matches!(self.peek_tok(0), Some(Tok::Ident(s)) if is_register_name(s))
    }

    fn reg(&mut self) -> PResult<RegOp> {
        let col = self.col();
        let Some(Tok::Ident(name)) = self.peek_tok(0) else {
            return Err(self.unexpected("a register (r0 to r10)"));
        };
        if !is_register_name(name) {
            return Err(self.unexpected("a register (r0 to r10)"));
        }
        let w = name.starts_with('w');
        let reg = name[1..].parse::<u8>().ok().and_then(Reg::new);
        let Some(reg) = reg else {
            return Err(self.error_at(
                col,
                format!("bad register `{name}`: BPF has r0 to r10 (w0 to w10)"),
            ));
        };
        self.pos += 1;
        Ok(RegOp { reg, w, col })
    }

    fn check_writable(&self, r: RegOp) -> PResult<()> {
        if r.reg == Reg::R10 {
            Err(self.error_at(r.col, "r10 is the read-only frame pointer and cannot be written; use it only as a base address"))
        } else {
            Ok(())
        }
    }

    fn same_width(&self, a: RegOp, b: RegOp) -> PResult<()> {
        if a.w == b.w {
            Ok(())
        } else {
            Err(self.error_at(
                b.col,
                "cannot mix 64-bit rN and 32-bit wN registers in one instruction",
            ))
        }
    }

    fn same_reg(&self, a: RegOp, b: RegOp, what: &str) -> PResult<()> {
        self.same_width(a, b)?;
        if a.reg == b.reg {
            Ok(())
        } else {
            Err(self.error_at(
                b.col,
                format!("{what} must use the same register on both sides"),
            ))
        }
    }

    /// `(rN)`, `(rN + expr)`, `(rN - expr)`, the opening parenthesis already taken.
    fn memory_tail(&mut self) -> PResult<(RegOp, Option<Expr>)> {
        let operand = self.memory_tail_unparenthesized()?;
        self.expect(")")?;
        Ok(operand)
    }

    /// `*(SIZE *)(rN + off)`, the `*` already taken.
    fn deref(&mut self) -> PResult<(Size, bool, RegOp, Option<Expr>)> {
        self.expect("(")?;
        let (name, col) = self.ident("a size (u8, u16, u32, u64)")?;
        let Some((size, signed)) = size_of(&name) else {
            return Err(self.error_at(
                col,
                format!("`{name}` is not a size: use u8, u16, u32 or u64"),
            ));
        };
        self.expect("*")?;
        self.expect(")")?;
        self.expect("(")?;
        let (base, off) = self.memory_tail()?;
        Ok((size, signed, base, off))
    }

    fn target(&mut self) -> PResult<Target> {
        match self.peek_tok(0) {
            Some(Tok::Punct("+" | "-")) => Ok(Target::Relative(self.expr()?)),
            Some(Tok::Ident(name)) if !is_register_name(name) => {
                let name = name.clone();
                let col = self.col();
                self.pos += 1;
                Ok(Target::Label(name, col))
            }
            _ => Err(self.unexpected("a label or a relative offset like +3")),
        }
    }

    fn statement(&mut self) -> PResult<Stmt> {
        let col = self.col();
        let first = self.peek_tok(0).cloned();
        let insn = match first {
            Some(Tok::Ident(word)) if word.starts_with('.') => return self.directive(&word),
            Some(Tok::Ident(word)) if is_register_name(&word) => self.register_statement()?,
            Some(Tok::Ident(word)) => {
                self.pos += 1;
                match word.as_str() {
                    "exit" => pending(Instruction::new(OpCode::Exit), col),
                    "call" => self.call(col)?,
                    "goto" => {
                        let mut p = pending(Instruction::new(OpCode::Goto), col);
                        p.target = Some(self.target()?);
                        p
                    }
                    "gotol" => {
                        let mut p = pending(Instruction::new(OpCode::Gotol), col);
                        p.target = Some(self.target()?);
                        p
                    }
                    "if" => self.conditional(col)?,
                    "lock" => self.lock(col)?,
                    _ => {
                        return Err(
                            self.error_at(col, format!("unknown instruction or macro `{word}`: instructions use llvm's pseudo-C syntax (e.g. `r1 = 2`), macros need a .macro definition"))
                        );
                    }
                }
            }
            Some(Tok::Punct("*")) => {
                self.pos += 1;
                self.store(col)?
            }
            _ => return Err(self.unexpected("an instruction, a label or a directive")),
        };
        Ok(Stmt::Insn(Box::new(insn)))
    }

    fn call(&mut self, col: usize) -> PResult<PendingInsn> {
        let mut p = pending(Instruction::new(OpCode::Call), col);
        match self.peek_tok(0).cloned() {
            Some(Tok::Ident(name)) if !is_register_name(&name) => {
                let name_col = self.col();
                self.pos += 1;
                let Some(id) = crate::helpers::helper_id(&name) else {
                    return Err(self.error_at(name_col, format!("unknown helper `{name}`: use a name from include/uapi/linux/bpf.h (e.g. bpf_probe_read_kernel) or a number")));
                };
                p.insn.imm = i64::from(id);
            }
            _ => p.imm = Some((self.expr()?, ImmRange::I32, false)),
        }
        Ok(p)
    }

    fn conditional(&mut self, col: usize) -> PResult<PendingInsn> {
        let dst = self.reg()?;
        let op_col = self.col();
        let op = match self.peek_tok(0) {
            Some(Tok::Punct(p)) => condition(p),
            _ => None,
        };
        let Some(cond) = op else {
            return Err(self.error_at(
                op_col,
                format!(
                    "expected a comparison (== != > >= < <= s> s>= s< s<= &), found {}",
                    self.describe_next()
                ),
            ));
        };
        self.pos += 1;
        let mut p = if self.peek_is_reg() {
            let src = self.reg()?;
            self.same_width(dst, src)?;
            let opcode = OpCode::Jump {
                width: dst.jump_width(),
                cond,
                source: Source::Reg,
            };
            let mut p = pending(Instruction::new(opcode), col);
            p.insn.src = src.reg;
            p
        } else {
            let range = if dst.w {
                ImmRange::Bits32
            } else {
                ImmRange::I32
            };
            let opcode = OpCode::Jump {
                width: dst.jump_width(),
                cond,
                source: Source::Imm,
            };
            let mut p = pending(Instruction::new(opcode), col);
            p.imm = Some((self.expr()?, range, false));
            p
        };
        p.insn.dst = dst.reg;
        if !self.eat_word("goto") {
            return Err(self.unexpected("`goto`"));
        }
        p.target = Some(self.target()?);
        Ok(p)
    }

    /// `lock *(SIZE *)(rN + off) OP= rM`.
    fn lock(&mut self, col: usize) -> PResult<PendingInsn> {
        self.expect("*")?;
        let (size, signed, base, off) = self.deref()?;
        let op_col = self.col();
        let op = match self.peek_tok(0) {
            Some(Tok::Punct("+=")) => AtomicOp::Add,
            Some(Tok::Punct("|=")) => AtomicOp::Or,
            Some(Tok::Punct("&=")) => AtomicOp::And,
            Some(Tok::Punct("^=")) => AtomicOp::Xor,
            _ => {
                return Err(self.error_at(
                    op_col,
                    format!(
                        "expected an atomic operation (+= |= &= ^=), found {}",
                        self.describe_next()
                    ),
                ))
            }
        };
        self.pos += 1;
        let src = self.reg()?;
        self.atomic(col, size, signed, base, off, src, op as i32)
    }

    #[allow(clippy::too_many_arguments)]
    fn atomic(
        &self,
        col: usize,
        size: Size,
        signed: bool,
        base: RegOp,
        off: Option<Expr>,
        src: RegOp,
        imm: i32,
    ) -> PResult<PendingInsn> {
        let size = match (AtomicSize::new(size), signed) {
            (Some(size), false) => size,
            _ => return Err(self.error_at(col, "atomic operations work on u32 or u64 only")),
        };
        let wants_w = size == AtomicSize::W;
        if src.w != wants_w {
            let r = if wants_w { "w" } else { "r" };
            return Err(self.error_at(
                src.col,
                format!("this atomic operation takes a {r}N register"),
            ));
        }
        let mut p = pending(Instruction::new(OpCode::Atomic(size)), col);
        p.insn.dst = base.reg;
        p.insn.src = src.reg;
        p.insn.imm = i64::from(imm);
        p.off = off;
        Ok(p)
    }

    /// `*(SIZE *)(rN + off) = rM | imm`, the leading `*` already taken.
    fn store(&mut self, col: usize) -> PResult<PendingInsn> {
        let (size, signed, base, off) = self.deref()?;
        if signed {
            return Err(self.error_at(col, "stores take an unsigned size (u8, u16, u32, u64)"));
        }
        self.expect("=")?;
        let mut p = if self.peek_is_reg() {
            let src = self.reg()?;
            if src.w && size == Size::DW {
                return Err(self.error_at(src.col, "a u64 store takes a 64-bit register rN"));
            }
            let opcode = OpCode::Store {
                source: Source::Reg,
                size,
            };
            let mut p = pending(Instruction::new(opcode), col);
            p.insn.src = src.reg;
            p
        } else {
            let opcode = OpCode::Store {
                source: Source::Imm,
                size,
            };
            let mut p = pending(Instruction::new(opcode), col);
            p.imm = Some((self.expr()?, ImmRange::I32, false));
            p
        };
        p.insn.dst = base.reg;
        p.off = off;
        Ok(p)
    }

    fn register_statement(&mut self) -> PResult<PendingInsn> {
        let col = self.col();
        let dst = self.reg()?;
        let op_col = self.col();
        let punct = match self.peek_tok(0) {
            Some(Tok::Punct(p)) => *p,
            _ => return Err(self.unexpected("`=` or an operator like `+=`")),
        };
        self.pos += 1;
        self.check_writable(dst)?;
        if punct == "=" {
            return self.assignment(col, dst);
        }
        let Some((op, signed)) = alu_op(punct) else {
            return Err(self.error_at(op_col, format!("`{punct}` is not an assignment operator")));
        };
        self.alu(col, dst, op, signed)
    }

    fn alu(&mut self, col: usize, dst: RegOp, op: AluOp, signed: bool) -> PResult<PendingInsn> {
        let width = dst.alu_width();
        let mut p = if self.peek_is_reg() {
            let src = self.reg()?;
            self.same_width(dst, src)?;
            let opcode = OpCode::Alu {
                width,
                op,
                source: Source::Reg,
            };
            let mut p = pending(Instruction::new(opcode), col);
            p.insn.src = src.reg;
            p
        } else {
            let range = imm_range(width);
            let opcode = OpCode::Alu {
                width,
                op,
                source: Source::Imm,
            };
            let mut p = pending(Instruction::new(opcode), col);
            p.imm = Some((self.expr()?, range, true));
            p
        };
        p.insn.dst = dst.reg;
        // ISA v4 signed division and modulo are the plain opcodes with off = 1.
        p.insn.off = i16::from(signed);
        Ok(p)
    }

    /// Everything of the form `rN = ...`: picks the form by the first token after `=`.
    fn assignment(&mut self, col: usize, dst: RegOp) -> PResult<PendingInsn> {
        match self.peek_tok(0).cloned() {
            Some(Tok::Ident(ref w)) if is_register_name(w) => self.mov_reg(col, dst),
            Some(Tok::Punct("-")) if matches!(self.peek_tok(1), Some(Tok::Ident(w)) if is_register_name(w)) => {
                self.neg(col, dst)
            }
            Some(Tok::Punct("*")) => self.load(col, dst),
            // `rN = (s8)rM`: ISA v4 sign-extending move; `rN = (A + 1) * 2` is an expression.
            Some(Tok::Punct("("))
                if matches!(self.peek_tok(1), Some(Tok::Ident(_)))
                    && self.peek_tok(2) == Some(&Tok::Punct(")"))
                    && matches!(self.peek_tok(3), Some(Tok::Ident(w)) if is_register_name(w)) =>
            {
                self.mov_sign_extend(col, dst)
            }
            Some(Tok::Ident(ref w))
                if w == "map" && matches!(self.peek_tok(1), Some(Tok::Ident(_))) =>
            {
                self.map_address(col, dst)
            }
            Some(Tok::Ident(ref w)) => match endian(w) {
                Some((swap, bits)) => self.byte_swap(col, dst, swap, bits),
                None if w.starts_with("atomic_fetch_") => self.atomic_fetch(col, dst, w),
                None if matches!(
                    w.as_str(),
                    "xchg_64" | "xchg32_32" | "cmpxchg_64" | "cmpxchg32_32"
                ) =>
                {
                    self.exchange(col, dst, w)
                }
                None => self.constant(col, dst),
            },
            _ => self.constant(col, dst),
        }
    }

    /// `rN = rM`.
    fn mov_reg(&mut self, col: usize, dst: RegOp) -> PResult<PendingInsn> {
        let src = self.reg()?;
        self.same_width(dst, src)?;
        let opcode = OpCode::Alu {
            width: dst.alu_width(),
            op: AluOp::Mov,
            source: Source::Reg,
        };
        let mut p = pending(Instruction::new(opcode), col);
        p.insn.dst = dst.reg;
        p.insn.src = src.reg;
        Ok(p)
    }

    /// `rN = -rN`.
    fn neg(&mut self, col: usize, dst: RegOp) -> PResult<PendingInsn> {
        self.pos += 1;
        let src = self.reg()?;
        self.same_reg(dst, src, "negation")?;
        let mut p = pending(Instruction::new(OpCode::Neg(dst.alu_width())), col);
        p.insn.dst = dst.reg;
        Ok(p)
    }

    /// `rN = *(SIZE *)(rM + off)`, signed sizes sign-extending (ISA v4).
    fn load(&mut self, col: usize, dst: RegOp) -> PResult<PendingInsn> {
        self.pos += 1;
        let (size, signed, base, off) = self.deref()?;
        let u64_load = || self.error_at(dst.col, "a u64 load writes a 64-bit register rN");
        if size == Size::DW && (dst.w || signed) {
            return Err(u64_load());
        }
        if signed && dst.w {
            return Err(self.error_at(dst.col, "a sign-extending load writes a 64-bit register rN"));
        }
        let opcode = if signed {
            // Checked above: there is no signed u64.
            OpCode::LoadSx(SignedSize::new(size).ok_or_else(u64_load)?)
        } else {
            OpCode::Load(size)
        };
        let mut p = pending(Instruction::new(opcode), col);
        p.insn.dst = dst.reg;
        p.insn.src = base.reg;
        p.off = off;
        Ok(p)
    }

    /// `rN = (s8)rM`: ISA v4 sign-extending move.
    fn mov_sign_extend(&mut self, col: usize, dst: RegOp) -> PResult<PendingInsn> {
        self.pos += 1;
        let (name, name_col) = self.ident("s8, s16 or s32")?;
        let bits = match (name.as_str(), dst.alu_width()) {
            ("s8", _) => 8,
            ("s16", _) => 16,
            ("s32", AluWidth::W64) => 32,
            _ => {
                return Err(self.error_at(
                    name_col,
                    "a sign-extending move takes (s8), (s16) or, for rN, (s32)",
                ))
            }
        };
        self.expect(")")?;
        let mut p = self.mov_reg(col, dst)?;
        p.insn.off = bits;
        Ok(p)
    }

    /// `rN = map NAME ll`: an lddw the loader points at the map.
    fn map_address(&mut self, col: usize, dst: RegOp) -> PResult<PendingInsn> {
        self.pos += 1;
        let (name, name_col) = self.ident("a map name")?;
        if !self.eat_word("ll") {
            return Err(self.unexpected("`ll` (a map address is a 64-bit load)"));
        }
        if dst.w {
            return Err(self.error_at(dst.col, "a map address goes into a 64-bit register rN"));
        }
        let mut p = pending(Instruction::new(OpCode::LoadImm64), col);
        p.insn.dst = dst.reg;
        p.map = Some((name, name_col));
        Ok(p)
    }

    /// `rN = be16 rN`, `le32`, `bswap64` ...
    fn byte_swap(
        &mut self,
        col: usize,
        dst: RegOp,
        swap: ByteSwap,
        bits: i64,
    ) -> PResult<PendingInsn> {
        self.pos += 1;
        let src = self.reg()?;
        self.same_reg(dst, src, "a byte swap")?;
        if dst.w {
            return Err(self.error_at(dst.col, "byte swaps are written on rN registers"));
        }
        let mut p = pending(Instruction::new(OpCode::ByteSwap(swap)), col);
        p.insn.dst = dst.reg;
        p.insn.imm = bits;
        Ok(p)
    }

    /// `rM = atomic_fetch_OP((SIZE *)(rN + off), rM)`.
    fn atomic_fetch(&mut self, col: usize, dst: RegOp, word: &str) -> PResult<PendingInsn> {
        let op = match word {
            "atomic_fetch_add" => AtomicOp::Add,
            "atomic_fetch_or" => AtomicOp::Or,
            "atomic_fetch_and" => AtomicOp::And,
            "atomic_fetch_xor" => AtomicOp::Xor,
            _ => {
                return Err(self.error_at(
                    self.col(),
                    format!(
                    "unknown atomic operation `{word}`: use atomic_fetch_add, _or, _and or _xor"
                ),
                ))
            }
        };
        self.pos += 1;
        self.expect("(")?;
        self.expect("(")?;
        let (name, name_col) = self.ident("a size (u32 or u64)")?;
        let Some((size, signed)) = size_of(&name) else {
            return Err(self.error_at(name_col, format!("`{name}` is not a size: use u32 or u64")));
        };
        self.expect("*")?;
        self.expect(")")?;
        self.expect("(")?;
        let (base, off) = self.memory_tail()?;
        self.expect(",")?;
        let src = self.reg()?;
        self.expect(")")?;
        self.same_reg(dst, src, "atomic_fetch")?;
        self.atomic(col, size, signed, base, off, src, op as i32 | ATOMIC_FETCH)
    }

    /// `rM = xchg_64(rN + off, rM)` and `r0 = cmpxchg_64(rN + off, r0, rM)`, and their
    /// 32-bit forms.
    fn exchange(&mut self, col: usize, dst: RegOp, word: &str) -> PResult<PendingInsn> {
        self.pos += 1;
        let size = if word.ends_with("_64") {
            Size::DW
        } else {
            Size::W
        };
        self.expect("(")?;
        let (base, off) = self.memory_tail_unparenthesized()?;
        self.expect(",")?;
        let mut src = self.reg()?;
        let op = if word.starts_with("cmpxchg") {
            if src.reg != Reg::R0 || dst.reg != Reg::R0 {
                return Err(self.error_at(
                    src.col,
                    "cmpxchg compares with and returns r0: write r0 = cmpxchg_64(rN + off, r0, rM)",
                ));
            }
            self.same_width(dst, src)?;
            self.expect(",")?;
            src = self.reg()?;
            AtomicOp::Cmpxchg
        } else {
            self.same_reg(dst, src, "xchg")?;
            AtomicOp::Xchg
        };
        self.expect(")")?;
        self.atomic(col, size, false, base, off, src, op as i32 | ATOMIC_FETCH)
    }

    /// `rN = EXPR`, or `rN = EXPR ll` (lddw).
    fn constant(&mut self, col: usize, dst: RegOp) -> PResult<PendingInsn> {
        let value = self.expr()?;
        if self.eat_word("ll") {
            if dst.w {
                return Err(self.error_at(
                    dst.col,
                    "a 64-bit constant (ll) goes into a 64-bit register rN",
                ));
            }
            let mut p = pending(Instruction::new(OpCode::LoadImm64), col);
            p.insn.dst = dst.reg;
            p.imm = Some((value, ImmRange::Bits64, false));
            return Ok(p);
        }
        let width = dst.alu_width();
        let range = imm_range(width);
        let opcode = OpCode::Alu {
            width,
            op: AluOp::Mov,
            source: Source::Imm,
        };
        let mut p = pending(Instruction::new(opcode), col);
        p.insn.dst = dst.reg;
        p.imm = Some((value, range, true));
        Ok(p)
    }

    /// `rN + off` (xchg/cmpxchg spell the address without its own parentheses).
    fn memory_tail_unparenthesized(&mut self) -> PResult<(RegOp, Option<Expr>)> {
        let base = self.reg()?;
        if base.w {
            return Err(self.error_at(base.col, "a memory base must be a 64-bit register rN"));
        }
        let off = if matches!(self.peek_tok(0), Some(Tok::Punct("+" | "-"))) {
            Some(self.offset_expr()?)
        } else {
            None
        };
        Ok((base, off))
    }

    fn directive(&mut self, word: &str) -> PResult<Stmt> {
        let col = self.col();
        self.pos += 1;
        match word {
            ".license" => match self.peek_tok(0).cloned() {
                Some(Tok::Str(s)) if !s.contains('\0') => {
                    self.pos += 1;
                    Ok(Stmt::License(s))
                }
                _ => Err(self.unexpected("a quoted license string, like \"GPL\"")),
            },
            ".equ" | ".set" => {
                let (name, name_col) = self.ident("a constant name")?;
                if is_register_name(&name)
                    || KEYWORDS.contains(&name.as_str())
                    || name.starts_with('.')
                {
                    return Err(self.error_at(name_col, format!("`{name}` cannot name a constant")));
                }
                self.expect(",")?;
                let value = self.expr()?;
                if value.has_offsetof() {
                    return Err(self.error_at(value.col, "bad offsetof: a .equ constant cannot hold offsetof(...), which is only known at load time"));
                }
                Ok(Stmt::Equ(name, value, name_col))
            }
            ".map" => {
                let (name, _) = self.ident("a map name")?;
                let mut values = Vec::new();
                while self.eat(",") {
                    let type_name = match self.peek_tok(0) {
                        Some(Tok::Ident(w)) if values.is_empty() => {
                            MAP_TYPES.iter().find(|(n, _)| n == w).map(|(_, v)| *v)
                        }
                        _ => None,
                    };
                    if let Some(v) = type_name {
                        let c = self.col();
                        self.pos += 1;
                        values.push(Expr::num(v, c));
                    } else {
                        values.push(self.expr()?);
                    }
                }
                if !(4..=5).contains(&values.len()) {
                    return Err(self.error_at(
                        col,
                        ".map takes NAME, TYPE, KEY_SIZE, VALUE_SIZE, MAX_ENTRIES [, FLAGS]",
                    ));
                }
                Ok(Stmt::Map { name, values, col })
            }
            ".endm" | ".endmacro" => Err(self.error_at(col, ".endm without a .macro")),
            ".endr" => Err(self.error_at(col, ".endr without a .rept or .irp")),
            _ => match self.llvm_directive(word, col) {
                Some(result) => result,
                None => Err(self.error_at(
                    col,
                    format!("unknown directive `{word}`: {KNOWN_DIRECTIVES}"),
                )),
            },
        }
    }
}

/// The immediate range of an ALU operation's width.
fn imm_range(width: AluWidth) -> ImmRange {
    match width {
        AluWidth::W64 => ImmRange::I32,
        AluWidth::W32 => ImmRange::Bits32,
    }
}

/// `be16`, `le32`, `bswap64` ...: the swap and its width in bits.
fn endian(word: &str) -> Option<(ByteSwap, i64)> {
    let (kind, bits) = if let Some(b) = word.strip_prefix("bswap") {
        (ByteSwap::Bswap, b)
    } else if let Some(b) = word.strip_prefix("be") {
        (ByteSwap::Be, b)
    } else if let Some(b) = word.strip_prefix("le") {
        (ByteSwap::Le, b)
    } else {
        return None;
    };
    match bits {
        "16" => Some((kind, 16)),
        "32" => Some((kind, 32)),
        "64" => Some((kind, 64)),
        _ => None,
    }
}

fn pending(insn: Instruction, col: usize) -> PendingInsn {
    PendingInsn {
        insn,
        imm: None,
        off: None,
        target: None,
        map: None,
        col,
    }
}
