//! What the fake records: one [`Call`] per `Sys` call, arguments copied.

use crate::kernel::sys::{MapBtf, PerfEventAttr, PerfEventIoctl, Rlimit};
use std::os::fd::RawFd;
use std::path::PathBuf;

/// One call the code under test made, with its arguments (copied) and, where the fake created
/// a descriptor, its number (`fd`) so tests can follow it into later calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    MapCreate {
        name: String,
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        flags: u32,
        btf: Option<MapBtf>,
        fd: RawFd,
    },
    BtfLoad {
        btf: Vec<u8>,
        fd: RawFd,
    },
    MemlockLimit,
    SetMemlockLimit {
        limit: Rlimit,
    },
    MapUpdate {
        map: RawFd,
        key: Vec<u8>,
        value: Vec<u8>,
        flags: u64,
    },
    MapLookup {
        map: RawFd,
        key: Vec<u8>,
    },
    ObjInfo {
        fd: RawFd,
    },
    ProgLoad {
        name: String,
        prog_type: u32,
        insns: Vec<u64>,
        license: String,
        kern_version: u32,
        expected_attach_type: u32,
        attach_btf_id: u32,
        log_size: usize,
        fd: RawFd,
    },
    PerfEventOpen {
        attr: PerfEventAttr,
        pid: i32,
        cpu: i32,
        group_fd: i32,
        flags: u64,
        fd: RawFd,
    },
    Ioctl {
        fd: RawFd,
        request: PerfEventIoctl,
    },
    ReadCount {
        fd: RawFd,
    },
    RawTracepointOpen {
        /// None for a `tp_btf` program, which is opened without a name.
        name: Option<String>,
        prog: RawFd,
        fd: RawFd,
    },
    MmapShared {
        fd: RawFd,
        len: usize,
    },
    MmapReadOnly {
        fd: RawFd,
        len: usize,
        offset: usize,
    },
    Munmap {
        fd: RawFd,
        len: usize,
    },
    /// membarrier(MEMBARRIER_CMD_GLOBAL).
    Membarrier,
    EpollCreate {
        fd: RawFd,
    },
    EpollAdd {
        epoll: RawFd,
        fd: RawFd,
        token: u64,
    },
    EpollWait {
        epoll: RawFd,
        capacity: usize,
        timeout_ms: i32,
    },
    Mount {
        source: String,
        target: PathBuf,
        fstype: String,
    },
    ReadFile {
        path: PathBuf,
    },
    WriteFile {
        path: PathBuf,
        data: Vec<u8>,
        append: bool,
    },
}
