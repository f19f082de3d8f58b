//! The floor cannot rise by accident: every instruction form and every helper the embedded
//! probe objects use is looked up in a table of the kernel release that introduced it, and a
//! program meant for an older kernel that uses something newer fails here, in plain
//! `cargo test`, without root and without booting that kernel. A helper the loader rewrites
//! where it is missing (`conntrace::kernel::load::helper_fallback`) counts at its
//! fallback's release. Each program also stays within 4,096 instructions, the limit before
//! 5.2. The table's sources are in docs/kernel-features.md.

use bpf_insn::{
    decode_program, AluOp, AluWidth, AtomicOp, ByteSwap, Condition, Instruction, JumpWidth, OpCode,
    Reg, Source,
};
use conntrace::kernel::load::helper_fallback;
use conntrace::kernel::probe_object::{self, ProbeObject, ProgramKind};
use conntrace::session::embedded;
use conntrace::session::rings::RingKind;
use std::collections::BTreeMap;

/// A kernel release, (major, minor).
type Release = (u32, u32);

fn show(r: Release) -> String {
    format!("{}.{}", r.0, r.1)
}

/// An embedded object's unpacking function.
type Object = fn() -> Vec<u8>;

/// The objects and the oldest kernel each is meant for (the README's Requirements: 4.19). The
/// objects that send to the BPF ring buffer are loaded only where it was probed (5.8,
/// src/session/rings.rs); their perf-ring twins carry the floor.
const FLOORS: [(&str, Object, Release); 4] = [
    ("probes.o", embedded::probe_object, (5, 8)),
    (
        "probes-perf.o",
        || embedded::object(true, RingKind::Perf),
        (4, 19),
    ),
    ("probes-nobtf.o", embedded::probe_object_nobtf, (5, 8)),
    (
        "probes-nobtf-perf.o",
        || embedded::object(false, RingKind::Perf),
        (4, 19),
    ),
];

/// The instruction limit of a program before 5.2 (BPF_MAXINSNS), counted in 8-byte slots as
/// BPF_PROG_LOAD's insn_cnt is.
const MAX_INSNS_BEFORE_5_2: usize = 4096;

/// The release that introduced an instruction form, by name. Sources: docs/kernel-features.md.
fn instruction_feature(insn: &Instruction) -> (&'static str, Release) {
    match insn.opcode {
        OpCode::Jump {
            width: JumpWidth::W32,
            ..
        } => ("JMP32 jump", (5, 1)),
        OpCode::Jump {
            cond: Condition::Lt | Condition::Le | Condition::Slt | Condition::Sle,
            ..
        } => ("jump lt/le/slt/sle", (4, 14)),
        OpCode::Jump { .. } | OpCode::Goto | OpCode::Exit => ("jump, goto, exit", (3, 18)),
        OpCode::Gotol => ("gotol (ISA v4)", (6, 6)),
        OpCode::Call if insn.src == Reg::R0 => ("helper call", (3, 18)),
        OpCode::Call if insn.src == Reg::new(1).unwrap_or(Reg::R0) => ("BPF-to-BPF call", (4, 16)),
        OpCode::Call => ("kfunc call", (5, 13)),
        OpCode::Alu {
            op: AluOp::Div | AluOp::Mod,
            ..
        } if insn.off == 1 => ("sdiv/smod (ISA v4)", (6, 6)),
        OpCode::Alu {
            op: AluOp::Mov,
            source: Source::Reg,
            ..
        } if insn.off != 0 => ("movsx (ISA v4)", (6, 6)),
        OpCode::Alu {
            width: AluWidth::W32,
            op: AluOp::Arsh,
            ..
        } => ("32-bit arsh", (5, 0)),
        OpCode::Alu {
            width: AluWidth::W32,
            ..
        }
        | OpCode::Neg(AluWidth::W32) => ("ALU32", (3, 18)),
        OpCode::Alu { .. } | OpCode::Neg(_) => ("ALU64", (3, 18)),
        OpCode::ByteSwap(ByteSwap::Bswap) => ("bswap (ISA v4)", (6, 6)),
        OpCode::ByteSwap(_) => ("le/be byte swap", (3, 18)),
        OpCode::LoadSx(_) => ("ldsx (ISA v4)", (6, 6)),
        OpCode::LoadImm64 if insn.src == Reg::R0 => ("lddw constant", (3, 18)),
        OpCode::LoadImm64 if insn.src == Reg::PSEUDO_MAP_FD => ("lddw map fd", (3, 18)),
        OpCode::LoadImm64 => ("lddw map value/btf id/func", (5, 2)),
        OpCode::Load(_) | OpCode::Store { .. } => ("load/store", (3, 18)),
        OpCode::Atomic(_) if insn.imm == AtomicOp::Add as i64 => ("atomic add (xadd)", (3, 18)),
        OpCode::Atomic(_) => ("atomic fetch/xchg/cmpxchg/and/or/xor", (5, 12)),
    }
}

