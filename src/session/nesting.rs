//! The state program's skipped runs that count as lost: the kernel skips a raw tracepoint
//! program's run nested in its own run on a CPU, and the rescue program attached after it
//! makes the records of most of those runs instead (src/bpf/state.s, `nest_rescue`). What
//! it did not make up is lost.

use crate::kernel::load::Loaded;
use crate::kernel::probe_object::{RAW_TRACEPOINT_SECOND, TP_BTF_SECOND};
use crate::kernel::sys::Sys;
use bytemuck::{Pod, Zeroable};

/// The `nest` map's one value, per CPU (NEST_* in src/bpf/common.s): the last two state
/// changes the state program made the records of, the rescued runs, and the mark.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct NestSlot {
    pub sock: u64,
    /// old state * 16 + new state.
    pub states: u64,
    pub sock2: u64,
    pub states2: u64,
    /// Skipped runs whose records the rescue program made.
    pub rescued: u64,
    /// The change whose state program run holds the CPU's mark (socket 0: none): known to
    /// have run even when its note was pushed out.
    pub owner_sock: u64,
    pub owner_states: u64,
}

pub const NEST_MAP: &str = "nest";

/// The runs the kernel skipped, less those a rescue program made up; None where the kernel
/// does not count skips. A rescue program's own skips lose nothing: it is skipped only
/// while it runs on that CPU, and then the state program is free to run.
pub fn skipped_runs(sys: &dyn Sys, loaded: &Loaded) -> Result<Option<u64>, String> {
    let Some(runs) = loaded.skipped_runs(sys)? else {
        return Ok(None);
    };
    let skipped: u64 = runs
        .iter()
        .filter(|(section, _)| {
            !section.starts_with(RAW_TRACEPOINT_SECOND) && !section.starts_with(TP_BTF_SECOND)
        })
        .map(|(_, n)| n)
        .sum();
    Ok(Some(skipped.saturating_sub(rescued_runs(sys, loaded)?)))
}

/// The rescued runs, summed over the CPUs; 0 for an object without the `nest` map.
fn rescued_runs(sys: &dyn Sys, loaded: &Loaded) -> Result<u64, String> {
    let size = size_of::<NestSlot>();
    let values = loaded
        .lookup_per_cpu(sys, NEST_MAP, 0, size)
        .map_err(|e| format!("cannot read the rescued runs: {e}"))?;
    Ok(values
        .unwrap_or_default()
        .chunks_exact(size)
        .fold(0u64, |sum, v| {
            sum.saturating_add(bytemuck::pod_read_unaligned::<NestSlot>(v).rescued)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::abi::{PROG_INFO_LEN_WITH_MISSES, PROG_INFO_RECURSION_MISSES};
    use crate::kernel::load::{LoadedMap, LoadedProgram};
    use crate::kernel::probe_object::{MapDef, ProgramKind};
    use crate::kernel::sys::fake::FakeSys;

    fn fd() -> std::os::fd::OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    fn loaded(sections: &[&str], nest: bool) -> Loaded {
        let def = MapDef {
            name: NEST_MAP.into(),
            map_type: 0,
            key_size: 4,
            value_size: size_of::<NestSlot>() as u32,
            max_entries: 1,
            flags: 0,
        };
        Loaded {
            maps: nest
                .then(|| LoadedMap { def, fd: fd() })
                .into_iter()
                .collect(),
            programs: sections
                .iter()
                .map(|s| LoadedProgram {
                    section: s.to_string(),
                    kind: ProgramKind::from_section(s).unwrap(),
                    fd: fd(),
                })
                .collect(),
        }
    }

    fn misses(n: u64) -> Vec<u8> {
        let mut info = vec![0u8; PROG_INFO_LEN_WITH_MISSES];
        info[PROG_INFO_RECURSION_MISSES..][..8].copy_from_slice(&n.to_ne_bytes());
        info
    }

    fn slots(rescued: &[u64]) -> Vec<u8> {
        rescued
            .iter()
            .flat_map(|&rescued| {
                bytemuck::bytes_of(&NestSlot {
                    sock: 0xffff_8880_1234_5600,
                    states: 0x17,
                    rescued,
                    ..NestSlot::default()
                })
                .to_vec()
            })
            .collect()
    }

    const STATE: &str = "raw_tracepoint/inet_sock_set_state";
    const RESCUE: &str = "raw_tracepoint.rescue/inet_sock_set_state";
    const CONNECT: &str = "tracepoint/syscalls/sys_exit_connect";

    #[test]
    fn skips_the_rescue_made_up_are_not_lost_and_its_own_skips_lose_nothing() {
        let fake = FakeSys::new();
        fake.set_file("/sys/devices/system/cpu/possible", "0-1\n");
        let l = loaded(&[STATE, RESCUE, CONNECT], true);
        fake.script_obj_info(&misses(52));
        fake.script_obj_info(&misses(64));
        fake.script_obj_info(&misses(3));
        fake.script_map_lookup(&slots(&[30, 20]));
        // 52 + 3 skipped, 50 of them made up on the two CPUs; the rescue's 64 are not counted.
        assert_eq!(skipped_runs(&fake, &l), Ok(Some(5)));
    }

    #[test]
    fn more_rescued_than_skipped_is_no_negative_loss() {
        let fake = FakeSys::new();
        fake.set_file("/sys/devices/system/cpu/possible", "0\n");
        let l = loaded(&[STATE, RESCUE], true);
        fake.script_obj_info(&misses(1));
        fake.script_obj_info(&misses(0));
        fake.script_map_lookup(&slots(&[2]));
        assert_eq!(skipped_runs(&fake, &l), Ok(Some(0)));
    }

    #[test]
    fn without_the_nest_map_every_skip_counts() {
        let fake = FakeSys::new();
        let l = loaded(&["tracepoint/sock/inet_sock_set_state"], false);
        fake.script_obj_info(&misses(7));
        assert_eq!(skipped_runs(&fake, &l), Ok(Some(7)));
    }

    #[test]
    fn a_kernel_that_counts_no_skips_says_none() {
        let fake = FakeSys::new();
        let l = loaded(&[STATE, RESCUE], true);
        fake.script_obj_info(&misses(7)[..PROG_INFO_RECURSION_MISSES]);
        assert_eq!(skipped_runs(&fake, &l), Ok(None));
    }

    #[test]
    fn an_unreadable_nest_map_is_an_error_that_says_so() {
        let fake = FakeSys::new();
        fake.set_file("/sys/devices/system/cpu/possible", "0\n");
        let l = loaded(&[STATE], true);
        fake.script_obj_info(&misses(1));
        fake.fail_next("map_lookup", libc::EPERM);
        let e = skipped_runs(&fake, &l).unwrap_err();
        assert!(e.starts_with("cannot read the rescued runs"), "{e}");
    }
}
