//! The session layer: setting up a traced session (field offsets, the probe object, maps
//! and filters, the rings, the programs attached where the backend says) on top of `kernel`,
//! and verifying the built-in layout without BTF. Nothing here knows about the command line:
//! `options` is what it is asked to do.

pub mod backend;
pub mod capacity;
pub mod discover;
pub mod embedded;
pub mod event;
pub mod features;
pub mod fields;
pub mod filter;
pub mod frees;
pub mod nesting;
pub mod options;
pub mod pack;
pub mod rings;
pub mod selftest;

use std::os::fd::AsFd;

use crate::kernel::attach::{self, Attachment, KprobeSupport};
use crate::kernel::load::{self, LoadOptions, Loaded, ProgramFilter};
use crate::kernel::probe_object::{self, ProgramKind};
use crate::kernel::ring::{self, Rings};
use crate::kernel::sys::Sys;
use crate::session::backend::{Backend, Hook, Role};
use crate::session::capacity::{Capacity, StateMaps};
use crate::session::features::{Feature, Features, Memlock};
use crate::session::fields::FieldSource;
use crate::session::options::{BtfSource, FamilyFilter, SessionOptions};

/// A traced session: everything that must stay alive while events are read. Fields drop in
/// order: probes are detached before the rings and maps go away.
pub struct Session<'s> {
    pub attachments: Vec<Attachment<'s>>,
    /// Perf's count of the socket frees, beside the destroy program's (None without one).
    pub frees: Option<frees::FreeCheck<'s>>,
    pub rings: Rings<'s>,
    /// Which kind `rings` is.
    pub ring: rings::RingKind,
    pub loaded: Loaded,
    pub backend: Backend,
    /// Why this backend, for the "attached" line.
    pub why: String,
    /// Without BTF: the families whose built-in layout the self-test must verify before the
    /// user's filters go in and tracing begins.
    pub verify: Option<selftest::Plan>,
    /// The hook each attached job uses.
    pub hooks: Vec<(Role, &'static Hook)>,
    /// What the user must know about the hooks in use (their limits).
    pub notes: Vec<String>,
    /// What the kernel offers, as probed for this session.
    pub features: Features<'s>,
    /// What was found and done about RLIMIT_MEMLOCK before the maps were created.
    pub memlock: Memlock,
    /// The programs loaded and the fallbacks in use, for the "attached" line:
    /// "programs for BTF, helpers bpf_probe_read_kernel/_user".
    pub variant: String,
    /// The state maps as created: how many connects in flight they track, in how much memory.
    pub state: StateMaps,
    /// How their size was chosen.
    pub capacity: Capacity,
}

impl Session<'_> {
    /// "connect: kprobe tcp_connect, ...; accept: kprobe security_sock_graft", for the
    /// "attached" line.
    pub fn describe_hooks(&self) -> String {
        describe_hooks(&self.hooks)
    }

    /// Without BTF: proves the built-in layout with the self-test (run under a
    /// this-process-only filter), then puts the user's filters in. Returns the families
    /// verified and the fields discovered ("IPv4, IPv6; discovered sock.sk_err at 284, ..."),
    /// or None with BTF (nothing to verify, the filters are in).
    pub fn verify_builtin_layout(
        &mut self,
        sys: &dyn Sys,
        opts: &SessionOptions,
    ) -> Result<Option<String>, String> {
        let Some(plan) = self.verify.take() else {
            return Ok(None);
        };
        selftest::verify(&mut self.rings, &plan)?;
        filter::configure(sys, &self.loaded, opts)?;
        let names: Vec<_> = plan.families.iter().map(|f| f.name()).collect();
        Ok(Some(format!(
            "{}; {}",
            names.join(", "),
            plan.discovered.describe()
        )))
    }
}

/// The hooks per role, as the "attached" line and `conntrace check` name them.
pub fn describe_hooks(hooks: &[(Role, &Hook)]) -> String {
    let mut parts = Vec::new();
    for (role, name) in [
        (Role::Connect, "connect"),
        (Role::Accept, "accept"),
        (Role::State, "state"),
    ] {
        let of_role: Vec<String> = hooks
            .iter()
            .filter(|(r, _)| *r == role)
            .map(|(_, h)| h.describe())
            .collect();
        if !of_role.is_empty() {
            parts.push(format!("{name}: {}", of_role.join(", ")));
        }
    }
    parts.join("; ")
}

/// `conntrace check --btf none`: attaches as tracing would, runs the self-test, detaches.
/// Returns the families verified ("IPv4, IPv6").
pub fn verify_without_btf(sys: &dyn Sys) -> Result<String, String> {
    let opts = SessionOptions {
        btf: BtfSource::None,
        ..SessionOptions::default()
    };
    let mut session = start(sys, &opts)?;
    Ok(session
        .verify_builtin_layout(sys, &opts)?
        .unwrap_or_default())
}

/// The tracepoint of the state changes, as the kernel names it.
pub const STATE_TRACEPOINT: &str = "inet_sock_set_state";

