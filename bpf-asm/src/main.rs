//! The `bpf-asm` command: assemble files into an ELF object, or list their encodings.

use bpf_asm::{Error, Source};
use std::process::ExitCode;

const USAGE: &str = "usage: bpf-asm INPUT.s [INPUT2.s ...] -o OUTPUT.o\n       bpf-asm --dump INPUT.s [INPUT2.s ...]";

enum Mode {
    Write(String),
    Dump,
}

fn parse_args(args: &[String]) -> Result<(Mode, Vec<String>), String> {
    let mut inputs = Vec::new();
    let mut output = None;
    let mut dump = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-o" => match iter.next() {
                Some(path) => output = Some(path.clone()),
                None => return Err("-o needs a file name".into()),
            },
            "--dump" => dump = true,
            "-h" | "--help" => return Err(String::new()),
            a if a.starts_with('-') && a != "-" => return Err(format!("unknown option `{a}`")),
            a => inputs.push(a.to_string()),
        }
    }
    if inputs.is_empty() {
        return Err("no input files".into());
    }
    match (dump, output) {
        (true, None) => Ok((Mode::Dump, inputs)),
        (false, Some(out)) => Ok((Mode::Write(out), inputs)),
        (true, Some(_)) => Err("--dump prints to stdout: leave out -o".into()),
        (false, None) => Err("no output file: add -o OUTPUT.o (or --dump to list)".into()),
    }
}

fn run(mode: Mode, inputs: &[String]) -> Result<(), String> {
    let mut texts = Vec::new();
    for path in inputs {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("error: cannot read {path}: {e}"))?;
        texts.push(text);
    }
    let sources: Vec<Source> = inputs
        .iter()
        .zip(&texts)
        .map(|(name, text)| Source { name, text })
        .collect();
    let shown = |e: Error| e.to_string();
    match mode {
        Mode::Dump => {
            let program = bpf_asm::parse(&sources).map_err(shown)?;
            print!("{}", bpf_asm::dump(&program));
        }
        Mode::Write(out) => {
            let bytes = bpf_asm::assemble(&sources).map_err(shown)?;
            std::fs::write(&out, bytes).map_err(|e| format!("error: cannot write {out}: {e}"))?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, inputs) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("bpf-asm: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if message.is_empty() { 0 } else { 1 });
        }
    };
    match run(mode, &inputs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}
