//! Kprobes the old way (before the kprobe PMU): a line in tracefs `kprobe_events` creates a
//! trace event, which is then opened like a tracepoint. The entry outlives us unless removed,
//! so every entry is named after our pid and removed when its Attachment drops;
//! [`remove_stale`] cleans up after a conntrace that crashed.
//!
//! Each entry keeps kprobe_events open for appending from the moment it is created: the
//! removal at exit happens after conntrace has dropped root (see `privileges`), when the file
//! (root's, mode 0640) could no longer be opened. The kernel checks permissions at open only.

use super::AttachError;
use crate::kernel::sys::{AppendFile, HeldFile, Sys};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

const PREFIX: &str = "conntrace_";
static NEXT: AtomicU32 = AtomicU32::new(0);

/// One entry we created in kprobe_events.
#[derive(Debug)]
pub struct KprobeEvent {
    control: AppendFile,
    name: String,
}

impl KprobeEvent {
    /// Appends `p:conntrace_<pid>_<n> FUNCTION` (`r:` for a return probe, `rN:` with room
    /// for N calls at once); returns the entry and the trace event id the kernel gave it.
    pub fn create<'s>(
        sys: &'s dyn Sys,
        tracefs: &Path,
        function: &str,
        retprobe: bool,
        maxactive: Option<u32>,
    ) -> Result<(Removal<'s>, u64), AttachError> {
        let name = format!(
            "{PREFIX}{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = tracefs.join("kprobe_events");
        let kind = match (retprobe, maxactive) {
            (true, Some(n)) => format!("r{n}"),
            (true, None) => "r".to_string(),
            (false, _) => "p".to_string(),
        };
        let line = format!("{kind}:{name} {function}\n");
        let control = sys.open_append(&path).map_err(|e| AttachError::Kprobe {
            function: function.to_string(),
            message: format!("opening {} failed ({e})", path.display()),
        })?;
        sys.append(&control, line.as_bytes())
            .map_err(|e| AttachError::Kprobe {
                function: function.to_string(),
                message: format!(
                "writing `{}` to {} failed ({e}): the function does not exist or cannot be probed",
                line.trim_end(),
                path.display()
            ),
            })?;
        let id_path = tracefs.join("events/kprobes").join(&name).join("id");
        let removal = Removal {
            sys,
            event: KprobeEvent { control, name },
        };
        // On error `removal` drops here and takes the entry out again.
        let id = super::read_id(sys, &id_path).map_err(|message| AttachError::Kprobe {
            function: function.to_string(),
            message,
        })?;
        Ok((removal, id))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes `-:NAME`. The kernel refuses (EBUSY) while a perf event on it is open.
    fn remove(&mut self, sys: &dyn Sys) -> Result<(), AttachError> {
        if self.name.is_empty() {
            return Ok(());
        }
        let line = format!("-:{}\n", self.name);
        let result = sys.append(&self.control, line.as_bytes());
        let name = std::mem::take(&mut self.name);
        result.map_err(|e| {
            AttachError::Cleanup(format!(
                "removing kprobe event {name} from {} failed: {e}",
                self.control.path.display()
            ))
        })
    }
}

/// An entry that is removed when this drops (or earlier, by `remove_now`). An Attachment
/// closes its perf fd before it lets this go.
pub struct Removal<'s> {
    pub sys: &'s dyn Sys,
    pub event: KprobeEvent,
}

impl Removal<'_> {
    pub fn remove_now(&mut self) -> Result<(), AttachError> {
        self.event.remove(self.sys)
    }
}

impl Drop for Removal<'_> {
    fn drop(&mut self) {
        let _ = self.event.remove(self.sys);
    }
}

/// Opens tracefs `kprobe_profile` for [`misses`], while conntrace may still open it.
pub fn open_profile(sys: &dyn Sys, tracefs: &Path) -> Result<HeldFile, String> {
    let path = tracefs.join("kprobe_profile");
    sys.open_held(&path)
        .map_err(|e| format!("opening {} failed: {e}", path.display()))
}

/// The misses of our entries from `kprobe_profile` (for a return probe: the calls it could
/// not follow, for want of a free instance, plus those its entry probe missed).
pub fn misses(sys: &dyn Sys, profile: &HeldFile, names: &[&str]) -> Result<Vec<u64>, String> {
    let path = &profile.path;
    let bytes = sys
        .read_held(profile)
        .map_err(|e| format!("reading {} failed: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let profile = parse_profile(&text);
    names
        .iter()
        .map(|name| {
            profile
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|&(_, _, missed)| missed)
                .ok_or_else(|| format!("{} has no line for {name}", path.display()))
        })
        .collect()
}

/// `kprobe_profile` lines: "  EVENT_NAME   HITS   MISSES" -> (name, hits, misses); lines
/// of another shape are skipped.
fn parse_profile(text: &str) -> Vec<(&str, u64, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let hits = words.next()?.parse().ok()?;
            let misses = words.next()?.parse().ok()?;
            words.next().is_none().then_some((name, hits, misses))
        })
        .collect()
}

