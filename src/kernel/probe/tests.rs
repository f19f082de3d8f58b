use super::*;
use crate::kernel::abi::{
    BPF_FUNC_KTIME_GET_COARSE_NS, BPF_FUNC_PROBE_READ_KERNEL, BPF_FUNC_PROBE_READ_USER,
    BPF_PROG_TYPE_TRACEPOINT,
};
use crate::kernel::sys::fake::{Call, FakeSys};
use crate::kernel::sys::{process, RealSys};
use bpf_insn::decode_program;

fn decoded(insns: &[u64]) -> Vec<Instruction> {
    decode_program(insns)
        .map(|r| r.map(|(_, i)| i).unwrap())
        .collect()
}

fn loads(sys: &FakeSys) -> Vec<(u32, Vec<u64>, usize)> {
    sys.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::ProgLoad {
                prog_type,
                insns,
                log_size,
                ..
            } => Some((prog_type, insns, log_size)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_programs_are_what_they_say() {
    let call = decoded(&helper_call_program(113));
    assert_eq!(call.len(), 7);
    assert_eq!(call[4].opcode, OpCode::Call);
    assert_eq!(call[4].imm, 113);
    assert_eq!(call.last().unwrap().opcode, OpCode::Exit);

    let jmp = decoded(&jmp32_program());
    assert!(jmp.iter().any(|i| matches!(
        i.opcode,
        OpCode::Jump {
            width: JumpWidth::W32,
            ..
        }
    )));

    let atomic = decoded(&atomic_fetch_program());
    let op = atomic
        .iter()
        .find(|i| i.opcode == OpCode::Atomic(AtomicSize::DW))
        .unwrap();
    assert_eq!(op.imm, 0x41, "atomic_fetch_or: BPF_OR | BPF_FETCH");
    assert_eq!((op.dst, op.off), (Reg::R10, -8));

    assert_eq!(decoded(&return_zero_program()).len(), 2);
}

#[test]
fn a_loaded_helper_program_is_present_in_one_call() {
    let sys = FakeSys::new();
    let got = helper(&sys, BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_PROBE_READ_KERNEL);
    assert_eq!(got, Probed::Present);
    let loads = loads(&sys);
    assert_eq!(loads.len(), 1);
    assert_eq!(loads[0].0, BPF_PROG_TYPE_TRACEPOINT);
    assert_eq!(loads[0].1, helper_call_program(BPF_FUNC_PROBE_READ_KERNEL));
    assert_eq!(loads[0].2, 0, "the first try is without a log");
}

#[test]
fn an_unknown_helper_is_missing_with_the_verifiers_words() {
    let sys = FakeSys::new();
    sys.fail_always("prog_load", libc::EINVAL);
    sys.set_verifier_log("0: (bf) r1 = r10\n4: (85) call unknown#113\ninvalid func unknown#113\n");
    let got = helper(&sys, BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_PROBE_READ_KERNEL);
    assert_eq!(
        got,
        Probed::Missing("the verifier said \"invalid func unknown#113\"".into())
    );
    let sizes: Vec<usize> = loads(&sys).iter().map(|l| l.2).collect();
    assert_eq!(
        sizes,
        [0, PROBE_LOG_SIZE],
        "two calls: the second for the reason"
    );

    let sys = FakeSys::new();
    sys.fail_always("prog_load", libc::EINVAL);
    sys.set_verifier_log("unknown func bpf_probe_read_user#112\n");
    assert!(helper(&sys, BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_PROBE_READ_USER).is_missing());
}

#[test]
fn a_helper_program_refused_for_another_reason_is_unknown() {
    let sys = FakeSys::new();
    sys.fail_always("prog_load", libc::EINVAL);
    sys.set_verifier_log("R1 type=fp expected=map_ptr\n");
    let got = helper(&sys, BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_PROBE_READ_KERNEL);
    assert!(
        matches!(&got, Probed::Unknown(why) if why.contains("R1 type=fp")),
        "{got:?}"
    );
}

#[test]
fn no_privilege_is_unknown_not_missing() {
    let sys = FakeSys::new();
    sys.fail_always("prog_load", libc::EPERM);
    sys.fail_always("map_create", libc::EPERM);
    for got in [
        jmp32(&sys),
        atomic_fetch(&sys),
        raw_tracepoint(&sys),
        ringbuf(&sys),
    ] {
        assert!(
            matches!(&got, Probed::Unknown(why) if why.contains("EPERM") && why.contains("root")),
            "{got:?}"
        );
    }
    // EPERM is not worth a second load with a log.
    assert_eq!(loads(&sys).len(), 3);
}

#[test]
fn isa_and_program_type_probes_treat_einval_as_missing() {
    let sys = FakeSys::new();
    sys.fail_always("prog_load", libc::EINVAL);
    assert!(jmp32(&sys).is_missing());
    assert!(atomic_fetch(&sys).is_missing());
    assert!(raw_tracepoint(&sys).is_missing());
    let types: Vec<u32> = loads(&sys).iter().map(|l| l.0).collect();
    assert_eq!(
        types,
        [
            BPF_PROG_TYPE_SOCKET_FILTER,
            BPF_PROG_TYPE_SOCKET_FILTER,
            BPF_PROG_TYPE_SOCKET_FILTER,
            BPF_PROG_TYPE_SOCKET_FILTER,
            BPF_PROG_TYPE_RAW_TRACEPOINT,
            BPF_PROG_TYPE_RAW_TRACEPOINT,
        ]
    );
}

#[test]
fn ringbuf_is_a_one_page_map() {
    let sys = FakeSys::new();
    assert_eq!(ringbuf(&sys), Probed::Present);
    assert!(matches!(
        &sys.calls()[0],
        Call::MapCreate { map_type: 27, key_size: 0, value_size: 0, max_entries, .. }
            if *max_entries as usize == host::page_size()
    ));
    let sys = FakeSys::new();
    sys.fail_next("map_create", libc::EINVAL);
    assert!(ringbuf(&sys).is_missing());
}

#[test]
fn tp_btf_sk_storage_loads_a_storage_map_with_btf_then_a_tp_btf_program_using_it() {
    let sys = FakeSys::new();
    assert_eq!(tp_btf_sk_storage(&sys, 4242), Probed::Present);
    let calls = sys.calls();
    let Call::BtfLoad { btf, fd } = &calls[0] else {
        panic!("{calls:?}")
    };
    assert_eq!(btf, &storage_map_btf(8).0);
    let Call::MapCreate { fd: map, .. } = &calls[1] else {
        panic!("{calls:?}")
    };
    assert!(matches!(
        &calls[1],
        Call::MapCreate { map_type: 24, key_size: 4, value_size: 8, max_entries: 0, flags: 1, btf: Some(b), .. }
            if b.fd == *fd && b.key_type_id == 1 && b.value_type_id == 3
    ));
    assert!(
        matches!(
            &calls[2],
            Call::ProgLoad { prog_type: 26, expected_attach_type: 23, attach_btf_id: 4242, insns, .. }
                if insns == &sk_storage_get_program(*map)
        ),
        "{:?}",
        calls[2]
    );

    // No storage maps (before 5.2): missing, and no program is tried.
    let sys = FakeSys::new();
    sys.fail_next("map_create", libc::EINVAL);
    assert!(tp_btf_sk_storage(&sys, 1).is_missing());
    assert_eq!(sys.calls().len(), 2);

    // The helper unknown to tracing programs (5.5 to 5.10): missing.
    let sys = FakeSys::new();
    sys.set_verifier_log("0: R1=ctx()\nunknown func bpf_sk_storage_get#107\n");
    sys.fail_next("prog_load", libc::EINVAL);
    sys.fail_next("prog_load", libc::EINVAL);
    let got = tp_btf_sk_storage(&sys, 1);
    assert!(
        matches!(&got, Probed::Missing(why) if why.contains("unknown func bpf_sk_storage_get")),
        "{got:?}"
    );

    let sys = FakeSys::new();
    sys.fail_next("btf_load", libc::EINVAL);
    let got = tp_btf_sk_storage(&sys, 1);
    assert!(
        matches!(&got, Probed::Unknown(why) if why.contains("need BTF")),
        "{got:?}"
    );
}

#[test]
fn the_storage_get_program_reads_the_socket_and_calls_the_helper() {
    let words = sk_storage_get_program(7);
    // ldxdw r2, [r1+0]; lddw r1, map 7 (two slots); r3 = 0; r4 = 0; call 107; r0 = 0; exit
    assert_eq!(words.len(), 8);
    assert_eq!(words[0] & 0xffff, 0x1279);
    assert_eq!(words[1] & 0xffff, 0x1118);
    assert_eq!(words[1] >> 32, 7);
    assert_eq!(words[5] & 0xff, 0x85);
    assert_eq!(words[5] >> 32, 107);
}

#[test]
fn vmlinux_btf_is_present_when_it_starts_with_the_magic() {
    let sys = FakeSys::new();
    let path = Path::new("/sys/kernel/btf/vmlinux");
    assert!(vmlinux_btf(&sys, path).is_missing());
    sys.set_file(path, BTF_MAGIC.to_ne_bytes().to_vec());
    assert_eq!(vmlinux_btf(&sys, path), Probed::Present);
    sys.set_file(path, b"ELF".to_vec());
    assert!(matches!(vmlinux_btf(&sys, path), Probed::Unknown(_)));
}

/// On the real kernel (root only): this machine's 6.x has every feature, and a helper
/// number past the last, or one tracepoint programs do not get, is missing: the
/// classification holds against the real verifier's words.
#[test]
fn the_real_kernel_answers_as_expected() {
    if !process::root_or_skip("the_real_kernel_answers_as_expected") {
        return;
    }
    let sys = RealSys;
    let tp = BPF_PROG_TYPE_TRACEPOINT;
    for (what, got) in [
        (
            "probe_read_kernel",
            helper(&sys, tp, BPF_FUNC_PROBE_READ_KERNEL),
        ),
        (
            "probe_read_user",
            helper(&sys, tp, BPF_FUNC_PROBE_READ_USER),
        ),
        (
            "ktime_get_coarse_ns",
            helper(
                &sys,
                BPF_PROG_TYPE_SOCKET_FILTER,
                BPF_FUNC_KTIME_GET_COARSE_NS,
            ),
        ),
        ("jmp32", jmp32(&sys)),
        ("atomic_fetch", atomic_fetch(&sys)),
        ("raw_tracepoint", raw_tracepoint(&sys)),
        ("ringbuf", ringbuf(&sys)),
    ] {
        assert_eq!(got, Probed::Present, "{what}");
    }
    let past_the_last = helper(&sys, tp, 100_000);
    assert!(
        matches!(&past_the_last, Probed::Missing(why) if why.contains("invalid func")),
        "{past_the_last:?}"
    );
    // bpf_skb_store_bytes (9) is for socket programs only.
    let not_offered = helper(&sys, tp, 9);
    assert!(not_offered.is_missing(), "{not_offered:?}");
}