/// Loads, configures and attaches everything the options ask for.
pub fn start<'s>(sys: &'s dyn Sys, opts: &SessionOptions) -> Result<Session<'s>, String> {
    let mut fields = FieldSource::open(sys, &opts.btf)?;
    let (backend, kprobes, why) = backend::choose(sys, opts.backend, fields.has_btf())?;
    // Without BTF: the fields beyond the built-in table, found before the programs load.
    let ipv6 = discover::Ipv6::for_kernel(opts.family == FamilyFilter::Ipv4);
    let discovered = discover::discover(sys, &mut fields, kprobes, ipv6)?;
    let features = Features::with_btf(sys, fields.kernel_facts());
    let ring = rings::ring_kind(features.has(Feature::RingBuf))?;
    let object = probe_object::parse(&embedded::object(fields.has_btf(), ring))
        .map_err(|e| format!("embedded probe object: {e}"))?;
    // Without BTF every job is done, whatever -e asks: the self-test needs the connect and
    // accept records to verify the layout (unwanted kinds are dropped in user space).
    let verify = discovered.map(|discovered| selftest::Plan {
        families: selftest_families(opts),
        discovered,
    });

    let state_hook = backend::state_hook(
        features.has(Feature::SkStorage),
        features.has(Feature::RawTracepoint),
    )?;
    let mut jobs = Vec::new();
    for job in backend.jobs().iter().filter(|j| {
        verify.is_some()
            || match j.role {
                Role::Connect => opts.connects,
                Role::Accept => opts.accepts,
                Role::State => true,
            }
    }) {
        jobs.push((job, backend::hooks_of(job, state_hook)?));
    }

    // Before any map exists: kernels before 5.11 charge them to RLIMIT_MEMLOCK.
    let memlock = features.prepare_memlock();
    let cpus = ring::online_cpus(sys).map_err(|e| e.to_string())?;
    let nr_cpus = cpus.iter().max().map_or(1, |&c| c + 1);
    let variant = describe_variant(&fields, &features);
    let unmet = features.unmet(&object);
    if !unmet.is_empty() {
        return Err(format!(
            "the embedded probe object cannot load on this kernel: {}",
            unmet.join("; ")
        ));
    }
    let capacity = Capacity::choose(sys, opts.max_tracked, &object.maps);
    let load_opts = LoadOptions {
        nr_cpus,
        kern_version: load::kernel_version_code(),
        helper_rewrites: features.helper_rewrites(),
        permission: memlock.permission_context(features::bpf_privileged()),
        // Every hook a job may use is loaded: which one attaches is known only by trying.
        programs: ProgramFilter::Only(
            jobs.iter()
                .flat_map(|(_, hooks)| hooks.iter().flat_map(|h| h.sections().map(String::from)))
                .collect(),
        ),
        map_sizes: capacity
            .map_sizes()
            .into_iter()
            .chain(rings::map_size(ring, opts.pages, cpus.len()))
            .collect(),
        allocated_as_used: Capacity::allocated_as_used(features.has(Feature::HashAllocAsUsed)),
    };
    let loaded = load::load(sys, &object, &fields, &load_opts).map_err(|e| e.to_string())?;
    // The kernel's BTF (5.5 MB here) is done with once the programs are loaded. Freed before
    // the rings are mapped (the kernel maps a ring buffer's pages at once), the peak RSS is
    // the larger of the two, not their sum: 9.1 -> ~7 MB here.
    drop(fields);
    let state = StateMaps::of(loaded.maps.iter().map(|m| &m.def));
    match &verify {
        None => filter::configure(sys, &loaded, opts)?,
        Some(plan) => {
            discover::write_tcp_prots(sys, &loaded, &plan.discovered)?;
            filter::write_config(sys, &loaded, &selftest::filter_self())?
        }
    }

    let rings = rings::open(sys, &loaded, ring, &cpus, opts.pages)?;

    let mut attachments = Vec::new();
    let mut hooks_used = Vec::new();
    let mut notes = Vec::new();
    for (job, hooks) in &jobs {
        match attach_first(sys, &loaded, kprobes, hooks)? {
            Ok((hook, mut attached, note)) => {
                hooks_used.push((job.role, hook));
                notes.extend(hook.caveat.map(|c| format!("{}: {c}", hook.target())));
                notes.extend(note);
                attachments.append(&mut attached);
            }
            Err(e) if job.optional => eprintln!(
                "conntrace: warning: {e}; continuing without {}",
                hooks
                    .iter()
                    .map(|h| h.section)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => return Err(e),
        }
    }
    // After the destroy program is attached: perf's count must not begin before it.
    let frees = hooks_used
        .iter()
        .filter(|_| frees::asked())
        .find(|(_, hook)| hook.section.ends_with(frees::DESTROY.1))
        .and_then(
            |(_, hook)| match frees::FreeCheck::start(sys, &loaded, hook.section, &cpus) {
                Ok(check) => Some(check),
                Err(e) => {
                    eprintln!(
                        "conntrace: warning: {e}; socket frees the kernel runs no program for \
                         will not be counted"
                    );
                    None
                }
            },
        );
    Ok(Session {
        attachments,
        frees,
        rings,
        ring,
        loaded,
        backend,
        why,
        verify,
        hooks: hooks_used,
        notes,
        features,
        memlock,
        variant,
        state,
        capacity,
    })
}

