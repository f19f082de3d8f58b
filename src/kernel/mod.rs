//! The kernel-facing layer: system calls, BTF, the probe object, loading, attaching, rings.
//! Nothing here knows about sessions, backends or the command line. `abi` holds the kernel's
//! numbers; `sys` is the only module that makes system calls.

pub mod abi;
pub mod attach;
pub mod btf;
pub mod errno;
pub mod load;
pub mod probe;
pub mod probe_object;
pub mod ring;
// The system calls: one of the two places the crate root allows `unsafe` (lib.rs).
#[allow(unsafe_code)]
pub mod sys;
pub mod tracepoint_format;
