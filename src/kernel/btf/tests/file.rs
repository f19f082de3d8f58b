//! `--btf FILE` reading: files that are not BTF are refused by size or kind before they are
//! read whole; an ELF vmlinux is read only where its `.BTF` section is.

use std::fs;
use std::path::PathBuf;

use super::builder::sample;
use super::elf::elf_with_section;
use crate::kernel::btf::{load_file, Field, MAX_BTF_BYTES};

/// A scratch file or directory unique to this test process, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path =
            std::env::temp_dir().join(format!("conntrace-btf-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        let _ = fs::remove_file(&path);
        Scratch(path)
    }

    fn file(name: &str, bytes: &[u8]) -> Scratch {
        let s = Scratch::new(name);
        fs::write(&s.0, bytes).expect("write scratch file");
        s
    }

    fn error(&self) -> String {
        match load_file(&self.0) {
            Ok(_) => panic!("{} was accepted", self.0.display()),
            Err(e) => e.to_string(),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn raw_and_elf_files_load() {
    let raw = Scratch::file("raw", &sample());
    let btf = load_file(&raw.0).expect("raw BTF file");
    assert_eq!(btf.field("outer.d"), Ok(Field { offset: 6, size: 2 }));
    let elf = Scratch::file("elf", &elf_with_section(".BTF", &sample()));
    let btf = load_file(&elf.0).expect("ELF file");
    assert_eq!(btf.field("outer.d"), Ok(Field { offset: 6, size: 2 }));
}

#[test]
fn errors_name_the_file_and_the_problem() {
    let dir = Scratch::new("dir");
    fs::create_dir(&dir.0).expect("mkdir");
    let message = dir.error();
    assert!(message.starts_with(&format!("cannot use the BTF file {}: ", dir.0.display())));
    assert!(message.contains("is a directory"), "{message}");

    let missing = Scratch::new("missing");
    assert!(
        missing.error().contains("No such file"),
        "{}",
        missing.error()
    );

    let empty = Scratch::file("empty", b"");
    assert!(empty.error().contains("0 bytes long"), "{}", empty.error());
}

#[test]
fn oversized_file_is_refused_before_reading() {
    let big = Scratch::file("big", b"");
    // Sparse: no disk space, and a read of it would take a second and 300 MiB of memory.
    fs::File::options()
        .write(true)
        .open(&big.0)
        .and_then(|f| f.set_len(MAX_BTF_BYTES + 1))
        .expect("extend scratch file");
    let started = std::time::Instant::now();
    let message = big.error();
    assert!(
        message.contains("larger than the 256 MiB limit"),
        "{message}"
    );
    assert!(
        started.elapsed().as_millis() < 500,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn endless_device_is_read_no_further_than_the_limit() {
    let message = load_file("/dev/zero".as_ref())
        .err()
        .expect("/dev/zero")
        .to_string();
    assert!(
        message.starts_with("cannot use the BTF file /dev/zero: ")
            && message.contains("larger than the 256 MiB limit"),
        "{message}"
    );
}

#[test]
fn elf_section_claiming_a_huge_size_is_refused() {
    let mut elf = elf_with_section(".BTF", &sample());
    // Section header 1 (.BTF) starts 64 bytes into the table; its sh_size is at +32.
    let shoff = u64::from_le_bytes(elf[40..48].try_into().unwrap()) as usize;
    let at = shoff + 64 + 32;
    elf[at..at + 8].copy_from_slice(&(MAX_BTF_BYTES + 1).to_le_bytes());
    let file = Scratch::file("huge-section", &elf);
    let message = file.error();
    assert!(message.contains("its .BTF section claims"), "{message}");
}

#[test]
fn the_kernels_file_is_read_no_further_than_the_limit_either() {
    // load_vmlinux's read: /sys/kernel/btf/vmlinux stands in for itself only as root, so an
    // endless file takes its place.
    let message = crate::kernel::btf::file::read_raw("/dev/zero".as_ref())
        .expect("/dev/zero opens")
        .expect_err("refused")
        .to_string();
    assert!(
        message.contains("larger than the 256 MiB limit"),
        "{message}"
    );
}
