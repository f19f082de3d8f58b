//! Raw feature probes: does the running kernel have a helper, an instruction, a map or
//! program type? Each asks the kernel itself with the smallest object that needs the feature
//! (a two-to-seven instruction program, a one-page map) and reads its answer: created or
//! loaded is present, EINVAL (the kernel's "no such thing") is missing, anything else is
//! unknown. Never a version number. One or two system calls each; the session layer
//! (`session::features`) caches the answers.

use crate::kernel::abi::{
    BPF_FUNC_SK_STORAGE_GET, BPF_F_NO_PREALLOC, BPF_MAP_TYPE_RINGBUF, BPF_MAP_TYPE_SK_STORAGE,
    BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_TRACING,
    BPF_TRACE_RAW_TP, BTF_MAGIC,
};
use crate::kernel::btf::storage_map_btf;
use crate::kernel::load::log_tail;
use crate::kernel::sys::{host, MapBtf, MapCreate, ProgLoad, Sys, SysError};
use bpf_insn::{
    AluOp, AluWidth, AtomicOp, AtomicSize, Condition, Instruction, JumpWidth, OpCode, Reg, Size,
    Source, ATOMIC_FETCH,
};
use std::os::fd::AsRawFd;
use std::path::Path;

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probed {
    Present,
    /// The kernel said it has no such thing; the text is its answer (a verifier line, an
    /// errno).
    Missing(String),
    /// The probe could not tell (no privilege, an unexpected error): why.
    Unknown(String),
}

impl Probed {
    pub fn is_present(&self) -> bool {
        matches!(self, Probed::Present)
    }

    pub fn is_missing(&self) -> bool {
        matches!(self, Probed::Missing(_))
    }
}

/// The verifier log a refused probe program is loaded again with, to say why.
const PROBE_LOG_SIZE: usize = 4096;

fn mov64_imm(dst: Reg, imm: i64) -> Instruction {
    Instruction {
        dst,
        imm,
        ..Instruction::new(OpCode::Alu {
            width: AluWidth::W64,
            op: AluOp::Mov,
            source: Source::Imm,
        })
    }
}

fn exit() -> Instruction {
    Instruction::new(OpCode::Exit)
}

fn encode(program: &[Instruction]) -> Vec<u64> {
    program
        .iter()
        .flat_map(|i| i.to_bytes().words().collect::<Vec<_>>())
        .collect()
}

/// `r1 = r10; r1 += -8; r2 = 8; r3 = 0; call id; r0 = 0; exit`: a valid call of a helper
/// shaped like `bpf_probe_read(void *dst, u32 size, const void *src)` (8 bytes into the
/// stack from address 0), and of any helper that takes no arguments (they go unread).
pub fn helper_call_program(id: u32) -> Vec<u64> {
    let alu64 = |op, source| OpCode::Alu {
        width: AluWidth::W64,
        op,
        source,
    };
    encode(&[
        Instruction {
            dst: Reg::R1,
            src: Reg::R10,
            ..Instruction::new(alu64(AluOp::Mov, Source::Reg))
        },
        Instruction {
            dst: Reg::R1,
            imm: -8,
            ..Instruction::new(alu64(AluOp::Add, Source::Imm))
        },
        mov64_imm(Reg::R2, 8),
        mov64_imm(Reg::R3, 0),
        Instruction {
            imm: i64::from(id),
            ..Instruction::new(OpCode::Call)
        },
        mov64_imm(Reg::R0, 0),
        exit(),
    ])
}

/// `r0 = 0; if w0 == 0 goto +1; r0 = 1; exit`: one JMP32 jump.
pub fn jmp32_program() -> Vec<u64> {
    encode(&[
        mov64_imm(Reg::R0, 0),
        Instruction {
            off: 1,
            ..Instruction::new(OpCode::Jump {
                width: JumpWidth::W32,
                cond: Condition::Eq,
                source: Source::Imm,
            })
        },
        mov64_imm(Reg::R0, 1),
        exit(),
    ])
}

/// `*(u64 *)(r10 - 8) = 0; r1 = 1; r1 = atomic_fetch_or((u64 *)(r10 - 8), r1); r0 = 0;
/// exit`. On the stack rather than a map value: the verifier checks the atomic's operation
/// (the `imm` kernels before 5.12 call "reserved fields") before the memory it touches, so
/// the answer is the same with one system call and no map.
pub fn atomic_fetch_program() -> Vec<u64> {
    encode(&[
        Instruction {
            dst: Reg::R10,
            off: -8,
            ..Instruction::new(OpCode::Store {
                source: Source::Imm,
                size: Size::DW,
            })
        },
        mov64_imm(Reg::R1, 1),
        Instruction {
            dst: Reg::R10,
            src: Reg::R1,
            off: -8,
            imm: i64::from(AtomicOp::Or as i32 | ATOMIC_FETCH),
            ..Instruction::new(OpCode::Atomic(AtomicSize::DW))
        },
        mov64_imm(Reg::R0, 0),
        exit(),
    ])
}

