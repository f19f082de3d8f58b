//! The typed instruction model and its encoding. It lives in the bpf-insn crate, shared with
//! conntrace's loader, so the assembler and the patcher cannot disagree on an encoding.

pub use bpf_insn::*;