/// Removes `conntrace_<pid>_<n>` entries whose pid is no longer running; returns their names.
/// Without /proc nothing can be judged, so nothing is removed.
pub fn remove_stale(sys: &dyn Sys, tracefs: &Path) -> Result<Vec<String>, AttachError> {
    let control = tracefs.join("kprobe_events");
    let listing = match sys.read_file(&control) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => return Ok(Vec::new()), // no kprobe_events: nothing of ours can be there
    };
    if sys.read_file(Path::new("/proc/self/stat")).is_err() {
        return Ok(Vec::new());
    }
    let own = std::process::id();
    let mut removed = Vec::new();
    for (group_and_name, pid) in listing.lines().filter_map(parse_entry) {
        if pid == own
            || sys
                .read_file(Path::new(&format!("/proc/{pid}/stat")))
                .is_ok()
        {
            continue;
        }
        let line = format!("-:{group_and_name}\n");
        sys.write_file(&control, line.as_bytes(), true)
            .map_err(|e| {
                AttachError::Cleanup(format!(
                    "removing stale kprobe event {group_and_name} of exited pid {pid} failed: {e}"
                ))
            })?;
        removed.push(group_and_name.to_string());
    }
    Ok(removed)
}

/// "p:kprobes/conntrace_123_4 tcp_v4_connect" -> ("kprobes/conntrace_123_4", 123).
fn parse_entry(line: &str) -> Option<(&str, u32)> {
    let first = line.split_whitespace().next()?;
    let (_, group_and_name) = first.split_once(':')?;
    let name = group_and_name.rsplit('/').next()?;
    let (pid, n) = name.strip_prefix(PREFIX)?.split_once('_')?;
    n.parse::<u32>().ok()?;
    Some((group_and_name, pid.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::{parse_entry, parse_profile};

    #[test]
    fn parses_the_profile() {
        let text = "  conntrace_12_0                                         40              39\n\
                    \x20 other                 7 0\n\
                    garbage line\n  short 1\n  bad x 2\n";
        assert_eq!(
            parse_profile(text),
            vec![("conntrace_12_0", 40, 39), ("other", 7, 0)]
        );
        assert!(parse_profile("").is_empty());
    }
    use crate::kernel::sys::{RealSys, Sys};

    #[test]
    fn parses_listing_lines() {
        assert_eq!(
            parse_entry("p:kprobes/conntrace_123_4 tcp_v4_connect"),
            Some(("kprobes/conntrace_123_4", 123))
        );
        assert_eq!(
            parse_entry("r16:kprobes/conntrace_9_0 inet_csk_accept"),
            Some(("kprobes/conntrace_9_0", 9))
        );
        assert_eq!(parse_entry("p:kprobes/other_1_2 f"), None);
        assert_eq!(parse_entry("p:kprobes/conntrace_x_2 f"), None);
        assert_eq!(parse_entry("p:kprobes/conntrace_1 f"), None);
        assert_eq!(parse_entry(""), None);
    }

    /// Removal writes through the descriptor opened at creation, not the path: after the
    /// privilege drop the path could not be opened again. Moving the file away and making it
    /// unreadable shows the write still lands in it.
    #[test]
    fn real_append_writes_through_the_descriptor_opened_before() {
        let dir = std::env::temp_dir().join(format!("conntrace-append-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kprobe_events");
        std::fs::write(&path, "p:first f\n").unwrap();
        let control = RealSys.open_append(&path).unwrap();
        let moved = dir.join("moved");
        std::fs::rename(&path, &moved).unwrap();
        std::fs::set_permissions(&moved, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .unwrap();
        RealSys.append(&control, b"-:first\n").unwrap();
        assert!(!path.exists(), "append must not reopen the path");
        std::fs::set_permissions(&moved, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&moved).unwrap(),
            "p:first f\n-:first\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn opening_a_missing_control_file_fails() {
        let path = std::path::Path::new("/nonexistent-conntrace-dir/kprobe_events");
        assert!(RealSys.open_append(path).is_err());
    }
}