/// The release whose include/uapi/linux/bpf.h first has each helper conntrace's programs
/// may call. A helper not here fails the test: add it, with its source.
const HELPERS: &[(i64, &str, Release)] = &[
    (1, "bpf_map_lookup_elem", (3, 19)),
    (2, "bpf_map_update_elem", (3, 19)),
    (3, "bpf_map_delete_elem", (3, 19)),
    (4, "bpf_probe_read", (4, 1)),
    (5, "bpf_ktime_get_ns", (4, 1)),
    (6, "bpf_trace_printk", (4, 1)),
    (14, "bpf_get_current_pid_tgid", (4, 2)),
    (15, "bpf_get_current_uid_gid", (4, 2)),
    (16, "bpf_get_current_comm", (4, 2)),
    (25, "bpf_perf_event_output", (4, 4)),
    (35, "bpf_get_current_task", (4, 8)),
    (37, "bpf_current_task_under_cgroup", (4, 9)),
    (45, "bpf_probe_read_str", (4, 11)),
    (80, "bpf_get_current_cgroup_id", (4, 18)),
    (107, "bpf_sk_storage_get", (5, 2)),
    (108, "bpf_sk_storage_delete", (5, 2)),
    (112, "bpf_probe_read_user", (5, 5)),
    (113, "bpf_probe_read_kernel", (5, 5)),
    (114, "bpf_probe_read_user_str", (5, 5)),
    (115, "bpf_probe_read_kernel_str", (5, 5)),
    (130, "bpf_ringbuf_output", (5, 8)),
    (134, "bpf_ringbuf_query", (5, 8)),
    (160, "bpf_ktime_get_coarse_ns", (5, 11)),
];

fn helper(id: i64) -> Option<(&'static str, Release)> {
    HELPERS
        .iter()
        .find(|(i, ..)| *i == id)
        .map(|&(_, name, release)| (name, release))
}

/// The release that introduced each program type (BPF_PROG_TYPE_KPROBE in 4.1, _TRACEPOINT
/// in 4.7, _RAW_TRACEPOINT in 4.17, _TRACING in 5.5; include/uapi/linux/bpf.h).
fn program_type(kind: &ProgramKind) -> (&'static str, Release) {
    match kind {
        ProgramKind::Kprobe { .. } | ProgramKind::Kretprobe { .. } => ("kprobe programs", (4, 1)),
        ProgramKind::Tracepoint { .. } => ("tracepoint programs", (4, 7)),
        ProgramKind::RawTracepoint { .. } => ("raw tracepoint programs", (4, 17)),
        ProgramKind::TpBtf { .. } => ("tp_btf programs", (5, 5)),
    }
}

/// A program loaded only where a probe found what it needs (the tp_btf state program: where
/// socket-local storage works from tp_btf, 5.11; src/session/features.rs) has a fallback
/// that every kernel of the object's floor loads, its raw tracepoint twin: what only it uses
/// counts at the fallback's release.
fn probed_fallback(kind: &ProgramKind) -> Option<(&'static str, Release)> {
    match kind {
        ProgramKind::TpBtf { .. } => Some(("the raw tracepoint program", (4, 17))),
        _ => None,
    }
}

/// What a program needs: feature name -> (release, where first used).
fn needs(object: &ProbeObject) -> Result<BTreeMap<String, (Release, String)>, String> {
    let mut needs: BTreeMap<String, (Release, String)> = BTreeMap::new();
    let mut note = |what: String, release: Release, at: String| {
        needs.entry(what).or_insert((release, at));
    };
    for program in &object.programs {
        let fallback = probed_fallback(&program.kind);
        let mut note = |what: &str, release: Release, at: String| match fallback {
            Some((to, to_release)) if to_release < release => {
                note(format!("{what} (probed, else {to})"), to_release, at)
            }
            _ => note(what.to_string(), release, at),
        };
        let (what, release) = program_type(&program.kind);
        note(what, release, program.section.clone());
        for decoded in decode_program(&program.insns) {
            let (slot, insn) = decoded.map_err(|e| format!("{}: {e}", program.section))?;
            let at = format!("{}+{}", program.section, slot * 8);
            let (what, release) = instruction_feature(&insn);
            note(what, release, at.clone());
            if insn.opcode == OpCode::Call && insn.src == Reg::R0 {
                let (name, release) = helper(insn.imm).ok_or_else(|| {
                    format!(
                        "{at}: helper {} ({:?}) is not in this test's HELPERS table: add it with the release that introduced it",
                        insn.imm,
                        bpf_asm::helpers::helper_name(insn.imm)
                    )
                })?;
                // A helper the loader rewrites where it is missing needs only its fallback.
                let rewritten = u32::try_from(insn.imm)
                    .ok()
                    .and_then(helper_fallback)
                    .and_then(|to| helper(i64::from(to)));
                match rewritten {
                    Some((to, to_release)) => {
                        note(&format!("{name} (else {to})"), release.min(to_release), at)
                    }
                    None => note(name, release, at),
                }
            }
        }
    }
    Ok(needs)
}

