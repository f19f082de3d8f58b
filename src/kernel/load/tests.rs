use super::*;
use crate::kernel::probe_object::test_elf::{asm, fields_section, ObjBuilder};
use crate::kernel::probe_object::{insn, parse};
use crate::kernel::sys::fake::{Call, FakeSys};
use std::collections::HashMap;

struct Fields(HashMap<&'static str, FieldOffset>);

impl FieldResolver for Fields {
    fn field(&self, spec: &str) -> Result<FieldOffset, String> {
        self.0
            .get(spec)
            .copied()
            .ok_or_else(|| format!("struct field {spec} is not in this kernel's BTF"))
    }
}

fn fields() -> Fields {
    Fields(HashMap::from([
        (
            "sock_common.skc_dport",
            FieldOffset {
                offset: 12,
                size: 2,
            },
        ),
        (
            "sock_common.skc_v6_daddr",
            FieldOffset {
                offset: 56,
                size: 16,
            },
        ),
        (
            "task_struct.files",
            FieldOffset {
                offset: 40000,
                size: 8,
            },
        ),
    ]))
}

fn opts() -> LoadOptions {
    LoadOptions {
        nr_cpus: 6,
        kern_version: 0x060100,
        programs: ProgramFilter::All,
        helper_rewrites: Vec::new(),
        permission: PermissionContext::Unprivileged,
        map_sizes: Vec::new(),
        allocated_as_used: Vec::new(),
    }
}

const KPROBE: &str = "kprobe/tcp_v4_connect";
const TP: &str = "tracepoint/syscalls/sys_exit_connect";

/// kprobe: `r0 = 0; r1 = map filter ll; exit`; tracepoint: `r1 = map events ll;
/// r2 = *(u16 *)(r1 + skc_dport); r3 += skc_v6_daddr + 4; exit`.
fn object_with(off_insn: u64, off_field: &str, off_addend: i32) -> ProbeObject {
    let [l0, l1] = asm::lddw(1);
    let bytes = ObjBuilder::new()
        .program(KPROBE, &[asm::mov_imm(0, 0), l0, l1, asm::EXIT])
        .program(
            TP,
            &[l0, l1, off_insn, asm::add_imm(3, 0x7badf00d), asm::EXIT],
        )
        .map("events", [4, 4, 4, 0, 0])
        .map("filter", [1, 8, 16, 1024, 0])
        .map_reloc(0, 8, 1)
        .map_reloc(1, 0, 0)
        .fields(fields_section(&[
            (2, 16, 1, 0x7bad, off_addend, off_field),
            (2, 24, 2, 0x7badf00d, 4, "sock_common.skc_v6_daddr"),
        ]))
        .build();
    parse(&bytes).unwrap()
}

fn object() -> ProbeObject {
    object_with(asm::ldx(0x08, 2, 1, 0x7bad), "sock_common.skc_dport", 0)
}

fn map_fds(calls: &[Call]) -> HashMap<String, i32> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::MapCreate { name, fd, .. } => Some((name.clone(), *fd)),
            _ => None,
        })
        .collect()
}

fn prog_loads(calls: &[Call]) -> Vec<(String, u32, Vec<u64>, usize)> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::ProgLoad {
                name,
                prog_type,
                insns,
                log_size,
                ..
            } => Some((name.clone(), *prog_type, insns.clone(), *log_size)),
            _ => None,
        })
        .collect()
}

#[test]
fn creates_maps_and_patches_map_fds_and_fields() {
    let sys = FakeSys::new();
    let loaded = load(&sys, &object(), &fields(), &opts()).unwrap();
    let calls = sys.calls();

    assert!(
        matches!(&calls[0], Call::MapCreate { name, map_type: 4, key_size: 4, value_size: 4, max_entries: 6, .. } if name == "events")
    );
    assert!(
        matches!(&calls[1], Call::MapCreate { name, map_type: 1, max_entries: 1024, .. } if name == "filter")
    );
    let fds = map_fds(&calls);
    assert_eq!(loaded.map_fd("events").unwrap().as_raw_fd(), fds["events"]);
    assert_eq!(loaded.map("events").unwrap().def.max_entries, 6);

    let loads = prog_loads(&calls);
    assert_eq!(loads.len(), 2);
    let (name, prog_type, insns, log_size) = &loads[0];
    assert_eq!(
        (name.as_str(), *prog_type, *log_size),
        ("kp_tcp_v4_connect", 2, 0)
    );
    assert_eq!(insn::src_reg(insns[1]), 1, "BPF_PSEUDO_MAP_FD");
    assert_eq!(insn::imm(insns[1]), fds["filter"]);
    assert_eq!(insns[2], 0);
    assert!(
        matches!(&calls[2], Call::ProgLoad { license, kern_version: 0x060100, .. } if license == "GPL")
    );

    let (name, prog_type, insns, _) = &loads[1];
    assert_eq!((name.as_str(), *prog_type), ("tp_sys_exit_connect", 5));
    assert_eq!(insn::imm(insns[0]), fds["events"]);
    assert_eq!(insn::off(insns[2]), 12, "skc_dport offset");
    assert_eq!(insn::opcode(insns[2]), 0x69);
    assert_eq!(insn::imm(insns[3]), 60, "skc_v6_daddr + 4");

    assert_eq!(loaded.programs.len(), 2);
    assert_eq!(
        loaded.program(TP).unwrap().kind,
        ProgramKind::Tracepoint {
            category: "syscalls".into(),
            name: "sys_exit_connect".into()
        }
    );
}

