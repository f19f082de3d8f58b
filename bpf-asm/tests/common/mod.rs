//! Shared by the integration tests: finding the llvm oracle tools.

use std::process::Command;

/// The llvm tool `name` if it runs here. When it does not: with BPF_ASM_REQUIRE_LLVM=1 (CI)
/// the test fails; otherwise it says plainly that only the checked-in expectations were used.
pub fn llvm_tool(name: &str) -> Option<&str> {
    let runs = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return Some(name);
    }
    if std::env::var("BPF_ASM_REQUIRE_LLVM").as_deref() == Ok("1") {
        panic!("{name} is not installed but BPF_ASM_REQUIRE_LLVM=1: install llvm-19 (Debian package llvm-19)");
    }
    eprintln!(
        "NOTE: {name} not found: this live comparison did NOT run; only the checked-in expected bytes were compared. \
         Install llvm-19 (or set BPF_ASM_REQUIRE_LLVM=1 to make this a failure)."
    );
    None
}

/// A scratch file path unique to this test process.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bpf-asm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir.join(name)
}
