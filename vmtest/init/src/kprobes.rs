//! Lists tracefs `kprobe_events`, to prove conntrace leaves no kprobe behind.

use crate::report::{one_line, say};

/// Where the init mounts tracefs for its own use (see main.rs).
pub const TRACEFS: &str = "/sys/kernel/tracing";

pub fn report(tag: &str, backend: &str) {
    let path = format!("{TRACEFS}/kprobe_events");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                say(tag, &format!("{backend} entry {}", one_line(line)));
            }
            say(tag, &format!("{backend} end"));
        }
        Err(e) => say(
            tag,
            &format!("{backend} unavailable cannot read {path}: {e}"),
        ),
    }
}
