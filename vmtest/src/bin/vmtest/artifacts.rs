//! The static binaries for the guest, and the initramfs that carries them.

use std::path::{Path, PathBuf};
use std::process::Command;
use vmtest::cpio::CpioWriter;
use vmtest::plan::Arch;

/// The workspace root (this crate lives in `<root>/vmtest`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

pub struct GuestBinaries {
    pub conntrace: PathBuf,
    pub init: PathBuf,
}

/// Builds conntrace and the init, static, for `arch`.
pub fn build(root: &Path, arch: Arch) -> Result<GuestBinaries, String> {
    let target = arch.rust_target();
    eprintln!("vmtest: building conntrace and ctvm-init for {target}");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--target",
            target,
            "-p",
            "conntrace",
            "-p",
            "vmtest-init",
            "--bin",
            "conntrace",
            "--bin",
            "ctvm-init",
        ])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build for {target} failed ({status}); see its output above"
        ));
    }
    let dir = target_dir(root).join(target).join("release");
    // A prebuilt conntrace (another branch's, or a stand-in) can be tested without rebuilding.
    let conntrace = match std::env::var_os("CONNTRACE_VM_CONNTRACE") {
        Some(path) => {
            eprintln!(
                "vmtest: using conntrace from CONNTRACE_VM_CONNTRACE={}",
                PathBuf::from(&path).display()
            );
            PathBuf::from(path)
        }
        None => dir.join("conntrace"),
    };
    Ok(GuestBinaries {
        conntrace,
        init: dir.join("ctvm-init"),
    })
}

/// Writes the initramfs: /init, /bin/conntrace, the mount points, and /dev/console so the
/// init has a console before devtmpfs is mounted.
pub fn write_initramfs(bins: &GuestBinaries, out: &Path) -> Result<(), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let (init, conntrace) = (read(&bins.init)?, read(&bins.conntrace)?);
    let mut w = CpioWriter::new();
    let err = |e: vmtest::cpio::CpioError| e.to_string();
    for dir in ["bin", "dev", "proc", "sys", "tmp"] {
        w.dir(dir, 0o755).map_err(err)?;
    }
    w.char_dev("dev/console", 0o600, 5, 1).map_err(err)?;
    w.file("init", 0o755, &init).map_err(err)?;
    w.file("bin/conntrace", 0o755, &conntrace).map_err(err)?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(out, w.finish()).map_err(|e| format!("cannot write {}: {e}", out.display()))
}
