//! Corrupt inputs: the real binary given truncated, bit-flipped, oversized and otherwise wrong
//! `--btf` files, and the probe object parser given damaged copies of the embedded object.
//! Every one must end in a clear error and exit status 1: never a panic, and never a signal
//! (the release profile aborts on panic, so a panic there is a SIGABRT, not exit 101).
//!
//! The BTF error comes before anything privileged, so these pass as any user; the test suite
//! runs them as root like the rest.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conntrace::kernel::probe_object;
use conntrace::session::embedded;

/// A real slice of a kernel's BTF (the fuzzer's seed; see fuzz/seeds/btf_slice.py).
const REAL_BTF: &[u8] = include_bytes!("../fuzz/corpus/btf_parse/probe_structs.btf");
const BTF_HEADER_LEN: usize = 24;

/// A scratch directory for this test process, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("conntrace-corrupt-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch directory");
        Scratch(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, bytes).expect("write scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What a case must say besides the file's name: any one of these phrases.
struct Case {
    path: PathBuf,
    says: &'static [&'static str],
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conntrace"))
        .args(args)
        .output()
        .expect("run conntrace")
}

/// Exit status 1 (not a signal, not a panic's 101), and no panic message anywhere.
fn assert_clean_failure(what: &str, out: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if let Some(signal) = out.status.signal() {
        panic!("{what}: killed by signal {signal} (a panic aborts in release)\n{stderr}");
    }
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: wrong exit status\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stdout.contains("panicked"),
        "{what}: panicked\n{stderr}"
    );
    (stdout, stderr)
}

fn assert_explains(what: &str, line: &str, case: &Case) {
    let named = format!("cannot use the BTF file {}: ", case.path.display());
    assert!(
        line.contains(&named),
        "{what}: does not name the file: {line}"
    );
    assert!(
        case.says.iter().any(|s| line.contains(s)),
        "{what}: does not say {:?}: {line}",
        case.says
    );
    assert!(line.len() < 400, "{what}: message too long: {line}");
}

fn check_case(case: &Case) {
    // Tracing: one line on stderr, before anything is loaded. -d bounds the run should a
    // corrupt file ever be accepted, so that the test fails instead of tracing forever.
    let what = format!("conntrace --btf {}", case.path.display());
    let out = run(&[
        "--btf".as_ref(),
        case.path.as_os_str(),
        "-d".as_ref(),
        "1".as_ref(),
    ]);
    let (_, stderr) = assert_clean_failure(&what, &out);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: expected one line:\n{stderr}");
    assert!(lines[0].starts_with("conntrace: "), "{what}: {stderr}");
    assert_explains(&what, lines[0], case);

    // `check`: the report's BTF line says why, and the verdict is "will NOT work".
    let what = format!("conntrace check --btf {}", case.path.display());
    let out = run(&["check".as_ref(), "--btf".as_ref(), case.path.as_os_str()]);
    let (stdout, _) = assert_clean_failure(&what, &out);
    let btf_line = stdout
        .lines()
        .find(|l| l.starts_with("BTF ") && l.contains("unusable: "))
        .unwrap_or_else(|| panic!("{what}: no BTF line in the report:\n{stdout}"));
    assert_explains(&what, btf_line, case);
    assert!(
        stdout.contains("result: tracing will NOT work"),
        "{what}:\n{stdout}"
    );
}

fn flipped(at: usize, mask: u8) -> Vec<u8> {
    let mut bytes = REAL_BTF.to_vec();
    bytes[at] ^= mask;
    bytes
}

/// Deterministic noise (xorshift64), so that a failure reproduces.
fn garbage(len: usize, prefix: &[u8]) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(prefix);
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_ne_bytes());
    }
    bytes.truncate(len);
    bytes
}

#[test]
fn the_real_btf_slice_is_valid_to_begin_with() {
    // Otherwise the corruptions below would prove nothing.
    let btf = conntrace::kernel::btf::Btf::parse(REAL_BTF.to_vec()).expect("seed BTF parses");
    assert_eq!(btf.field("sock_common.skc_dport").map(|f| f.size), Ok(2));
}

