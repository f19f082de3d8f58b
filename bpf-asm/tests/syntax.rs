//! Labels, macros, constants, comments and sections behave as README.md says.

use bpf_asm::{Program, Source};

fn parse(text: &str) -> Program {
    bpf_asm::parse(&[Source { name: "t.s", text }]).unwrap_or_else(|e| panic!("{e}"))
}

fn texts(program: &Program, section: usize) -> Vec<String> {
    program.sections[section]
        .insns
        .iter()
        .map(|i| i.instruction.to_string())
        .collect()
}

#[test]
fn labels_count_lddw_as_two_slots_and_accept_numeric_offsets() {
    let p = parse(".section s\nstart: r1 = 1 ll\n if r1 > 2 goto end ; c\n goto +1 # c\n goto start // c\nend:\n exit\n");
    assert_eq!(
        texts(&p, 0),
        [
            "r1 = 0x1 ll",
            "if r1 > 0x2 goto +0x2",
            "goto +0x1",
            "goto -0x5",
            "exit"
        ]
    );
}

#[test]
fn macros_substitute_parameters_and_unique_labels() {
    let p = parse(
        ".section s\n  skip_if_zero r1\n  skip_if_zero r2\n  exit\n\
         .macro skip_if_zero reg\n  if \\reg == 0 goto done\\@\n  \\reg += 1\ndone\\@:\n.endm\n",
    );
    assert_eq!(
        texts(&p, 0),
        [
            "if r1 == 0x0 goto +0x1",
            "r1 += 0x1",
            "if r2 == 0x0 goto +0x1",
            "r2 += 0x1",
            "exit"
        ]
    );
}

#[test]
fn constants_maps_and_macros_are_global_to_the_unit_and_usable_before_definition() {
    let a = Source {
        name: "a.s",
        text: ".section p\nr1 = *(u64 *)(r1 + PARM1)\nr2 = map m ll\ncall probe_read_kernel\n",
    };
    let b = Source {
        name: "b.s",
        text: ".equ PARM1, OTHER\n.equ OTHER, -112\n.map m, 9, 4, 8, 16\n",
    };
    let p = bpf_asm::parse(&[a, b]).unwrap();
    assert_eq!(
        texts(&p, 0),
        ["r1 = *(u64 *)(r1 - 0x70)", "r2 = 0x0 ll", "call 0x71"]
    );
    assert_eq!(p.maps[0].map_type, 9);
}

#[test]
fn reopening_a_section_appends_to_it() {
    let p = parse(".section a\nr0 = 1\n.section b\nexit\n.section a\nexit\n");
    assert_eq!(p.sections.len(), 2);
    assert_eq!(texts(&p, 0), ["r0 = 0x1", "exit"]);
}

#[test]
fn labels_do_not_cross_sections() {
    let e = bpf_asm::parse(&[Source {
        name: "t.s",
        text: ".section a\nl: exit\n.section b\ngoto l\n",
    }])
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("t.s:4:6: error: label `l` is in another section"),
        "{e}"
    );
}

#[test]
fn recursive_macros_are_an_error_not_a_hang() {
    let e = bpf_asm::parse(&[Source {
        name: "t.s",
        text: ".macro m\n m\n.endm\n.section s\nm\n",
    }])
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("macro expansion nested more than 64 deep"),
        "{e}"
    );
}

/// An argument passed on twice doubles at every level: bounded by the line length (the
/// fuzzer found the like taking minutes and gigabytes before; fuzz/corpus keeps it).
#[test]
fn a_macro_whose_argument_doubles_is_an_error_not_a_hang() {
    let e = bpf_asm::parse(&[Source {
        name: "t.s",
        text: ".macro m a\n m \\a.\\a\n.endm\n.section s\nm 1\n",
    }])
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("expands to a line of more than 65536 bytes"),
        "{e}"
    );
}

#[test]
fn constant_cycles_are_an_error() {
    let e = bpf_asm::parse(&[Source {
        name: "t.s",
        text: ".equ A, B\n.equ B, A\n.section s\nr0 = A\n",
    }])
    .unwrap_err();
    assert!(
        e.to_string().contains("is defined in terms of itself"),
        "{e}"
    );
}

