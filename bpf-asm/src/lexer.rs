//! Splits one line of assembly into tokens. Never fails: characters it does not know become
//! `Tok::Other`, numbers too large for u64 become `Tok::BadNumber`, and the parser turns those
//! into errors with a position.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// Names, registers, mnemonics and directives: `[A-Za-z_.][A-Za-z0-9_.$]*` (llvm writes
    /// local aliases like `.Lfoo$local`).
    Ident(String),
    Num(u64),
    BadNumber(String),
    Str(String),
    UnterminatedStr,
    /// Operators and punctuation, longest match first (`s>>=` before `s>`).
    Punct(&'static str),
    Other(char),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    /// 1-based column in characters.
    pub col: usize,
    /// Byte range in the line.
    pub start: usize,
    pub end: usize,
}

/// A lexed line: its tokens, and the byte index where a comment starts (or the line's length).
pub struct Line {
    pub tokens: Vec<Token>,
    pub code_end: usize,
}

const PUNCTS: &[&str] = &[
    "s>>=", "<<=", ">>=", "s>=", "s<=", "s/=", "s%=", "s>", "s<", "==", "!=", ">=", "<=", "+=",
    "-=", "*=", "/=", "%=", "|=", "&=", "^=", "<<", ">>", "=", ">", "<", "&", "(", ")", "*", "+",
    "-", "/", "%", "|", "^", "~", ",", ":",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '.'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$'
}

/// Where a comment starts in `text` (`;`, `#` or `//` outside a string), else its length.
pub fn comment_start(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b';' | b'#' => return i,
                b'/' if bytes.get(i + 1) == Some(&b'/') => return i,
                _ => {}
            }
        }
        i += 1;
    }
    text.len()
}

pub fn lex(text: &str) -> Line {
    let code_end = comment_start(text);
    let code = text.get(..code_end).unwrap_or(text);
    let mut tokens = Vec::new();
    // (byte index, char) pairs, so columns count characters and slices stay on boundaries.
    let chars: Vec<(usize, char)> = code.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(code.len(), |&(b, _)| b);
    let mut i = 0;
    while let Some(&(start, c)) = chars.get(i) {
        let col = i + 1;
        let begin = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = if let Some(p) = PUNCTS.iter().find(|p| code[start..].starts_with(**p)) {
            i += p.len();
            Tok::Punct(p)
        } else if c.is_ascii_digit() {
            while chars
                .get(i)
                .is_some_and(|&(_, c)| c.is_ascii_alphanumeric() || c == '_')
            {
                i += 1;
            }
            let word = &code[start..byte_at(i)];
            parse_number(word).map_or_else(|| Tok::BadNumber(word.to_string()), Tok::Num)
        } else if is_ident_start(c) {
            while chars.get(i).is_some_and(|&(_, c)| is_ident_char(c)) {
                i += 1;
            }
            Tok::Ident(code[start..byte_at(i)].to_string())
        } else if c == '"' {
            i += 1;
            let mut value = String::new();
            let mut closed = false;
            while let Some(&(_, c)) = chars.get(i) {
                i += 1;
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => {
                        let escaped = chars.get(i).map(|&(_, c)| c);
                        i += 1;
                        match escaped {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some('0') => value.push('\0'),
                            Some(c) => value.push(c),
                            None => break,
                        }
                    }
                    c => value.push(c),
                }
            }
            if closed {
                Tok::Str(value)
            } else {
                Tok::UnterminatedStr
            }
        } else {
            i += 1;
            Tok::Other(c)
        };
        tokens.push(Token {
            tok,
            col,
            start: byte_at(begin),
            end: byte_at(i),
        });
    }
    Line { tokens, code_end }
}

fn parse_number(word: &str) -> Option<u64> {
    let word = word.replace('_', "");
    if let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if let Some(bin) = word.strip_prefix("0b").or_else(|| word.strip_prefix("0B")) {
        u64::from_str_radix(bin, 2).ok()
    } else {
        word.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        lex(text).tokens.into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn signed_operators_win_over_names() {
        assert_eq!(
            toks("r1 s>>= 3 ; comment"),
            vec![Tok::Ident("r1".into()), Tok::Punct("s>>="), Tok::Num(3)]
        );
        assert_eq!(toks("if w1 s< -1")[2], Tok::Punct("s<"));
        assert_eq!(toks("sub: r1 = 0x10 // c"), {
            vec![
                Tok::Ident("sub".into()),
                Tok::Punct(":"),
                Tok::Ident("r1".into()),
                Tok::Punct("="),
                Tok::Num(16),
            ]
        });
    }

    #[test]
    fn odd_input_becomes_tokens_not_panics() {
        assert_eq!(
            toks("99999999999999999999"),
            vec![Tok::BadNumber("99999999999999999999".into())]
        );
        assert_eq!(toks("\"abc"), vec![Tok::UnterminatedStr]);
        assert_eq!(toks("é@"), vec![Tok::Other('é'), Tok::Other('@')]);
        assert_eq!(toks(".license \"G;P#L\" # x")[1], Tok::Str("G;P#L".into()));
    }
}