#[test]
fn truncated_btf_files_are_refused() {
    let dir = Scratch::new("truncated");
    let too_short: &[&str] = &["too short for the 24-byte BTF header"];
    let past_end: &[&str] = &["runs past the end"];
    for (len, says) in [
        (1, too_short),
        (BTF_HEADER_LEN - 1, too_short),
        (BTF_HEADER_LEN, past_end),
        (100, past_end),
        (REAL_BTF.len() / 2, past_end),
        (REAL_BTF.len() - 1, past_end),
    ] {
        let path = dir.file(&format!("cut-{len}.btf"), &REAL_BTF[..len]);
        check_case(&Case { path, says });
    }
}

#[test]
fn bit_flipped_btf_files_are_refused() {
    let dir = Scratch::new("flipped");
    let last = REAL_BTF.len() - 1;
    let cases: [(&str, usize, u8, &'static [&'static str]); 6] = [
        ("magic", 0, 0x01, &["not BTF data: the magic number"]),
        ("version", 2, 0x80, &["unsupported BTF version"]),
        ("header-length", 4, 0x40, &["unsupported BTF header"]),
        (
            "type-length",
            15,
            0x10,
            &["corrupt BTF header: the type section"],
        ),
        (
            "first-kind",
            BTF_HEADER_LEN + 7,
            0x1f,
            &["unknown BTF kind"],
        ),
        ("string-end", last, 0x41, &["does not end with a NUL"]),
    ];
    for (name, at, mask, says) in cases {
        let path = dir.file(&format!("{name}.btf"), &flipped(at, mask));
        check_case(&Case { path, says });
    }
}

#[test]
fn garbage_empty_oversized_and_non_files_are_refused() {
    let dir = Scratch::new("odd");
    let cases = [
        Case {
            path: dir.file("garbage.btf", &garbage(64 << 20, b"")),
            says: &["not BTF data"],
        },
        Case {
            path: dir.file("garbage.elf", &garbage(64 << 20, b"\x7fELF")),
            says: &["looks like ELF but cannot be read"],
        },
        Case {
            path: dir.file("empty.btf", b""),
            says: &["0 bytes long"],
        },
        Case {
            path: sparse(&dir.0, "oversized.btf", 300 << 20),
            says: &["larger than the 256 MiB limit"],
        },
        Case {
            path: dir.0.clone(),
            says: &["is a directory"],
        },
        Case {
            path: dir.0.join("missing.btf"),
            says: &["No such file or directory"],
        },
    ];
    for case in &cases {
        check_case(case);
    }
}

/// A file of `len` bytes that takes no disk space.
fn sparse(dir: &Path, name: &str, len: u64) -> PathBuf {
    let path = dir.join(name);
    fs::File::create(&path)
        .and_then(|f| f.set_len(len))
        .expect("create sparse file");
    path
}

#[test]
fn damaged_probe_objects_are_errors_not_panics() {
    let embedded = embedded::probe_object();
    let whole = probe_object::parse(&embedded).expect("the embedded object parses");
    assert!(!whole.programs.is_empty());
    // Every truncation leaves sections or their table past the end: always an error.
    for len in (0..embedded.len()).step_by(7).chain([embedded.len() - 1]) {
        let err = probe_object::parse(&embedded[..len])
            .err()
            .unwrap_or_else(|| panic!("truncated to {len} bytes was accepted"));
        assert!(err.message().starts_with("probe object: "), "{err}");
    }
    // Bit flips anywhere may or may not leave a valid object; none may panic, and the ones in
    // the ELF identification bytes must be caught.
    for bit in (0..embedded.len() * 8).step_by(5) {
        let mut bytes = embedded.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        let result = probe_object::parse(&bytes);
        if bit < 6 * 8 {
            assert!(
                result.is_err(),
                "flip of bit {bit} in the ELF ident accepted"
            );
        }
    }
    // A huge object of garbage.
    assert!(probe_object::parse(&garbage(16 << 20, b"\x7fELF")).is_err());
}