#[test]
fn no_program_needs_a_kernel_newer_than_its_objects_floor() {
    let mut problems = Vec::new();
    for (name, bytes, floor) in FLOORS {
        let object = probe_object::parse(&bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!object.programs.is_empty(), "{name} has no programs");
        let needs = needs(&object).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (what, (release, at)) in &needs {
            if *release <= floor {
                continue;
            }
            problems.push(format!(
                "{name} is meant for Linux {}+ but uses {what} (Linux {}+), first at {at}",
                show(floor),
                show(*release)
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_program_fits_the_pre_5_2_instruction_limit() {
    for (name, bytes, _) in FLOORS {
        let object = probe_object::parse(&bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        for program in &object.programs {
            assert!(
                program.insns.len() <= MAX_INSNS_BEFORE_5_2,
                "{name}: {} has {} instructions, more than the {MAX_INSNS_BEFORE_5_2} kernels before 5.2 load",
                program.section,
                program.insns.len()
            );
        }
    }
}

/// The audit's own table against the assembler's helper numbers (bpf-asm, from
/// include/uapi/linux/bpf.h): a wrong id here would audit the wrong helper.
#[test]
fn the_helper_table_uses_the_kernels_numbers() {
    for &(id, name, _) in HELPERS {
        assert_eq!(
            bpf_asm::helpers::helper_name(id).as_deref(),
            Some(name),
            "helper {id}"
        );
    }
}

/// The classification itself, on hand-made instructions: a table that calls everything
/// "3.18" would pass the audit above vacuously.
#[test]
fn the_instruction_table_tells_the_new_forms_apart() {
    let insn = |byte: u8, src: u8, off: i16, imm: i64| Instruction {
        opcode: OpCode::from_byte(byte).unwrap(),
        dst: Reg::R1,
        src: Reg::new(src).unwrap(),
        off,
        imm,
    };
    let cases = [
        (insn(0x16, 0, 0, 0), (5, 1)),     // if w1 == 0 goto
        (insn(0x15, 0, 0, 0), (3, 18)),    // if r1 == 0 goto
        (insn(0xa5, 0, 0, 0), (4, 14)),    // if r1 < 0 goto
        (insn(0xdb, 2, 0, 0x00), (3, 18)), // lock *(u64 *)(r1 + 0) += r2
        (insn(0xdb, 2, 0, 0x01), (5, 12)), // atomic_fetch_add
        (insn(0xdb, 2, 0, 0x40), (5, 12)), // atomic or
        (insn(0xdb, 2, 0, 0xe1), (5, 12)), // xchg
        (insn(0xdb, 2, 0, 0xf1), (5, 12)), // cmpxchg
        (insn(0x3f, 2, 1, 0), (6, 6)),     // sdiv
        (insn(0x3f, 2, 0, 0), (3, 18)),    // div
        (insn(0xbf, 2, 8, 0), (6, 6)),     // movsx
        (insn(0xbf, 2, 0, 0), (3, 18)),    // mov
        (insn(0x91, 2, 0, 0), (6, 6)),     // ldsx
        (insn(0xd7, 0, 0, 16), (6, 6)),    // bswap16
        (insn(0xdc, 0, 0, 16), (3, 18)),   // be16
        (insn(0x06, 0, 0, 5), (6, 6)),     // gotol
        (insn(0xcc, 2, 0, 0), (5, 0)),     // w1 s>>= w2
        (insn(0x04, 0, 0, 1), (3, 18)),    // w1 += 1
        (insn(0x85, 1, 0, 3), (4, 16)),    // call pc+3
        (insn(0x85, 2, 0, 3), (5, 13)),    // kfunc
    ];
    for (i, (insn, release)) in cases.iter().enumerate() {
        assert_eq!(instruction_feature(insn).1, *release, "case {i}: {insn:?}");
    }
}
