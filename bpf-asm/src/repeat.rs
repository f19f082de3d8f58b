//! `.rept N` / `.irp SYM, a, b, c` ... `.endr`, and the substitution of `\NAME` and `\@` that
//! macros and repetitions share.
//!
//! The rule for `\@`: it becomes a number unique to the innermost expansion it is written in, a
//! macro expansion or one repetition of `.rept`/`.irp`, so a label like `l\@:` in a repeated
//! body is distinct in every repetition (GNU as numbers macro expansions only).

use crate::consts::{self, Constants, Definition};
use crate::error::{Diagnostic, Origin};
use crate::expr::{eval, EvalError};
use crate::lexer::{comment_start, lex};
use crate::parser::{parse_line, Parser, Stmt};

/// Bound on one `.rept` count.
pub const MAX_COUNT: u64 = 65_536;

/// The first word of a line's code, and its byte offset.
pub fn first_word(text: &str) -> Option<(&str, usize)> {
    let code = text.get(..comment_start(text))?;
    let start = code.len() - code.trim_start().len();
    let word = code[start..].split_whitespace().next()?;
    Some((word, start))
}

pub fn column_of(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(1, |s| s.chars().count() + 1)
}

fn opens_block(word: &str) -> bool {
    matches!(word, ".rept" | ".irp")
}