#[test]
fn refuses_an_instruction_without_the_placeholder() {
    let sys = FakeSys::new();
    let obj = object_with(asm::ldx(0x08, 2, 1, 8), "sock_common.skc_dport", 0);
    let e = load(&sys, &obj, &fields(), &opts()).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, LoadError::Patch { ref program, .. } if program == TP));
    assert!(
        text.contains(
            "holds 0x8 where the offset of sock_common.skc_dport goes, not the placeholder 0x7bad"
        ),
        "{text}"
    );
    assert!(
        prog_loads(&sys.calls()).len() == 1,
        "the broken program is never loaded"
    );
}

#[test]
fn refuses_offsets_beyond_i16() {
    let obj = object_with(asm::ldx(0x18, 2, 1, 0x7bad), "task_struct.files", 0);
    let text = load(&FakeSys::new(), &obj, &fields(), &opts())
        .unwrap_err()
        .to_string();
    assert!(text.contains("task_struct.files is at offset 40000 (+ 0) in this kernel, beyond the 16-bit memory offset"), "{text}");
    assert!(text.contains(&format!("{TP}+16")), "{text}");

    // The addend alone can push a fitting offset out of range too.
    let obj = object_with(asm::ldx(0x08, 2, 1, 0x7bad), "sock_common.skc_dport", 32760);
    assert!(load(&FakeSys::new(), &obj, &fields(), &opts())
        .unwrap_err()
        .to_string()
        .contains("(+ 32760)"));
}

#[test]
fn checks_the_access_width_against_the_field() {
    // u32 read of the 2-byte skc_dport: refused, naming both sizes.
    let obj = object_with(asm::ldx(0x00, 2, 1, 0x7bad), "sock_common.skc_dport", 0);
    let text = load(&FakeSys::new(), &obj, &fields(), &opts())
        .unwrap_err()
        .to_string();
    assert!(text.contains("the 4-byte access at tracepoint/syscalls/sys_exit_connect+16 runs past the end of sock_common.skc_dport, which is 2 bytes"), "{text}");

    // u8 read of skc_dport: fine. u32 read at +12 of the 16-byte address: fine; at +14: refused.
    let obj = object_with(asm::ldx(0x10, 2, 1, 0x7bad), "sock_common.skc_dport", 0);
    assert!(load(&FakeSys::new(), &obj, &fields(), &opts()).is_ok());
    let obj = object_with(asm::ldx(0x00, 2, 1, 0x7bad), "sock_common.skc_v6_daddr", 12);
    assert!(load(&FakeSys::new(), &obj, &fields(), &opts()).is_ok());
    let obj = object_with(asm::ldx(0x00, 2, 1, 0x7bad), "sock_common.skc_v6_daddr", 14);
    let text = load(&FakeSys::new(), &obj, &fields(), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("at +14 runs past the end of sock_common.skc_v6_daddr, which is 16 bytes"),
        "{text}"
    );

    // An addend outside the field is deliberate (reaching a neighbour): not checked.
    let obj = object_with(asm::ldx(0x18, 2, 1, 0x7bad), "sock_common.skc_dport", 2);
    assert!(load(&FakeSys::new(), &obj, &fields(), &opts()).is_ok());
}

