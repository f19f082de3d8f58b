use super::*;
use crate::kernel::abi::{BPF_FUNC_PROBE_READ, BPF_MAP_TYPE_ARRAY};
use crate::kernel::load::{self, FieldOffset, FieldResolver, LoadOptions, ProgramFilter};
use crate::kernel::probe_object::test_elf::asm;
use crate::kernel::probe_object::{MapDef, ProbeObject, Program, ProgramKind};
use crate::kernel::sys::fake::{Call, FakeSys};
use crate::kernel::sys::RealSys;

fn prog_loads(sys: &FakeSys) -> usize {
    sys.calls()
        .iter()
        .filter(|c| matches!(c, Call::ProgLoad { .. }))
        .count()
}

fn set_memlock_calls(sys: &FakeSys) -> Vec<Rlimit> {
    sys.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::SetMemlockLimit { limit } => Some(limit),
            _ => None,
        })
        .collect()
}

/// A kernel from before 5.5 (and 5.11): every helper probe is refused as the verifier
/// refuses a helper number it does not know.
fn old_kernel() -> FakeSys {
    let sys = FakeSys::new();
    sys.fail_always("prog_load", libc::EINVAL);
    sys.set_verifier_log("4: (85) call unknown#113\ninvalid func unknown#113\n");
    sys
}

#[test]
fn each_probe_runs_once_per_session() {
    let sys = FakeSys::new();
    let features = Features::new(&sys);
    assert!(features.has(Feature::ProbeReadKernel));
    assert!(features.has(Feature::ProbeReadKernel));
    assert_eq!(features.probe(Feature::ProbeReadKernel), &Probed::Present);
    assert_eq!(prog_loads(&sys), 1);
    let all = features.all();
    assert_eq!(all.len(), Feature::ALL.len());
    let again = prog_loads(&sys);
    features.all();
    assert_eq!(prog_loads(&sys), again, "all() again probes nothing");
}

#[test]
fn hashes_allocate_as_used_only_where_the_kernels_btf_shows_bpf_mem_alloc() {
    let sys = FakeSys::new();
    let told = |hash_mem_alloc| {
        Features::with_btf(
            &sys,
            BtfFacts {
                hash_mem_alloc,
                ..BtfFacts::default()
            },
        )
        .probe(Feature::HashAllocAsUsed)
        .clone()
    };
    assert_eq!(told(Some(true)), Probed::Present);
    assert!(told(Some(false)).is_missing());
    // Without the kernel's BTF nothing says it is safe: preallocate, as before 6.1.
    let unknown = told(None);
    assert!(
        !unknown.is_present() && !unknown.is_missing(),
        "{unknown:?}"
    );
    assert!(sys.calls().is_empty(), "read from BTF, no syscall");
}

#[test]
fn every_feature_says_when_it_came_and_what_replaces_it() {
    for f in Feature::ALL {
        assert!(!f.name().is_empty() && !f.without().is_empty(), "{f:?}");
        let (major, minor) = f.since().split_once('.').unwrap();
        assert!(
            major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok(),
            "{f:?}"
        );
    }
}

#[test]
fn helpers_fall_back_only_where_missing() {
    let sys = FakeSys::new();
    let features = Features::new(&sys);
    assert!(features.helper_rewrites().is_empty());
    assert_eq!(features.helpers_in_use(), "bpf_probe_read_kernel/_user");

    let sys = old_kernel();
    let features = Features::new(&sys);
    assert_eq!(
        features.helper_rewrites(),
        [
            (BPF_FUNC_PROBE_READ_KERNEL, BPF_FUNC_PROBE_READ),
            (BPF_FUNC_PROBE_READ_USER, BPF_FUNC_PROBE_READ)
        ]
    );
    assert_eq!(
        features.helpers_in_use(),
        "bpf_probe_read (no bpf_probe_read_kernel/_user)"
    );

    // No privilege to probe: the programs stay as written, the verifier will say.
    let sys = FakeSys::new();
    sys.fail_always("prog_load", libc::EPERM);
    let features = Features::new(&sys);
    assert!(features.helper_rewrites().is_empty());
}

