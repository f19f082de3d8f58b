//! The directives llvm's own output uses (`llvm-mc`, `clang -S -target bpf`): sections with
//! flags, symbol attributes, alignment, data, and the bookkeeping ones that change nothing in
//! the object. Each is parsed into a statement here; `program` gives it its effect.

use crate::error::Diagnostic;
use crate::expr::{eval, EvalError, Expr};
use crate::lexer::Tok;
use crate::parser::{Parser, Stmt};

/// Bound on `.zero`/`.space`, so one line cannot ask for gigabytes.
pub const MAX_FILL: u64 = 1 << 20;

/// What a symbol directive says about a symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SymAttr {
    Global,
    Local,
    Weak,
    Type(SymType),
    Size(Expr),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymType {
    NoType,
    Func,
    Object,
}

/// One value of a data directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataPiece {
    /// `.byte` (1), `.short` (2), `.long` (4), `.quad` (8) ...: little-endian.
    Int {
        width: u8,
        expr: Expr,
    },
    Bytes(Vec<u8>),
}

impl DataPiece {
    pub fn len(&self) -> usize {
        match self {
            DataPiece::Int { width, .. } => usize::from(*width),
            DataPiece::Bytes(b) => b.len(),
        }
    }
}

/// Directives that change nothing in a bpf-asm object: file names and compiler idents (llvm
/// puts them in STT_FILE and `.comment`), address-significance tables, call-frame information.
/// Their arguments are not checked.
fn ignored(word: &str) -> bool {
    matches!(word, ".file" | ".ident" | ".addrsig" | ".addrsig_sym") || word.starts_with(".cfi_")
}

/// Names that are data, not programs, when `.section` gives no flags.
fn is_data_name(name: &str) -> bool {
    name == "license"
        || [".data", ".rodata", ".bss", ".note", ".comment"]
            .iter()
            .any(|p| name == *p || name.starts_with(&format!("{p}.")))
        || name.starts_with(".note")
}

/// Sections the assembler writes itself (`license` is not one: data directives fill it).
fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "maps" | ".conntrace.fields" | ".symtab" | ".strtab" | ".shstrtab"
    ) || name.starts_with(".rel")
}

fn data_width(word: &str) -> Option<u8> {
    Some(match word {
        ".byte" => 1,
        ".short" | ".half" | ".2byte" => 2,
        ".long" | ".int" | ".word" | ".4byte" => 4,
        ".quad" | ".dword" | ".8byte" => 8,
        _ => return None,
    })
}

