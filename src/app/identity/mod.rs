//! Who owns a socket, as a person running containers asks it: the cgroup v2 path behind a
//! record's cgroup id, and the container and Kubernetes pod that path names.
//!
//! The id is the inode number of the cgroup's directory in the cgroup2 file system (the
//! kernel's `cgroup_id()`, which `bpf_get_current_cgroup_id` returns; before 5.5 it also
//! carries a generation in its high 32 bits, so a miss retries the low half). [`Resolver`]
//! opens the cgroup2 mount found in /proc/self/mountinfo before privileges are dropped and
//! keeps an index of id → identity, built by walking the tree below that directory with
//! openat/getdents64 (search permission only: it works as `nobody` afterwards).
//!
//! The read loop must never wait for it: an id the index lacks starts (or continues) a walk,
//! but only for [`WALK_BUDGET`] per lookup and [`BATCH_BUDGET`] per batch of events; an id
//! not found within that is printed with `cgroup_path` null. An id a complete walk begun
//! after its record did not find belongs to a cgroup already removed (cgroup ids are never
//! reused) and is remembered as unknown. The index holds at most [`MAX_INDEXED`] cgroups
//! (hosts have hundreds); past that, a walk indexes only the ids it was asked for.

mod mountinfo;
mod names;

pub use mountinfo::{cgroup2_mount, Cgroup2Mount, MountinfoError};
pub use names::{container_id, pod_uid};

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::kernel::sys::files;

/// Most cgroups indexed at once (about 200 bytes each).
pub const MAX_INDEXED: usize = 8192;
/// Most ids remembered as unknown (removed cgroups); the set is emptied when full.
pub const MAX_UNKNOWN: usize = 8192;
/// Longest one lookup walks the tree.
pub const WALK_BUDGET: Duration = Duration::from_millis(2);
/// Longest the lookups of one batch of events walk the tree together.
pub const BATCH_BUDGET: Duration = Duration::from_millis(5);
/// The first walk, at start (before tracing begins), may take this long.
const START_BUDGET: Duration = Duration::from_millis(200);

/// What a cgroup id resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The path below the cgroup2 root, `/` for the root itself.
    pub cgroup_path: Box<[u8]>,
    pub container_id: Option<Box<str>>,
    pub pod_uid: Option<Box<str>>,
}

impl Identity {
    pub fn of_path(path: &[u8]) -> Identity {
        Identity {
            cgroup_path: path.into(),
            container_id: container_id(path).map(String::into_boxed_str),
            pod_uid: pod_uid(path).map(String::into_boxed_str),
        }
    }
}

/// A walk of the tree in progress: the directories still to list (relative to the mount).
struct Walk {
    started_ns: u64,
    pending: Vec<Vec<u8>>,
}

pub struct Resolver {
    /// The cgroup2 mount directory; None when there is none (every lookup gives None).
    root: Option<OwnedFd>,
    /// The mount's root within the hierarchy (`/` unless it is a bind mount of a subtree).
    prefix: Vec<u8>,
    index: HashMap<u64, Identity>,
    unknown: HashSet<u64>,
    /// Ids asked for during the current walk (indexed even when the index is full).
    wanted: HashSet<u64>,
    walk: Option<Walk>,
    /// When the last complete walk began (CLOCK_MONOTONIC ns).
    last_walk_started: u64,
    batch_left: Duration,
    /// Why there is nothing to resolve against, for a note at start.
    pub unavailable: Option<String>,
}

impl Resolver {
    /// A resolver that resolves nothing.
    pub fn disabled(why: String) -> Resolver {
        Resolver {
            root: None,
            prefix: b"/".to_vec(),
            index: HashMap::new(),
            unknown: HashSet::new(),
            wanted: HashSet::new(),
            walk: None,
            last_walk_started: 0,
            batch_left: BATCH_BUDGET,
            unavailable: Some(why),
        }
    }

    /// Finds the cgroup2 mount, opens it and indexes what is there now. Call it before
    /// privileges are dropped.
    pub fn open() -> Resolver {
        let mountinfo = match std::fs::read("/proc/self/mountinfo") {
            Ok(m) => m,
            Err(e) => return Resolver::disabled(format!("cannot read /proc/self/mountinfo: {e}")),
        };
        match cgroup2_mount(&mountinfo) {
            Ok(mount) => Resolver::at(&mount),
            Err(e) => Resolver::disabled(e.to_string()),
        }
    }

    /// Opens the mount `mount` and indexes it.
    pub fn at(mount: &Cgroup2Mount) -> Resolver {
        use std::os::unix::ffi::OsStrExt;
        let dir = Path::new(std::ffi::OsStr::from_bytes(&mount.mount_point));
        let mut r = Resolver::disabled(String::new());
        match files::open_dir(dir) {
            Ok(fd) => {
                r.root = Some(fd);
                r.prefix = mount.root.clone();
                r.unavailable = None;
            }
            Err(e) => r.unavailable = Some(format!("cannot open {}: {e}", dir.display())),
        }
        r.batch_left = START_BUDGET;
        r.start_walk();
        r.advance(START_BUDGET);
        r.batch_left = BATCH_BUDGET;
        r
    }

