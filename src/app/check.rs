//! `conntrace check`: what this kernel offers and what conntrace will use, for a person at a
//! rescue shell. Every line is a probe of the real thing (a map created, the programs loaded
//! by the verifier), not a guess from version numbers.

use std::path::Path;

use crate::app::cli::CheckOptions;
use crate::kernel::abi::BPF_MAP_TYPE_ARRAY;
use crate::kernel::attach::{self, KprobeSupport};
use crate::kernel::load::{self, FieldResolver, LoadOptions, PermissionContext, ProgramFilter};
use crate::kernel::probe::Probed;
use crate::kernel::probe_object::{self, ProbeObject};
use crate::kernel::ring;
use crate::kernel::sys::{host, MapCreate, Sys};
use crate::session::backend::{self, Backend, StateHook};
use crate::session::capacity::{Capacity, StateMaps};
use crate::session::embedded;
use crate::session::features::{self, Feature, Features};
use crate::session::fields::{self, FieldSource};
use crate::session::options::{BackendChoice, BtfSource, DEFAULT_PAGES};
use crate::session::rings::{self, RingKind};

/// Prints the report; returns 0 when tracing will work, 1 when not.
pub fn run(sys: &dyn Sys, opts: &CheckOptions) -> i32 {
    let report = check(sys, opts);
    print!("{}", report.text);
    match &report.problem {
        None => {
            println!(
                "result: tracing will work ({} backend)",
                report.backend.map_or("?", Backend::name)
            );
            0
        }
        Some(why) => {
            println!("result: tracing will NOT work: {why}");
            1
        }
    }
}

struct Report {
    text: String,
    backend: Option<Backend>,
    /// The first thing that stops tracing, if any.
    problem: Option<String>,
}

impl Report {
    fn line(&mut self, what: &str, value: impl AsRef<str>) {
        self.text
            .push_str(&format!("{what:<14} {}\n", value.as_ref()));
    }

    fn fail(&mut self, why: String) {
        if self.problem.is_none() {
            self.problem = Some(why);
        }
    }
}

