//! conntrace: every TCP connection a Linux machine makes and accepts, traced with BPF programs
//! we assemble ourselves and load with raw syscalls.
//!
//! `docs/ARCHITECTURE.md` maps the pipeline (src/bpf/*.s to output) onto these modules, states
//! the rules below with their tests, and has recipes for a new field, probe, event kind or VM
//! kernel.
//!
//! Three layers, each importing only from those below it (`layering` checks this):
//!
//! - `kernel` meets the kernel and knows nothing of sessions or the command line.
//!   `kernel::sys` is the only module that makes system calls: bpf(), perf_event_open(),
//!   ioctl, mmap, epoll through the `Sys` trait (faked in tests), and this process's ids,
//!   capabilities, uname, page size, clocks and signals as safe free functions. `abi` holds
//!   the kernel's numbers (bpf commands, map and program types, perf ioctls and flags, the
//!   perf mmap page's offsets, record types), and nothing else writes them. `btf` resolves
//!   struct fields from the kernel's BTF; `probe_object` reads a probe object; `load` creates
//!   its maps, patches field offsets and map fds, and loads the programs; `attach` hooks them
//!   to tracepoints or kprobes; `ring` reads the BPF ring buffer or the per-CPU perf rings.
//!   `errno` names errors: it sits here, at the bottom, because `sys` names the errors of its
//!   calls, and the output layer names the kernel's errnos.
//! - `session` sets up a traced session on top of that: `options` is what it is asked to do
//!   (the command line builds it); `fields` gives struct-field offsets (from `btf`, or the
//!   built-in table, proved by `selftest`); `embedded` holds the probe objects and says which
//!   one a field source can load; `backend` says which jobs (connect, accept, outcome) its
//!   programs do and where each hooks in; `filter` is the in-kernel filter config. `event` is
//!   the wire record the programs send and its decoding into addresses, and `LossReason`: it
//!   lives with `filter` in this layer because both are the layout contract with src/bpf/*.s,
//!   which `session` owns (the kernel layer moves bytes and never looks inside a record).
//! - `app` is the program: `trace` is the entry point (`cli` parses the command line, `check`
//!   answers `conntrace check`), starts a session, then `privileges` drops what the rest of
//!   the run does not need; `reader` reads the rings, `event` decodes each record, `output`
//!   prints it; `signals` and the options say when to stop.
//!
//! `unsafe` is denied crate-wide and allowed only where the kernel is met: `kernel::sys` (the
//! system calls, and the test fake's memory) and `kernel::ring::mapped` and `bpf_mapped` (the
//! rings the kernel writes), plus one test-only fake kernel in `kernel::attach`'s tests.

#![deny(unsafe_code)]

pub mod app;
pub mod kernel;
pub mod session;

#[cfg(test)]
mod layering;