/// `r0 = 0; exit`.
pub fn return_zero_program() -> Vec<u64> {
    encode(&[mov64_imm(Reg::R0, 0), exit()])
}

/// Loads `insns` as a `prog_type` program and closes it. Loaded is present; EINVAL is
/// missing when `missing` accepts a line of the verifier's log (loaded again with a small log
/// to read it; "" when there is none), else unknown; any other error is unknown.
fn program(
    sys: &dyn Sys,
    name: &str,
    prog_type: u32,
    insns: &[u64],
    missing: impl Fn(&str) -> bool,
) -> Probed {
    let req = ProgLoad {
        name,
        prog_type,
        insns,
        // GPL: bpf_probe_read_kernel and friends are GPL-only helpers.
        license: "GPL",
        kern_version: 0,
        expected_attach_type: 0,
        attach_btf_id: 0,
    };
    program_load(sys, &req, missing)
}

/// [`program`] for a load request made by the caller.
fn program_load(sys: &dyn Sys, req: &ProgLoad<'_>, missing: impl Fn(&str) -> bool) -> Probed {
    let req = req.clone();
    let first = match sys.prog_load(&req, &mut []) {
        Ok(_) => return Probed::Present,
        Err(e) => e,
    };
    if first.errno != libc::EINVAL {
        return unknown(first);
    }
    let mut log = vec![0u8; PROBE_LOG_SIZE];
    match sys.prog_load(&req, &mut log) {
        Ok(_) => Probed::Present,
        Err(e) if e.errno == libc::EINVAL || e.errno == libc::ENOSPC => {
            // The verifier ends with statistics ("processed 5 insns ..."); the reason is the
            // line that names the problem, else the last other one.
            let lines = log_tail(&log, 8);
            let reason = lines
                .iter()
                .find(|l| missing(l))
                .or_else(|| lines.iter().rev().find(|l| !l.starts_with("processed ")));
            match reason {
                Some(line) if missing(line) => {
                    Probed::Missing(format!("the verifier said \"{line}\""))
                }
                Some(line) => Probed::Unknown(format!(
                    "the probe program was refused: the verifier said \"{line}\""
                )),
                None if missing("") => Probed::Missing(e.to_string()),
                None => Probed::Unknown(format!("the probe program was refused: {e}")),
            }
        }
        Err(e) => unknown(e),
    }
}

fn unknown(e: SysError) -> Probed {
    let hint = if e.errno == libc::EPERM || e.errno == libc::EACCES {
        " (needs root or CAP_BPF)"
    } else {
        ""
    };
    Probed::Unknown(format!("{e}{hint}"))
}

/// Whether the kernel knows helper `id` in programs of `prog_type`: the verifier refuses a
/// number past the kernel's last helper with "invalid func NAME#ID", and one the program
/// type does not offer with "unknown func NAME#ID" (newer kernels: "program of this type
/// cannot use helper NAME#ID"); EINVAL each time.
pub fn helper(sys: &dyn Sys, prog_type: u32, id: u32) -> Probed {
    program(
        sys,
        "ct_probe_helper",
        prog_type,
        &helper_call_program(id),
        |line| {
            ["invalid func ", "unknown func ", "cannot use helper "]
                .iter()
                .any(|m| line.contains(m))
        },
    )
}

/// JMP32 instructions (5.1).
pub fn jmp32(sys: &dyn Sys) -> Probed {
    program(
        sys,
        "ct_probe_jmp32",
        BPF_PROG_TYPE_SOCKET_FILTER,
        &jmp32_program(),
        |_| true,
    )
}

/// Atomic fetch operations (5.12).
pub fn atomic_fetch(sys: &dyn Sys) -> Probed {
    program(
        sys,
        "ct_probe_atomic",
        BPF_PROG_TYPE_SOCKET_FILTER,
        &atomic_fetch_program(),
        |_| true,
    )
}

/// BPF_PROG_TYPE_RAW_TRACEPOINT (4.17): an unknown program type is EINVAL before the
/// verifier runs, so the log stays empty.
pub fn raw_tracepoint(sys: &dyn Sys) -> Probed {
    program(
        sys,
        "ct_probe_rawtp",
        BPF_PROG_TYPE_RAW_TRACEPOINT,
        &return_zero_program(),
        |_| true,
    )
}

