//! How many connections the probes can track: the size of the state maps (`conns`, one
//! entry per connect from SYN_SENT until its records are out; `connecting`, one per connect()
//! call between its entry and its return; `socks`, one per established connection until its
//! close record), chosen per machine or by `--max-tracked`, and the kernel memory they take.
//!
//! The default rule: `conns = max(16384, min(tcp_max_syn_backlog × 32, what 1% of MemTotal
//! holds))`, at most [`MAX_TRACKED`]. The kernel sets `tcp_max_syn_backlog` from memory, to
//! its established-socket hash over 128 (2048 for the 262,144 buckets of a 24 GiB machine),
//! and a host tuned for more half-open connections has more connects in flight too:
//! × [`BACKLOG_FACTOR`] is a quarter of that hash (65,536 there, room for a storm of 40,000
//! connects). The memory cap keeps the maps to about 1% of RAM; 16,384 (the former fixed
//! size) is the floor. `connecting` holds calls that last microseconds (blocking ones
//! longer): a quarter as many, at least 1024. Established connections live far longer than
//! handshakes: `socks` holds [`SOCKS_FACTOR`] times `conns` (the whole established hash by
//! default), at least [`SOCKS_FLOOR`], at most another 1% of RAM.
//! `--max-tracked N` makes `conns` and `socks` N.
//!
//! Socket-local storage (`BPF_MAP_TYPE_SK_STORAGE`, `sockstore`: freed with the socket, no
//! size) holds the state of the tp_btf state program, where the kernel has it (5.11+ with
//! BTF; src/bpf/state.s): then only the owners the accept hooks write stay in `socks`, those
//! hooks being kprobes and tracepoints, which cannot use storage. Elsewhere the sized hash
//! holds everything, and a full one is counted.
//!
//! The memory is an estimate: a preallocated hash takes max_entries × (key + value + about
//! [`ENTRY_OVERHEAD`] bytes of the kernel's element header and bucket) up front. Where the
//! kernel allocates hash entries safely from any program (bpf_mem_alloc, 6.1+) the state
//! hashes are not preallocated: that is what they take at most, and creating them costs
//! nothing (preallocating 262,144 entries took ~20 ms of the start). A full map is never
//! silent: each connect or connection that finds no room is counted (`state_full`), as is an
//! entry the kernel could not allocate.

use std::path::Path;

use crate::kernel::abi::BPF_F_NO_PREALLOC;
use crate::kernel::probe_object::MapDef;
use crate::kernel::sys::Sys;

/// The map of connects in flight and the map of connect() calls in progress.
pub const CONNS: &str = "conns";
pub const CONNECTING: &str = "connecting";
/// The map of established connections, for their close records.
pub const SOCKS: &str = "socks";
/// The state hashes, sized here and stated by [`StateMaps`].
pub const STATE_HASHES: [&str; 3] = [CONNS, CONNECTING, SOCKS];
/// The same state in socket-local storage, where the tp_btf state program runs: then `socks`
/// holds only the owners accept hooks write (kprobe and tracepoint programs cannot reach
/// storage), and every other connection's state lives in its socket.
pub const SOCKSTORE: &str = "sockstore";
/// Kernel bytes per socket with an entry in `sockstore`: the element (its header and the
/// 64-byte value) and the socket's own storage header with its cache of maps; charged to the
/// socket (an estimate, from struct bpf_local_storage_elem and bpf_local_storage).
pub const STORAGE_BYTES_PER_SOCKET: u64 = 350;