#[test]
fn reports_fields_the_kernel_lacks() {
    let obj = object_with(asm::ldx(0x08, 2, 1, 0x7bad), "sock_common.skc_nope", 0);
    let text = load(&FakeSys::new(), &obj, &fields(), &opts())
        .unwrap_err()
        .to_string();
    assert!(text.contains("needs the offset of sock_common.skc_nope: struct field sock_common.skc_nope is not in this kernel's BTF"), "{text}");
}

#[test]
fn refuses_an_lddw_that_is_already_patched() {
    let mut obj = object();
    obj.programs[0].insns[1] = insn::with_imm(obj.programs[0].insns[1], 7);
    let text = load(&FakeSys::new(), &obj, &fields(), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("the lddw at kprobe/tcp_v4_connect+8 is already patched"),
        "{text}"
    );
    obj.programs[0].map_relocs = vec![(0, 0)];
    let text = load(&FakeSys::new(), &obj, &fields(), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("map relocation at kprobe/tcp_v4_connect+0 is not on an lddw"),
        "{text}"
    );
}

#[test]
fn verifier_refusal_returns_the_log_tail() {
    let sys = FakeSys::new();
    let log: String = (0..30)
        .map(|i| format!("{i}: line {i}\n\n"))
        .collect::<String>()
        + "R2 invalid mem access 'scalar'\n";
    sys.set_verifier_log(&log);
    sys.fail_next("prog_load", libc::EACCES); // first try, no log
    sys.fail_next("prog_load", libc::EACCES); // with the log
    let opts = LoadOptions {
        programs: ProgramFilter::Only(vec![KPROBE.into()]),
        ..opts()
    };
    let e = load(&sys, &object(), &fields(), &opts).unwrap_err();
    let LoadError::Verifier {
        program,
        errno,
        log_tail,
        log_truncated,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (program.as_str(), *errno, *log_truncated),
        (KPROBE, libc::EACCES, false)
    );
    assert_eq!(log_tail.len(), 20);
    assert_eq!(log_tail[0], "11: line 11");
    assert_eq!(log_tail[19], "R2 invalid mem access 'scalar'");
    let text = e.to_string();
    assert!(
        text.starts_with("the kernel refused to load program kprobe/tcp_v4_connect"),
        "{text}"
    );
    assert!(
        text.ends_with("\n    R2 invalid mem access 'scalar'"),
        "{text}"
    );
    let sizes: Vec<usize> = prog_loads(&sys.calls()).iter().map(|l| l.3).collect();
    assert_eq!(sizes, vec![0, verifier::FIRST_LOG_SIZE]);
}

#[test]
fn a_log_too_small_is_retried_larger() {
    let sys = FakeSys::new();
    sys.set_verifier_log("back-edge from insn 7 to 3\n");
    for errno in [libc::EINVAL, libc::ENOSPC, libc::ENOSPC, libc::EINVAL] {
        sys.fail_next("prog_load", errno);
    }
    let opts = LoadOptions {
        programs: ProgramFilter::Only(vec![KPROBE.into()]),
        ..opts()
    };
    let e = load(&sys, &object(), &fields(), &opts).unwrap_err();
    assert!(
        matches!(&e, LoadError::Verifier { errno: libc::EINVAL, log_truncated: false, log_tail, .. } if log_tail == &["back-edge from insn 7 to 3"])
    );
    let sizes: Vec<usize> = prog_loads(&sys.calls()).iter().map(|l| l.3).collect();
    assert_eq!(sizes, vec![0, 64 << 10, 128 << 10, 256 << 10]);
}

#[test]
fn the_log_stops_growing_at_16_mib() {
    let sys = FakeSys::new();
    sys.set_verifier_log("0: (b7) r0 = 0\n");
    sys.fail_always("prog_load", libc::ENOSPC);
    let opts = LoadOptions {
        programs: ProgramFilter::Only(vec![KPROBE.into()]),
        ..opts()
    };
    let e = load(&sys, &object(), &fields(), &opts).unwrap_err();
    assert!(matches!(
        &e,
        LoadError::Verifier {
            log_truncated: true,
            ..
        }
    ));
    assert!(e.to_string().contains("outgrew 16 MiB"));
    let sizes: Vec<usize> = prog_loads(&sys.calls()).iter().map(|l| l.3).collect();
    assert_eq!(sizes.len(), 10);
    assert_eq!(sizes.last(), Some(&verifier::MAX_LOG_SIZE));
}

#[test]
fn a_retry_that_succeeds_is_a_success() {
    let sys = FakeSys::new();
    sys.fail_next("prog_load", libc::EAGAIN);
    assert!(load(&sys, &object(), &fields(), &opts()).is_ok());
    let sizes: Vec<usize> = prog_loads(&sys.calls()).iter().map(|l| l.3).collect();
    assert_eq!(sizes, vec![0, 64 << 10, 0]);
}