#[test]
fn equ_takes_expressions_over_constants_defined_anywhere() {
    let p = parse(include_str!("corpus/exprs.s"));
    assert_eq!(
        texts(&p, 0),
        [
            "r1 = 0x13",
            "r1 = 0x12",
            "r1 = 0xf",
            "r1 = 0x5",
            "r1 = 0x10000",
            "r1 = 0xf",
            "r1 = -0x3",
            "r1 = -0x1",
            "r1 = 0xf01",
            "r1 = -0x10",
            "r1 = -0xf",
            "r1 = 0xffffffff0000 ll",
            "w1 = 0x13",
            "if r1 == 0xf goto +0x0",
            "*(u32 *)(r10 - 0x8) = -0xf",
            "exit"
        ]
    );
}

#[test]
fn expressions_stand_in_offsets_and_immediates() {
    let p = parse(
        ".equ EV_LOCAL, 16\n.equ STACK_SLOT, 8\n.section s\n\
         *(u32 *)(r8 + EV_LOCAL + 4) = r2\n\
         r1 += -STACK_SLOT\n\
         r2 = *(u64 *)(r10 - STACK_SLOT * 2 + 4)\n\
         r3 = *(u64 *)(r10 - (STACK_SLOT | 1))\n\
         r4 = *(u16 *)(r1 + offsetof(sock_common, skc_family) + EV_LOCAL / 4)\n",
    );
    assert_eq!(
        texts(&p, 0),
        [
            "*(u32 *)(r8 + 0x14) = w2",
            "r1 += -0x8",
            "r2 = *(u64 *)(r10 - 0xc)",
            "r3 = *(u64 *)(r10 - 0x9)",
            "w4 = *(u16 *)(r1 + 0x7bad)",
        ]
    );
    assert_eq!(p.sections[0].insns[4].field.as_ref().unwrap().addend, 4);
}

#[test]
fn long_constant_chains_resolve_without_recursion() {
    let mut text = String::from(".section s\nr0 = C0\n");
    for i in 0..5000 {
        text.push_str(&format!(".equ C{i}, C{} + 1\n", i + 1));
    }
    text.push_str(".equ C5000, 0\n");
    let p = parse(&text);
    assert_eq!(texts(&p, 0), ["r0 = 0x1388"]);
}

#[test]
fn hostile_expressions_are_errors_not_crashes() {
    for text in [
        format!(
            ".section s\nr0 = {}1{}\n",
            "(".repeat(10_000),
            ")".repeat(10_000)
        ),
        format!(".section s\nr0 = {}1\n", "-".repeat(10_000)),
        format!(".section s\nr0 = 1{}\n", " + 1".repeat(10_000)),
        ".section s\nr0 = 0xffffffffffffffff * 0xffffffffffffffff * 0xffffffffffffffff\n".into(),
        ".section s\nr0 = 0xffffffffffffffff << 63\n".into(),
    ] {
        assert!(bpf_asm::parse(&[Source {
            name: "t.s",
            text: &text
        }])
        .is_err());
    }
}

#[test]
fn llvm_sections_and_data_make_programs_and_the_license() {
    let p = parse(
        ".text\nexit\n.section \"kprobe/x\",\"ax\",@progbits\nr0 = 0\n.bss\n.rodata\n\
         .section license,\"awR\",@progbits,unique,1\n_license:\n.byte 0x47, 40 * 2\n.short 0x4c\n\
         .section .text\nexit\n.section .note.GNU-stack,\"\",@progbits\n.file \"x.c\"\n.ident \"clang\"\n\
         .cfi_startproc\n.addrsig\n.addrsig_sym _license\n.p2align 3\n.align 8\n.balign 4\n",
    );
    assert_eq!(p.sections.len(), 2);
    assert_eq!(p.sections[0].name, ".text");
    assert_eq!(texts(&p, 0), ["exit", "exit"]);
    assert_eq!(p.sections[1].name, "kprobe/x");
    assert_eq!(p.license.as_deref(), Some("GPL"));
    assert!(p.symbols.is_empty());
}

#[test]
fn sections_without_symbol_directives_keep_their_section_symbol() {
    use object::{Object, ObjectSymbol};
    let bytes = bpf_asm::assemble(&[Source {
        name: "t.s",
        text: ".section a/b\nexit\n.section c\n.globl f\nf: exit\n",
    }])
    .unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let mut names: Vec<&str> = file.symbols().filter_map(|s| s.name().ok()).collect();
    names.sort();
    assert_eq!(names, ["a_b", "f"]);
}

fn section_bytes(text: &str) -> Vec<u8> {
    parse(text).sections[0].bytes()
}