/// `--max-tracked` range: small enough for a test to fill, large enough for any host.
pub const MIN_TRACKED: u32 = 8;
pub const MAX_TRACKED: u32 = 1 << 24;
/// The default never goes below this (the size the maps had before it was chosen per host).
pub const DEFAULT_FLOOR: u32 = 16_384;
/// Connects in flight per slot of the SYN backlog: the backlog is the kernel's established
/// hash / 128 by default, so this is a quarter of that hash (and `socks` all of it).
pub const BACKLOG_FACTOR: u64 = 32;
/// The default's memory cap: 1/100 of MemTotal.
pub const MEMORY_SHARE: u64 = 100;
/// `connecting` is this fraction of `conns`, at least [`MIN_CONNECTING`].
pub const CONNECTING_DIVISOR: u32 = 4;
pub const MIN_CONNECTING: u32 = 1024;
/// `socks` is this multiple of `conns`, at least [`SOCKS_FLOOR`] (and at most 1% of RAM).
pub const SOCKS_FACTOR: u32 = 4;
pub const SOCKS_FLOOR: u32 = 65_536;
/// Per-entry bytes beyond key and value in a preallocated hash (element header, bucket,
/// alignment): an estimate.
pub const ENTRY_OVERHEAD: u64 = 64;

pub const SYN_BACKLOG_PATH: &str = "/proc/sys/net/ipv4/tcp_max_syn_backlog";
pub const MEMINFO_PATH: &str = "/proc/meminfo";

/// The sizes of the state maps, and how they were chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// `conns` max_entries: the connects in flight the probes can track.
    pub conns: u32,
    /// `connecting` max_entries.
    pub connecting: u32,
    /// `socks` max_entries: the established connections whose close the probes can report
    /// with its owner and duration.
    pub socks: u32,
    /// "--max-tracked", or the default rule with this machine's numbers.
    pub why: String,
}

impl Capacity {
    /// `--max-tracked N` (already in [`MIN_TRACKED`]..=[`MAX_TRACKED`]).
    pub fn given(conns: u32) -> Capacity {
        Capacity {
            conns,
            connecting: connecting_for(conns),
            socks: conns,
            why: "--max-tracked".into(),
        }
    }

    /// The given size, or the default rule for this machine.
    pub fn choose(sys: &dyn Sys, max_tracked: Option<u32>, maps: &[MapDef]) -> Capacity {
        match max_tracked {
            Some(n) => Capacity::given(n),
            None => Capacity::from_machine(sys, maps),
        }
    }

    /// The default rule (see the module): from the SYN backlog and MemTotal, read through
    /// `sys`; either unreadable gives the floor, saying so.
    pub fn from_machine(sys: &dyn Sys, maps: &[MapDef]) -> Capacity {
        let floor = |why: String| Capacity {
            conns: DEFAULT_FLOOR,
            connecting: connecting_for(DEFAULT_FLOOR),
            socks: SOCKS_FLOOR,
            why,
        };
        let backlog = match read_number(sys, SYN_BACKLOG_PATH) {
            Ok(n) => n,
            Err(e) => return floor(format!("default {DEFAULT_FLOOR}: {e}")),
        };
        let mem = match mem_total(sys) {
            Ok(n) => n,
            Err(e) => return floor(format!("default {DEFAULT_FLOOR}: {e}")),
        };
        let by_backlog = backlog.saturating_mul(BACKLOG_FACTOR);
        let per_connect = per_connect_bytes(maps).max(1);
        let by_memory = mem / MEMORY_SHARE / per_connect;
        let conns = by_backlog
            .min(by_memory)
            .max(DEFAULT_FLOOR as u64)
            .min(MAX_TRACKED as u64) as u32;
        let per_sock = maps
            .iter()
            .find(|m| m.name == SOCKS)
            .map_or(1, entry_bytes)
            .max(1);
        let socks = (conns as u64 * SOCKS_FACTOR as u64)
            .min(mem / MEMORY_SHARE / per_sock)
            .max(SOCKS_FLOOR as u64)
            .min(MAX_TRACKED as u64) as u32;
        Capacity {
            conns,
            connecting: connecting_for(conns),
            socks,
            why: format!(
                "default: max({DEFAULT_FLOOR}, min(tcp_max_syn_backlog {backlog} x \
                 {BACKLOG_FACTOR} = {by_backlog}, 1% of {} RAM at ~{per_connect} B each = \
                 {by_memory})) connects in flight, {SOCKS_FACTOR} times as many connections",
                mib(mem)
            ),
        }
    }

