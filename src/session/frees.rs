//! Socket frees the kernel ran no program for. Linux 6.18 was seen to call the state and
//! destroy tracepoints for some sockets and run none of their BPF programs, counting no skip
//! (docs/kernel-features.md): those sockets' last records are never made. The destroy
//! program counts its runs (`frees`, per CPU, src/bpf/state.s); a counting perf event counts
//! the tracepoint's calls; a call that is neither a run nor a counted skip is a free no
//! program saw, reported as lost (`undelivered`). An upper bound, like `skipped`: the frees
//! of sockets conntrace does not track count too. Perf counts only between the two readings
//! of the program's runs (opened after the first, read before the last), so the other frees
//! of the machine in those microseconds are never counted as unseen; an unseen free in them
//! is then offset by them, the one way this count can fall short.

use crate::kernel::attach::{self, TracepointCounter};
use crate::kernel::load::Loaded;
use crate::kernel::sys::Sys;

pub const FREES_MAP: &str = "frees";
/// `CONNTRACE_COUNT_FREES=1` turns the count on. Off by default: with it, the VM suite's
/// x86_64 6.1 kernel (under TCG) locked up a CPU at conntrace's exit in about one boot in
/// eight (a soft lockup in the init's syscalls while the tracepoint backend detached; never
/// seen without it, cause not found). Read here and nowhere else.
pub const COUNT_FREES_ENV: &str = "CONNTRACE_COUNT_FREES";

/// Whether the user asked for the count.
pub fn asked() -> bool {
    std::env::var(COUNT_FREES_ENV).is_ok_and(|v| v == "1")
}
/// The tracepoint the destroy program runs on, as tracefs names it.
pub const DESTROY: (&str, &str) = ("tcp", "tcp_destroy_sock");

/// Perf's count of the destroy tracepoint since the start, beside the destroy program's.
pub struct FreeCheck<'s> {
    counter: TracepointCounter<'s>,
    /// The destroy program's section.
    section: String,
    /// Its runs and counted skips when perf's count began.
    before: u64,
}

impl<'s> FreeCheck<'s> {
    /// Starts the count for the attached destroy program in `section`: its runs read, then
    /// perf's count opened.
    pub fn start(
        sys: &'s dyn Sys,
        loaded: &Loaded,
        section: &str,
        cpus: &[u32],
    ) -> Result<FreeCheck<'s>, String> {
        let before = seen(sys, loaded, section)?;
        let (category, name) = DESTROY;
        let counter =
            attach::count_tracepoint(sys, category, name, cpus).map_err(|e| e.to_string())?;
        Ok(FreeCheck {
            counter,
            section: section.to_string(),
            before,
        })
    }

    /// Ends the count: perf's read, then the program's runs. The frees no program ran for
    /// in between. Dropped, it closes perf's events (the last close waits out the
    /// tracepoint's grace periods).
    pub fn finish(&self, sys: &dyn Sys, loaded: &Loaded) -> Result<u64, String> {
        let calls = self.counter.total()?;
        let seen = seen(sys, loaded, &self.section)?.saturating_sub(self.before);
        Ok(calls.saturating_sub(seen))
    }
}

/// The destroy program's runs, summed over the CPUs, plus the runs of it the kernel skipped
/// and counted (reported as `skipped` already).
fn seen(sys: &dyn Sys, loaded: &Loaded, section: &str) -> Result<u64, String> {
    let values = loaded
        .lookup_per_cpu(sys, FREES_MAP, 0, 8)
        .map_err(|e| format!("cannot read the destroy program's runs: {e}"))?
        .ok_or("the probe object has no frees map")?;
    let runs = values.chunks_exact(8).fold(0u64, |sum, v| {
        sum.saturating_add(bytemuck::pod_read_unaligned::<u64>(v))
    });
    let skipped = loaded
        .skipped_runs(sys)?
        .and_then(|runs| runs.into_iter().find(|(s, _)| *s == section))
        .map_or(0, |(_, n)| n);
    Ok(runs.saturating_add(skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::abi::{PROG_INFO_LEN_WITH_MISSES, PROG_INFO_RECURSION_MISSES};
    use crate::kernel::load::{LoadedMap, LoadedProgram};
    use crate::kernel::probe_object::{MapDef, ProgramKind};
    use crate::kernel::sys::fake::FakeSys;

    const SECTION: &str = "raw_tracepoint/tcp_destroy_sock";

    fn fd() -> std::os::fd::OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    fn loaded() -> Loaded {
        Loaded {
            maps: vec![LoadedMap {
                def: MapDef {
                    name: FREES_MAP.into(),
                    map_type: 0,
                    key_size: 4,
                    value_size: 8,
                    max_entries: 1,
                    flags: 0,
                },
                fd: fd(),
            }],
            programs: vec![LoadedProgram {
                section: SECTION.into(),
                kind: ProgramKind::from_section(SECTION).unwrap(),
                fd: fd(),
            }],
        }
    }

    fn fake() -> FakeSys {
        let fake = FakeSys::new();
        fake.set_file("/sys/devices/system/cpu/possible", "0-1\n");
        fake.set_file("/sys/kernel/tracing/events/header_page", b"");
        fake.set_file(
            "/sys/kernel/tracing/events/tcp/tcp_destroy_sock/id",
            b"77\n",
        );
        fake
    }

    fn per_cpu(runs: [u64; 2]) -> Vec<u8> {
        runs.iter().flat_map(|n| n.to_ne_bytes()).collect()
    }

    fn misses(n: u64) -> Vec<u8> {
        let mut info = vec![0u8; PROG_INFO_LEN_WITH_MISSES];
        info[PROG_INFO_RECURSION_MISSES..][..8].copy_from_slice(&n.to_ne_bytes());
        info
    }

    #[test]
    fn calls_perf_counted_that_no_run_or_counted_skip_explains_are_undelivered() {
        let fake = fake();
        let l = loaded();
        // At the start: 100 runs and 2 counted skips before perf's count began.
        fake.script_map_lookup(&per_cpu([60, 40]));
        fake.script_obj_info(&misses(2));
        let check = FreeCheck::start(&fake, &l, SECTION, &[0, 1]).unwrap();
        // Since: 1,000 calls, 990 runs and 3 more counted skips: 7 no program saw.
        fake.script_map_lookup(&per_cpu([560, 530]));
        fake.script_obj_info(&misses(5));
        fake.set_perf_count(0, 600);
        fake.set_perf_count(1, 400);
        assert_eq!(check.finish(&fake, &l), Ok(7));
    }

    #[test]
    fn more_runs_than_calls_is_no_negative_loss() {
        let fake = fake();
        let l = loaded();
        fake.script_map_lookup(&per_cpu([0, 0]));
        fake.script_obj_info(&misses(0));
        let check = FreeCheck::start(&fake, &l, SECTION, &[0, 1]).unwrap();
        fake.script_map_lookup(&per_cpu([5, 5]));
        fake.script_obj_info(&misses(0));
        fake.set_perf_count(0, 9);
        assert_eq!(check.finish(&fake, &l), Ok(0));
    }

    #[test]
    fn an_unreadable_count_is_an_error_that_says_what() {
        let fake = fake();
        let l = loaded();
        fake.fail_next("map_lookup", libc::EPERM);
        let e = FreeCheck::start(&fake, &l, SECTION, &[0]).err().unwrap();
        assert!(
            e.starts_with("cannot read the destroy program's runs"),
            "{e}"
        );
    }
}