#[test]
fn permission_errors_say_what_is_needed() {
    let sys = FakeSys::new();
    sys.fail_always("prog_load", libc::EPERM);
    let e = load(&sys, &object(), &fields(), &opts()).unwrap_err();
    assert!(matches!(&e, LoadError::Permission { .. }));
    let text = e.to_string();
    assert!(
        text.starts_with("loading BPF program kprobe/tcp_v4_connect: bpf(BPF_PROG_LOAD) failed"),
        "{text}"
    );
    assert!(
        text.ends_with("needs root or CAP_BPF+CAP_PERFMON"),
        "{text}"
    );

    let sys = FakeSys::new();
    sys.fail_always("map_create", libc::EPERM);
    let text = load(&sys, &object(), &fields(), &opts())
        .unwrap_err()
        .to_string();
    assert!(text.starts_with("creating BPF map `events`"), "{text}");
    assert!(text.contains("needs root or CAP_BPF+CAP_PERFMON"), "{text}");

    let sys = FakeSys::new();
    sys.fail_always("map_create", libc::EINVAL);
    let e = load(&sys, &object(), &fields(), &opts()).unwrap_err();
    assert!(
        matches!(&e, LoadError::MapCreate { map, error } if map == "events" && error.errno == libc::EINVAL)
    );
}

#[test]
fn loads_only_the_selected_programs() {
    let sys = FakeSys::new();
    let tracepoints = LoadOptions {
        programs: ProgramFilter::Only(vec!["tracepoint/".into()]),
        ..opts()
    };
    let loaded = load(&sys, &object(), &fields(), &tracepoints).unwrap();
    assert_eq!(loaded.programs.len(), 1);
    assert!(loaded.program(TP).is_some());
    assert!(loaded.program(KPROBE).is_none());
    // Only the map its program uses: "filter" is the kprobe's alone.
    let names: Vec<&str> = loaded.maps.iter().map(|m| m.def.name.as_str()).collect();
    assert_eq!(names, ["events"]);
    assert!(!map_fds(&sys.calls()).contains_key("filter"));
    let all = load(&FakeSys::new(), &object(), &fields(), &opts()).unwrap();
    assert_eq!(all.maps.len(), 2, "both programs: both maps");

    for wanted in ["kprobe/tcp_v6_connect", "kretprobe/"] {
        let only = LoadOptions {
            programs: ProgramFilter::Only(vec![KPROBE.into(), wanted.into()]),
            ..opts()
        };
        let sys = FakeSys::new();
        let e = load(&sys, &object(), &fields(), &only).unwrap_err();
        assert_eq!(
            e,
            LoadError::NoSuchProgram {
                wanted: wanted.into()
            }
        );
        assert!(
            sys.calls().is_empty(),
            "nothing is created before the filter is checked"
        );
    }
}

#[test]
fn update_map_checks_sizes() {
    let sys = FakeSys::new();
    let loaded = load(&sys, &object(), &fields(), &opts()).unwrap();
    let fd = loaded.map_fd("filter").unwrap().as_raw_fd();
    update_map(&sys, &loaded, "filter", &[1; 8], &[2; 16]).unwrap();
    assert_eq!(
        sys.calls().last(),
        Some(&Call::MapUpdate {
            map: fd,
            key: vec![1; 8],
            value: vec![2; 16],
            flags: 0
        })
    );

    let text = update_map(&sys, &loaded, "filter", &[1; 4], &[2; 16])
        .unwrap_err()
        .to_string();
    assert_eq!(text, "updating BPF map `filter`: got a 4-byte key and 16-byte value, the map holds 8-byte keys and 16-byte values");
    assert_eq!(
        update_map(&sys, &loaded, "nope", &[], &[]).unwrap_err(),
        LoadError::NoSuchMap {
            name: "nope".into()
        }
    );
    sys.fail_next("map_update", libc::E2BIG);
    assert!(update_map(&sys, &loaded, "filter", &[1; 8], &[2; 16])
        .unwrap_err()
        .to_string()
        .contains("BPF_MAP_UPDATE_ELEM"));
}