impl Parser<'_> {
    /// The llvm directives; `None` if `word` is none of them.
    pub(crate) fn llvm_directive(
        &mut self,
        word: &str,
        col: usize,
    ) -> Option<Result<Stmt, Diagnostic>> {
        Some(match word {
            _ if ignored(word) => {
                self.pos = self.tokens.len();
                Ok(Stmt::Nothing)
            }
            ".text" => Ok(self.section_stmt(".text".into(), true, col)),
            ".data" | ".bss" | ".rodata" => Ok(self.section_stmt(word.into(), false, col)),
            ".section" => self.section(col),
            ".globl" | ".global" => self.symbols(SymAttr::Global),
            ".local" => self.symbols(SymAttr::Local),
            ".weak" => self.symbols(SymAttr::Weak),
            ".type" => self.symbol_type(),
            ".size" => self.symbol_size(),
            ".p2align" | ".align" | ".balign" => self.align(word == ".p2align", col),
            ".ascii" | ".asciz" | ".string" => self.strings(word != ".ascii", col),
            ".zero" | ".space" | ".skip" => self.fill(col),
            ".comm" | ".lcomm" => Err(self.error_at(
                col,
                format!("`{word}` is not supported: bpf-asm objects hold no global data (maps come from .map)"),
            )),
            _ => {
                let width = data_width(word)?;
                self.integers(width, col)
            }
        })
    }

    fn section_stmt(&self, name: String, code: bool, col: usize) -> Stmt {
        Stmt::Section { name, code, col }
    }

    /// `.section NAME [, "FLAGS" [, @TYPE [, ...]]]`; NAME quoted or not (`kprobe/x` has a
    /// slash, so an unquoted name is the raw text up to a comma).
    fn section(&mut self, col: usize) -> Result<Stmt, Diagnostic> {
        let usage = ".section needs a name, like .section kprobe/tcp_v4_connect or .section \"license\",\"aw\",@progbits";
        let name = if let Some(Tok::Str(s)) = self.peek_tok(0).cloned() {
            self.pos += 1;
            s
        } else {
            let from = self
                .tokens
                .get(self.pos.saturating_sub(1))
                .map_or(0, |t| t.end);
            let rest = self.origin.text.get(from..self.code_end).unwrap_or("");
            let raw = rest.split(',').next().unwrap_or("");
            let end = from + raw.len();
            while self.tokens.get(self.pos).is_some_and(|t| t.start < end) {
                self.pos += 1;
            }
            raw.trim().to_string()
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != ',');
        if !valid {
            return Err(self.error_at(col, usage));
        }
        if is_reserved(&name) {
            return Err(self.error_at(col, format!("`{name}` is a section the assembler writes itself: give the program another name")));
        }
        let mut code = !is_data_name(&name);
        if self.eat(",") {
            let Some(Tok::Str(flags)) = self.peek_tok(0).cloned() else {
                return Err(self.unexpected("quoted section flags, like \"ax\" or \"aw\""));
            };
            self.pos += 1;
            code = flags.contains('x');
            // The type (@progbits, @nobits) and llvm's extras (unique,N / entsize / group)
            // do not change where bpf-asm puts anything.
            self.pos = self.tokens.len();
        }
        if name == "license" && code {
            return Err(self.error_at(
                col,
                "`license` holds the license string: it cannot be a program section (give it flags without \"x\", like \"aw\")",
            ));
        }
        Ok(self.section_stmt(name, code, col))
    }

    /// `.globl a, b` and the like.
    fn symbols(&mut self, attr: SymAttr) -> Result<Stmt, Diagnostic> {
        let mut names = Vec::new();
        loop {
            names.push(self.ident("a symbol name")?);
            if !self.eat(",") {
                break;
            }
        }
        Ok(Stmt::Symbols(
            names
                .into_iter()
                .map(|(name, col)| (name, attr.clone(), col))
                .collect(),
        ))
    }

    /// `.type NAME, @function` (also `%function`, `"function"`, `STT_FUNC`).
    fn symbol_type(&mut self) -> Result<Stmt, Diagnostic> {
        let (name, col) = self.ident("a symbol name")?;
        self.expect(",")?;
        if matches!(self.peek_tok(0), Some(Tok::Other('@' | '%'))) {
            self.pos += 1;
        }
        let kind_col = self.col();
        let kind = match self.peek_tok(0).cloned() {
            Some(Tok::Ident(k) | Tok::Str(k)) => k,
            _ => String::new(),
        };
        let kind = match kind.as_str() {
            "function" | "STT_FUNC" => SymType::Func,
            "object" | "STT_OBJECT" => SymType::Object,
            "notype" | "STT_NOTYPE" => SymType::NoType,
            _ => {
                return Err(self.error_at(
                    kind_col,
                    "expected a symbol type: @function, @object or @notype",
                ))
            }
        };
        self.pos += 1;
        Ok(Stmt::Symbols(vec![(name, SymAttr::Type(kind), col)]))
    }

    /// `.size NAME, EXPR`; EXPR may use labels (`.Lfunc_end0-foo`).
    fn symbol_size(&mut self) -> Result<Stmt, Diagnostic> {
        let (name, col) = self.ident("a symbol name")?;
        self.expect(",")?;
        let size = self.expr()?;
        Ok(Stmt::Symbols(vec![(name, SymAttr::Size(size), col)]))
    }

    /// An expression that must be a plain number now (it decides offsets before constants
    /// are resolved).
    fn number_now(&mut self, what: &str) -> Result<(u64, usize), Diagnostic> {
        let expr = self.expr()?;
        let mut names = |_: &str, col: usize| -> Result<i128, EvalError> {
            Err(EvalError::Diag(self.error_at(
                col,
                format!("{what} must be a number: constants are not known at this point"),
            )))
        };
        let value = match eval(&expr, self.origin, &mut names) {
            Ok(v) if v.field.is_none() => v.constant,
            Ok(_) => return Err(self.error_at(expr.col, format!("{what} must be a number"))),
            Err(EvalError::Diag(d)) => return Err(d),
            Err(_) => return Err(self.error_at(expr.col, format!("{what} must be a number"))),
        };
        match u64::try_from(value) {
            Ok(v) => Ok((v, expr.col)),
            Err(_) => Err(self.error_at(expr.col, format!("{what} cannot be negative"))),
        }
    }

    /// `.p2align N [, FILL [, MAX]]` (2^N bytes) or `.align/.balign N [, ...]` (N bytes, as
    /// llvm-mc takes `.align` for BPF).
    fn align(&mut self, power: bool, col: usize) -> Result<Stmt, Diagnostic> {
        let (n, n_col) = self.number_now("an alignment")?;
        let bytes = if power {
            if n > 16 {
                return Err(
                    self.error_at(n_col, "alignment 2^N is out of range: N must be 0 to 16")
                );
            }
            1u64 << n
        } else {
            if !n.is_power_of_two() && n != 0 {
                return Err(self.error_at(n_col, format!("alignment {n} is not a power of 2")));
            }
            n.max(1)
        };
        // Fill and maximum: bpf-asm never pads (see program.rs), so they cannot matter.
        self.pos = self.tokens.len();
        Ok(Stmt::Align { bytes, col })
    }

    fn strings(&mut self, nul: bool, col: usize) -> Result<Stmt, Diagnostic> {
        let mut pieces = Vec::new();
        loop {
            let Some(Tok::Str(s)) = self.peek_tok(0).cloned() else {
                return Err(self.unexpected("a quoted string"));
            };
            self.pos += 1;
            let mut bytes = s.into_bytes();
            if nul {
                bytes.push(0);
            }
            pieces.push(DataPiece::Bytes(bytes));
            if !self.eat(",") {
                break;
            }
        }
        Ok(Stmt::Data(pieces, col))
    }

    /// `.zero N [, FILL]`.
    fn fill(&mut self, col: usize) -> Result<Stmt, Diagnostic> {
        let (n, n_col) = self.number_now("a size")?;
        if n > MAX_FILL {
            return Err(self.error_at(n_col, format!("size {n} is too large (at most {MAX_FILL})")));
        }
        let fill = if self.eat(",") {
            let (f, f_col) = self.number_now("a fill byte")?;
            u8::try_from(f).map_err(|_| self.error_at(f_col, "a fill byte is 0 to 255"))?
        } else {
            0
        };
        let len = usize::try_from(n).unwrap_or(0);
        Ok(Stmt::Data(vec![DataPiece::Bytes(vec![fill; len])], col))
    }

    fn integers(&mut self, width: u8, col: usize) -> Result<Stmt, Diagnostic> {
        let mut pieces = Vec::new();
        loop {
            pieces.push(DataPiece::Int {
                width,
                expr: self.expr()?,
            });
            if !self.eat(",") {
                break;
            }
        }
        Ok(Stmt::Data(pieces, col))
    }
}