    /// For `LoadOptions::allocated_as_used`: the state hashes, where the kernel can allocate
    /// their entries as they are used (`features::Feature::HashAllocAsUsed`), else none.
    pub fn allocated_as_used(kernel_can: bool) -> Vec<String> {
        if kernel_can {
            STATE_HASHES.map(String::from).to_vec()
        } else {
            Vec::new()
        }
    }

    /// For `LoadOptions::map_sizes`.
    pub fn map_sizes(&self) -> Vec<(String, u32)> {
        vec![
            (CONNS.to_string(), self.conns),
            (CONNECTING.to_string(), self.connecting),
            (SOCKS.to_string(), self.socks),
        ]
    }
}

/// `connecting` for `conns` connects in flight.
pub fn connecting_for(conns: u32) -> u32 {
    (conns / CONNECTING_DIVISOR).max(MIN_CONNECTING)
}

/// Estimated kernel bytes per entry of a preallocated hash map.
pub fn entry_bytes(def: &MapDef) -> u64 {
    def.key_size as u64 + def.value_size as u64 + ENTRY_OVERHEAD
}

/// What one tracked connect costs: its `conns` entry and its share of `connecting`.
fn per_connect_bytes(maps: &[MapDef]) -> u64 {
    let of = |name| maps.iter().find(|m| m.name == name).map_or(0, entry_bytes);
    of(CONNS) + of(CONNECTING) / CONNECTING_DIVISOR as u64
}

/// The state maps as created (their real max_entries) and the memory they take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMaps {
    /// `(name, max_entries, estimated bytes per entry)`: `conns`, `connecting`, `socks`.
    pub maps: Vec<(String, u32, u64)>,
    /// Whether `sockstore` was created: connections' state in their sockets.
    pub storage: bool,
    /// Whether the hashes allocate their entries as they are used (BPF_F_NO_PREALLOC):
    /// then [`StateMaps::bytes`] is what they take at most, not what they take at once.
    pub allocated_as_used: bool,
}

impl StateMaps {
    pub fn of<'a>(defs: impl IntoIterator<Item = &'a MapDef>) -> StateMaps {
        let defs: Vec<&MapDef> = defs.into_iter().collect();
        let maps = STATE_HASHES
            .iter()
            .filter_map(|name| defs.iter().find(|d| d.name == *name))
            .map(|d| (d.name.clone(), d.max_entries, entry_bytes(d)))
            .collect();
        let storage = defs.iter().any(|d| d.name == SOCKSTORE);
        let allocated_as_used = defs
            .iter()
            .any(|d| d.name == CONNS && d.flags & BPF_F_NO_PREALLOC != 0);
        StateMaps {
            maps,
            storage,
            allocated_as_used,
        }
    }

    /// Connects in flight the probes can track: `conns` max_entries.
    pub fn tracked(&self) -> u32 {
        self.entries(CONNS)
    }

    /// Established connections the probes can track: `socks` max_entries.
    pub fn connections(&self) -> u32 {
        self.entries(SOCKS)
    }

    fn entries(&self, name: &str) -> u32 {
        self.maps
            .iter()
            .find(|(n, ..)| n == name)
            .map_or(0, |m| m.1)
    }

    /// Estimated kernel bytes of all state maps.
    pub fn bytes(&self) -> u64 {
        self.maps.iter().map(|(_, n, each)| *n as u64 * each).sum()
    }

    /// For the "attached" line: "tracking up to 65536 connects in flight and 262144
    /// connections (~50.4 MiB)", or "(~50.4 MiB at most, allocated as used)".
    pub fn short(&self) -> String {
        let (which, rest) = self.storage_words();
        let when = if self.allocated_as_used {
            " at most, allocated as used"
        } else {
            ""
        };
        format!(
            "tracking up to {} connects in flight and {} {which}connections (~{}{when}){rest}",
            self.tracked(),
            self.connections(),
            mib(self.bytes())
        )
    }

    /// With socket storage: `socks` holds accepted connections, the rest are in their sockets.
    fn storage_words(&self) -> (&'static str, String) {
        if self.storage {
            (
                "accepted ",
                format!(
                    ", every other connection in its socket (socket-local storage, ~{STORAGE_BYTES_PER_SOCKET} B each)"
                ),
            )
        } else {
            ("", String::new())
        }
    }

    /// For `conntrace check`: "conns 65536 x 232 B + connecting 16384 x 120 B + socks
    /// 262144 x 136 B = ~50.4 MiB of kernel memory (estimate): up to 65536 connects in flight
    /// and 262144 connections".
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .maps
            .iter()
            .map(|(name, n, each)| format!("{name} {n} x {each} B"))
            .collect();
        let (which, rest) = self.storage_words();
        let when = if self.allocated_as_used {
            "at most, allocated as used"
        } else {
            "preallocated"
        };
        format!(
            "{} = ~{} of kernel memory ({when}, estimate): up to {} connects in flight and {} \
             {which}connections{rest}",
            parts.join(" + "),
            mib(self.bytes()),
            self.tracked(),
            self.connections()
        )
    }
}