/// End to end on bpf-asm's own output: every placeholder it wrote is replaced.
#[test]
fn patches_a_bpf_asm_object() {
    let obj = parse(include_bytes!("../probe_object/testdata/bpf-asm-fixture.o")).unwrap();
    // The shared table, plus the one field only the fixture uses.
    let mut resolver = fields();
    resolver.0.insert(
        "sock_common.skc_v6_rcv_saddr",
        FieldOffset {
            offset: 72,
            size: 16,
        },
    );
    let sys = FakeSys::new();
    load(&sys, &obj, &resolver, &opts()).unwrap();
    let fds = map_fds(&sys.calls());
    let loads = prog_loads(&sys.calls());
    let insns = &loads[0].2;
    assert_eq!(
        (
            insn::off(insns[1]),
            insn::off(insns[2]),
            insn::imm(insns[4])
        ),
        (12, 60, 72)
    );
    assert_eq!(
        (insn::src_reg(insns[5]), insn::imm(insns[5])),
        (1, fds["filter"])
    );
    assert_eq!(insn::imm(loads[1].2[0]), fds["events"]);
}

/// The real kernel's verifier, through `load`: a program it must reject, and the check that
/// the error a user sees carries the verifier's own reason. Needs root (without it the kernel
/// refuses before verifying): as any other user, None after the one-line skip for `test`.
fn load_rejected_by_the_verifier(test: &str, insns: Vec<u64>) -> Option<LoadError> {
    let name = format!(
        "{}::{test}",
        module_path!().trim_start_matches("conntrace::")
    );
    if !crate::kernel::sys::process::root_or_skip(&name) {
        return None;
    }
    let section = "tracepoint/syscalls/sys_enter_getpid";
    let obj = ProbeObject {
        license: "GPL".into(),
        maps: Vec::new(),
        programs: vec![crate::kernel::probe_object::Program {
            section: section.into(),
            kind: ProgramKind::Tracepoint {
                category: "syscalls".into(),
                name: "sys_enter_getpid".into(),
            },
            insns,
            map_relocs: Vec::new(),
            field_relocs: Vec::new(),
        }],
    };
    let opts = LoadOptions {
        nr_cpus: 1,
        kern_version: crate::kernel::load::kernel_version_code(),
        programs: ProgramFilter::All,
        helper_rewrites: Vec::new(),
        permission: PermissionContext::Unprivileged,
        map_sizes: Vec::new(),
        allocated_as_used: Vec::new(),
    };
    let resolver = Fields(HashMap::new());
    let e = match load(&crate::kernel::sys::RealSys, &obj, &resolver, &opts) {
        Ok(_) => panic!("the kernel loaded a program its verifier must reject"),
        Err(e) => e,
    };
    match &e {
        LoadError::Verifier { program, errno, .. } => {
            assert_eq!(program, section);
            assert_eq!(
                *errno,
                libc::EACCES,
                "the verifier rejects with EACCES: {e}"
            );
        }
        other => panic!("expected LoadError::Verifier, got {other:?}"),
    }
    Some(e)
}

fn assert_reason_shown(e: &LoadError, reason: &str) {
    let LoadError::Verifier { log_tail, .. } = e else {
        unreachable!("checked by load_rejected_by_the_verifier")
    };
    assert!(
        log_tail.iter().any(|l| l.contains(reason)),
        "log tail lacks {reason:?}: {log_tail:#?}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with(
            "the kernel refused to load program tracepoint/syscalls/sys_enter_getpid (EACCES); \
             the verifier said:\n    "
        ),
        "{text}"
    );
    assert!(
        text.contains(reason),
        "the user does not see {reason:?}:\n{text}"
    );
}

#[test]
fn real_verifier_rejects_a_read_of_an_uninitialised_register() {
    // r0 = r5; exit: r5 is never written in a tracepoint program.
    let mov_r0_r5 = 0xbf | (5 << 12);
    let Some(e) = load_rejected_by_the_verifier(
        "real_verifier_rejects_a_read_of_an_uninitialised_register",
        vec![mov_r0_r5, asm::EXIT],
    ) else {
        return;
    };
    assert_reason_shown(&e, "R5 !read_ok");
}

#[test]
fn real_verifier_rejects_a_read_beyond_the_stack() {
    // r0 = *(u64 *)(r10 + 8); exit: above the frame pointer is outside the stack.
    let Some(e) = load_rejected_by_the_verifier(
        "real_verifier_rejects_a_read_beyond_the_stack",
        vec![asm::ldx(0x18, 0, 10, 8), asm::EXIT],
    ) else {
        return;
    };
    // The kernel's wording since 5.12 ("invalid read from stack R10 off=8 size=8").
    assert_reason_shown(&e, "invalid read from stack");
}