/// The index of the `.endr` closing the block opened at `lines[open]`, if any.
pub fn block_end(lines: &[Origin], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, line) in lines.iter().enumerate().skip(open) {
        match first_word(&line.text) {
            Some((w, _)) if opens_block(w) => depth += 1,
            Some((".endr", _)) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// What a block header asks for: each repetition's substitution (`None` for `.rept`).
pub struct Header {
    pub directive: &'static str,
    pub reps: Vec<Option<(String, String)>>,
}

/// Constants written at top level (outside macros), which `.rept` counts may use: they must
/// be known while expanding, before the program is parsed. Errors in them are reported later,
/// by the program pass, so they are dropped here.
pub fn early_constants(lines: &[Origin]) -> Constants {
    let mut defs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for origin in lines {
        if !matches!(first_word(&origin.text), Some((".equ" | ".set", _))) {
            continue;
        }
        if let Ok(stmts) = parse_line(origin) {
            for stmt in stmts {
                if let Stmt::Equ(name, expr, _) = stmt {
                    if seen.insert(name.clone()) {
                        defs.push(Definition {
                            name,
                            expr,
                            origin: origin.clone(),
                        });
                    }
                }
            }
        }
    }
    consts::resolve(&defs, &mut Vec::new())
}

/// Parses the header `.rept N` or `.irp SYM[, VALUE ...]` at `lines[open]`.
pub fn header(
    origin: &Origin,
    word: &str,
    start: usize,
    constants: &Constants,
) -> Result<Header, Diagnostic> {
    let after = start + word.len();
    if word == ".rept" {
        let line = lex(&origin.text);
        let mut p = Parser {
            origin,
            pos: line.tokens.iter().take_while(|t| t.start < after).count(),
            tokens: line.tokens,
            code_end: line.code_end,
            expr_nodes: 0,
        };
        if p.at_end() {
            return Err(p.error_at(
                column_of(&origin.text, start),
                ".rept needs a count, like .rept 4",
            ));
        }
        let expr = p.expr()?;
        if !p.at_end() {
            return Err(p.unexpected("the end of the line after the count"));
        }
        let mut names = |name: &str, col: usize| constants.get(name, origin, col);
        let count = match eval(&expr, origin, &mut names) {
            Ok(v) if v.field.is_none() => v.constant,
            Ok(_) => {
                return Err(Diagnostic::new(
                    origin,
                    expr.col,
                    "a .rept count cannot hold offsetof(...)",
                ))
            }
            Err(EvalError::Diag(d)) => return Err(d),
            Err(_) => {
                return Err(Diagnostic::new(
                    origin,
                    expr.col,
                    "the .rept count uses a constant whose definition is in error",
                ))
            }
        };
        if count < 0 || count > i128::from(MAX_COUNT) {
            return Err(Diagnostic::new(
                origin,
                expr.col,
                format!(".rept count {count} is out of range: it must be 0 to {MAX_COUNT}"),
            ));
        }
        return Ok(Header {
            directive: ".rept",
            reps: vec![None; count as usize],
        });
    }
    let code_end = comment_start(&origin.text);
    let rest = origin.text.get(after..code_end).unwrap_or("");
    let mut args = split_args(rest).into_iter();
    let symbol = args.next().unwrap_or_default();
    let valid = !symbol.is_empty()
        && symbol
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !symbol.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(Diagnostic::new(
            origin,
            column_of(&origin.text, start),
            ".irp needs a symbol and values, like .irp off, 0, 4, 8",
        ));
    }
    let mut values: Vec<String> = args.collect();
    // GNU as: no values, one repetition with the symbol empty.
    if values.is_empty() {
        values.push(String::new());
    }
    Ok(Header {
        directive: ".irp",
        reps: values
            .into_iter()
            .map(|v| Some((symbol.clone(), v)))
            .collect(),
    })
}

/// Splits arguments at commas outside parentheses.
pub fn split_args(text: &str) -> Vec<String> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let mut args = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => {
                args.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    args.push(current.trim().to_string());
    args
}

/// The `.irp` symbol a header line declares (for shadowing), if it is one.
fn irp_symbol(text: &str) -> Option<Option<String>> {
    let (word, start) = first_word(text)?;
    if !opens_block(word) {
        return None;
    }
    if word == ".rept" {
        return Some(None);
    }
    let rest = text
        .get(start + word.len()..comment_start(text))
        .unwrap_or("");
    Some(split_args(rest).into_iter().next())
}

/// Substitutes one expansion's names into its body: `\NAME` for each `(NAME, value)` and `\@`
/// by `unique`. Lines inside nested `.rept`/`.irp` blocks keep `\@` and the nested blocks' own
/// symbols for their own expansion; an unknown `\NAME` outside them is an error (`what` says
/// whose parameters were expected).
pub fn substitute_body(
    body: &[Origin],
    subs: &[(String, String)],
    unique: usize,
    what: &str,
) -> Result<Vec<Origin>, Diagnostic> {
    let mut nested: Vec<Option<String>> = Vec::new();
    let mut out = Vec::with_capacity(body.len());
    for line in body {
        let is_end = matches!(first_word(&line.text), Some((".endr", _)));
        if is_end {
            nested.pop();
        }
        let text = substitute_line(line, subs, unique, &nested, what)?;
        if !is_end {
            if let Some(symbol) = irp_symbol(&text) {
                nested.push(symbol);
            }
        }
        out.push(Origin {
            text,
            ..line.clone()
        });
    }
    Ok(out)
}

fn substitute_line(
    origin: &Origin,
    subs: &[(String, String)],
    unique: usize,
    nested: &[Option<String>],
    what: &str,
) -> Result<String, Diagnostic> {
    let text = &origin.text;
    let inner = !nested.is_empty();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('@') {
            if inner {
                out.push_str("\\@");
            } else {
                out.push_str(&unique.to_string());
            }
            rest = tail;
            continue;
        }
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let word = &after[..len];
        let shadowed = nested.iter().any(|s| s.as_deref() == Some(word));
        match subs.iter().find(|(name, _)| name == word) {
            Some((_, value)) if !shadowed => out.push_str(value),
            _ if inner => {
                out.push('\\');
                out.push_str(word);
            }
            _ => {
                let column = column_of(text, text.len() - rest.len() + pos);
                return Err(Diagnostic::new(
                    origin,
                    column,
                    format!("`\\{word}` is not a parameter of this {what}"),
                ));
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}
