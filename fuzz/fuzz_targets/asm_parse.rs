//! Arbitrary bytes as assembly text: the assembler must return Ok or an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let source = bpf_asm::Source {
        name: "fuzz.s",
        text: &text,
    };
    if let Ok(program) = bpf_asm::parse(&[source]) {
        let _ = bpf_asm::dump(&program);
    }
    let _ = bpf_asm::assemble(&[source]).map_err(|e| e.to_string());
});
