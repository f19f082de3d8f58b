//! A tracepoint's record layout from its tracefs `format` file, for kernels without BTF:
//! `inet_sock_set_state`'s fields move between versions (its `protocol` grew from u8 to u16,
//! moving every field after it), so they are read, never assumed.
//!
//! ```text
//! name: inet_sock_set_state
//! ID: 2287
//! format:
//!     field:unsigned short common_type;    offset:0;    size:2;    signed:0;
//!     field:__u8 saddr[4];    offset:32;    size:4;    signed:0;
//! ```

use std::fmt;

/// One field of a tracepoint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatField {
    pub name: String,
    pub offset: u32,
    pub size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// 1-based line of the format text.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for FormatError {}

/// Every `field:` line of a format file, in order. Lines of other kinds (name, ID, print fmt)
/// are skipped; a `field:` line that does not parse is an error, as is a file with none.
pub fn parse(text: &str) -> Result<Vec<FormatField>, FormatError> {
    let mut fields = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if !line.starts_with("field:") {
            continue;
        }
        let err = |message: String| FormatError {
            line: i + 1,
            message,
        };
        let mut decl = None;
        let (mut offset, mut size) = (None, None);
        for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once(':')
                .ok_or_else(|| err(format!("`{part}` is not `key:value`")))?;
            let number = || {
                value
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| err(format!("{key} `{value}` is not a number")))
            };
            match key.trim() {
                "field" => decl = Some(value.trim()),
                "offset" => offset = Some(number()?),
                "size" => size = Some(number()?),
                _ => {}
            }
        }
        let decl = decl.ok_or_else(|| err("no field declaration".into()))?;
        let name = field_name(decl).ok_or_else(|| err(format!("no field name in `{decl}`")))?;
        let (Some(offset), Some(size)) = (offset, size) else {
            return Err(err(format!("field {name} has no offset or size")));
        };
        fields.push(FormatField {
            name: name.to_string(),
            offset,
            size,
        });
    }
    if fields.is_empty() {
        return Err(FormatError {
            line: 0,
            message: "no `field:` lines: not a tracepoint format file".into(),
        });
    }
    Ok(fields)
}

/// The name in a C declaration: `const void * skaddr` -> skaddr, `__u8 saddr[4]` -> saddr.
fn field_name(decl: &str) -> Option<&str> {
    let without_array = decl.split('[').next()?.trim_end();
    let (type_part, name) = without_array.rsplit_once(|c: char| c.is_whitespace() || c == '*')?;
    // A declaration is a type and a name: `int` alone names nothing.
    if type_part.trim().is_empty() {
        return None;
    }
    let valid = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 6.x: protocol is a u16.
    const NEW: &str = "name: inet_sock_set_state\nID: 2287\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;\n\
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n\
\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;\n\n\
print fmt: \"family=%s\", __print_symbolic(REC->family, { 2, \"AF_INET\" })\n";

    /// 4.19/5.4: protocol is a u8, and the addresses follow at odd offsets.
    const OLD: &str = "format:\n\
\tfield:__u8 protocol;\toffset:30;\tsize:1;\tsigned:0;\n\
\tfield:__u8 saddr[4];\toffset:31;\tsize:4;\tsigned:0;\n";

    fn field(name: &str, offset: u32, size: u32) -> FormatField {
        FormatField {
            name: name.into(),
            offset,
            size,
        }
    }

    #[test]
    fn reads_both_layouts() {
        let new = parse(NEW).unwrap();
        assert_eq!(new.len(), 6);
        assert_eq!(new[2], field("skaddr", 8, 8));
        assert_eq!(new[3], field("protocol", 30, 2));
        assert_eq!(new[5], field("daddr_v6", 56, 16));
        assert_eq!(
            parse(OLD).unwrap(),
            [field("protocol", 30, 1), field("saddr", 31, 4)]
        );
    }

    #[test]
    fn bad_input_is_an_error_naming_the_line() {
        for (text, line, needle) in [
            ("", 0, "no `field:` lines"),
            ("ID: 3\n", 0, "no `field:` lines"),
            (
                "\tfield:int x;\toffset:zz;\tsize:4;",
                1,
                "offset `zz` is not a number",
            ),
            (
                "a\n\tfield:int x;\tsize:4;",
                2,
                "field x has no offset or size",
            ),
            ("\tfield:int [4];\toffset:0;\tsize:4;", 1, "no field name"),
            ("\tfield:int 9x;\toffset:0;\tsize:4;", 1, "no field name"),
            ("\tfield:int x;\toffset 0;", 1, "is not `key:value`"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn never_panics_on_cut_or_garbled_text() {
        for cut in 0..NEW.len() {
            if NEW.is_char_boundary(cut) {
                let _ = parse(&NEW[..cut]);
            }
        }
        let _ = parse("field:;;;:::offset:4294967296;size:-1;\u{0}\u{ffff}");
    }
}