fn check(sys: &dyn Sys, opts: &CheckOptions) -> Report {
    let mut r = Report {
        text: String::new(),
        backend: None,
        problem: None,
    };
    r.line("kernel", kernel_release());

    // Opened first: the socket-storage probe attaches by the kernel's BTF id of the state
    // tracepoint. Its errors are reported where the field offsets are.
    let fields = FieldSource::open(sys, &opts.btf);
    let facts = fields
        .as_ref()
        .map(FieldSource::kernel_facts)
        .unwrap_or_default();
    let features = Features::with_btf(sys, facts);
    let privileged = features::bpf_privileged();
    // Before the first map, as tracing does: kernels before 5.11 charge maps to the limit.
    let memlock = features.prepare_memlock();
    r.line("memlock", memlock.describe());
    let permission = memlock.permission_context(privileged);

    match sys.map_create(&MapCreate {
        name: "ct_check",
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        flags: 0,
        btf: None,
    }) {
        Ok(_) => r.line("bpf()", "allowed"),
        Err(e) => {
            r.line("bpf()", format!("refused: {e}"));
            let why = match (&permission, e.errno) {
                (PermissionContext::Privileged { memlock }, libc::EPERM) => format!(
                    "bpf() is refused ({e}) although conntrace has the privileges: \
                     RLIMIT_MEMLOCK, {memlock}"
                ),
                _ => format!("bpf() is refused ({e}): needs root or CAP_BPF+CAP_PERFMON"),
            };
            r.fail(why);
        }
    }

    for (feature, probed) in features.all() {
        r.line("feature", describe_feature(feature, probed));
    }

    let ring = match rings::ring_kind(features.has(Feature::RingBuf)) {
        Ok(ring) => ring,
        Err(e) => {
            r.fail(e);
            return r;
        }
    };
    match ring::online_cpus(sys) {
        Ok(cpus) => r.line(
            "rings",
            match ring {
                RingKind::Bpf => format!("the BPF ring buffer, shared by {} CPUs", cpus.len()),
                RingKind::Perf => format!("one perf ring per online CPU: {} CPUs", cpus.len()),
            },
        ),
        Err(e) => {
            r.line("rings", format!("unknown: {e}"));
            r.fail(e.to_string());
        }
    }

    let support = attach::kprobe_support(sys);
    r.line(
        "kprobes",
        match support {
            KprobeSupport::Pmu { perf_type, .. } => format!("kprobe PMU (perf type {perf_type})"),
            KprobeSupport::TracefsOnly => "tracefs kprobe_events".to_string(),
            KprobeSupport::None => "none (no kprobe PMU, no kprobe_events)".to_string(),
        },
    );

    for tp in [
        "sock/inet_sock_set_state",
        "syscalls/sys_enter_connect",
        "syscalls/sys_exit_connect",
        "syscalls/sys_exit_accept4",
        "syscalls/sys_exit_accept",
    ] {
        let (category, name) = tp.split_once('/').unwrap_or(("", tp));
        let state = match attach::tracefs_root(sys) {
            Ok(root)
                if sys
                    .read_file(&root.join("events").join(category).join(name).join("id"))
                    .is_ok() =>
            {
                "present"
            }
            Ok(_) => "missing",
            Err(_) => "unknown (no tracefs)",
        };
        r.line("tracepoint", format!("{tp}: {state}"));
    }

    let ipv6 = Path::new("/proc/sys/net/ipv6").exists();
    r.line(
        "IPv6",
        if ipv6 {
            "enabled"
        } else {
            "disabled (IPv4 only)"
        },
    );

    let mut fields = match fields {
        Ok(f) => f,
        Err(e) => {
            r.line("BTF", format!("unusable: {e}"));
            r.fail(e);
            return r;
        }
    };
    r.line(
        "field offsets",
        format!("from {}", btf_origin(&opts.btf, &fields)),
    );
    if !fields.has_btf() {
        r.line("without BTF", format!("off: {}", fields::NO_BTF_LIMITS));
    }
    let object = match probe_object::parse(&embedded::object(fields.has_btf(), ring)) {
        Ok(o) => o,
        Err(e) => {
            r.fail(format!("embedded probe object: {e}"));
            return r;
        }
    };
    let programs = if fields.has_btf() {
        "the programs for kernels with BTF (field offsets from its types)"
    } else {
        "the programs for kernels without BTF (built-in sock_common layout)"
    };
    let records = match ring {
        RingKind::Bpf => "records to the BPF ring buffer",
        RingKind::Perf => "records to per-CPU perf rings",
    };
    r.line(
        "variant",
        format!(
            "{}, {programs}, {records}",
            embedded::name(fields.has_btf(), ring)
        ),
    );
    r.line(
        "helpers",
        if features.helper_rewrites().is_empty() {
            format!("{} (the kernel has them)", features.helpers_in_use())
        } else {
            format!(
                "{}: the loader rewrites those calls",
                features.helpers_in_use()
            )
        },
    );
    for unmet in features.unmet(&object) {
        r.line("variant", format!("cannot load: {unmet}"));
        r.fail(format!("the embedded probe object cannot load: {unmet}"));
    }
    // Without BTF only the kprobe backend's programs can be used: list what they need.
    let listed = (!fields.has_btf()).then(|| Backend::Kprobe.jobs());
    for spec in field_specs(&object, listed) {
        match fields.field(&spec) {
            Ok(f) => r.line(
                "",
                format!("{spec:<32} offset {:>5}  size {}", f.offset, f.size),
            ),
            Err(_) if fields::DISCOVERED_SPECS.contains(&spec.as_str()) => r.line(
                "",
                format!("{spec:<32} found at start-up by the layout discovery"),
            ),
            Err(e) => r.line("", format!("{spec:<32} unavailable: {e}")),
        }
    }

    let (backend, kprobes, why) = match backend::choose(sys, BackendChoice::Auto, fields.has_btf())
    {
        Ok(chosen) => chosen,
        Err(e) => {
            r.fail(e);
            return r;
        }
    };
    r.backend = Some(backend);
    r.line("backend", format!("auto picks the {why}"));
    // The kind of state hook tracing takes here (and with it which programs load).
    let state = match backend::state_hook(
        features.has(Feature::SkStorage),
        features.has(Feature::RawTracepoint),
    ) {
        Ok(state) => state,
        Err(e) => {
            r.fail(e);
            return r;
        }
    };
    if backend == Backend::Kprobe {
        report_hooks(sys, state, &mut r);
    }

    // Without BTF the programs need the fields the layout discovery finds on this kernel.
    let ipv6 = crate::session::discover::Ipv6::for_kernel(false);
    match crate::session::discover::discover(sys, &mut fields, kprobes, ipv6) {
        Ok(None) => {}
        Ok(Some(found)) => r.line("layout", found.describe()),
        Err(e) => {
            r.line("layout", "discovery failed");
            r.fail(e);
            return r;
        }
    }

    // The verifier is the final word: load (not attach) every program tracing would load
    // here: each job's hooks of the kind chosen above (a tp_btf program is not for 5.10).
    let cpus = ring::online_cpus(sys).unwrap_or_default();
    let nr_cpus = cpus.iter().max().map_or(1, |m| m + 1);
    let mut sections = Vec::new();
    for job in backend.jobs() {
        match backend::hooks_of(job, state) {
            Ok(hooks) => {
                sections.extend(hooks.iter().flat_map(|h| h.sections().map(str::to_string)))
            }
            Err(e) => {
                r.fail(e);
                return r;
            }
        }
    }
    let capacity = Capacity::from_machine(sys, &object.maps);
    let load_opts = LoadOptions {
        nr_cpus,
        kern_version: load::kernel_version_code(),
        programs: ProgramFilter::Only(sections),
        helper_rewrites: features.helper_rewrites(),
        permission,
        map_sizes: capacity
            .map_sizes()
            .into_iter()
            .chain(rings::map_size(ring, DEFAULT_PAGES, cpus.len()))
            .collect(),
        allocated_as_used: Capacity::allocated_as_used(features.has(Feature::HashAllocAsUsed)),
    };
    match load::load(sys, &object, &fields, &load_opts) {
        Ok(loaded) => {
            r.line(
                "programs",
                format!("{} loaded and verified", loaded.programs.len()),
            );
            let state = StateMaps::of(loaded.maps.iter().map(|m| &m.def));
            r.line(
                "state maps",
                format!("{}; {}", state.describe(), capacity.why),
            );
        }
        Err(e) => {
            r.line("programs", "rejected");
            r.fail(e.to_string());
            return r;
        }
    }
    // The built-in layout is only a claim until a real connection proves it.
    if !fields.has_btf() {
        match crate::session::verify_without_btf(sys) {
            Ok(families) => r.line(
                "self-test",
                format!("built-in layout verified on loopback ({families})"),
            ),
            Err(e) => {
                r.line("self-test", "failed");
                r.fail(e);
            }
        }
    }
    r
}