/// Which programs a session loads and with which fallbacks: "programs for BTF, helpers
/// bpf_probe_read_kernel/_user", "programs without BTF, helpers bpf_probe_read (no
/// bpf_probe_read_kernel/_user)". For the "attached" line and `conntrace check`.
pub fn describe_variant(fields: &FieldSource, features: &Features<'_>) -> String {
    let object = if fields.has_btf() {
        "programs for BTF"
    } else {
        "programs without BTF"
    };
    format!("{object}, helpers {}", features.helpers_in_use())
}

/// Attaches the first of `hooks` the kernel has, with its extra tracepoints. The outer error
/// ends the session (a program that should have been loaded, no privilege); the inner one
/// says why no hook could be attached, each hook's reason in turn.
#[allow(clippy::type_complexity)]
fn attach_first<'s>(
    sys: &'s dyn Sys,
    loaded: &Loaded,
    kprobes: KprobeSupport,
    hooks: &[&'static Hook],
) -> Result<Result<(&'static Hook, Vec<Attachment<'s>>, Option<String>), String>, String> {
    let mut reasons = Vec::new();
    for &hook in hooks {
        let program = loaded
            .program(hook.section)
            .ok_or_else(|| format!("program {} was not loaded", hook.section))?;
        let attached = match &program.kind {
            ProgramKind::Tracepoint { category, name } => {
                attach::attach_tracepoint(sys, program.fd.as_fd(), category, name)
                    .map(|a| (a, None))
            }
            ProgramKind::RawTracepoint { name } => {
                attach::attach_raw_tracepoint(sys, program.fd.as_fd(), name).map(|a| (a, None))
            }
            ProgramKind::TpBtf { name } => {
                attach::attach_tp_btf(sys, program.fd.as_fd(), name).map(|a| (a, None))
            }
            _ if hook.misses_are_losses => {
                let maxactive = kretprobe_maxactive()?;
                attach::attach_counting_misses(sys, program, kprobes, maxactive)
            }
            _ => kprobes
                .method()
                .and_then(|method| attach::attach(sys, program, method))
                .map(|a| (a, None)),
        };
        match attached {
            Ok((first, note)) => {
                let mut all = vec![first];
                for tracepoint in hook.extra_tracepoints {
                    let (category, name) = tracepoint.split_once('/').unwrap_or(("", tracepoint));
                    all.push(
                        attach::attach_tracepoint(sys, program.fd.as_fd(), category, name)
                            .map_err(|e| e.to_string())?,
                    );
                }
                // After the first: a tracepoint calls its programs in the order attached.
                if let Some(section) = hook.rescue {
                    all.push(attach_rescue(sys, loaded, section)?);
                }
                return Ok(Ok((hook, all, note)));
            }
            // No privilege is no privilege for the next hook either.
            Err(e) if e.is_permission() => return Err(e.to_string()),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    Ok(Err(reasons.join("; ")))
}

/// The rescue program `section` on its tracepoint (backend::Hook::rescue).
fn attach_rescue<'s>(
    sys: &'s dyn Sys,
    loaded: &Loaded,
    section: &str,
) -> Result<Attachment<'s>, String> {
    let program = loaded
        .program(section)
        .ok_or_else(|| format!("program {section} was not loaded"))?;
    match &program.kind {
        ProgramKind::RawTracepoint { name } => {
            attach::attach_raw_tracepoint(sys, program.fd.as_fd(), name)
        }
        ProgramKind::TpBtf { name } => attach::attach_tp_btf(sys, program.fd.as_fd(), name),
        _ => {
            return Err(format!(
                "program {section} is not a raw or BTF tracepoint's"
            ))
        }
    }
    .map_err(|e| e.to_string())
}

/// Test and diagnostic knob: `CONNTRACE_KRETPROBE_MAXACTIVE=N` sets the room for calls at once
/// of the return probes whose misses are counted (1 forces misses). Read here and nowhere else.
pub const KRETPROBE_MAXACTIVE_ENV: &str = "CONNTRACE_KRETPROBE_MAXACTIVE";

fn kretprobe_maxactive() -> Result<u32, String> {
    match std::env::var(KRETPROBE_MAXACTIVE_ENV) {
        Err(_) => Ok(attach::KRETPROBE_MAXACTIVE),
        Ok(text) => match text.parse::<u32>() {
            Ok(n) if (1..=4096).contains(&n) => Ok(n),
            _ => Err(format!(
                "{KRETPROBE_MAXACTIVE_ENV}={text:?} is not a number from 1 to 4096: fix or unset it"
            )),
        },
    }
}

/// The families the self-test verifies: IPv4, and IPv6 where the kernel has it and the user
/// did not ask for IPv4 only (then its fields are never read for an event that is shown).
fn selftest_families(opts: &SessionOptions) -> Vec<selftest::Family> {
    let mut families = vec![selftest::Family::Ipv4];
    if opts.family != FamilyFilter::Ipv4 && std::path::Path::new("/proc/sys/net/ipv6").exists() {
        families.push(selftest::Family::Ipv6);
    }
    families
}