#[test]
fn refuses_a_relocation_on_an_instruction_of_the_wrong_kind() {
    // An `off` relocation on an ALU instruction: its off is no memory offset.
    let obj = object_with(asm::add_imm(2, 0x7bad), "sock_common.skc_dport", 0);
    let text = load(&FakeSys::new(), &obj, &fields(), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(&format!(
            "the instruction at {TP}+16 (`r2 += 0x7bad`) is not a load or store with the offset as its memory offset"
        )),
        "{text}"
    );

    // An `imm` relocation on a load: its imm means nothing.
    let mut obj = object();
    obj.programs[1].insns[3] = asm::ldx(0x10, 3, 1, 0);
    let text = load(&FakeSys::new(), &obj, &fields(), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(
            "(`w3 = *(u8 *)(r1 + 0x0)`) is not an ALU operation with the offset as its immediate"
        ),
        "{text}"
    );

    // No instruction at all.
    let mut obj = object();
    obj.programs[1].insns[2] = 0x8c;
    let text = load(&FakeSys::new(), &obj, &fields(), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(&format!(
            "the offset of sock_common.skc_dport goes into {TP}+16, which is no instruction (opcode 0x8c is not a BPF instruction)"
        )),
        "{text}"
    );
}

#[test]
fn refuses_an_lddw_whose_second_slot_is_not_empty() {
    let mut obj = object();
    obj.programs[0].insns[2] = asm::EXIT;
    let text = load(&FakeSys::new(), &obj, &fields(), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("map relocation at kprobe/tcp_v4_connect+8 is not on an lddw instruction (the second slot of an lddw holds opcode 0x95"),
        "{text}"
    );
}

#[test]
fn patching_changes_only_the_patched_field() {
    let obj = object();
    let sys = FakeSys::new();
    load(&sys, &obj, &fields(), &opts()).unwrap();
    let loads = prog_loads(&sys.calls());
    let fds = map_fds(&sys.calls());
    let (before, after) = (&obj.programs[1].insns, &loads[1].2);
    assert_eq!(after.len(), before.len());
    // lddw: src and imm of the first slot; the second slot stays empty.
    assert_eq!(
        after[0],
        insn::with_imm(insn::with_src_reg(before[0], 1), fds["events"])
    );
    assert_eq!(after[1], 0);
    assert_eq!(after[2], insn::with_off(before[2], 12));
    assert_eq!(after[3], insn::with_imm(before[3], 60));
    assert_eq!(after[4], before[4]);
}

#[test]
fn a_tracepoint_field_narrower_in_this_kernel_gets_a_narrower_load() {
    // inet_sock_set_state's protocol: a u16 in the source, a u8 before 5.6.
    struct Narrow;
    impl FieldResolver for Narrow {
        fn field(&self, _: &str) -> Result<FieldOffset, String> {
            Ok(FieldOffset {
                offset: 30,
                size: 1,
            })
        }
    }
    let spec = "trace_event_raw_inet_sock_set_state.protocol";
    let obj = object_with(asm::ldx(0x08, 2, 1, 0x7bad), spec, 0);
    let sys = FakeSys::new();
    load(&sys, &obj, &Narrow, &opts()).unwrap();
    let loads = prog_loads(&sys.calls());
    let (_, _, insns, _) = loads.iter().find(|l| l.2.len() == 5).unwrap();
    let insn = insns[2];
    assert_eq!(insn & 0xff, 0x71, "ldxh became ldxb: {insn:#x}");
    assert_eq!((insn >> 16) & 0xffff, 30, "at the field's offset");
    // Elsewhere a too-wide load stays an error (see checks_the_access_width_against_the_field).
    let obj = object_with(asm::ldx(0x08, 2, 1, 0x7bad), "sock_common.skc_family", 0);
    assert!(load(&FakeSys::new(), &obj, &Narrow, &opts()).is_err());
}

/// `call N` (a helper: src_reg 0).
fn call(id: i32) -> u64 {
    0x85 | (u64::from(id as u32) << 32)
}

