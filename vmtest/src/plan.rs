//! What to boot: the runner's command line, the CI matrix, and each VM's kernel command line.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelSeries {
    V6_1,
    V6_12,
    /// Debian 11's cloud kernel (suite bullseye).
    V5_10,
    /// Debian 11's linux-source-5.10 built here from tinyconfig, without BTF (x86_64 only;
    /// scripts/build-nobtf-kernel.sh).
    V5_10NoBtf,
}

/// A run of conntrace beyond one per backend: a forced fallback, a fault, or leftovers after
/// every way of ending. The init runs them in the order given (vmtest/init/src/plan.rs has
/// the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The kprobe backend through tracefs kprobe_events (CONNTRACE_KPROBE_METHOD=tracefs).
    TracefsMethod,
    /// The tracepoint backend with tracefs unmounted.
    NoTracefs,
    /// SIGINT, SIGTERM, SIGPIPE, -d, -n and a write error with the kprobe backend (through
    /// kprobe_events, so there are entries to leave behind).
    CleanupKprobe,
    /// The same with the tracepoint backend.
    CleanupTracepoint,
    /// The kprobe backend with CPU 1 offline.
    CpuOffline,
    /// conntrace as uid 1000 without capabilities.
    Unprivileged,
    /// The kprobe backend with `--btf none`.
    NoBtf,
    /// Accepts by threads blocked before conntrace started, forty accepts and forty connects
    /// at once, on both backends; then the kprobe fallback with its misses forced.
    Storm,
}

impl Pass {
    /// The name on the kernel command line.
    pub fn token(self) -> &'static str {
        match self {
            Pass::TracefsMethod => "tracefs-method",
            Pass::NoTracefs => "no-tracefs",
            Pass::CleanupKprobe => "cleanup-kprobe",
            Pass::CleanupTracepoint => "cleanup-tracepoint",
            Pass::CpuOffline => "cpu-offline",
            Pass::Unprivileged => "unprivileged",
            Pass::NoBtf => "nobtf",
            Pass::Storm => "storm",
        }
    }
}

/// Every pass, in the order a VM runs them.
const ALL_PASSES: [Pass; 8] = [
    Pass::TracefsMethod,
    Pass::NoTracefs,
    Pass::CleanupKprobe,
    Pass::CleanupTracepoint,
    Pass::CpuOffline,
    Pass::Unprivileged,
    Pass::NoBtf,
    Pass::Storm,
];

/// One VM boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub arch: Arch,
    pub kernel: KernelSeries,
    pub ipv6: bool,
    pub backends: Vec<String>,
    pub passes: Vec<Pass>,
}

/// What the runner was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan {
    pub vms: Vec<VmSpec>,
}

impl Arch {
    /// Rust's target triple for the static binaries.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    /// Debian's architecture name.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    pub fn qemu_binary(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// Machine arguments; TCG only (KVM hangs on this host).
    pub fn qemu_machine_args(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &["-accel", "tcg"],
            Arch::Aarch64 => &["-M", "virt", "-cpu", "max", "-accel", "tcg"],
        }
    }

    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        })
    }
}

impl KernelSeries {
    /// The `apt-cache search` regex for the unsigned cloud kernel images of this series; None
    /// for a kernel built here rather than downloaded.
    pub fn package_regex(self, arch: Arch) -> Option<String> {
        let version = match self {
            KernelSeries::V6_1 => r"6\.1\.0-[0-9]+",
            KernelSeries::V6_12 => r"6\.12\.[0-9]+\+deb[0-9]+",
            KernelSeries::V5_10 => r"5\.10\.0-[0-9]+",
            KernelSeries::V5_10NoBtf => return None,
        };
        Some(format!(
            "^linux-image-{version}-cloud-{}-unsigned$",
            arch.debian()
        ))
    }

    /// Debian 11's packages are in the suite bullseye, which the machine's apt sources may
    /// not have yet (scripts/bullseye-apt.sh adds it).
    pub fn needs_bullseye(self) -> bool {
        matches!(self, KernelSeries::V5_10 | KernelSeries::V5_10NoBtf)
    }

    /// Whether the kernel has /sys/kernel/btf/vmlinux: every Debian kernel does, the one
    /// built here must not.
    pub fn has_btf(self) -> bool {
        self != KernelSeries::V5_10NoBtf
    }