fn map(sys: &dyn Sys, req: &MapCreate<'_>) -> Probed {
    match sys.map_create(req) {
        Ok(_) => Probed::Present,
        Err(e) if e.errno == libc::EINVAL => Probed::Missing(e.to_string()),
        Err(e) => unknown(e),
    }
}

/// The BPF ring buffer map (5.8), one page big (its size must be a power-of-two multiple of
/// the page size).
pub fn ringbuf(sys: &dyn Sys) -> Probed {
    let page = u32::try_from(host::page_size()).unwrap_or(4096);
    map(
        sys,
        &MapCreate {
            name: "ct_probe_ringbuf",
            map_type: BPF_MAP_TYPE_RINGBUF,
            key_size: 0,
            value_size: 0,
            max_entries: page,
            flags: 0,
            btf: None,
        },
    )
}

/// `r2 = *(u64 *)(r1 + 0); r1 = MAP ll; r3 = 0; r4 = 0; call bpf_sk_storage_get; r0 = 0;
/// exit`: a `tp_btf` program whose first argument is a socket looks up its storage in the
/// map with fd `map`.
pub fn sk_storage_get_program(map: i32) -> Vec<u64> {
    encode(&[
        Instruction {
            dst: Reg::R2,
            src: Reg::R1,
            ..Instruction::new(OpCode::Load(Size::DW))
        },
        Instruction {
            dst: Reg::R1,
            src: Reg::PSEUDO_MAP_FD,
            imm: i64::from(map),
            ..Instruction::new(OpCode::LoadImm64)
        },
        mov64_imm(Reg::R3, 0),
        mov64_imm(Reg::R4, 0),
        Instruction {
            imm: i64::from(BPF_FUNC_SK_STORAGE_GET),
            ..Instruction::new(OpCode::Call)
        },
        mov64_imm(Reg::R0, 0),
        exit(),
    ])
}

/// Socket-local storage where conntrace's state program can use it: a `tp_btf` program on
/// the tracepoint with BTF id `tracepoint` (its first argument a socket) calling
/// bpf_sk_storage_get on a storage map. The map type is 5.2, `tp_btf` 5.5, the helper in
/// tracing programs 5.11; kprobe and tracepoint programs never have it. Three system calls:
/// the map's BTF (the kernel requires it for these maps, on every version), the map, the
/// program.
pub fn tp_btf_sk_storage(sys: &dyn Sys, tracepoint: u32) -> Probed {
    let (blob, types) = storage_map_btf(8);
    let btf = match sys.btf_load(&blob) {
        Ok(fd) => fd,
        Err(e) => {
            return Probed::Unknown(format!(
                "socket-local storage maps need BTF, and loading a three-type BTF failed: {e}"
            ))
        }
    };
    let map = match sys.map_create(&MapCreate {
        name: "ct_probe_sk_stg",
        map_type: BPF_MAP_TYPE_SK_STORAGE,
        key_size: 4,
        value_size: 8,
        max_entries: 0,
        flags: BPF_F_NO_PREALLOC,
        btf: Some(MapBtf {
            fd: btf.as_raw_fd(),
            key_type_id: types.key,
            value_type_id: types.value,
        }),
    }) {
        Ok(fd) => fd,
        Err(e) if e.errno == libc::EINVAL => {
            return Probed::Missing(format!("no socket-local storage maps: {e}"))
        }
        Err(e) => return unknown(e),
    };
    let insns = sk_storage_get_program(map.as_raw_fd());
    let req = ProgLoad {
        name: "ct_probe_tp_stg",
        prog_type: BPF_PROG_TYPE_TRACING,
        insns: &insns,
        license: "GPL",
        kern_version: 0,
        expected_attach_type: BPF_TRACE_RAW_TP,
        attach_btf_id: tracepoint,
    };
    // Before 5.5 the program type is unknown (EINVAL, no log); before 5.11 the helper is.
    program_load(sys, &req, |line| {
        line.is_empty()
            || ["invalid func ", "unknown func ", "cannot use helper "]
                .iter()
                .any(|m| line.contains(m))
    })
}

/// Whether the kernel describes its own types: `path` (the vmlinux BTF) exists and starts
/// with the BTF magic.
pub fn vmlinux_btf(sys: &dyn Sys, path: &Path) -> Probed {
    match sys.read_file(path) {
        Ok(bytes) if bytes.get(..2) == Some(&BTF_MAGIC.to_ne_bytes()[..]) => Probed::Present,
        Ok(_) => Probed::Unknown(format!("{} is not BTF", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Probed::Missing(format!("no {}", path.display()))
        }
        Err(e) => Probed::Unknown(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests;
