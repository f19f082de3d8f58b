//! Integer expressions: the tree, its parser (precedence as llvm-mc's for ELF targets, which
//! follows GNU as) and its evaluation. Values are exact (i128) and must stay within 64 bits,
//! `-2^63` to `2^64 - 1`, at every step: llvm-mc wraps silently, we report an overflow.

use crate::error::{Diagnostic, Origin};
use crate::lexer::Tok;
use crate::macros::is_register_name;
use crate::parser::{Parser, KEYWORDS};

/// Parentheses and unary operators nested deeper than this are refused, so a hostile line
/// cannot overflow the stack of the recursive parser.
const MAX_NESTING: usize = 64;
/// Nodes in one expression: bounds the depth of evaluation (a chain `1+1+...` is a left-deep
/// tree), for the same reason.
const MAX_NODES: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Shl,
    Shr,
    And,
    Or,
    Xor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    Num(i128),
    /// A `.equ` constant (in `.size`, also a label).
    Name(String),
    /// `offsetof(STRUCT, FIELD.PATH)`.
    Offsetof {
        strukt: String,
        field: String,
    },
    Unary(UnOp, Box<Expr>),
    Binary {
        op: BinOp,
        op_col: usize,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
}

/// An expression and the column where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub col: usize,
}

impl Expr {
    pub fn num(n: i128, col: usize) -> Self {
        Expr {
            kind: ExprKind::Num(n),
            col,
        }
    }

    /// Whether an `offsetof` appears anywhere in it.
    pub fn has_offsetof(&self) -> bool {
        match &self.kind {
            ExprKind::Offsetof { .. } => true,
            ExprKind::Num(_) | ExprKind::Name(_) => false,
            ExprKind::Unary(_, e) => e.has_offsetof(),
            ExprKind::Binary { lhs, rhs, .. } => lhs.has_offsetof() || rhs.has_offsetof(),
        }
    }
}

/// Binary operators and their precedence, llvm-mc's (GNU as) order: `* / % << >>` bind
/// tightest, then `| & ^`, then `+ -`. So `1 + 2 | 4` is `1 + (2 | 4)`.
fn binop(tok: Option<&Tok>) -> Option<(BinOp, u8)> {
    let Some(Tok::Punct(p)) = tok else {
        return None;
    };
    Some(match *p {
        "*" => (BinOp::Mul, 3),
        "/" => (BinOp::Div, 3),
        "%" => (BinOp::Rem, 3),
        "<<" => (BinOp::Shl, 3),
        ">>" => (BinOp::Shr, 3),
        "|" => (BinOp::Or, 2),
        "&" => (BinOp::And, 2),
        "^" => (BinOp::Xor, 2),
        "+" => (BinOp::Add, 1),
        "-" => (BinOp::Sub, 1),
        _ => return None,
    })
}