    /// Whether it has the BPF ring buffer (5.8+): then conntrace's records go through it.
    /// Every series here does; one before 5.8 would not.
    pub fn has_bpf_ring_buffer(self) -> bool {
        match self {
            KernelSeries::V6_1
            | KernelSeries::V6_12
            | KernelSeries::V5_10
            | KernelSeries::V5_10NoBtf => true,
        }
    }

    /// Whether its tp_btf programs may use socket-local storage (5.11+ with BTF): then
    /// conntrace's state program is the tp_btf one.
    pub fn has_tracing_sk_storage(self) -> bool {
        matches!(self, KernelSeries::V6_1 | KernelSeries::V6_12)
    }
}

impl fmt::Display for KernelSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KernelSeries::V6_1 => "6.1",
            KernelSeries::V6_12 => "6.12",
            KernelSeries::V5_10 => "5.10",
            KernelSeries::V5_10NoBtf => "5.10-nobtf",
        })
    }
}

impl VmSpec {
    /// A short name for logs and directories: `x86_64-6.1`, `x86_64-6.1-noipv6`.
    pub fn name(&self) -> String {
        format!(
            "{}-{}{}",
            self.arch,
            self.kernel,
            if self.ipv6 { "" } else { "-noipv6" }
        )
    }

    /// The kernel command line: console, no reboot loops, quiet, and the init's plan.
    pub fn kernel_cmdline(&self) -> String {
        let passes: Vec<&str> = self.passes.iter().map(|p| p.token()).collect();
        let mut line = format!(
            "console={} panic=-1 quiet loglevel=4 ct.backends={} ct.passes={} ct.ipv6={}",
            self.arch.console(),
            self.backends.join(","),
            passes.join(","),
            if self.ipv6 { 1 } else { 0 }
        );
        if !self.ipv6 {
            line.push_str(" ipv6.disable=1");
        }
        line
    }
}

pub const USAGE: &str =
    "usage: vmtest [--arch x86_64|aarch64] [--kernel 6.1|6.12|5.10|5.10-nobtf] \
[--no-ipv6] [--backends kprobe,tracepoint] [--no-passes] | --all | --all-without-510\n\
  Boots Debian cloud kernels under qemu with conntrace in an initramfs and checks its events.\n\
  Besides one run per backend, each VM runs fault passes: kprobes through tracefs\n\
  kprobe_events, tracefs unmounted, cleanup after every way of ending, CPU 1 offline, an\n\
  unprivileged user, `--btf none`, and a storm of blocked and simultaneous accepts and\n\
  connects (--no-passes skips them).\n\
  --all boots the CI matrix: x86_64 6.1, x86_64 6.12, aarch64 6.1, x86_64 6.1 without IPv6\n\
  (CPU offline only on the first, tracepoint cleanup only on x86_64; the no-IPv6 boot runs\n\
  the tracefs, unprivileged and no-BTF passes only),\n\
  and Debian 11's 5.10: x86_64 5.10, aarch64 5.10 and x86_64 5.10-nobtf, a kernel built\n\
  here from linux-source-5.10 and tinyconfig without BTF (scripts/build-nobtf-kernel.sh; its\n\
  build takes minutes once, then it is cached). --all-without-510 leaves those three out.\n\
  Kernels are cached in $CONNTRACE_VM_CACHE (default /var/cache/conntrace-vm), the built one\n\
  in $CONNTRACE_CACHE/kernels (default /var/cache/conntrace/kernels).";

/// Whether `--all` boots the 5.10 kernels too: yes, since conntrace runs on 5.10 (both Debian
/// 11 kernels and the one built without BTF). `--all-with-510` is the same matrix.
pub const ALL_INCLUDES_510: bool = true;

const DEFAULT_BACKENDS: [&str; 2] = ["kprobe", "tracepoint"];