/// "bpf_probe_read_kernel      found    (Linux 5.5+)", and for what is missing, what
/// conntrace does instead and the kernel's answer.
fn describe_feature(feature: Feature, probed: &Probed) -> String {
    let head = format!("{:<26}", feature.name());
    let since = format!("(Linux {}+)", feature.since());
    match probed {
        Probed::Present => format!("{head} found    {since}"),
        Probed::Missing(why) => {
            format!("{head} missing  {since}: {}; {why}", feature.without())
        }
        Probed::Unknown(why) => format!("{head} unknown  {since}: {why}"),
    }
}

/// Which hook each kprobe job will use: the first whose function the kernel has (as
/// tracing finds by attaching, in the same order), from /proc/kallsyms; tracepoints of the
/// kind the kernel's features choose.
fn report_hooks(sys: &dyn Sys, state: StateHook, r: &mut Report) {
    let kallsyms = match sys.read_file(Path::new("/proc/kallsyms")) {
        Ok(bytes) => bytes,
        Err(e) => {
            r.line("hooks", format!("unknown: cannot read /proc/kallsyms: {e}"));
            return;
        }
    };
    let jobs = Backend::Kprobe.jobs();
    let wanted: Vec<&str> = jobs
        .iter()
        .flat_map(|j| j.hooks.iter())
        .filter(|h| !h.is_tracepoint())
        .map(|h| h.target())
        .collect();
    let present = kernel_functions(&kallsyms, &wanted);
    let mut chosen = Vec::new();
    for job in jobs {
        let hooks = match backend::hooks_of(job, state) {
            Ok(h) => h,
            Err(e) => {
                r.fail(e);
                return;
            }
        };
        let found = hooks
            .iter()
            .find(|h| h.is_tracepoint() || present.contains(&h.target()));
        match found {
            Some(&hook) => {
                chosen.push((job.role, hook));
                if let Some(caveat) = hook.caveat {
                    r.line("hook caveat", format!("{}: {caveat}", hook.target()));
                }
            }
            None if job.optional => {}
            None => {
                let names: Vec<_> = hooks.iter().map(|h| h.target()).collect();
                r.fail(format!(
                    "the kernel has none of the functions {} (not in /proc/kallsyms)",
                    names.join(", ")
                ));
            }
        }
    }
    r.line("hooks", crate::session::describe_hooks(&chosen));
}