impl Parser<'_> {
    /// A whole expression.
    pub(crate) fn expr(&mut self) -> Result<Expr, Diagnostic> {
        self.expr_nodes = 0;
        let lhs = self.unary(0)?;
        self.binary_rest(lhs, 1, 0)
    }

    /// `+ e` / `- e` after a base register (`r10 - 8 + 4`): parsed as `0 - 8 + 4`, so the
    /// sign applies to the next term only, as the arithmetic reads.
    pub(crate) fn offset_expr(&mut self) -> Result<Expr, Diagnostic> {
        self.expr_nodes = 0;
        let zero = Expr::num(0, self.col());
        self.binary_rest(zero, 1, 0)
    }

    fn count_node(&mut self) -> Result<(), Diagnostic> {
        self.expr_nodes += 1;
        if self.expr_nodes > MAX_NODES {
            return Err(self.error_at(
                self.col(),
                format!("expression too long: more than {MAX_NODES} terms and operators"),
            ));
        }
        Ok(())
    }

    fn binary_rest(&mut self, mut lhs: Expr, min: u8, depth: usize) -> Result<Expr, Diagnostic> {
        while let Some((op, prec)) = binop(self.peek_tok(0)).filter(|&(_, p)| p >= min) {
            let op_col = self.col();
            self.pos += 1;
            self.count_node()?;
            let mut rhs = self.unary(depth)?;
            while let Some((_, next)) = binop(self.peek_tok(0)).filter(|&(_, p)| p > prec) {
                rhs = self.binary_rest(rhs, next, depth)?;
            }
            let col = lhs.col;
            lhs = Expr {
                kind: ExprKind::Binary {
                    op,
                    op_col,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                col,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, Diagnostic> {
        let col = self.col();
        if depth >= MAX_NESTING {
            return Err(self.error_at(
                col,
                format!("expression nested more than {MAX_NESTING} deep"),
            ));
        }
        self.count_node()?;
        let op = match self.peek_tok(0) {
            Some(Tok::Punct("-")) => Some(UnOp::Neg),
            Some(Tok::Punct("~")) => Some(UnOp::Not),
            Some(Tok::Punct("+")) => None,
            _ => return self.primary(depth),
        };
        self.pos += 1;
        let inner = self.unary(depth + 1)?;
        Ok(match op {
            Some(op) => Expr {
                kind: ExprKind::Unary(op, Box::new(inner)),
                col,
            },
            None => Expr { col, ..inner },
        })
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, Diagnostic> {
        let col = self.col();
        let kind = match self.peek_tok(0) {
            Some(Tok::Num(n)) => {
                let n = i128::from(*n);
                self.pos += 1;
                ExprKind::Num(n)
            }
            Some(Tok::Punct("(")) => {
                self.pos += 1;
                let inner = self.unary(depth + 1)?;
                let inner = self.binary_rest(inner, 1, depth + 1)?;
                self.expect(")")?;
                return Ok(Expr { col, ..inner });
            }
            Some(Tok::Ident(w)) if w == "offsetof" => {
                self.pos += 1;
                self.offsetof()?
            }
            Some(Tok::Ident(w)) if !is_register_name(w) && !KEYWORDS.contains(&w.as_str()) => {
                let w = w.clone();
                self.pos += 1;
                ExprKind::Name(w)
            }
            _ => return Err(self.unexpected("a number, a constant or offsetof(...)")),
        };
        Ok(Expr { kind, col })
    }

    fn offsetof(&mut self) -> Result<ExprKind, Diagnostic> {
        let bad = |p: &Self| {
            p.error_at(
                p.col(),
                "bad offsetof: write offsetof(STRUCT, FIELD) or offsetof(STRUCT, FIELD.SUBFIELD)",
            )
        };
        if !self.eat("(") {
            return Err(bad(self));
        }
        let Some(Tok::Ident(strukt)) = self.peek_tok(0).cloned() else {
            return Err(bad(self));
        };
        self.pos += 1;
        if strukt.contains('.') || !self.eat(",") {
            return Err(bad(self));
        }
        let Some(Tok::Ident(field)) = self.peek_tok(0).cloned() else {
            return Err(bad(self));
        };
        if field.starts_with('.') || field.ends_with('.') || field.contains("..") {
            return Err(bad(self));
        }
        self.pos += 1;
        if !self.eat(")") {
            return Err(bad(self));
        }
        Ok(ExprKind::Offsetof { strukt, field })
    }
}

/// An evaluated expression: its constant part and at most one field reference, added.
#[derive(Debug)]
pub struct Value {
    pub constant: i128,
    pub field: Option<String>,
}

/// Why an evaluation stopped.
#[derive(Debug)]
pub enum EvalError {
    Diag(Diagnostic),
    /// An error already reported elsewhere (a constant whose own definition is wrong).
    Reported,
    /// The constant at `.1` is not evaluated yet (constants are resolved in dependency order).
    Needs(String, usize),
}

impl From<Diagnostic> for EvalError {
    fn from(d: Diagnostic) -> Self {
        EvalError::Diag(d)
    }
}

const MIN: i128 = i64::MIN as i128;
const MAX: i128 = u64::MAX as i128;

/// The 64-bit pattern of an in-range value.
fn bits(v: i128) -> u64 {
    v as u64
}

/// Evaluates `expr` written at `origin`; `name` gives each named value (constant or label).
pub fn eval(
    expr: &Expr,
    origin: &Origin,
    name: &mut dyn FnMut(&str, usize) -> Result<i128, EvalError>,
) -> Result<Value, EvalError> {
    let err = |col: usize, m: String| EvalError::Diag(Diagnostic::new(origin, col, m));
    let offsetof_misused = |col: usize| {
        err(
            col,
            "bad offsetof: it may appear once per operand, added (not subtracted)".to_string(),
        )
    };
    let plain = |v: Value, col: usize| -> Result<i128, EvalError> {
        match v.field {
            Some(_) => Err(err(
                col,
                "bad offsetof: only a constant may be added to or subtracted from it".to_string(),
            )),
            None => Ok(v.constant),
        }
    };
    let value = match &expr.kind {
        ExprKind::Num(n) => Value {
            constant: *n,
            field: None,
        },
        ExprKind::Name(n) => Value {
            constant: name(n, expr.col)?,
            field: None,
        },
        ExprKind::Offsetof { strukt, field } => Value {
            constant: 0,
            field: Some(format!("{strukt}.{field}")),
        },
        ExprKind::Unary(op, inner) => {
            let v = eval(inner, origin, name)?;
            if v.field.is_some() {
                return Err(offsetof_misused(inner.col));
            }
            let constant = match op {
                UnOp::Neg => -v.constant,
                UnOp::Not => i128::from(!bits(v.constant) as i64),
            };
            Value {
                constant,
                field: None,
            }
        }
        ExprKind::Binary {
            op,
            op_col,
            lhs,
            rhs,
        } => {
            let a = eval(lhs, origin, name)?;
            let b = eval(rhs, origin, name)?;
            match op {
                BinOp::Add | BinOp::Sub => {
                    if b.field.is_some() && (a.field.is_some() || *op == BinOp::Sub) {
                        return Err(offsetof_misused(rhs.col));
                    }
                    let constant = if *op == BinOp::Add {
                        a.constant + b.constant
                    } else {
                        a.constant - b.constant
                    };
                    Value {
                        constant,
                        field: a.field.or(b.field),
                    }
                }
                _ => {
                    let x = plain(a, lhs.col)?;
                    let y = plain(b, rhs.col)?;
                    // None: the product or shift left overflows even i128; reported below
                    // like any other out-of-range value.
                    let constant = match op {
                        BinOp::Div | BinOp::Rem if y == 0 => {
                            return Err(err(*op_col, "division by zero".to_string()))
                        }
                        BinOp::Div => Some(x / y),
                        BinOp::Rem => Some(x % y),
                        BinOp::Shl | BinOp::Shr => {
                            let Ok(n @ 0..=63) = u32::try_from(y) else {
                                return Err(err(
                                    rhs.col,
                                    format!("shift count {y} is out of range: it must be 0 to 63"),
                                ));
                            };
                            if *op == BinOp::Shl {
                                x.checked_mul(1i128 << n)
                            } else {
                                // Logical, on the 64-bit pattern, as llvm-mc does.
                                Some(i128::from(bits(x) >> n))
                            }
                        }
                        BinOp::And => Some(i128::from((bits(x) & bits(y)) as i64)),
                        BinOp::Or => Some(i128::from((bits(x) | bits(y)) as i64)),
                        BinOp::Xor => Some(i128::from((bits(x) ^ bits(y)) as i64)),
                        // Mul (Add and Sub took the other arm).
                        _ => x.checked_mul(y),
                    };
                    Value {
                        constant: constant.unwrap_or(i128::MAX),
                        field: None,
                    }
                }
            }
        }
    };
    // Operands are within 64 bits, so sums and differences cannot overflow i128.
    if !(MIN..=MAX).contains(&value.constant) {
        let col = match &expr.kind {
            ExprKind::Binary { op_col, .. } => *op_col,
            _ => expr.col,
        };
        return Err(err(
            col,
            "overflow: the value does not fit in 64 bits (-2^63 to 2^64-1)".to_string(),
        ));
    }
    Ok(value)
}
