//! Ties the pieces together: parse, load, attach, read, print, clean up.

/// The program's entry point; returns the exit status.
pub fn main() -> i32 {
    0
}
