//! The text macro expander: collects `.macro NAME PARAMS` ... `.endm` from every file of the
//! unit (so a macro may be used before its definition), then replaces each invocation line
//! with the body, `\PARAM` substituted by the argument and `\@` by a per-expansion number.

use crate::consts::Constants;
use crate::error::{Diagnostic, Origin};
use crate::lexer::{lex, Tok};
use crate::repeat::{self, block_end, column_of, first_word, split_args, substitute_body};
use crate::Source;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// Expansions nested deeper than this are taken to be runaway recursion.
const MAX_DEPTH: usize = 64;
/// Bound on the expanded program, so a few lines of exponential macros cannot eat the machine.
const MAX_LINES: usize = 200_000;
/// Bound on expansion steps (lines and repetitions), so nested repetitions of nothing end too.
const MAX_WORK: usize = 1_000_000;
/// Bound on one expanded line: a macro passing its argument on twice (`m \a.\a`) doubles
/// it at every level, 2^64 bytes within MAX_DEPTH.
const MAX_LINE_BYTES: usize = 64 << 10;

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
                            let file = source.name.to_string();
                            match macros.entry(name) {
                                Entry::Occupied(e) => errors.push(Diagnostic::new(
                                    &origin,
                                    column_of(text, start),
                                    format!("macro `{}` is defined twice", e.key()),
                                )),
                                Entry::Vacant(e) => {
                                    e.insert(Macro { params, body, file });
                                }
                            }
                        }
                        Err(e) => errors.push(e),
                    }
                }
                _ => plain.push(origin),
            }
        }
    }

    let mut x = Expander {
        macros: &macros,
        constants: repeat::early_constants(&plain),
        counter: 0,
        work: 0,
        out: Vec::new(),
    };
    let mut i = 0;
    while i < plain.len() {
        let (next, result) = x.expand_at(&plain, i, 0);
        if let Err(e) = result {
            errors.push(e);
            if x.out.len() >= MAX_LINES || x.work >= MAX_WORK {
                break;
            }
        }
        i = next.max(i + 1);
    }
    let out = x.out;
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

/// Expansion state shared by macros and repetitions.
struct Expander<'a> {
    macros: &'a HashMap<String, Macro>,
    /// For `.rept` counts.
    constants: Constants,
    /// Numbers expansions, for `\@`.
    counter: usize,
    /// Repetitions and lines produced: bounds the time nested repetitions may take even when
    /// they produce nothing.
    work: usize,
    out: Vec<Origin>,
}

impl Expander<'_> {
    fn budget(&mut self, origin: &Origin, cost: usize) -> Result<(), Diagnostic> {
        self.work += cost;
        if self.out.len() >= MAX_LINES || self.work >= MAX_WORK {
            return Err(Diagnostic::new(
                origin,
                1,
                format!("macros and repetitions expand to more than {MAX_LINES} lines (or {MAX_WORK} steps)"),
            ));
        }
        Ok(())
    }

    /// Expands `lines` in order, stopping at the first error (inside an expansion, a later
    /// line would mostly repeat it, and a runaway expansion must stop).
    fn expand_all(&mut self, lines: &[Origin], depth: usize) -> Result<(), Diagnostic> {
        let mut i = 0;
        while i < lines.len() {
            let (next, result) = self.expand_at(lines, i, depth);
            result?;
            i = next.max(i + 1);
        }
        Ok(())
    }

    /// Expands the statement at `lines[i]` (a whole block if it opens one); returns the index
    /// of the next statement.
    fn expand_at(
        &mut self,
        lines: &[Origin],
        i: usize,
        depth: usize,
    ) -> (usize, Result<(), Diagnostic>) {
        let Some(origin) = lines.get(i) else {
            return (i + 1, Ok(()));
        };
        let Some((word @ (".rept" | ".irp"), start)) = first_word(&origin.text) else {
            return (i + 1, self.expand_line(origin.clone(), depth));
        };
        let Some(end) = block_end(lines, i) else {
            let e = Diagnostic::new(
                origin,
                column_of(&origin.text, start),
                format!("{word} has no matching .endr"),
            );
            return (lines.len(), Err(e));
        };
        let body = lines.get(i + 1..end).unwrap_or(&[]);
        (end + 1, self.repeat(origin, word, start, body, depth))
    }

    fn repeat(
        &mut self,
        origin: &Origin,
        word: &str,
        start: usize,
        body: &[Origin],
        depth: usize,
    ) -> Result<(), Diagnostic> {
        if depth >= MAX_DEPTH {
            return Err(Diagnostic::new(
                origin,
                column_of(&origin.text, start),
                format!("macros and repetitions nested more than {MAX_DEPTH} deep"),
            ));
        }
        let header = repeat::header(origin, word, start, &self.constants)?;
        for (n, rep) in header.reps.iter().enumerate() {
            self.budget(origin, 1 + body.len())?;
            let unique = self.counter;
            self.counter += 1;
            let subs: Vec<(String, String)> = rep.iter().cloned().collect();
            let note = match rep {
                Some((symbol, value)) => format!(
                    "{} repetition {} (\\{symbol} = {value})",
                    header.directive,
                    n + 1
                ),
                None => format!("{} repetition {}", header.directive, n + 1),
            };
            let noted: Vec<Origin> = body
                .iter()
                .map(|line| {
                    let mut from = vec![(origin.file.clone(), origin.line, note.clone())];
                    from.extend(origin.expanded_from.iter().cloned());
                    Origin {
                        expanded_from: from,
                        ..line.clone()
                    }
                })
                .collect();
            let lines = substitute_body(&noted, &subs, unique, header.directive)?;
            self.expand_all(&lines, depth + 1)?;
        }
        Ok(())
    }

    fn expand_line(&mut self, origin: Origin, depth: usize) -> Result<(), Diagnostic> {
        self.budget(&origin, 1)?;
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
        let macros = self.macros;
        let call = match line.tokens.get(index) {
            Some(t) => match &t.tok {
                Tok::Ident(name) => macros.get(name).map(|m| (name.clone(), m, t)),
                _ => None,
            },
            None => None,
        };
        let Some((name, mac, name_token)) = call else {
            self.out.push(origin);
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
            self.out.push(labels);
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
        let unique = self.counter;
        self.counter += 1;
        let mut expanded_from = vec![(origin.file.clone(), origin.line, name.clone())];
        expanded_from.extend(origin.expanded_from.iter().cloned());
        let body: Vec<Origin> = mac
            .body
            .iter()
            .map(|(line_no, text)| Origin {
                file: mac.file.clone(),
                line: *line_no,
                text: text.clone(),
                expanded_from: expanded_from.clone(),
            })
            .collect();
        let subs: Vec<(String, String)> = mac.params.iter().cloned().zip(args).collect();
        let lines = substitute_body(&body, &subs, unique, "macro")?;
        if let Some(long) = lines.iter().find(|l| l.text.len() > MAX_LINE_BYTES) {
            return Err(Diagnostic::new(
                long,
                1,
                format!(
                    "macro `{name}` expands to a line of more than {MAX_LINE_BYTES} bytes: do its \
                     arguments grow at every level?"
                ),
            ));
        }
        self.expand_all(&lines, depth + 1)
    }
}
