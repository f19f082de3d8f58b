//! Debian cloud kernels: found with apt-cache, fetched with `apt-get download`, unpacked with
//! dpkg-deb, and cached outside the clone so later runs skip the network. Debian 11's come from
//! the suite bullseye, which scripts/bullseye-apt.sh adds (pinned) when the machine lacks it;
//! the kernel without BTF is built by scripts/build-nobtf-kernel.sh, which caches it itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use vmtest::plan::{newest_package, Arch, VmSpec};

/// The cache's root: $CONNTRACE_VM_CACHE, or /var/cache/conntrace-vm.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CONNTRACE_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/conntrace-vm"))
}

/// Returns the path of the vmlinuz for this VM, fetching (or building) it on a cache miss.
pub fn kernel(spec: &VmSpec, cache: &Path, root: &Path) -> Result<PathBuf, String> {
    let Some(regex) = spec.kernel.package_regex(spec.arch) else {
        return built_kernel(spec, root);
    };
    let dir = cache.join(format!("{}-{}", spec.arch.debian(), spec.kernel));
    let vmlinuz = dir.join("vmlinuz");
    if vmlinuz.is_file() {
        let package = std::fs::read_to_string(dir.join("package")).unwrap_or_default();
        eprintln!(
            "vmtest: {}: cached kernel {} ({})",
            spec.name(),
            vmlinuz.display(),
            package.trim()
        );
        return Ok(vmlinuz);
    }
    if spec.arch == Arch::Aarch64 {
        ensure_foreign_arch("arm64")?;
    }
    if spec.kernel.needs_bullseye() {
        script(root, "bullseye-apt.sh")?;
    }
    let package = match newest_package(&run(
        "apt-cache",
        &["search", "--names-only", &regex],
        None,
    )?) {
        Some(p) => p,
        None => {
            // The package lists may be missing or stale: refresh once and look again.
            run("apt-get", &["update", "-q"], None)?;
            newest_package(&run("apt-cache", &["search", "--names-only", &regex], None)?)
                .ok_or_else(|| format!("no Debian package matches {regex}; check /etc/apt/sources.list has bookworm and bookworm-updates/backports (bullseye and bullseye-security for 5.10)"))?
        }
    };
    eprintln!(
        "vmtest: {}: fetching {package}:{}",
        spec.name(),
        spec.arch.debian()
    );
    let work = cache.join(format!("tmp-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| {
        format!(
            "cannot create {}: {e}; set CONNTRACE_VM_CACHE to a writable directory",
            work.display()
        )
    })?;
    let mut package = package;
    let mut result = download_and_extract(&package, spec.arch, &work, &dir);
    if result.is_err() {
        // Stale package lists name versions the archive no longer has: refresh, pick again.
        run("apt-get", &["update", "-q"], None)?;
        if let Some(newer) = newest_package(&run(
            "apt-cache",
            &["search", "--names-only", &regex],
            None,
        )?) {
            package = newer;
        }
        result = download_and_extract(&package, spec.arch, &work, &dir);
    }
    let _ = std::fs::remove_dir_all(&work);
    result?;
    std::fs::write(dir.join("package"), format!("{package}\n"))
        .map_err(|e| format!("cannot write to {}: {e}", dir.display()))?;
    Ok(vmlinuz)
}

fn download_and_extract(package: &str, arch: Arch, work: &Path, dir: &Path) -> Result<(), String> {
    run(
        "apt-get",
        &["download", "-q", &format!("{package}:{}", arch.debian())],
        Some(work),
    )?;
    let deb = find_file(work, |n| n.ends_with(".deb")).ok_or_else(|| {
        format!(
            "apt-get download left no .deb for {package} in {}",
            work.display()
        )
    })?;
    let tree = work.join("tree");
    run(
        "dpkg-deb",
        &["-x", &deb.to_string_lossy(), &tree.to_string_lossy()],
        None,
    )?;
    let image = find_file(&tree.join("boot"), |n| n.starts_with("vmlinuz-"))
        .ok_or_else(|| format!("{package} has no boot/vmlinuz-*"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Copy then rename, so an interrupted run never leaves a truncated kernel as a cache hit.
    let partial = dir.join("vmlinuz.partial");
    std::fs::copy(&image, &partial)
        .map_err(|e| format!("cannot copy {} to the cache: {e}", image.display()))?;
    std::fs::rename(&partial, dir.join("vmlinuz"))
        .map_err(|e| format!("cannot rename {}: {e}", partial.display()))
}

/// The kernel scripts/build-nobtf-kernel.sh builds, or reuses when its config is unchanged.
fn built_kernel(spec: &VmSpec, root: &Path) -> Result<PathBuf, String> {
    if spec.arch != Arch::X86_64 {
        return Err(format!(
            "no recipe to build the {} kernel for {}",
            spec.kernel, spec.arch
        ));
    }
    eprintln!(
        "vmtest: {}: building or reusing the kernel (scripts/build-nobtf-kernel.sh)",
        spec.name()
    );
    let out = script(root, "build-nobtf-kernel.sh")?;
    let image = out
        .lines()
        .next_back()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .ok_or("scripts/build-nobtf-kernel.sh printed no kernel path")?;
    if !image.is_file() {
        return Err(format!(
            "scripts/build-nobtf-kernel.sh named {}, which is not a file",
            image.display()
        ));
    }
    Ok(image)
}

/// Runs one of scripts/ with bash: its progress on our stderr, its stdout returned.
fn script(root: &Path, name: &str) -> Result<String, String> {
    let path = root.join("scripts").join(name);
    let out = Command::new("bash")
        .arg(&path)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run bash {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/{name} failed ({}); its messages are above",
            out.status
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Foreign-architecture packages need dpkg to know the architecture, once per machine.
fn ensure_foreign_arch(arch: &str) -> Result<(), String> {
    let native = run("dpkg", &["--print-architecture"], None)?;
    let foreign = run("dpkg", &["--print-foreign-architectures"], None)?;
    if native.trim() == arch || foreign.split_whitespace().any(|a| a == arch) {
        return Ok(());
    }
    eprintln!("vmtest: adding dpkg architecture {arch} and updating the package lists");
    run("dpkg", &["--add-architecture", arch], None)?;
    run("apt-get", &["update", "-q"], None).map(|_| ())
}

fn find_file(dir: &Path, pick: impl Fn(&str) -> bool) -> Option<PathBuf> {
    let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&pick))
        .collect();
    hits.sort();
    hits.pop()
}

/// Runs a command to completion; its stdout on success, a message with its stderr otherwise.
pub fn run(program: &str, args: &[&str], dir: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
