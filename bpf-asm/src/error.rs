//! Assembler errors: where (file, line, column), what, and the source line with a caret.

use std::fmt;

/// Where a line of assembly came from, and, for lines produced by a macro, where that macro
/// was expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// The text the assembler parsed (for macro lines: after substitution).
    pub text: String,
    /// `(file, line, macro name)` of each expansion that led here, innermost first; for a
    /// repetition the name starts with its directive (`.irp repetition 3 (\off = 8)`).
    pub expanded_from: Vec<(String, usize, String)>,
}

/// One error at one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub origin: Origin,
    /// 1-based, counted in characters of `origin.text`.
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    pub fn new(origin: &Origin, column: usize, message: impl Into<String>) -> Self {
        Diagnostic {
            origin: origin.clone(),
            column: column.max(1),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        writeln!(
            f,
            "{}:{}:{}: error: {}",
            o.file, o.line, self.column, self.message
        )?;
        // Tabs are kept in the caret line so the caret lines up under the source text.
        let pad: String = o
            .text
            .chars()
            .take(self.column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        writeln!(f, "{}", o.text)?;
        write!(f, "{pad}^")?;
        for (file, line, name) in &o.expanded_from {
            if name.starts_with('.') {
                // `.rept repetition 2`, `.irp repetition 3 (\off = 8)`.
                write!(f, "\n{file}:{line}: note: in {name}")?;
            } else {
                write!(f, "\n{file}:{line}: note: in expansion of macro `{name}`")?;
            }
        }
        Ok(())
    }
}

/// Every error found in one assembly (the assembler goes on after an error where it can, so
/// one run reports as many mistakes as possible), or a failure to write the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub diagnostics: Vec<Diagnostic>,
    /// Errors with no source position (e.g. the ELF writer failed).
    pub other: Option<String>,
}

impl Error {
    pub fn other(message: impl Into<String>) -> Self {
        Error {
            diagnostics: Vec::new(),
            other: Some(message.into()),
        }
    }
}

impl From<Vec<Diagnostic>> for Error {
    fn from(diagnostics: Vec<Diagnostic>) -> Self {
        Error {
            diagnostics,
            other: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for d in &self.diagnostics {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, "{d}")?;
        }
        if let Some(other) = &self.other {
            if !first {
                writeln!(f)?;
            }
            write!(f, "error: {other}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
