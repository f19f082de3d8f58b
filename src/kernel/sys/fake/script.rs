//! What a test makes happen: failures by call name and position, a verifier log, file
//! contents, epoll readiness, values for map lookups. The fake's calls consume it.

use super::FakeSys;
use crate::kernel::sys::{Rlimit, SysError, SysResult};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

/// The names `fail_next`/`fail_nth`/`fail_always` accept: one per `Sys` method.
const CALL_NAMES: [&str; 22] = [
    "map_create",
    "obj_info",
    "btf_load",
    "memlock_limit",
    "set_memlock_limit",
    "map_update",
    "map_lookup",
    "prog_load",
    "perf_event_open",
    "ioctl",
    "read_count",
    "raw_tracepoint_open",
    "mmap_shared",
    "mmap_read_only",
    "munmap",
    "membarrier_global",
    "epoll_create",
    "epoll_add",
    "epoll_wait",
    "mount",
    "read_file",
    "write_file",
];

#[derive(Default)]
pub(super) struct Script {
    /// Per call name: (calls still to let through, errno) pairs.
    pub(super) failures: HashMap<&'static str, Vec<(usize, i32)>>,
    pub(super) always: HashMap<&'static str, i32>,
    pub(super) verifier_log: Option<Vec<u8>>,
    pub(super) files: HashMap<PathBuf, Vec<u8>>,
    pub(super) epoll_results: VecDeque<Vec<u64>>,
    /// Values the next map_lookup calls copy out, in order (zeros when none is left).
    pub(super) lookup_values: VecDeque<Vec<u8>>,
    /// What the next obj_info calls copy out, in order (nothing when none is left).
    pub(super) obj_infos: VecDeque<Vec<u8>>,
    /// RLIMIT_MEMLOCK as `memlock_limit` reports it (8 MiB, the usual default, until set).
    pub(super) memlock: Option<Rlimit>,
}

impl FakeSys {
    /// The next call of this kind fails with `errno`.
    /// `call` is a `Sys` method name such as `"prog_load"`; an unknown name panics (a typo in a
    /// test must not silently script nothing).
    pub fn fail_next(&self, call: &str, errno: i32) {
        self.fail_nth(call, 0, errno);
    }

    /// The `n`-th (0-based) future call of this kind fails with `errno`; the ones before succeed.
    pub fn fail_nth(&self, call: &str, n: usize, errno: i32) {
        let name = call_name(call);
        self.state
            .borrow_mut()
            .script
            .failures
            .entry(name)
            .or_default()
            .push((n, errno));
    }

    /// Every future call of this kind fails with `errno`.
    pub fn fail_always(&self, call: &str, errno: i32) {
        let name = call_name(call);
        self.state.borrow_mut().script.always.insert(name, errno);
    }

    /// Text `prog_load` copies into the caller's log buffer (truncated, NUL-terminated), on
    /// success and failure alike, as the kernel does with log_level 1.
    pub fn set_verifier_log(&self, text: &str) {
        self.state.borrow_mut().script.verifier_log = Some(text.as_bytes().to_vec());
    }

    /// What `read_file(path)` returns; unknown paths give `NotFound`.
    pub fn set_file(&self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) {
        self.state
            .borrow_mut()
            .script
            .files
            .insert(path.into(), contents.into());
    }

    /// The next `epoll_wait` reports exactly these tokens (truncated to the caller's buffer)
    /// instead of the rings that hold data.
    pub fn script_epoll_wait(&self, tokens: &[u64]) {
        self.state
            .borrow_mut()
            .script
            .epoll_results
            .push_back(tokens.to_vec());
    }

    /// The next `map_lookup` copies out this value (then zeros once the queue is empty).
    pub fn script_map_lookup(&self, value: &[u8]) {
        self.state
            .borrow_mut()
            .script
            .lookup_values
            .push_back(value.to_vec());
    }

    /// The next `obj_info` copies out this info (the kernel knows `info.len()` bytes of it).
    pub fn script_obj_info(&self, info: &[u8]) {
        self.state
            .borrow_mut()
            .script
            .obj_infos
            .push_back(info.to_vec());
    }

    /// What `memlock_limit` reports until the code under test sets it.
    pub fn set_memlock(&self, limit: Rlimit) {
        self.state.borrow_mut().script.memlock = Some(limit);
    }

    /// RLIMIT_MEMLOCK as the fake holds it now (8 MiB unless scripted or set).
    pub fn memlock(&self) -> Rlimit {
        self.state.borrow().script.memlock.unwrap_or(Rlimit {
            soft: 8 << 20,
            hard: 8 << 20,
        })
    }

    /// Consumes the script for one call of `name`: `Err(errno)` if it is due to fail.
    pub(super) fn scripted(&self, name: &'static str) -> Result<(), i32> {
        let mut state = self.state.borrow_mut();
        if let Some(&errno) = state.script.always.get(name) {
            return Err(errno);
        }
        let Some(list) = state.script.failures.get_mut(name) else {
            return Ok(());
        };
        let due = list.iter().position(|&(left, _)| left == 0);
        let result = match due {
            Some(i) => Err(list.remove(i).1),
            None => Ok(()),
        };
        // Only the entries still waiting count this call, and only if it went through.
        if result.is_ok() {
            for entry in list.iter_mut() {
                entry.0 -= 1;
            }
        }
        result
    }

    pub(super) fn check(&self, name: &'static str, call: &'static str) -> SysResult<()> {
        self.scripted(name)
            .map_err(|errno| SysError::new(call, errno))
    }
}

fn call_name(call: &str) -> &'static str {
    match CALL_NAMES.iter().find(|&&n| n == call) {
        Some(n) => n,
        None => panic!("FakeSys: no Sys call named {call:?}; known: {CALL_NAMES:?}"),
    }
}
