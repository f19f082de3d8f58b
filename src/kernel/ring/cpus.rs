//! Which CPUs are online: the kernel's CPU-list format ("0-3,5,7-8\n"), parsed without trust.

use super::RingError;
use crate::kernel::sys::Sys;
use std::path::Path;

pub const ONLINE_CPUS_PATH: &str = "/sys/devices/system/cpu/online";
pub const POSSIBLE_CPUS_PATH: &str = "/sys/devices/system/cpu/possible";

/// Far above any real NR_CPUS (8192 today); keeps a corrupt "0-4000000000" from allocating.
const MAX_CPUS: u32 = 1 << 16;

/// The online CPUs, ascending, read from sysfs through `sys`.
pub fn online_cpus(sys: &dyn Sys) -> Result<Vec<u32>, RingError> {
    read_cpu_list(sys, Path::new(ONLINE_CPUS_PATH))
}

/// The CPUs that may ever come online: per-CPU map values have one slot for each.
pub fn possible_cpus(sys: &dyn Sys) -> Result<Vec<u32>, RingError> {
    read_cpu_list(sys, Path::new(POSSIBLE_CPUS_PATH))
}

fn read_cpu_list(sys: &dyn Sys, path: &Path) -> Result<Vec<u32>, RingError> {
    let text = sys
        .read_file(path)
        .map_err(|err| RingError::CpuListUnreadable {
            path: path.to_path_buf(),
            err,
        })?;
    parse_cpu_list(&text).map_err(|reason| RingError::CpuListInvalid {
        path: path.to_path_buf(),
        text: String::from_utf8_lossy(&text)
            .trim_end()
            .chars()
            .take(80)
            .collect(),
        reason,
    })
}

/// Parses a kernel CPU list ("0-3,5,7-8", surrounding whitespace allowed) into sorted,
/// de-duplicated CPU numbers. Any other input is an error saying what is wrong.
pub fn parse_cpu_list(text: &[u8]) -> Result<Vec<u32>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "it is not text".to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Err("it lists no CPUs".to_string());
    }
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (cpu_number(a)?, cpu_number(b)?),
            None => {
                let n = cpu_number(part)?;
                (n, n)
            }
        };
        if first > last {
            return Err(format!("the range {part:?} runs backwards"));
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

fn cpu_number(s: &str) -> Result<u32, String> {
    // u32::from_str would accept "+3"; the kernel never writes a sign.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a CPU number"));
    }
    match s.parse::<u32>() {
        Ok(n) if n < MAX_CPUS => Ok(n),
        _ => Err(format!(
            "CPU number {s} is beyond the {MAX_CPUS} CPUs this reader supports"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::sys::fake::FakeSys;

    #[test]
    fn parses_ranges_singles_and_the_trailing_newline() {
        assert_eq!(
            parse_cpu_list(b"0-3,5,7-8\n").unwrap(),
            vec![0, 1, 2, 3, 5, 7, 8]
        );
        assert_eq!(parse_cpu_list(b"0\n").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list(b"2,0-1,1").unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for (input, needle) in [
            (&b""[..], "no CPUs"),
            (b" \n", "no CPUs"),
            (b"0-", "not a CPU number"),
            (b"-3", "not a CPU number"),
            (b"0,,2", "not a CPU number"),
            (b"a-b", "not a CPU number"),
            (b"+1", "not a CPU number"),
            (b"3-1", "backwards"),
            (b"0-4000000000", "beyond"),
            (b"99999999999999999999", "beyond"),
            (b"0-1-2", "not a CPU number"),
            (b"\xff\xfe", "not text"),
        ] {
            let err = parse_cpu_list(input).unwrap_err();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
    }

    #[test]
    fn online_cpus_reads_sysfs_through_sys() {
        let fake = FakeSys::new();
        fake.set_file(ONLINE_CPUS_PATH, "0-1,4\n");
        assert_eq!(online_cpus(&fake).unwrap(), vec![0, 1, 4]);

        fake.set_file(ONLINE_CPUS_PATH, "zero\n");
        let msg = online_cpus(&fake).unwrap_err().to_string();
        assert!(
            msg.contains(ONLINE_CPUS_PATH) && msg.contains("\"zero\" is not a CPU number"),
            "{msg}"
        );

        let missing = FakeSys::new();
        let msg = online_cpus(&missing).unwrap_err().to_string();
        assert!(msg.contains("cannot read") && msg.contains("/sys"), "{msg}");
    }
}