#[test]
fn memlock_is_left_alone_where_maps_are_charged_to_memcg() {
    let sys = FakeSys::new();
    let memlock = Features::new(&sys).prepare_memlock();
    assert!(!memlock.charged);
    assert_eq!(memlock.action, MemlockAction::NotCharged);
    assert!(set_memlock_calls(&sys).is_empty());
    assert_eq!(
        memlock.describe(),
        "not used for BPF (maps are charged to memory cgroups, 5.11+); RLIMIT_MEMLOCK is 8 MiB"
    );
}

#[test]
fn memlock_is_raised_to_unlimited_before_5_11() {
    let sys = old_kernel();
    sys.set_memlock(Rlimit {
        soft: 64 << 10,
        hard: 64 << 10,
    });
    let memlock = Features::new(&sys).prepare_memlock();
    assert!(memlock.charged);
    assert_eq!(memlock.action, MemlockAction::Raised);
    let unlimited = Rlimit {
        soft: RLIM_INFINITY,
        hard: RLIM_INFINITY,
    };
    assert_eq!(set_memlock_calls(&sys), [unlimited]);
    assert_eq!(sys.memlock(), unlimited);
    assert_eq!(
        memlock.describe(),
        "charged to RLIMIT_MEMLOCK (kernels before 5.11): raised from 64 KiB to unlimited"
    );
    // The probe is libbpf's: bpf_ktime_get_coarse_ns in a socket filter.
    assert!(sys.calls().iter().any(|c| matches!(
        c,
        Call::ProgLoad { prog_type, insns, .. }
            if *prog_type == BPF_PROG_TYPE_SOCKET_FILTER
                && insns == &probe::helper_call_program(BPF_FUNC_KTIME_GET_COARSE_NS)
    )));
}

#[test]
fn memlock_already_unlimited_or_not_raisable() {
    let sys = old_kernel();
    sys.set_memlock(Rlimit {
        soft: RLIM_INFINITY,
        hard: RLIM_INFINITY,
    });
    let memlock = Features::new(&sys).prepare_memlock();
    assert_eq!(memlock.action, MemlockAction::AlreadyUnlimited);
    assert!(set_memlock_calls(&sys).is_empty());

    let sys = old_kernel();
    sys.set_memlock(Rlimit {
        soft: 64 << 10,
        hard: 64 << 10,
    });
    sys.fail_next("set_memlock_limit", libc::EPERM);
    let memlock = Features::new(&sys).prepare_memlock();
    assert!(matches!(memlock.action, MemlockAction::RaiseFailed(_)));
    let text = memlock.describe();
    assert!(
        text.contains(
            "which is 64 KiB: raising it to unlimited failed: setrlimit(RLIMIT_MEMLOCK) failed"
        ) && text.contains("EPERM"),
        "{text}"
    );

    // A probe that cannot tell counts as charged, as libbpf assumes.
    let sys = FakeSys::new();
    sys.fail_always("prog_load", libc::EPERM);
    assert!(Features::new(&sys).prepare_memlock().charged);
}

struct NoFields;

impl FieldResolver for NoFields {
    fn field(&self, spec: &str) -> Result<FieldOffset, String> {
        Err(format!("no field {spec}"))
    }
}

fn one_map() -> ProbeObject {
    ProbeObject {
        license: "GPL".into(),
        maps: vec![MapDef {
            name: "config".into(),
            map_type: BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            flags: 0,
        }],
        // A program that uses it: the loader creates only the maps of the programs it loads.
        programs: vec![Program {
            section: "tracepoint/sock/inet_sock_set_state".into(),
            kind: ProgramKind::Tracepoint {
                category: "sock".into(),
                name: "inet_sock_set_state".into(),
            },
            insns: [asm::lddw(1).as_slice(), &[asm::mov_imm(0, 0), asm::EXIT]].concat(),
            map_relocs: vec![(0, 0)],
            field_relocs: Vec::new(),
        }],
    }
}