/// Parses the runner's arguments (without argv[0]).
pub fn parse_args(args: &[String]) -> Result<RunPlan, String> {
    let mut arch = Arch::X86_64;
    let mut kernel = KernelSeries::V6_1;
    let mut ipv6 = true;
    let mut backends: Vec<String> = DEFAULT_BACKENDS.iter().map(|s| s.to_string()).collect();
    // None: one VM; Some(false): the CI matrix; Some(true): the CI matrix and the 5.10 VMs.
    let mut all: Option<bool> = None;
    let mut passes = true;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--arch" => {
                arch = match value("--arch")?.as_str() {
                    "x86_64" => Arch::X86_64,
                    "aarch64" => Arch::Aarch64,
                    other => {
                        return Err(format!("unknown --arch {other:?}: use x86_64 or aarch64"))
                    }
                }
            }
            "--kernel" => {
                kernel = match value("--kernel")?.as_str() {
                    "6.1" => KernelSeries::V6_1,
                    "6.12" => KernelSeries::V6_12,
                    "5.10" => KernelSeries::V5_10,
                    "5.10-nobtf" => KernelSeries::V5_10NoBtf,
                    other => {
                        return Err(format!(
                            "unknown --kernel {other:?}: use 6.1, 6.12, 5.10 or 5.10-nobtf"
                        ))
                    }
                }
            }
            "--no-ipv6" => ipv6 = false,
            "--backends" => {
                let list = value("--backends")?;
                backends = list
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if let Some(bad) = backends
                    .iter()
                    .find(|b| !DEFAULT_BACKENDS.contains(&b.as_str()))
                {
                    return Err(format!(
                        "unknown backend {bad:?} in --backends: use kprobe and/or tracepoint"
                    ));
                }
                if backends.is_empty() {
                    return Err("--backends needs at least one of kprobe,tracepoint".into());
                }
            }
            "--all" => all = Some(ALL_INCLUDES_510),
            "--all-with-510" => all = Some(true),
            "--all-without-510" => all = Some(false),
            "--no-passes" => passes = false,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if arch == Arch::Aarch64 && kernel == KernelSeries::V6_12 {
        return Err(
            "aarch64 is only set up with the 6.1 and 5.10 kernels: use --kernel 6.1 or 5.10".into(),
        );
    }
    if arch == Arch::Aarch64 && kernel == KernelSeries::V5_10NoBtf {
        return Err("--kernel 5.10-nobtf is built for x86_64 only: use --arch x86_64".into());
    }
    let pick = |wanted: &[Pass]| -> Vec<Pass> {
        if passes {
            wanted.to_vec()
        } else {
            Vec::new()
        }
    };
    let vms = if let Some(with_510) = all {
        let vm = |arch, kernel, ipv6, passes| {
            without_btf_limits(VmSpec {
                arch,
                kernel,
                ipv6,
                backends: backends.clone(),
                passes,
            })
        };
        let without = |skip: &[Pass]| -> Vec<Pass> {
            ALL_PASSES
                .into_iter()
                .filter(|p| !skip.contains(p))
                .collect()
        };
        let mut vms = vec![
            vm(Arch::X86_64, KernelSeries::V6_1, true, pick(&ALL_PASSES)),
            vm(
                Arch::X86_64,
                KernelSeries::V6_12,
                true,
                pick(&without(&[Pass::CpuOffline])),
            ),
            // Attaching takes seconds under aarch64 emulation: the tracepoint cleanup cases,
            // already run on both x86_64 kernels, would add half a minute.
            vm(
                Arch::Aarch64,
                KernelSeries::V6_1,
                true,
                pick(&without(&[Pass::CpuOffline, Pass::CleanupTracepoint])),
            ),
            vm(
                Arch::X86_64,
                KernelSeries::V6_1,
                false,
                pick(&[Pass::TracefsMethod, Pass::Unprivileged, Pass::NoBtf]),
            ),
        ];
        if with_510 {
            // Passes as on 6.12 and aarch64 6.1; the no-BTF kernel skips `--btf none`, which
            // changes nothing where there is no BTF to ignore.
            vms.extend([
                vm(
                    Arch::X86_64,
                    KernelSeries::V5_10,
                    true,
                    pick(&without(&[Pass::CpuOffline])),
                ),
                vm(
                    Arch::Aarch64,
                    KernelSeries::V5_10,
                    true,
                    pick(&without(&[Pass::CpuOffline, Pass::CleanupTracepoint])),
                ),
                vm(
                    Arch::X86_64,
                    KernelSeries::V5_10NoBtf,
                    true,
                    pick(&without(&[Pass::CpuOffline, Pass::NoBtf])),
                ),
            ]);
        }
        vms
    } else {
        vec![without_btf_limits(VmSpec {
            arch,
            kernel,
            ipv6,
            backends,
            passes: pick(&ALL_PASSES),
        })]
    };
    Ok(RunPlan { vms })
}

