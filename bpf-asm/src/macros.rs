//! The text macro expander: collects `.macro NAME PARAMS` ... `.endm` from every file of the
//! unit (so a macro may be used before its definition), then replaces each invocation line
//! with the body, `\PARAM` substituted by the argument and `\@` by a per-expansion number.

use crate::error::{Diagnostic, Origin};
use crate::lexer::{comment_start, lex, Tok};
use crate::Source;
use std::collections::HashMap;

/// Expansions nested deeper than this are taken to be runaway recursion.
const MAX_DEPTH: usize = 64;
/// Bound on the expanded program, so a few lines of exponential macros cannot eat the machine.
const MAX_LINES: usize = 200_000;

/// Names a macro may not take: they would shadow instructions.
const RESERVED: &[&str] = &[
    "if", "goto", "gotol", "call", "callx", "exit", "lock", "offsetof",
];

struct Macro {
    params: Vec<String>,
    /// `(line number, text)` in `file`.
    body: Vec<(usize, String)>,
    file: String,
}

pub(crate) fn is_register_name(word: &str) -> bool {
    let mut chars = word.chars();
    matches!(chars.next(), Some('r' | 'w'))
        && !chars.as_str().is_empty()
        && chars.as_str().bytes().all(|b| b.is_ascii_digit())
}

/// The first word of a line's code, and its byte range.
fn first_word(text: &str) -> Option<(&str, usize)> {
    let code = text.get(..comment_start(text))?;
    let start = code.len() - code.trim_start().len();
    let word = code[start..].split_whitespace().next()?;
    Some((word, start))
}

fn column_of(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(1, |s| s.chars().count() + 1)
}