#[test]
fn missing_helpers_are_rewritten_to_their_fallback_and_nothing_else() {
    use crate::kernel::abi::{
        BPF_FUNC_PROBE_READ, BPF_FUNC_PROBE_READ_KERNEL, BPF_FUNC_PROBE_READ_USER,
    };
    let [l0, l1] = asm::lddw(1);
    // A BPF-to-BPF call (src_reg 1) and an lddw whose constant is 113 are not helper calls.
    let pseudo_call = call(113) | (1 << 12);
    let lddw_113 = [l0 | (113 << 32), l1];
    let insns = [
        call(113),
        lddw_113[0],
        lddw_113[1],
        call(112),
        pseudo_call,
        call(14),
        call(113),
        asm::EXIT,
    ];
    let program = Program {
        section: "tracepoint/sock/inet_sock_set_state".into(),
        kind: ProgramKind::Tracepoint {
            category: "sock".into(),
            name: "inet_sock_set_state".into(),
        },
        insns: insns.to_vec(),
        map_relocs: Vec::new(),
        field_relocs: Vec::new(),
    };
    let mut patched = insns.to_vec();
    let n = patch::helper_calls(
        &program,
        &mut patched,
        BPF_FUNC_PROBE_READ_KERNEL,
        BPF_FUNC_PROBE_READ,
    )
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        patched,
        [
            call(4),
            lddw_113[0],
            lddw_113[1],
            call(112),
            pseudo_call,
            call(14),
            call(4),
            asm::EXIT
        ]
    );

    // Through load(): what the kernel is given.
    let obj = ProbeObject {
        license: "GPL".into(),
        maps: Vec::new(),
        programs: vec![program],
    };
    let sys = FakeSys::new();
    let opts = LoadOptions {
        helper_rewrites: vec![
            (BPF_FUNC_PROBE_READ_KERNEL, BPF_FUNC_PROBE_READ),
            (BPF_FUNC_PROBE_READ_USER, BPF_FUNC_PROBE_READ),
        ],
        ..opts()
    };
    load(&sys, &obj, &fields(), &opts).unwrap();
    let loads = prog_loads(&sys.calls());
    assert_eq!(loads.len(), 1);
    assert_eq!(
        loads[0].2,
        [
            call(4),
            lddw_113[0],
            lddw_113[1],
            call(4),
            pseudo_call,
            call(14),
            call(4),
            asm::EXIT
        ]
    );
}

#[test]
fn a_damaged_program_is_refused_by_the_helper_rewrite_not_a_panic() {
    let program = Program {
        section: "kprobe/x".into(),
        kind: ProgramKind::Kprobe {
            function: "x".into(),
        },
        insns: vec![call(113), 0xff],
        map_relocs: Vec::new(),
        field_relocs: Vec::new(),
    };
    let mut insns = program.insns.clone();
    let e = patch::helper_calls(&program, &mut insns, 113, 4).unwrap_err();
    assert_eq!(
        e,
        "kprobe/x+8: opcode 0xff is not a BPF instruction: the probe object is damaged; rebuild conntrace"
    );
    assert_eq!(insns, program.insns, "nothing is half-patched");
}

#[test]
fn fallbacks_are_the_pre_5_5_helpers() {
    assert_eq!(helper_fallback(112), Some(4));
    assert_eq!(helper_fallback(113), Some(4));
    assert_eq!(helper_fallback(114), Some(45));
    assert_eq!(helper_fallback(115), Some(45));
    assert_eq!(helper_fallback(14), None);
}

#[test]
fn map_sizes_replace_the_objects_max_entries() {
    let sys = FakeSys::new();
    let opts = LoadOptions {
        map_sizes: vec![("filter".into(), 16)],
        ..opts()
    };
    let loaded = load(&sys, &object(), &fields(), &opts).unwrap();
    let created: Vec<(String, u32)> = sys
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::MapCreate {
                name, max_entries, ..
            } => Some((name.clone(), *max_entries)),
            _ => None,
        })
        .collect();
    assert_eq!(
        created,
        vec![("events".to_string(), 6), ("filter".to_string(), 16)],
        "the override wins, the others keep theirs"
    );
    assert_eq!(loaded.map("filter").unwrap().def.max_entries, 16);
}

#[test]
fn maps_allocated_as_used_are_created_without_preallocation() {
    let sys = FakeSys::new();
    let opts = LoadOptions {
        allocated_as_used: vec!["filter".into()],
        ..opts()
    };
    let loaded = load(&sys, &object(), &fields(), &opts).unwrap();
    let flags: Vec<(String, u32)> = sys
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::MapCreate { name, flags, .. } => Some((name.clone(), *flags)),
            _ => None,
        })
        .collect();
    assert_eq!(
        flags,
        vec![
            ("events".to_string(), 0),
            ("filter".to_string(), BPF_F_NO_PREALLOC)
        ],
        "only the named map"
    );
    assert_eq!(
        loaded.map("filter").unwrap().def.flags,
        BPF_F_NO_PREALLOC,
        "the map as created says so, for the memory it states"
    );
}

