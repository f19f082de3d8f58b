//! The runs of the loaded programs that the kernel skipped: a kprobe or tracepoint program
//! does not run while another BPF program runs on the same CPU (trace_call_bpf's
//! `bpf_prog_active` guard, e.g. a softirq's state change arriving during a kprobe program),
//! a raw tracepoint program (from 6.2) not while it runs on that CPU itself, and from Linux
//! 6.7 the kernel counts each skip in the program's `recursion_misses`. Each skip may have
//! been a record, unless another program made it instead (src/session/nesting.rs). Older
//! kernels skip the same way without counting.

use super::Loaded;
use crate::kernel::abi::{PROG_INFO_LEN_WITH_MISSES, PROG_INFO_RECURSION_MISSES};
use crate::kernel::sys::Sys;
use std::os::fd::AsFd;

impl Loaded {
    /// Each loaded program's skipped runs, by section; None when the kernel's program info
    /// has no such counter (before 5.12).
    pub fn skipped_runs(&self, sys: &dyn Sys) -> Result<Option<Vec<(&str, u64)>>, String> {
        let mut runs = Vec::with_capacity(self.programs.len());
        for program in &self.programs {
            let mut info = [0u8; PROG_INFO_LEN_WITH_MISSES];
            let known = sys
                .obj_info(program.fd.as_fd(), &mut info)
                .map_err(|e| format!("cannot read the skipped runs of {}: {e}", program.section))?;
            if known < PROG_INFO_LEN_WITH_MISSES {
                return Ok(None);
            }
            runs.push((program.section.as_str(), recursion_misses(&info)));
        }
        Ok(Some(runs))
    }
}

/// `recursion_misses` out of a whole `struct bpf_prog_info`.
fn recursion_misses(info: &[u8; PROG_INFO_LEN_WITH_MISSES]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&info[PROG_INFO_RECURSION_MISSES..PROG_INFO_RECURSION_MISSES + 8]);
    u64::from_ne_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::load::LoadedProgram;
    use crate::kernel::probe_object::ProgramKind;
    use crate::kernel::sys::fake::{Call, FakeSys};

    fn loaded(sections: &[&str]) -> Loaded {
        Loaded {
            maps: Vec::new(),
            programs: sections
                .iter()
                .map(|s| LoadedProgram {
                    section: s.to_string(),
                    kind: ProgramKind::Tracepoint {
                        category: "sock".into(),
                        name: "inet_sock_set_state".into(),
                    },
                    fd: std::fs::File::open("/dev/null").unwrap().into(),
                })
                .collect(),
        }
    }

    fn info(misses: u64) -> Vec<u8> {
        let mut info = vec![0u8; PROG_INFO_LEN_WITH_MISSES];
        info[PROG_INFO_RECURSION_MISSES..][..8].copy_from_slice(&misses.to_ne_bytes());
        info
    }

    #[test]
    fn every_program_s_skips_are_read() {
        let fake = FakeSys::new();
        let l = loaded(&["tracepoint/a", "tracepoint/b"]);
        fake.script_obj_info(&info(3));
        fake.script_obj_info(&info(4));
        assert_eq!(
            l.skipped_runs(&fake),
            Ok(Some(vec![("tracepoint/a", 3), ("tracepoint/b", 4)]))
        );
        let asked = fake
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::ObjInfo { .. }))
            .count();
        assert_eq!(asked, 2);
    }

    #[test]
    fn a_kernel_without_the_counter_says_none() {
        let fake = FakeSys::new();
        let l = loaded(&["tracepoint/a"]);
        // A 5.10 kernel's bpf_prog_info ends before recursion_misses.
        fake.script_obj_info(&info(9)[..PROG_INFO_RECURSION_MISSES]);
        assert_eq!(l.skipped_runs(&fake), Ok(None));
    }

    #[test]
    fn a_refusal_names_the_program() {
        let fake = FakeSys::new();
        let l = loaded(&["tracepoint/sock/inet_sock_set_state"]);
        fake.fail_next("obj_info", libc::EPERM);
        let e = l.skipped_runs(&fake).unwrap_err();
        assert!(
            e.starts_with("cannot read the skipped runs of tracepoint/sock/inet_sock_set_state"),
            "{e}"
        );
    }
}
