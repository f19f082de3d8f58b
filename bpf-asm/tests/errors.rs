//! The exact message of each class of error: position, text, source line, caret.

fn error_of(text: &str) -> String {
    match bpf_asm::assemble(&[bpf_asm::Source { name: "t.s", text }]) {
        Ok(_) => panic!("assembled without error:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn check(text: &str, expected: &str) {
    assert_eq!(error_of(text), expected, "for input:\n{text}");
}

#[test]
fn unknown_mnemonic() {
    check(
        ".section s\n  mov r1, 2\n",
        "t.s:2:3: error: unknown instruction or macro `mov`: instructions use llvm's pseudo-C syntax (e.g. `r1 = 2`), macros need a .macro definition\n  mov r1, 2\n  ^",
    );
}

#[test]
fn syntax_error() {
    check(
        ".section s\nr1 = *(u64 *)(r2 + 8\n",
        "t.s:2:21: error: expected `)`, found the end of the line\nr1 = *(u64 *)(r2 + 8\n                    ^",
    );
}

#[test]
fn bad_register() {
    check(
        ".section s\nr1 += r11\n",
        "t.s:2:7: error: bad register `r11`: BPF has r0 to r10 (w0 to w10)\nr1 += r11\n      ^",
    );
}

#[test]
fn mixed_register_widths() {
    check(
        ".section s\nw1 += r2\n",
        "t.s:2:7: error: cannot mix 64-bit rN and 32-bit wN registers in one instruction\nw1 += r2\n      ^",
    );
}

#[test]
fn write_to_r10() {
    let message = "error: r10 is the read-only frame pointer and cannot be written; use it only as a base address";
    check(
        ".section s\nr10 = 1\n",
        &format!("t.s:2:1: {message}\nr10 = 1\n^"),
    );
    check(
        ".section s\nr10 = *(u64 *)(r1 + 0)\n",
        &format!("t.s:2:1: {message}\nr10 = *(u64 *)(r1 + 0)\n^"),
    );
    // r10 as the base of loads and stores is fine.
    bpf_asm::assemble(&[bpf_asm::Source {
        name: "t.s",
        text: ".section s\nr1 = *(u64 *)(r10 - 8)\n*(u64 *)(r10 - 8) = r1\n",
    }])
    .unwrap();
}

#[test]
fn immediate_out_of_range() {
    check(
        ".section s\nr1 = 0x100000000\n",
        "t.s:2:6: error: immediate 4294967296 is out of range: it must fit in i32 (-2147483648 to 2147483647)\nr1 = 0x100000000\n     ^",
    );
}

#[test]
fn alu32_immediate_out_of_range() {
    // A 32-bit ALU immediate may be written signed or unsigned: 0xffffffff is fine.
    check(
        ".section s\nw3 = 0xffffffff\nw1 = 0x100000000\n",
        "t.s:3:6: error: immediate 4294967296 is out of range: it must fit in 32 bits (-2147483648 to 4294967295)\nw1 = 0x100000000\n     ^",
    );
}

#[test]
fn offset_out_of_range() {
    check(
        ".section s\nr1 = *(u64 *)(r2 + 40000)\n",
        "t.s:2:18: error: offset 40000 is out of range: it must fit in i16 (-32768 to 32767)\nr1 = *(u64 *)(r2 + 40000)\n                 ^",
    );
}

#[test]
fn jump_out_of_range() {
    check(
        ".section s\nif r1 == 0 goto +32768\n",
        "t.s:2:17: error: jump offset 32768 is out of range: it must fit in i16 (-32768 to 32767 instructions)\nif r1 == 0 goto +32768\n                ^",
    );
}

#[test]
fn undefined_label() {
    check(
        ".section s\ngoto nowhere\n",
        "t.s:2:6: error: undefined label `nowhere`\ngoto nowhere\n     ^",
    );
}

#[test]
fn duplicate_label() {
    check(
        ".section s\nhere:\nhere: exit\n",
        "t.s:3:1: error: label `here` is defined twice in this section\nhere: exit\n^",
    );
}

#[test]
fn unknown_helper() {
    check(
        ".section s\ncall bpf_make_coffee\n",
        "t.s:2:6: error: unknown helper `bpf_make_coffee`: use a name from include/uapi/linux/bpf.h (e.g. bpf_probe_read_kernel) or a number\ncall bpf_make_coffee\n     ^",
    );
}

#[test]
fn unknown_map() {
    check(
        ".section s\nr1 = map events ll\n",
        "t.s:2:10: error: unknown map `events`: define it with .map events, TYPE, KEY_SIZE, VALUE_SIZE, MAX_ENTRIES\nr1 = map events ll\n         ^",
    );
}

#[test]
fn bad_offsetof() {
    check(
        ".section s\nr1 = *(u16 *)(r1 - offsetof(sock_common, skc_family))\n",
        "t.s:2:20: error: bad offsetof: it may appear once per operand, added (not subtracted)\nr1 = *(u16 *)(r1 - offsetof(sock_common, skc_family))\n                   ^",
    );
    check(
        ".section s\nr1 = offsetof(sock_common)\n",
        "t.s:2:26: error: bad offsetof: write offsetof(STRUCT, FIELD) or offsetof(STRUCT, FIELD.SUBFIELD)\nr1 = offsetof(sock_common)\n                         ^",
    );
}

#[test]
fn unknown_constant() {
    check(
        ".section s\nr1 = SIZE\n",
        "t.s:2:6: error: unknown constant `SIZE`: define it with .equ SIZE, VALUE\nr1 = SIZE\n     ^",
    );
}

#[test]
fn unknown_macro() {
    check(
        ".section s\nsave_regs r1, r2\n",
        "t.s:2:1: error: unknown instruction or macro `save_regs`: instructions use llvm's pseudo-C syntax (e.g. `r1 = 2`), macros need a .macro definition\nsave_regs r1, r2\n^",
    );
}

#[test]
fn macro_wrong_argument_count() {
    check(
        ".macro save reg, off\n  *(u64 *)(r10 + \\off) = \\reg\n.endm\n.section s\nsave r1\n",
        "t.s:5:1: error: macro `save` takes 2 argument(s) (reg, off), got 1\nsave r1\n^",
    );
}

#[test]
fn error_inside_a_macro_names_the_expansion() {
    check(
        ".macro clear reg\n  \\reg = 0\n.endm\n.section s\nclear r10\n",
        "t.s:2:3: error: r10 is the read-only frame pointer and cannot be written; use it only as a base address\n  r10 = 0\n  ^\nt.s:5: note: in expansion of macro `clear`",
    );
}

#[test]
fn several_errors_are_all_reported() {
    let message = error_of(".section s\nr11 = 1\nexit\ncall nope\n");
    assert!(
        message.starts_with("t.s:2:1: error: bad register `r11`"),
        "{message}"
    );
    assert!(
        message.contains("\nt.s:4:6: error: unknown helper `nope`"),
        "{message}"
    );
}

#[test]
fn constant_cycle_names_the_path() {
    check(
        ".equ A, B + 1\n.equ B, C * 2\n.equ C, A\n.section s\nr0 = A\n",
        "t.s:3:9: error: constant `A` is defined in terms of itself (A -> B -> C -> A)\n.equ C, A\n        ^",
    );
}

#[test]
fn undefined_name_in_equ() {
    check(
        ".equ A, 1 + NOPE\n.section s\nr0 = A\n",
        "t.s:1:13: error: unknown constant `NOPE`: define it with .equ NOPE, VALUE\n.equ A, 1 + NOPE\n            ^",
    );
}

#[test]
fn expression_overflow() {
    check(
        ".equ BIG, 0xffffffffffffffff + 1\n",
        "t.s:1:30: error: overflow: the value does not fit in 64 bits (-2^63 to 2^64-1)\n.equ BIG, 0xffffffffffffffff + 1\n                             ^",
    );
}

#[test]
fn division_by_zero_and_bad_shift() {
    check(
        ".section s\nr0 = 8 / (4 - 4)\n",
        "t.s:2:8: error: division by zero\nr0 = 8 / (4 - 4)\n       ^",
    );
    check(
        ".equ S, 1 << 64\n",
        "t.s:1:14: error: shift count 64 is out of range: it must be 0 to 63\n.equ S, 1 << 64\n             ^",
    );
}

#[test]
fn offsetof_only_added_to_constants() {
    check(
        ".section s\nr1 = offsetof(sock, sk_family) * 2\n",
        "t.s:2:6: error: bad offsetof: only a constant may be added to or subtracted from it\nr1 = offsetof(sock, sk_family) * 2\n     ^",
    );
}

#[test]
fn unknown_directive_lists_the_known_ones() {
    let message = error_of(".text\n.frobnicate 3\n");
    assert!(
        message.starts_with(
            "t.s:2:1: error: unknown directive `.frobnicate`: bpf-asm knows .section .text"
        ),
        "{message}"
    );
    assert!(message.contains(".rept/.irp/.endr"), "{message}");
    assert!(message.ends_with("\n.frobnicate 3\n^"), "{message}");
}

#[test]
fn data_outside_the_license_section() {
    check(
        ".data\n.long 5\n",
        "t.s:2:1: error: data directives are honoured only in the `license` section (.section \"license\",\"aw\",@progbits): bpf-asm objects hold programs, maps (.map) and the license, no other data\n.long 5\n^",
    );
}

#[test]
fn instruction_in_a_data_section() {
    check(
        ".section \"license\",\"aw\",@progbits\nr0 = 1\n",
        "t.s:2:1: error: instructions must go in a program section, and `license` holds data: switch with .text or .section NAME,\"ax\"\nr0 = 1\n^",
    );
}

#[test]
fn license_data_must_be_one_c_string() {
    check(
        ".section license,\"aw\"\n.ascii \"GPL\"\n",
        "t.s:2:1: error: the `license` section must hold one NUL-terminated string, like .asciz \"GPL\"\n.ascii \"GPL\"\n^",
    );
}

#[test]
fn symbol_without_a_label() {
    check(
        ".text\n.globl f\nexit\n",
        "t.s:2:8: error: symbol `f` has no label: define it with `f:` (bpf-asm has no undefined symbols)\n.globl f\n       ^",
    );
}

#[test]
fn symbol_with_two_bindings() {
    check(
        ".text\n.globl f\n.local f\nf: exit\n",
        "t.s:3:8: error: symbol `f` was declared .globl before: a symbol has one binding\n.local f\n       ^",
    );
}

#[test]
fn alignment_that_needs_padding() {
    check(
        ".text\n.p2align 4\n",
        "t.s:2:1: error: alignment to 16 bytes here needs padding, which bpf-asm does not insert: program sections are aligned to 8, data must be aligned by hand\n.p2align 4\n^",
    );
}

#[test]
fn common_symbols_are_refused() {
    check(
        ".comm s,4,4\n",
        "t.s:1:1: error: `.comm` is not supported: bpf-asm objects hold no global data (maps come from .map)\n.comm s,4,4\n^",
    );
}

#[test]
fn repetition_without_endr() {
    check(
        ".section s\n  .rept 3\nexit\n",
        "t.s:2:3: error: .rept has no matching .endr\n  .rept 3\n  ^",
    );
    check(
        ".section s\n.irp r, r1, r2\n.rept 2\n\\r = 0\n.endr\n",
        "t.s:2:1: error: .irp has no matching .endr\n.irp r, r1, r2\n^",
    );
}

#[test]
fn endr_without_a_repetition() {
    check(
        ".endr\n",
        "t.s:1:1: error: .endr without a .rept or .irp\n.endr\n^",
    );
}

#[test]
fn bad_repetition_counts() {
    check(
        ".rept -1\n.endr\n",
        "t.s:1:7: error: .rept count -1 is out of range: it must be 0 to 65536\n.rept -1\n      ^",
    );
    check(
        ".rept 1 << 20\n.endr\n",
        "t.s:1:7: error: .rept count 1048576 is out of range: it must be 0 to 65536\n.rept 1 << 20\n      ^",
    );
    check(
        ".rept COUNT\n.endr\n",
        "t.s:1:7: error: unknown constant `COUNT`: define it with .equ COUNT, VALUE\n.rept COUNT\n      ^",
    );
    check(
        ".rept\n.endr\n",
        "t.s:1:1: error: .rept needs a count, like .rept 4\n.rept\n^",
    );
}

#[test]
fn too_many_expansions() {
    check(
        ".rept 65536\n.rept 65536\n.endr\n.endr\n",
        "t.s:2:1: error: macros and repetitions expand to more than 200000 lines (or 1000000 steps)\n.rept 65536\n^\nt.s:1: note: in .rept repetition 16",
    );
}

#[test]
fn error_inside_a_repetition_names_it() {
    check(
        ".section s\n.irp reg, r1, r10\n  \\reg = 0\n.endr\n",
        "t.s:3:3: error: r10 is the read-only frame pointer and cannot be written; use it only as a base address\n  r10 = 0\n  ^\nt.s:2: note: in .irp repetition 2 (\\reg = r10)",
    );
    check(
        ".section s\n.irp reg, r1\n  \\rgs = 0\n.endr\n",
        "t.s:3:3: error: `\\rgs` is not a parameter of this .irp\n  \\rgs = 0\n  ^\nt.s:2: note: in .irp repetition 1 (\\reg = r1)",
    );
}