#[test]
fn irp_unrolls_a_copy_exactly_as_written_by_hand() {
    // The probes copy 14 u32 fields from r0 to the stack: one .irp instead of 28 lines.
    let looped = ".equ COPY_TO, 64\n.section s\n\
        .irp off, 0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52\n\
        \tr2 = *(u32 *)(r0 + \\off)\n\
        \t*(u32 *)(r10 - COPY_TO + \\off) = r2\n\
        .endr\nexit\n";
    let mut by_hand = String::from(".equ COPY_TO, 64\n.section s\n");
    for i in 0..14 {
        let off = i * 4;
        by_hand.push_str(&format!(
            "r2 = *(u32 *)(r0 + {off})\n*(u32 *)(r10 - {}) = r2\n",
            64 - off
        ));
    }
    by_hand.push_str("exit\n");
    let bytes = section_bytes(looped);
    assert_eq!(bytes.len(), 29 * 8);
    assert_eq!(bytes, section_bytes(&by_hand));
}

#[test]
fn rept_repeats_and_gives_each_repetition_its_own_labels() {
    let p = parse(
        ".equ TIMES, 1 + 1\n.section s\n\
         .rept TIMES\n  if r1 == 0 goto done\\@\n  r1 += 1\ndone\\@:\n.endr\n\
         .rept 0\n  r9 = 9\n.endr\nexit\n",
    );
    assert_eq!(
        texts(&p, 0),
        [
            "if r1 == 0x0 goto +0x1",
            "r1 += 0x1",
            "if r1 == 0x0 goto +0x1",
            "r1 += 0x1",
            "exit"
        ]
    );
}

#[test]
fn repetitions_nest_and_work_inside_macros() {
    let p = parse(
        ".macro spill base, reg\n\
         .irp off, 0, 8\n\
         .rept 2\n\
         *(u64 *)(r10 - \\base + \\off) = \\reg\n\
         if \\reg == 0 goto out\\@\n\
         out\\@:\n\
         .endr\n\
         .endr\n\
         .endm\n\
         .section s\nspill 16, r3\n\
         .irp a, 1, 2\n.irp b, 10, 20\nr0 = \\a + \\b\n.endr\n.endr\n\
         .irp none\nr0 = 7 \\none\n.endr\n",
    );
    let t = texts(&p, 0);
    assert_eq!(t.len(), 8 + 4 + 1);
    assert_eq!(t[0], "*(u64 *)(r10 - 0x10) = r3");
    assert_eq!(t[1], "if r3 == 0x0 goto +0x0");
    assert_eq!(t[4], "*(u64 *)(r10 - 0x8) = r3");
    assert_eq!(
        &t[8..],
        ["r0 = 0xb", "r0 = 0x15", "r0 = 0xc", "r0 = 0x16", "r0 = 0x7"]
    );
}

#[test]
fn runaway_repetitions_are_an_error_not_a_hang() {
    for text in [
        ".rept 65536\n.rept 65536\n.endr\n.endr\n",
        ".macro m\n.rept 1000\nm\n.endr\n.endm\n.section s\nm\n",
        ".section s\n.rept 65536\n.rept 65536\nexit\n.endr\n.endr\n",
    ] {
        let e = bpf_asm::parse(&[Source { name: "t.s", text }]).unwrap_err();
        assert!(
            e.to_string().contains("expand to more than")
                || e.to_string().contains("nested more than"),
            "{e}"
        );
    }
}

#[test]
fn constants_lists_every_equ_in_order_with_its_value() {
    let text = ".equ B, A + 4\n.set A, 8\n.macro m\n.equ C\\@, -B\n.endm\nm\n\
                .equ BIG, 0xffffffffffffffff\n.section s\n r1 = B\n exit\n";
    let got = bpf_asm::constants(&[Source { name: "t.s", text }]).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["B", "A"]);
    assert!(names[2].starts_with('C'), "{names:?}");
    assert_eq!(names[3], "BIG");
    let values: Vec<i128> = got.iter().map(|&(_, v)| v).collect();
    assert_eq!(values, [12, 8, -12, u64::MAX as i128]);
}

#[test]
fn constants_reports_errors_of_the_unit() {
    let e = bpf_asm::constants(&[Source {
        name: "t.s",
        text: ".equ A, NOPE\n.section s\n r1 = 1 +\n",
    }])
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown constant `NOPE`"), "{e}");
}
