//! Console lines for the host to parse. The vocabulary is documented (and parsed) in
//! vmtest/src/console.rs; keep the two in step.

use std::io::Write;

/// Prints `CTVM <tag> <text>` as one write, so a line is not split by our own output.
pub fn say(tag: &str, text: &str) {
    let line = if text.is_empty() {
        format!("CTVM {tag}\n")
    } else {
        format!("CTVM {tag} {text}\n")
    };
    let mut out = std::io::stdout().lock();
    // Nothing useful can be done if the console is gone; the host then sees a cut-off run.
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// `code=N` or `signal=N`, the form the host expects in EXIT and CHECK_EXIT.
pub fn status_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("code={code}"),
        (None, Some(sig)) => format!("signal={sig}"),
        (None, None) => "unknown".to_string(),
    }
}

/// Keeps a line on one console line: control characters become `\xNN`.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\x{:02x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}