fn load_with(sys: &FakeSys, permission: PermissionContext) -> String {
    let opts = LoadOptions {
        nr_cpus: 1,
        kern_version: 0,
        programs: ProgramFilter::All,
        helper_rewrites: Vec::new(),
        permission,
        map_sizes: Vec::new(),
        allocated_as_used: Vec::new(),
    };
    load::load(sys, &one_map(), &NoFields, &opts)
        .unwrap_err()
        .to_string()
}

#[test]
fn eperm_as_root_names_the_memlock_limit_and_what_was_tried() {
    let sys = old_kernel();
    sys.set_memlock(Rlimit {
        soft: 64 << 10,
        hard: 64 << 10,
    });
    sys.fail_next("set_memlock_limit", libc::EPERM);
    sys.fail_always("map_create", libc::EPERM);
    let memlock = Features::new(&sys).prepare_memlock();
    let text = load_with(&sys, memlock.permission_context(true));
    assert!(
        text.starts_with("creating BPF map `config`: bpf(BPF_MAP_CREATE) failed: Operation not permitted (EPERM): conntrace has the privileges"),
        "{text}"
    );
    assert!(text.contains("RLIMIT_MEMLOCK"), "{text}");
    assert!(
        text.contains("which is 64 KiB: raising it to unlimited failed"),
        "{text}"
    );
    assert!(!text.contains("needs root"), "{text}");
}

#[test]
fn eperm_without_privilege_says_what_is_needed() {
    let sys = FakeSys::new();
    sys.fail_always("map_create", libc::EPERM);
    let memlock = Features::new(&sys).prepare_memlock();
    let text = load_with(&sys, memlock.permission_context(false));
    assert_eq!(
        text,
        "creating BPF map `config`: bpf(BPF_MAP_CREATE) failed: Operation not permitted (EPERM): \
         conntrace needs root or CAP_BPF+CAP_PERFMON"
    );
}

#[test]
fn this_process_privilege_matches_its_capabilities() {
    let caps = process::capget().unwrap();
    let expected = caps.effective & ((1 << 21) | (1 << 39)) != 0;
    assert_eq!(bpf_privileged(), expected);
}

/// This machine (root, 6.x): every program feature found, memlock not charged.
#[test]
fn the_real_kernel_has_the_new_helpers_and_memcg_accounting() {
    if !process::root_or_skip("the_real_kernel_has_the_new_helpers_and_memcg_accounting") {
        return;
    }
    // The socket-storage probe attaches by the kernel's own id of the state tracepoint.
    let btf = crate::kernel::btf::load_vmlinux().unwrap();
    let id = btf.typedef_id("btf_trace_inet_sock_set_state");
    assert!(id.is_some(), "the kernel's BTF names the state tracepoint");
    let facts = crate::session::fields::FieldSource::open(
        &RealSys,
        &crate::session::options::BtfSource::Kernel,
    )
    .unwrap()
    .kernel_facts();
    assert_eq!(facts.state_tracepoint, id);
    let features = Features::with_btf(&RealSys, facts);
    for f in [
        Feature::ProbeReadKernel,
        Feature::ProbeReadUser,
        Feature::Jmp32,
        Feature::AtomicFetch,
        Feature::RingBuf,
        Feature::RawTracepoint,
        Feature::SkStorage,
        Feature::HashAllocAsUsed,
        Feature::MemcgAccounting,
    ] {
        assert_eq!(features.probe(f), &Probed::Present, "{f:?}");
    }
    assert!(features.helper_rewrites().is_empty());
    assert_eq!(features.prepare_memlock().action, MemlockAction::NotCharged);
    // Attached by the id of something that is no tracepoint, the program is refused: the
    // probe's Present above is the kernel's answer for that tracepoint, not a default.
    let int = btf.typedef_id("u32");
    let wrong = Features::with_btf(
        &RealSys,
        BtfFacts {
            state_tracepoint: int,
            ..facts
        },
    );
    assert!(
        !wrong.has(Feature::SkStorage),
        "{:?}",
        wrong.probe(Feature::SkStorage)
    );
    assert!(!Features::new(&RealSys).has(Feature::SkStorage));
}
