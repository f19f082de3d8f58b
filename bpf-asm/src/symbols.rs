//! ELF symbols from `.globl`/`.local`/`.weak`/`.type`/`.size`, and the license string from data
//! directives in the `license` section. A label becomes a symbol only when a symbol directive
//! names it (llvm-mc also lists every other label as a local symbol; bpf-asm keeps its labels
//! to itself, so objects without symbol directives stay as they were).

use crate::consts::Constants;
use crate::directives::{DataPiece, SymAttr, SymType};
use crate::error::{Diagnostic, Origin};
use crate::expr::{eval, EvalError, Expr};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Local,
    Global,
    Weak,
}

/// The section a symbol is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolPlace {
    /// Index into `Program::sections`.
    Program(usize),
    License,
}

/// A symbol of the object's symbol table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub place: SymbolPlace,
    /// Byte offset in its section.
    pub offset: u64,
    pub size: u64,
    pub kind: SymType,
    pub binding: Binding,
}

/// Everything the directives said about one symbol.
pub struct SymbolDecl {
    name: String,
    /// The first directive naming it.
    origin: Origin,
    col: usize,
    binding: Option<(Binding, Origin, usize)>,
    kind: Option<SymType>,
    size: Option<(Expr, Origin)>,
}

#[derive(Default)]
pub struct SymbolDecls {
    list: Vec<SymbolDecl>,
    index: HashMap<String, usize>,
}

impl SymbolDecls {
    pub fn declare(
        &mut self,
        name: String,
        attr: SymAttr,
        origin: &Origin,
        col: usize,
        errors: &mut Vec<Diagnostic>,
    ) {
        let i = *self.index.entry(name.clone()).or_insert_with(|| {
            self.list.push(SymbolDecl {
                name,
                origin: origin.clone(),
                col,
                binding: None,
                kind: None,
                size: None,
            });
            self.list.len() - 1
        });
        let Some(decl) = self.list.get_mut(i) else {
            return;
        };
        let binding = match attr {
            SymAttr::Global => Binding::Global,
            SymAttr::Local => Binding::Local,
            SymAttr::Weak => Binding::Weak,
            SymAttr::Type(kind) => {
                decl.kind = Some(kind);
                return;
            }
            SymAttr::Size(expr) => {
                decl.size = Some((expr, origin.clone()));
                return;
            }
        };
        match &decl.binding {
            Some((before, _, _)) if *before != binding => errors.push(Diagnostic::new(
                origin,
                col,
                format!(
                    "symbol `{}` was declared {} before: a symbol has one binding",
                    decl.name,
                    binding_name(*before)
                ),
            )),
            _ => decl.binding = Some((binding, origin.clone(), col)),
        }
    }
}

fn binding_name(b: Binding) -> &'static str {
    match b {
        Binding::Local => ".local",
        Binding::Global => ".globl",
        Binding::Weak => ".weak",
    }
}

/// Labels, for placing symbols: program labels by slot, data labels by byte offset.
pub struct Labels<'a> {
    pub program: &'a HashMap<(usize, String), usize>,
    pub data: &'a HashMap<(String, String), u64>,
}

impl Labels<'_> {
    fn offset_in(&self, place: SymbolPlace, name: &str) -> Option<u64> {
        match place {
            SymbolPlace::Program(s) => self
                .program
                .get(&(s, name.to_string()))
                .map(|slot| *slot as u64 * 8),
            SymbolPlace::License => self
                .data
                .get(&("license".to_string(), name.to_string()))
                .copied(),
        }
    }
}

/// Where a label is: a section bpf-asm writes and the offset, or the data section it is in.
type LabelAt<'a> = Result<(SymbolPlace, u64), &'a str>;

