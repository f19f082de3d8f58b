//! conntrace: every TCP connection a Linux machine makes and accepts, traced with BPF programs
//! we assemble ourselves and load with raw syscalls.
//!
//! The flow, module by module:
//! `cli` parses the command line; `btf` finds struct-field offsets in the kernel's BTF;
//! `probe_object` reads the embedded probe object; `load` creates its maps and loads its
//! programs; `attach` hooks them to tracepoints or kprobes; `ring` reads the per-CPU perf rings;
//! `event` decodes each record; `output` prints it. `sys` is the only module that makes system
//! calls. `trace` ties them together.

pub mod attach;
pub mod backend;
pub mod btf;
pub mod check;
pub mod cli;
pub mod errno;
pub mod event;
pub mod fields;
pub mod filter;
pub mod load;
pub mod output;
pub mod privileges;
pub mod probe_object;
pub mod ring;
pub mod selftest;
pub mod signals;
pub mod sys;
pub mod trace;