/// "7.7 MiB".
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn read_number(sys: &dyn Sys, path: &str) -> Result<u64, String> {
    let bytes = sys
        .read_file(Path::new(path))
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    String::from_utf8_lossy(&bytes)
        .trim()
        .parse()
        .map_err(|_| format!("{path} is not a number"))
}

/// MemTotal from /proc/meminfo, in bytes.
fn mem_total(sys: &dyn Sys) -> Result<u64, String> {
    let bytes = sys
        .read_file(Path::new(MEMINFO_PATH))
        .map_err(|e| format!("cannot read {MEMINFO_PATH}: {e}"))?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb.saturating_mul(1024))
        .ok_or_else(|| format!("no MemTotal in {MEMINFO_PATH}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::sys::fake::FakeSys;

    fn map(name: &str, key_size: u32, value_size: u32, max_entries: u32) -> MapDef {
        MapDef {
            name: name.into(),
            map_type: 1,
            key_size,
            value_size,
            max_entries,
            flags: 0,
        }
    }

    /// The probe object's state maps: 8-byte keys, 160-, 48- and 64-byte values.
    fn maps() -> Vec<MapDef> {
        vec![
            map("events", 4, 4, 0),
            map(CONNECTING, 8, 48, 10240),
            map(CONNS, 8, 160, 16384),
            map(SOCKS, 8, 64, 65536),
        ]
    }

    fn machine(backlog: &str, mem_kb: u64) -> FakeSys {
        let sys = FakeSys::new();
        sys.set_file(SYN_BACKLOG_PATH, format!("{backlog}\n"));
        sys.set_file(
            MEMINFO_PATH,
            format!("MemTotal:       {mem_kb} kB\nMemFree:        1000 kB\n"),
        );
        sys
    }

    #[test]
    fn the_syn_backlog_sizes_it_on_a_large_machine() {
        // 24 GiB: 1% holds ~1M connects at 232 + 120/4 = 262 bytes each, so the backlog
        // decides: 2048 x 32, room for a 40,000-connect storm; 4 times as many connections,
        // room for 100,000 held open (both ends on one host).
        let sys = machine("2048", 24 << 20);
        let c = Capacity::from_machine(&sys, &maps());
        assert_eq!((c.conns, c.connecting, c.socks), (65536, 16384, 262144));
        assert!(c.conns >= 40_000 && c.socks >= 200_000);
        assert!(c.why.contains("tcp_max_syn_backlog 2048"), "{}", c.why);
    }

    #[test]
    fn memory_caps_a_huge_backlog() {
        // 1 GiB: 1% is 10,737,418 bytes, 40,982 connects of 262 bytes, 78,951 connections
        // of 136.
        let sys = machine("1000000", 1 << 20);
        let c = Capacity::from_machine(&sys, &maps());
        assert_eq!(c.conns, 10_737_418 / 262);
        assert_eq!(c.connecting, c.conns / 4);
        assert_eq!(c.socks, 10_737_418 / 136);
    }

    #[test]
    fn never_below_the_floor() {
        let sys = machine("128", 256 << 10);
        let c = Capacity::from_machine(&sys, &maps());
        assert_eq!(
            (c.conns, c.connecting, c.socks),
            (DEFAULT_FLOOR, 4096, SOCKS_FLOOR)
        );
    }

    #[test]
    fn never_above_the_maximum() {
        let sys = machine("100000000", 1 << 40);
        let c = Capacity::from_machine(&sys, &maps());
        assert_eq!((c.conns, c.socks), (MAX_TRACKED, MAX_TRACKED));
    }

    #[test]
    fn an_unreadable_machine_gives_the_floor_and_says_why() {
        let sys = FakeSys::new();
        let c = Capacity::from_machine(&sys, &maps());
        assert_eq!(c.conns, DEFAULT_FLOOR);
        assert!(c.why.contains(SYN_BACKLOG_PATH), "{}", c.why);
        let sys = machine("2048", 0);
        sys.set_file(MEMINFO_PATH, "MemFree: 12 kB\n");
        let c = Capacity::from_machine(&sys, &maps());
        assert_eq!(c.conns, DEFAULT_FLOOR);
        assert!(c.why.contains("no MemTotal"), "{}", c.why);
    }

    #[test]
    fn given_wins_and_connecting_keeps_its_minimum() {
        let sys = machine("2048", 24 << 20);
        let c = Capacity::choose(&sys, Some(16), &maps());
        assert_eq!((c.conns, c.connecting, c.socks), (16, MIN_CONNECTING, 16));
        assert_eq!(
            c.map_sizes(),
            vec![
                (CONNS.to_string(), 16),
                (CONNECTING.to_string(), 1024),
                (SOCKS.to_string(), 16)
            ]
        );
        assert!(sys.calls().is_empty(), "nothing read for a given size");
    }

    #[test]
    fn memory_is_entries_times_key_value_and_overhead() {
        let mut defs = maps();
        defs[1].max_entries = 16384;
        defs[2].max_entries = 65536;
        defs[3].max_entries = 262144;
        let state = StateMaps::of(&defs);
        assert_eq!((state.tracked(), state.connections()), (65536, 262144));
        assert_eq!(state.bytes(), 65536 * 232 + 16384 * 120 + 262144 * 136);
        assert_eq!(
            state.short(),
            "tracking up to 65536 connects in flight and 262144 connections (~50.4 MiB)"
        );
        assert_eq!(
            state.describe(),
            "conns 65536 x 232 B + connecting 16384 x 120 B + socks 262144 x 136 B = ~50.4 MiB \
             of kernel memory (preallocated, estimate): up to 65536 connects in flight and \
             262144 connections"
        );
        // With the storage map: the hash's count is of accepted connections only.
        let mut store = defs[3].clone();
        store.name = SOCKSTORE.into();
        defs.push(store);
        let state = StateMaps::of(&defs);
        assert_eq!(
            state.short(),
            "tracking up to 65536 connects in flight and 262144 accepted connections (~50.4 MiB), \
             every other connection in its socket (socket-local storage, ~350 B each)"
        );
    }

    #[test]
    fn hashes_allocated_as_used_state_their_memory_as_a_bound() {
        assert!(Capacity::allocated_as_used(false).is_empty());
        let names = Capacity::allocated_as_used(true);
        assert_eq!(names, [CONNS, CONNECTING, SOCKS]);
        let defs: Vec<MapDef> = maps()
            .into_iter()
            .map(|mut d| {
                if names.contains(&d.name) {
                    d.flags = BPF_F_NO_PREALLOC;
                }
                d
            })
            .collect();
        let state = StateMaps::of(&defs);
        assert!(state.allocated_as_used);
        assert_eq!(
            state.short(),
            "tracking up to 16384 connects in flight and 65536 connections (~13.3 MiB at most, \
             allocated as used)"
        );
        assert!(
            state.describe().contains(
                "= ~13.3 MiB of kernel memory (at most, allocated as used, estimate): up to 16384"
            ),
            "{}",
            state.describe()
        );
        assert!(!StateMaps::of(&maps()).allocated_as_used);
    }
}
