//! conntrace: every TCP connection a Linux machine makes and accepts, traced with BPF programs
//! we assemble ourselves and load with raw syscalls.
//!
//! The flow, module by module:
//! - `trace`: the entry point; `cli` parses the command line, `check` answers `conntrace check`.
//! - `session` sets up: `fields` gives struct-field offsets (from `btf`, or the built-in
//!   table, then proved by `selftest`); `probe_object` reads the embedded probe object;
//!   `backend` says which of its programs to use and where; `load` creates the maps and loads
//!   the programs; `filter` is the in-kernel filter config; `ring` maps the per-CPU perf rings;
//!   `attach` hooks the programs to tracepoints or kprobes.
//! - `privileges` drops what the rest of the run does not need.
//! - `reader` reads the rings: `event` decodes each record, `output` prints it; `signals` and
//!   the options say when to stop.
//! - `sys` is the only module that calls bpf(), perf_event_open(), ioctl, mmap and epoll;
//!   `errno` names errors.

pub mod app;
pub mod kernel;
pub mod session;