/// Places every declared symbol at its label and evaluates its size.
pub fn resolve_symbols(
    decls: &SymbolDecls,
    labels: &Labels,
    constants: &Constants,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Symbol> {
    // name -> where labels of that name are, built once (labels are per section).
    let mut by_name: HashMap<&str, Vec<LabelAt>> = HashMap::new();
    for ((section, name), slot) in labels.program {
        by_name
            .entry(name)
            .or_default()
            .push(Ok((SymbolPlace::Program(*section), *slot as u64 * 8)));
    }
    for ((section, name), offset) in labels.data {
        let at = if section == "license" {
            Ok((SymbolPlace::License, *offset))
        } else {
            Err(section.as_str())
        };
        by_name.entry(name).or_default().push(at);
    }

    let mut out = Vec::new();
    for decl in &decls.list {
        let binding = decl.binding.as_ref().map_or(Binding::Local, |b| b.0);
        // llvm drops `.L` temporaries from the table unless they are made global.
        if decl.name.starts_with(".L") && binding == Binding::Local {
            continue;
        }
        let (origin, col) = decl
            .binding
            .as_ref()
            .map_or((&decl.origin, decl.col), |(_, o, c)| (o, *c));
        let error = |m: String| Diagnostic::new(origin, col, m);
        let found = by_name
            .get(decl.name.as_str())
            .map_or(&[][..], |v| v.as_slice());
        let (place, offset) = match found {
            [] => {
                errors.push(error(format!(
                    "symbol `{}` has no label: define it with `{}:` (bpf-asm has no undefined symbols)",
                    decl.name, decl.name
                )));
                continue;
            }
            [Ok(at)] => *at,
            [Err(section)] => {
                errors.push(error(format!(
                    "symbol `{}` is in section `{section}`, which bpf-asm does not write: only programs and `license` hold symbols",
                    decl.name
                )));
                continue;
            }
            _ => {
                errors.push(error(format!(
                    "symbol `{}` is ambiguous: a label of that name is in more than one section",
                    decl.name
                )));
                continue;
            }
        };
        let size = match &decl.size {
            None => 0,
            Some((expr, size_origin)) => {
                let mut names = |name: &str, col: usize| match labels.offset_in(place, name) {
                    Some(off) => Ok(i128::from(off)),
                    None => constants.get(name, size_origin, col),
                };
                match eval(expr, size_origin, &mut names) {
                    Ok(v) if v.field.is_none() && v.constant >= 0 => v.constant as u64,
                    Ok(_) => {
                        errors.push(Diagnostic::new(
                            size_origin,
                            expr.col,
                            "a symbol size is a number of bytes, 0 or more",
                        ));
                        continue;
                    }
                    Err(EvalError::Diag(d)) => {
                        errors.push(d);
                        continue;
                    }
                    Err(_) => continue,
                }
            }
        };
        out.push(Symbol {
            name: decl.name.clone(),
            place,
            offset,
            size,
            kind: decl.kind.unwrap_or(SymType::NoType),
            binding,
        });
    }
    out
}

/// The license string that data directives in `license` spell, which must be one
/// NUL-terminated string (what the kernel reads), e.g. `.asciz "GPL"`.
pub fn resolve_license(
    pieces: &[(DataPiece, Origin)],
    at: &(Origin, usize),
    constants: &Constants,
    errors: &mut Vec<Diagnostic>,
) -> Option<String> {
    let mut bytes = Vec::new();
    for (piece, origin) in pieces {
        match piece {
            DataPiece::Bytes(b) => bytes.extend_from_slice(b),
            DataPiece::Int { width, expr } => {
                let mut names = |name: &str, col: usize| constants.get(name, origin, col);
                let v = match eval(expr, origin, &mut names) {
                    Ok(v) if v.field.is_none() => v.constant,
                    Ok(_) => {
                        errors.push(Diagnostic::new(origin, expr.col, "bad offsetof: data cannot hold offsetof(...), which is only known at load time"));
                        return None;
                    }
                    Err(EvalError::Diag(d)) => {
                        errors.push(d);
                        return None;
                    }
                    Err(_) => return None,
                };
                let bits = u32::from(*width) * 8;
                let (min, max) = (-(1i128 << (bits - 1)), (1i128 << bits) - 1);
                if v < min || v > max {
                    errors.push(Diagnostic::new(
                        origin,
                        expr.col,
                        format!("value {v} does not fit in {width} byte(s)"),
                    ));
                    return None;
                }
                bytes.extend_from_slice(&(v as u64).to_le_bytes()[..usize::from(*width)]);
            }
        }
    }
    let text = match bytes.split_last() {
        Some((0, text)) if !text.contains(&0) => String::from_utf8(text.to_vec()).ok(),
        _ => None,
    };
    if text.is_none() {
        errors.push(Diagnostic::new(
            &at.0,
            at.1,
            "the `license` section must hold one NUL-terminated string, like .asciz \"GPL\"",
        ));
    }
    text
}