/// The names among `wanted` that /proc/kallsyms lists as functions ("ADDR t|T NAME").
fn kernel_functions<'w>(kallsyms: &[u8], wanted: &[&'w str]) -> Vec<&'w str> {
    let mut found = Vec::new();
    for line in kallsyms.split(|&b| b == b'\n') {
        let mut words = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let (Some(_), Some(kind), Some(name)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if kind != b"t" && kind != b"T" {
            continue;
        }
        if let Some(&w) = wanted.iter().find(|w| w.as_bytes() == name) {
            if !found.contains(&w) {
                found.push(w);
            }
        }
    }
    found
}

fn btf_origin(arg: &BtfSource, fields: &FieldSource) -> String {
    match (arg, fields) {
        (_, FieldSource::Builtin(_)) => fields.describe().to_string(),
        (BtfSource::Path(p), _) => format!("BTF in {}", p.display()),
        _ => format!("BTF in {}", crate::kernel::btf::VMLINUX_BTF),
    }
}

/// Every distinct "struct.field" the programs use (those of the jobs `only`, if given), in
/// order of first use.
fn field_specs(object: &ProbeObject, only: Option<&[backend::Job]>) -> Vec<String> {
    let mut specs: Vec<String> = Vec::new();
    let used = |section: &str| {
        only.is_none_or(|jobs| jobs.iter().any(|j| j.sections().any(|s| s == section)))
    };
    for reloc in object
        .programs
        .iter()
        .filter(|p| used(&p.section))
        .flat_map(|p| &p.field_relocs)
    {
        if !specs.contains(&reloc.name) {
            specs.push(reloc.name.clone());
        }
    }
    specs
}

fn kernel_release() -> String {
    match host::uname() {
        Some(u) => format!("{} ({})", u.release, u.machine),
        None => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_functions;

    #[test]
    fn finds_functions_in_kallsyms() {
        let text = b"ffffffff81abe150 T security_sock_graft\n\
                     ffffffff82066e50 t inet_csk_accept\n\
                     ffffffff82066e60 D tcp_connect\n\
                     ffffffffc0001000 t __inet_accept\t[some_module]\n\
                     garbage\n\n";
        let wanted = [
            "security_sock_graft",
            "__inet_accept",
            "tcp_connect",
            "inet_csk_accept",
        ];
        assert_eq!(
            kernel_functions(text, &wanted),
            ["security_sock_graft", "inet_csk_accept", "__inet_accept"]
        );
        assert!(kernel_functions(b"", &wanted).is_empty());
    }
}