/// A kernel without BTF takes the kprobe backend only: the tracepoint backend's socket walk
/// needs BTF, and conntrace refuses it there (tests/nobtf.rs holds that refusal).
fn without_btf_limits(mut vm: VmSpec) -> VmSpec {
    if !vm.kernel.has_btf() {
        vm.backends.retain(|b| b == "kprobe");
        vm.passes
            .retain(|p| !matches!(p, Pass::NoTracefs | Pass::CleanupTracepoint));
    }
    vm
}

/// Picks the newest package name from `apt-cache search --names-only` output
/// ("name - description" per line), comparing the version parts numerically.
pub fn newest_package(search_output: &str) -> Option<String> {
    search_output
        .lines()
        .filter_map(|l| l.split(" - ").next())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .max_by_key(|name| version_key(name))
        .map(str::to_string)
}

/// The digit runs of a name as numbers: "linux-image-6.12.117+deb12-..." -> [6, 12, 117, 12].
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(u64::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let plan = parse_args(&[]).unwrap();
        assert_eq!(plan.vms.len(), 1);
        assert_eq!(plan.vms[0].name(), "x86_64-6.1");
        assert_eq!(plan.vms[0].backends, vec!["kprobe", "tracepoint"]);
        let plan = parse_args(&args("--arch aarch64 --no-ipv6 --backends tracepoint")).unwrap();
        let vm = &plan.vms[0];
        assert_eq!(vm.name(), "aarch64-6.1-noipv6");
        assert_eq!(
            vm.kernel_cmdline(),
            "console=ttyAMA0 panic=-1 quiet loglevel=4 ct.backends=tracepoint \
             ct.passes=tracefs-method,no-tracefs,cleanup-kprobe,cleanup-tracepoint,cpu-offline,unprivileged,nobtf,storm \
             ct.ipv6=0 ipv6.disable=1"
        );
        let plan = parse_args(&args("--no-passes")).unwrap();
        assert!(plan.vms[0].kernel_cmdline().contains(" ct.passes= "));
    }

    #[test]
    fn all_is_the_ci_matrix() {
        let vms = parse_args(&args("--all")).unwrap().vms;
        let names: Vec<String> = vms.iter().map(VmSpec::name).collect();
        // One VM takes a CPU offline; every VM forces the tracefs method, runs unprivileged
        // and without BTF.
        let with = |p: Pass| vms[..4].iter().filter(|v| v.passes.contains(&p)).count();
        assert_eq!(with(Pass::CpuOffline), 1);
        assert_eq!(with(Pass::TracefsMethod), 4);
        assert_eq!(with(Pass::Unprivileged), 4);
        assert_eq!(with(Pass::CleanupKprobe), 3);
        assert_eq!(with(Pass::CleanupTracepoint), 2);
        assert_eq!(with(Pass::NoBtf), 4);
        let none = parse_args(&args("--all --no-passes")).unwrap().vms;
        assert!(none.iter().all(|v| v.passes.is_empty()));
        let ci = [
            "x86_64-6.1",
            "x86_64-6.12",
            "aarch64-6.1",
            "x86_64-6.1-noipv6",
        ];
        let with_510 = ["x86_64-5.10", "aarch64-5.10", "x86_64-5.10-nobtf"];
        if ALL_INCLUDES_510 {
            assert_eq!(names, [&ci[..], &with_510[..]].concat());
        } else {
            assert_eq!(names, ci);
        }
    }

    #[test]
    fn all_with_510_adds_the_5_10_kernels() {
        let vms = parse_args(&args("--all-with-510")).unwrap().vms;
        let names: Vec<String> = vms.iter().map(VmSpec::name).collect();
        assert_eq!(
            names,
            [
                "x86_64-6.1",
                "x86_64-6.12",
                "aarch64-6.1",
                "x86_64-6.1-noipv6",
                "x86_64-5.10",
                "aarch64-5.10",
                "x86_64-5.10-nobtf"
            ]
        );
        // The CI matrix itself is unchanged by the flag.
        assert_eq!(vms[..4], parse_args(&args("--all")).unwrap().vms[..4]);
        let nobtf = &vms[6];
        assert!(!nobtf.kernel.has_btf());
        assert!(!nobtf.passes.contains(&Pass::NoBtf));
        assert!(!nobtf.passes.contains(&Pass::CpuOffline));
        assert!(vms[5].passes.iter().all(|p| vms[2].passes.contains(p)));
        let none = parse_args(&args("--all-with-510 --no-passes")).unwrap().vms;
        assert!(none.iter().all(|v| v.passes.is_empty()));
    }

    #[test]
    fn one_5_10_vm() {
        for (a, name, btf) in [
            ("--kernel 5.10", "x86_64-5.10", true),
            ("--arch aarch64 --kernel 5.10", "aarch64-5.10", true),
            ("--kernel 5.10-nobtf", "x86_64-5.10-nobtf", false),
        ] {
            let vms = parse_args(&args(a)).unwrap().vms;
            assert_eq!(vms.len(), 1, "{a}");
            assert_eq!(vms[0].name(), name);
            assert_eq!(vms[0].kernel.has_btf(), btf);
            assert!(vms[0].kernel.needs_bullseye());
            if btf {
                assert_eq!(vms[0].passes, ALL_PASSES, "{a}");
                assert_eq!(vms[0].backends, ["kprobe", "tracepoint"], "{a}");
            } else {
                // No BTF: no tracepoint backend, so none of its passes.
                let kprobe_only: Vec<Pass> = ALL_PASSES
                    .into_iter()
                    .filter(|p| !matches!(p, Pass::NoTracefs | Pass::CleanupTracepoint))
                    .collect();
                assert_eq!(vms[0].passes, kprobe_only, "{a}");
                assert_eq!(vms[0].backends, ["kprobe"], "{a}");
            }
        }
        assert!(!KernelSeries::V6_1.needs_bullseye());
    }

    #[test]
    fn bad_arguments_say_what_to_use() {
        for (a, needle) in [
            ("--arch riscv", "use x86_64 or aarch64"),
            ("--kernel 4.19", "use 6.1, 6.12, 5.10 or 5.10-nobtf"),
            ("--kernel 5.10-btf", "use 6.1, 6.12, 5.10 or 5.10-nobtf"),
            ("--backends kprobe,uprobe", "unknown backend \"uprobe\""),
            ("--backends ,", "at least one"),
            ("--arch", "--arch needs a value"),
            ("--frob", "unknown argument"),
            (
                "--arch aarch64 --kernel 6.12",
                "only set up with the 6.1 and 5.10",
            ),
            ("--arch aarch64 --kernel 5.10-nobtf", "x86_64 only"),
        ] {
            let err = parse_args(&args(a)).unwrap_err();
            assert!(err.contains(needle), "{a}: {err}");
        }
    }

    #[test]
    fn picks_the_newest_kernel_package() {
        let out = "linux-image-6.1.0-9-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud\n\
                   linux-image-6.1.0-56-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud\n\
                   linux-image-6.1.0-47-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud\n";
        assert_eq!(
            newest_package(out).as_deref(),
            Some("linux-image-6.1.0-56-cloud-amd64-unsigned")
        );
        let out = "linux-image-6.12.9+deb12-cloud-amd64-unsigned - x\nlinux-image-6.12.117+deb12-cloud-amd64-unsigned - x\n";
        assert_eq!(
            newest_package(out).as_deref(),
            Some("linux-image-6.12.117+deb12-cloud-amd64-unsigned")
        );
        assert_eq!(newest_package(""), None);
    }

    #[test]
    fn package_regexes_match_debian_names() {
        assert_eq!(
            KernelSeries::V6_1.package_regex(Arch::Aarch64).as_deref(),
            Some(r"^linux-image-6\.1\.0-[0-9]+-cloud-arm64-unsigned$")
        );
        assert!(KernelSeries::V6_12
            .package_regex(Arch::X86_64)
            .is_some_and(|r| r.contains(r"6\.12\.")));
        assert_eq!(
            KernelSeries::V5_10.package_regex(Arch::X86_64).as_deref(),
            Some(r"^linux-image-5\.10\.0-[0-9]+-cloud-amd64-unsigned$")
        );
        // Built here, not downloaded.
        assert_eq!(KernelSeries::V5_10NoBtf.package_regex(Arch::X86_64), None);
    }
}