    /// Starts a new budget for one batch of events.
    pub fn begin_batch(&mut self) {
        self.batch_left = BATCH_BUDGET;
    }

    /// The identity of cgroup `id`, seen in a record made at `ts_ns` (CLOCK_MONOTONIC), or None
    /// when it is not known within the time budget.
    pub fn lookup(&mut self, id: u64, ts_ns: u64) -> Option<&Identity> {
        let key = self.key_of(id, ts_ns)?;
        self.index.get(&key)
    }

    fn key_of(&mut self, id: u64, ts_ns: u64) -> Option<u64> {
        self.root.as_ref()?;
        let low = id & 0xffff_ffff;
        let has_gen = id >> 32 != 0;
        if self.index.contains_key(&id) {
            return Some(id);
        }
        if has_gen && self.index.contains_key(&low) {
            return Some(low);
        }
        if self.unknown.contains(&id) || self.batch_left.is_zero() {
            return None;
        }
        self.wanted.insert(id);
        if has_gen {
            self.wanted.insert(low);
        }
        let budget = WALK_BUDGET.min(self.batch_left);
        let deadline = Instant::now() + budget;
        loop {
            if self.walk.is_none() {
                self.start_walk();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let complete = self.advance(left);
            for k in [id, low] {
                if self.index.contains_key(&k) {
                    return Some(k);
                }
            }
            if !complete {
                return None;
            }
            // A finished walk that began after the record: the cgroup is gone.
            if self.walk_started_after(ts_ns) {
                if self.unknown.len() >= MAX_UNKNOWN {
                    self.unknown.clear();
                }
                self.unknown.insert(id);
                return None;
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    fn walk_started_after(&self, ts_ns: u64) -> bool {
        self.last_walk_started >= ts_ns
    }

    fn start_walk(&mut self) {
        let Some(root) = &self.root else { return };
        if self.index.len() >= MAX_INDEXED {
            self.index.clear();
        }
        let started_ns = monotonic_ns();
        if let Ok(ino) = files::inode_of(root.as_fd()) {
            let path = self.prefix.clone();
            self.index
                .entry(ino)
                .or_insert_with(|| Identity::of_path(&path));
        }
        self.walk = Some(Walk {
            started_ns,
            pending: vec![Vec::new()],
        });
    }

    /// Walks for up to `budget` (and what is left of the batch's); true when the walk is done.
    fn advance(&mut self, budget: Duration) -> bool {
        let started = Instant::now();
        let budget = budget.min(self.batch_left);
        let done = loop {
            let Some(walk) = self.walk.as_mut() else {
                break true;
            };
            if started.elapsed() >= budget {
                break false;
            }
            let Some(rel) = walk.pending.pop() else {
                self.last_walk_started = walk.started_ns;
                self.walk = None;
                self.wanted.clear();
                break true;
            };
            let Some(root) = &self.root else { break true };
            let entries = if rel.is_empty() {
                files::read_dir(root.as_fd())
            } else {
                files::open_dir_at(root.as_fd(), &rel).and_then(|d| files::read_dir(d.as_fd()))
            };
            // A directory removed meanwhile, or one we may not list: skip it.
            let Ok(entries) = entries else { continue };
            for entry in entries.into_iter().filter(|e| e.is_dir) {
                let mut child = rel.clone();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(&entry.name);
                if self.index.len() < MAX_INDEXED || self.wanted.contains(&entry.ino) {
                    let path = join(&self.prefix, &child);
                    self.index.insert(entry.ino, Identity::of_path(&path));
                }
                walk.pending.push(child);
            }
        };
        self.batch_left = self.batch_left.saturating_sub(started.elapsed());
        done
    }

    /// The directory `path` names: a path on the cgroup2 file system as given when it is below
    /// the mount point (or elsewhere on the file system), else one below the mount.
    pub fn directory_of(mount: &Cgroup2Mount, path: &Path) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        let mount_point = Path::new(std::ffi::OsStr::from_bytes(&mount.mount_point));
        if path.starts_with(mount_point) || !path.is_absolute() && path.exists() {
            return path.to_path_buf();
        }
        let rel = path.strip_prefix("/").unwrap_or(path);
        mount_point.join(rel)
    }
}

/// `prefix` + `/` + `rel`, without a doubled slash.
fn join(prefix: &[u8], rel: &[u8]) -> Vec<u8> {
    let mut path = prefix.to_vec();
    if path.last() != Some(&b'/') {
        path.push(b'/');
    }
    path.extend_from_slice(rel);
    path
}

fn monotonic_ns() -> u64 {
    crate::kernel::sys::host::clock_ns(libc::CLOCK_MONOTONIC).map_or(0, |ns| ns as u64)
}

#[cfg(test)]
mod tests;