/// The lines of the unit with every macro expanded, in order, each with its origin.
pub fn expand(sources: &[Source]) -> Result<Vec<Origin>, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut macros: HashMap<String, Macro> = HashMap::new();
    let mut plain: Vec<Origin> = Vec::new();

    for source in sources {
        let mut lines = source.text.lines().enumerate();
        while let Some((index, text)) = lines.next() {
            let origin = Origin {
                file: source.name.to_string(),
                line: index + 1,
                text: text.to_string(),
                expanded_from: Vec::new(),
            };
            match first_word(text) {
                Some((".macro", start)) => {
                    let header = define_header(&origin, start);
                    let mut body = Vec::new();
                    let mut closed = false;
                    for (body_index, body_text) in lines.by_ref() {
                        match first_word(body_text) {
                            Some((".endm" | ".endmacro", _)) => {
                                closed = true;
                                break;
                            }
                            Some((".macro", s)) => {
                                let inner = Origin {
                                    line: body_index + 1,
                                    text: body_text.to_string(),
                                    ..origin.clone()
                                };
                                errors.push(Diagnostic::new(
                                    &inner,
                                    column_of(body_text, s),
                                    "a .macro cannot be defined inside another .macro: close the first with .endm",
                                ));
                            }
                            _ => body.push((body_index + 1, body_text.to_string())),
                        }
                    }
                    if !closed {
                        errors.push(Diagnostic::new(
                            &origin,
                            column_of(text, start),
                            ".macro has no matching .endm",
                        ));
                    }
                    match header {
                        Ok((name, params)) => {
                            if macros.contains_key(&name) {
                                errors.push(Diagnostic::new(
                                    &origin,
                                    column_of(text, start),
                                    format!("macro `{name}` is defined twice"),
                                ));
                            } else {
                                let file = source.name.to_string();
                                macros.insert(name, Macro { params, body, file });
                            }
                        }
                        Err(e) => errors.push(e),
                    }
                }
                _ => plain.push(origin),
            }
        }
    }

    let mut out = Vec::new();
    let mut counter = 0usize;
    for origin in plain {
        if let Err(e) = expand_line(&macros, origin, 0, &mut counter, &mut out) {
            errors.push(e);
            if out.len() >= MAX_LINES {
                break;
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Parses `.macro NAME [P1[, P2 ...]]`.
fn define_header(origin: &Origin, start: usize) -> Result<(String, Vec<String>), Diagnostic> {
    let line = lex(&origin.text);
    let mut tokens = line.tokens.iter().skip_while(|t| t.start < start).skip(1);
    let Some(name_token) = tokens.next() else {
        return Err(Diagnostic::new(
            origin,
            column_of(&origin.text, start),
            ".macro needs a name",
        ));
    };
    let name = match &name_token.tok {
        Tok::Ident(n)
            if !n.starts_with('.') && !is_register_name(n) && !RESERVED.contains(&n.as_str()) =>
        {
            n.clone()
        }
        _ => {
            return Err(Diagnostic::new(
                origin,
                name_token.col,
                "bad macro name: use a name that is not an instruction, register or directive",
            ))
        }
    };
    let mut params = Vec::new();
    for token in tokens {
        match &token.tok {
            Tok::Punct(",") => {}
            Tok::Ident(p) if !p.contains('.') && !params.contains(p) => params.push(p.clone()),
            _ => {
                return Err(Diagnostic::new(
                    origin,
                    token.col,
                    "bad macro parameter: parameters are distinct names separated by commas",
                ))
            }
        }
    }
    Ok((name, params))
}

/// Splits macro arguments at commas outside parentheses.
fn split_args(text: &str) -> Vec<String> {
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

fn expand_line(
    macros: &HashMap<String, Macro>,
    origin: Origin,
    depth: usize,
    counter: &mut usize,
    out: &mut Vec<Origin>,
) -> Result<(), Diagnostic> {
    if out.len() >= MAX_LINES {
        return Err(Diagnostic::new(
            &origin,
            1,
            format!("macros expand to more than {MAX_LINES} lines"),
        ));
    }
    let line = lex(&origin.text);
    // Skip leading `label:` definitions to find the statement's first word.
    let mut index = 0;
    while let (Some(a), Some(b)) = (line.tokens.get(index), line.tokens.get(index + 1)) {
        if matches!(a.tok, Tok::Ident(_)) && b.tok == Tok::Punct(":") {
            index += 2;
        } else {
            break;
        }
    }
    let call = match line.tokens.get(index) {
        Some(t) => match &t.tok {
            Tok::Ident(name) => macros.get(name).map(|m| (name.clone(), m, t)),
            _ => None,
        },
        None => None,
    };
    let Some((name, mac, name_token)) = call else {
        out.push(origin);
        return Ok(());
    };
    if depth >= MAX_DEPTH {
        return Err(Diagnostic::new(
            &origin,
            name_token.col,
            format!(
                "macro expansion nested more than {MAX_DEPTH} deep: does `{name}` expand itself?"
            ),
        ));
    }
    if name_token.start > 0 {
        // Labels in front of the invocation stay on a line of their own.
        let mut labels = origin.clone();
        labels.text = origin
            .text
            .get(..name_token.start)
            .unwrap_or("")
            .to_string();
        out.push(labels);
    }
    let args_text = origin.text.get(name_token.end..line.code_end).unwrap_or("");
    let args = split_args(args_text);
    if args.len() != mac.params.len() {
        return Err(Diagnostic::new(
            &origin,
            name_token.col,
            format!(
                "macro `{name}` takes {} argument(s) ({}), got {}",
                mac.params.len(),
                mac.params.join(", "),
                args.len()
            ),
        ));
    }
    let unique = *counter;
    *counter += 1;
    for (line_no, body) in &mac.body {
        let mut expanded_from = vec![(origin.file.clone(), origin.line, name.clone())];
        expanded_from.extend(origin.expanded_from.iter().cloned());
        let body_origin = Origin {
            file: mac.file.clone(),
            line: *line_no,
            text: body.clone(),
            expanded_from,
        };
        let text = substitute(&body_origin, &mac.params, &args, unique)?;
        expand_line(
            macros,
            Origin {
                text,
                ..body_origin
            },
            depth + 1,
            counter,
            out,
        )?;
    }
    Ok(())
}

/// Replaces `\PARAM` and `\@` in one body line.
fn substitute(
    origin: &Origin,
    params: &[String],
    args: &[String],
    unique: usize,
) -> Result<String, Diagnostic> {
    let text = &origin.text;
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('@') {
            out.push_str(&unique.to_string());
            rest = tail;
            continue;
        }
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let word = &after[..len];
        let Some(i) = params.iter().position(|p| p == word) else {
            let column = column_of(text, text.len() - rest.len() + pos);
            return Err(Diagnostic::new(
                origin,
                column,
                format!("`\\{word}` is not a parameter of this macro"),
            ));
        };
        out.push_str(args.get(i).map_or("", |s| s.as_str()));
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}
