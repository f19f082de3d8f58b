//! The kernel-facing layer: system calls, BTF, the probe object, loading, attaching, rings.
//! Nothing here knows about sessions, backends or the command line.

pub mod abi;
pub mod attach;
pub mod btf;
pub mod errno;
pub mod load;
pub mod probe_object;
pub mod ring;
pub mod sys;
