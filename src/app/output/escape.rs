//! Making a task's comm safe to print. A process chooses its own comm (prctl PR_SET_NAME), so
//! it may hold terminal escape sequences, newlines that forge extra output lines, quotes that
//! break JSON, or bytes that are not UTF-8.

use super::digits::HEX;
use super::sink::Sink;

/// Text mode: control characters (C0, DEL, C1) and bytes that are not UTF-8 become `\xNN`, a
/// backslash becomes `\\`; everything else is copied.
pub fn push_text_escaped(out: &mut impl Sink, bytes: &[u8]) {
    if is_plain(bytes) {
        out.put(bytes);
        return;
    }
    for_each_piece(bytes, |piece| match piece {
        Piece::Char('\\') => out.put(b"\\\\"),
        Piece::Char(c) if c.is_control() => {
            let mut utf8 = [0u8; 4];
            for &b in c.encode_utf8(&mut utf8).as_bytes() {
                push_backslash_x(out, b);
            }
        }
        Piece::Char(c) => push_char(out, c),
        Piece::Invalid(b) => push_backslash_x(out, b),
    });
}

/// JSON mode: appends a complete JSON string literal, quotes included. `"` and `\` are escaped,
/// control characters (C0, DEL, C1) become `\u00XX`, bytes that are not UTF-8 become the text
/// `\xNN` (written `\\xNN` inside the literal). The output is always valid JSON.
pub fn push_json_string(out: &mut impl Sink, bytes: &[u8]) {
    out.put_byte(b'"');
    if is_plain(bytes) {
        // The common case, a comm like "curl": nothing to escape.
        out.put(bytes);
        out.put_byte(b'"');
        return;
    }
    for_each_piece(bytes, |piece| match piece {
        Piece::Char('"') => out.put(b"\\\""),
        Piece::Char('\\') => out.put(b"\\\\"),
        Piece::Char(c) if c.is_control() => {
            // Control characters are all below U+00A0: two hex digits suffice.
            let code = c as u32;
            out.put(b"\\u00");
            out.put_byte(HEX[(code >> 4 & 0xf) as usize]);
            out.put_byte(HEX[(code & 0xf) as usize]);
        }
        Piece::Char(c) => push_char(out, c),
        Piece::Invalid(b) => {
            out.put(b"\\\\x");
            out.put_byte(HEX[usize::from(b >> 4)]);
            out.put_byte(HEX[usize::from(b & 0xf)]);
        }
    });
    out.put_byte(b'"');
}

/// Appends a string known to need no escaping in JSON (our own names and numbers).
pub fn push_json_plain(out: &mut impl Sink, s: &str) {
    out.put_byte(b'"');
    out.put(s.as_bytes());
    out.put_byte(b'"');
}

/// Printable ASCII other than `"` and `\`: safe as-is in both formats.
fn is_plain(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

enum Piece {
    Char(char),
    Invalid(u8),
}

/// Splits bytes into UTF-8 characters and the single bytes that are not part of one.
fn for_each_piece(mut bytes: &[u8], mut f: impl FnMut(Piece)) {
    while !bytes.is_empty() {
        let (valid, rest) = match std::str::from_utf8(bytes) {
            Ok(all) => (all, &[][..]),
            Err(e) => {
                let (good, bad) = bytes.split_at(e.valid_up_to());
                // `good` was just validated, so this cannot fail.
                (std::str::from_utf8(good).unwrap_or_default(), bad)
            }
        };
        valid.chars().for_each(|c| f(Piece::Char(c)));
        match rest.split_first() {
            Some((&bad, after)) => {
                // One invalid byte at a time: the next may start a valid character.
                f(Piece::Invalid(bad));
                bytes = after;
            }
            None => bytes = rest,
        }
    }
}

fn push_char(out: &mut impl Sink, c: char) {
    let mut utf8 = [0u8; 4];
    out.put(c.encode_utf8(&mut utf8).as_bytes());
}

fn push_backslash_x(out: &mut impl Sink, b: u8) {
    out.put(b"\\x");
    out.put_byte(HEX[usize::from(b >> 4)]);
    out.put_byte(HEX[usize::from(b & 0xf)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        push_text_escaped(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    fn json(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        push_json_string(&mut out, bytes);
        String::from_utf8(out).unwrap()
    }

    /// ESC, newline, quote, backslash and an invalid byte in one comm.
    const NASTY: &[u8] = b"a\x1b[31m\nb\"c\\d\xffe";

    #[test]
    fn text_escapes() {
        assert_eq!(text(b"curl"), "curl");
        assert_eq!(text(NASTY), r#"a\x1b[31m\x0ab"c\\d\xffe"#);
        assert_eq!(text(b"\x7f\t\r"), r"\x7f\x09\x0d");
        assert_eq!(
            text("h\u{e9}llo \u{2603}".as_bytes()),
            "h\u{e9}llo \u{2603}"
        );
        // C1 control U+009B (a CSI on some terminals) is escaped byte by byte.
        assert_eq!(text("x\u{9b}y".as_bytes()), r"x\xc2\x9by");
        // A truncated multi-byte character at the end (comm is cut at 15 bytes).
        assert_eq!(text(b"ab\xe2\x98"), r"ab\xe2\x98");
        assert_eq!(text(b"\xc3"), r"\xc3");
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json(b"curl"), r#""curl""#);
        assert_eq!(json(NASTY), r#""a\u001b[31m\u000ab\"c\\d\\xffe""#);
        assert_eq!(json(b"\x00\x1f\x7f"), r#""\u0000\u001f\u007f""#);
        assert_eq!(json("x\u{9b}y".as_bytes()), r#""x\u009by""#);
        assert_eq!(json("\u{e9}".as_bytes()), "\"\u{e9}\"");
        assert_eq!(json(b"ab\xe2\x98"), r#""ab\\xe2\\x98""#);
        assert_eq!(json(b""), r#""""#);
    }

    /// Every single byte and every pair of bytes gives valid UTF-8 and a well-formed string:
    /// no raw control characters, and quotes/backslashes only as escapes.
    #[test]
    fn json_output_is_always_a_clean_string() {
        for a in 0..=255u8 {
            for b in [0u8, b'"', b'\\', b'a', 0x80, 0xbf, 0xc3, 0xe2, 0xff] {
                let s = json(&[a, b]);
                let inner = &s[1..s.len() - 1];
                assert!(!inner.chars().any(|c| c.is_control()), "{s:?}");
                let mut chars = inner.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => assert!(matches!(chars.next(), Some('"' | '\\' | 'u')), "{s:?}"),
                        '"' => panic!("unescaped quote in {s:?}"),
                        _ => {}
                    }
                }
                let t = text(&[a, b]);
                assert!(!t.chars().any(|c| c.is_control()), "{t:?}");
            }
        }
    }
}
