//! The layering rule, checked: `kernel` imports nothing of `session` or `app`, `session`
//! nothing of `app` (see the crate docs). Reads the sources, so a new upward import fails
//! here naming its file and line, before it can become a cycle.

use std::fs;
use std::path::{Path, PathBuf};

/// The layers in order, bottom first; each may name only those before it.
const LAYERS: [&str; 3] = ["kernel", "session", "app"];

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// How many modules deep `file` is below its layer's root (`kernel/abi.rs` and
/// `kernel/sys/mod.rs` are 1): the most `super::` steps that stay inside the layer.
fn depth_below_layer(layer_dir: &Path, file: &Path) -> usize {
    let rel = file.strip_prefix(layer_dir).unwrap();
    let parts = rel.components().count();
    if file.file_name().is_some_and(|n| n == "mod.rs") {
        parts - 1
    } else {
        parts
    }
}

/// The upward references in one line of `file`: `crate::<higher layer>`, or a run of
/// `super::` that climbs out of the layer.
fn upward_refs(line: &str, higher: &[&str], depth: usize) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    for layer in higher {
        if code.contains(&format!("crate::{layer}")) {
            found.push(format!("crate::{layer}"));
        }
    }
    let mut rest = code;
    while let Some(i) = rest.find("super::") {
        let run = rest.as_bytes()[i..]
            .chunks(7)
            .take_while(|c| *c == b"super::")
            .count();
        if run > depth {
            found.push(format!("{} super:: (leaves the layer)", run));
        }
        rest = &rest[i + run * 7..];
    }
    found
}

/// Every upward reference in the layer `layer`'s files, as "file:line: what".
fn violations(src: &Path, layer: usize) -> Vec<String> {
    let dir = src.join(LAYERS[layer]);
    let higher = &LAYERS[layer + 1..];
    let mut found = Vec::new();
    for file in rust_files(&dir) {
        let depth = depth_below_layer(&dir, &file);
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for what in upward_refs(line, higher, depth) {
                let shown = file.strip_prefix(src.parent().unwrap()).unwrap_or(&file);
                found.push(format!("{}:{}: {what}", shown.display(), n + 1));
            }
        }
    }
    found
}

#[test]
fn no_layer_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for layer in 0..LAYERS.len() - 1 {
        found.extend(violations(&src, layer));
    }
    assert!(
        found.is_empty(),
        "imports running upwards (kernel < session < app):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_check_sees_what_it_must() {
    let higher = &LAYERS[1..];
    assert_eq!(
        upward_refs("use crate::session::event::Kind;", higher, 1),
        ["crate::session"]
    );
    assert_eq!(
        upward_refs("    let x = crate::app::cli::parse(a);", higher, 2),
        ["crate::app"]
    );
    // Inside the layer: fine. Two steps from a file one deep: out of it.
    assert!(upward_refs("use super::super::sys::Sys;", higher, 2).is_empty());
    assert_eq!(
        upward_refs("use super::super::session;", higher, 1),
        ["2 super:: (leaves the layer)"]
    );
    // Comments do not import.
    assert!(upward_refs("// unlike crate::session, this ...", higher, 1).is_empty());
    assert_eq!(
        depth_below_layer(Path::new("src/kernel"), Path::new("src/kernel/sys/mod.rs")),
        1
    );
    assert_eq!(
        depth_below_layer(
            Path::new("src/kernel"),
            Path::new("src/kernel/sys/fake/ring.rs")
        ),
        3
    );
}