#[test]
fn allocation_as_used_for_a_map_the_object_lacks_is_an_error() {
    let sys = FakeSys::new();
    let opts = LoadOptions {
        allocated_as_used: vec!["socks".into()],
        ..opts()
    };
    let e = load(&sys, &object(), &fields(), &opts).unwrap_err();
    assert_eq!(
        e,
        LoadError::NoSuchMap {
            name: "socks".into()
        }
    );
    assert!(sys.calls().is_empty(), "checked before any map exists");
}

#[test]
fn a_size_for_a_map_the_object_lacks_is_an_error() {
    let sys = FakeSys::new();
    let opts = LoadOptions {
        map_sizes: vec![("conns".into(), 16)],
        ..opts()
    };
    let e = load(&sys, &object(), &fields(), &opts).unwrap_err();
    assert_eq!(
        e,
        LoadError::NoSuchMap {
            name: "conns".into()
        }
    );
    assert!(sys.calls().is_empty(), "checked before any map exists");
}

/// Resolves the one tracepoint a `tp_btf` program may name here.
struct TraceIds;

impl FieldResolver for TraceIds {
    fn field(&self, spec: &str) -> Result<FieldOffset, String> {
        Err(format!("no {spec}"))
    }

    fn tracepoint_btf_id(&self, name: &str) -> Result<u32, String> {
        match name {
            "inet_sock_set_state" => Ok(31337),
            _ => Err(format!("the kernel's BTF has no btf_trace_{name}")),
        }
    }
}

/// `r1 = map store ll; exit` as a tp_btf program, with a socket-local storage map.
fn storage_object(tracepoint: &str) -> ProbeObject {
    let [l0, l1] = asm::lddw(1);
    let bytes = ObjBuilder::new()
        .program(&format!("tp_btf/{tracepoint}"), &[l0, l1, asm::EXIT])
        .map("store", [24, 4, 64, 0, 1])
        .map_reloc(0, 0, 0)
        .build();
    parse(&bytes).unwrap()
}

#[test]
fn a_storage_map_is_created_with_its_btf_and_a_tp_btf_program_with_its_tracepoint_id() {
    let sys = FakeSys::new();
    let loaded = load(
        &sys,
        &storage_object("inet_sock_set_state"),
        &TraceIds,
        &opts(),
    )
    .unwrap();
    let calls = sys.calls();
    let Call::BtfLoad { btf, fd: btf_fd } = &calls[0] else {
        panic!("{calls:?}")
    };
    let (blob, types) = crate::kernel::btf::storage_map_btf(64);
    assert_eq!(btf, &blob, "a value type of the map's value size");
    assert!(
        matches!(&calls[1], Call::MapCreate { name, map_type: 24, max_entries: 0, flags: 1, btf: Some(b), .. }
            if name == "store" && b.fd == *btf_fd && b.key_type_id == types.key && b.value_type_id == types.value),
        "{:?}",
        calls[1]
    );
    assert!(
        matches!(&calls[2], Call::ProgLoad { name, prog_type: 26, expected_attach_type: 23, attach_btf_id: 31337, .. }
            if name == "tb_inet_sock_set_state"),
        "{:?}",
        calls[2]
    );
    assert_eq!(
        loaded.programs[0].kind,
        ProgramKind::TpBtf {
            name: "inet_sock_set_state".into()
        }
    );

    // A tracepoint the kernel's BTF does not name: the load says so, before any program.
    let sys = FakeSys::new();
    let err = load(&sys, &storage_object("no_such_tp"), &TraceIds, &opts()).unwrap_err();
    assert!(
        err.to_string()
            .contains("the kernel's BTF has no btf_trace_no_such_tp"),
        "{err}"
    );
    assert!(!sys
        .calls()
        .iter()
        .any(|c| matches!(c, Call::ProgLoad { .. })));
}

#[test]
fn other_programs_load_with_no_attach_type_or_btf_id() {
    let sys = FakeSys::new();
    load(&sys, &object(), &fields(), &opts()).unwrap();
    for call in sys.calls() {
        if let Call::ProgLoad {
            expected_attach_type,
            attach_btf_id,
            ..
        } = call
        {
            assert_eq!((expected_attach_type, attach_btf_id), (0, 0));
        }
    }
}
