use super::*;
use crate::kernel::abi::{PERF_FLAG_FD_CLOEXEC, PERF_TYPE_TRACEPOINT};
use crate::kernel::load::{
    load, FieldOffset, FieldResolver, LoadError, LoadOptions, PermissionContext, ProgramFilter,
};
use crate::kernel::probe_object::test_elf::asm;
use crate::kernel::probe_object::{ProbeObject, Program};
use crate::kernel::sys::fake::{Call, FakeSys};
use crate::kernel::sys::{
    MapCreate, PerfEventAttr, PerfEventIoctl, ProgLoad, RealSys, Rlimit, SysResult,
};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::ptr::NonNull;

const TRACING: &str = "/sys/kernel/tracing";

/// FakeSys plus the two kernel behaviours kprobe_events attach depends on: writing an entry
/// creates its `events/kprobes/NAME/id`, and removing it fails with EBUSY while a perf event
/// on it is open. Perf fds are pipe write ends, so "still open" is observable (POLLHUP on the
/// read end once every copy is closed). It also copies the string config1 points at.
struct Kernel {
    fake: FakeSys,
    next_id: Cell<u64>,
    ids: RefCell<HashMap<String, u64>>,
    /// (event config, read end of the pipe whose write end we handed out).
    open_events: RefCell<Vec<(u64, std::io::PipeReader)>>,
    /// (raw tracepoint name, read end of the pipe whose write end we handed out).
    open_raw: RefCell<Vec<(String, std::io::PipeReader)>>,
    config1_strings: RefCell<Vec<String>>,
    /// At each membarrier: how many raw tracepoints were still open.
    raw_open_at_membarrier: RefCell<Vec<usize>>,
    /// At each membarrier: the perf events (by config) still open.
    perf_open_at_membarrier: RefCell<Vec<Vec<u64>>>,
}

impl Kernel {
    fn new() -> Self {
        Self::with_kprobe_events(true)
    }

    fn with_kprobe_events(kprobe_events: bool) -> Self {
        let k = Kernel {
            fake: FakeSys::new(),
            next_id: Cell::new(2000),
            ids: RefCell::default(),
            open_events: RefCell::default(),
            open_raw: RefCell::default(),
            config1_strings: RefCell::default(),
            raw_open_at_membarrier: RefCell::default(),
            perf_open_at_membarrier: RefCell::default(),
        };
        k.fake.set_file(
            format!("{TRACING}/events/header_page"),
            "field: u64 timestamp;\n",
        );
        if kprobe_events {
            k.fake.set_file(format!("{TRACING}/kprobe_events"), "");
        }
        k
    }

    fn still_open(&self, id: u64) -> bool {
        self.open_events
            .borrow()
            .iter()
            .any(|(config, reader)| *config == id && !hung_up(reader))
    }

    fn raw_still_open(&self, name: &str) -> bool {
        self.open_raw
            .borrow()
            .iter()
            .any(|(n, reader)| n == name && !hung_up(reader))
    }

    fn writes(&self) -> Vec<(PathBuf, String)> {
        self.fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::WriteFile {
                    path,
                    data,
                    append: true,
                } => Some((path, String::from_utf8(data).unwrap())),
                Call::WriteFile { .. } => panic!("tracefs control files must be appended to"),
                _ => None,
            })
            .collect()
    }

    fn perf_opens(&self) -> Vec<(PerfEventAttr, i32, i32, i32, u64)> {
        self.fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::PerfEventOpen {
                    attr,
                    pid,
                    cpu,
                    group_fd,
                    flags,
                    ..
                } => Some((attr, pid, cpu, group_fd, flags)),
                _ => None,
            })
            .collect()
    }

    fn ioctls(&self) -> Vec<PerfEventIoctl> {
        self.fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Ioctl { request, .. } => Some(request),
                _ => None,
            })
            .collect()
    }
}

/// Whether every write end of the pipe behind `reader` is closed.
fn hung_up(reader: &std::io::PipeReader) -> bool {
    let mut pfd = libc::pollfd {
        fd: reader.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout; the reader fd lives as long as `reader`.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLHUP != 0
}

impl Sys for Kernel {
    fn map_create(&self, req: &MapCreate<'_>) -> SysResult<OwnedFd> {
        self.fake.map_create(req)
    }
    fn map_update(
        &self,
        map: BorrowedFd<'_>,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> SysResult<()> {
        self.fake.map_update(map, key, value, flags)
    }
    fn map_lookup(&self, map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> SysResult<()> {
        self.fake.map_lookup(map, key, value)
    }
    fn obj_info(&self, fd: BorrowedFd<'_>, info: &mut [u8]) -> SysResult<usize> {
        self.fake.obj_info(fd, info)
    }
    fn btf_load(&self, btf: &[u8]) -> SysResult<OwnedFd> {
        self.fake.btf_load(btf)
    }
    fn memlock_limit(&self) -> SysResult<Rlimit> {
        self.fake.memlock_limit()
    }
    fn set_memlock_limit(&self, limit: Rlimit) -> SysResult<()> {
        self.fake.set_memlock_limit(limit)
    }
    fn prog_load(&self, req: &ProgLoad<'_>, log: &mut [u8]) -> SysResult<OwnedFd> {
        self.fake.prog_load(req, log)
    }
    fn perf_event_open(
        &self,
        attr: &PerfEventAttr,
        pid: i32,
        cpu: i32,
        group_fd: i32,
        flags: u64,
    ) -> SysResult<OwnedFd> {
        if attr.type_ != PERF_TYPE_TRACEPOINT && attr.config1 != 0 {
            // SAFETY: for kprobe PMU events config1 must point at a NUL-terminated name that
            // the caller keeps alive during this call: exactly the contract under test.
            let name = unsafe { CStr::from_ptr(attr.config1 as *const libc::c_char) };
            self.config1_strings
                .borrow_mut()
                .push(name.to_string_lossy().into_owned());
        }
        drop(self.fake.perf_event_open(attr, pid, cpu, group_fd, flags)?);
        let (reader, writer) = std::io::pipe().unwrap();
        self.open_events.borrow_mut().push((attr.config, reader));
        Ok(OwnedFd::from(writer))
    }
    fn ioctl(&self, fd: BorrowedFd<'_>, request: PerfEventIoctl) -> SysResult<i32> {
        self.fake.ioctl(fd, request)
    }
    fn read_count(&self, fd: BorrowedFd<'_>) -> SysResult<u64> {
        self.fake.read_count(fd)
    }
    fn raw_tracepoint_open(&self, name: Option<&str>, prog: BorrowedFd<'_>) -> SysResult<OwnedFd> {
        drop(self.fake.raw_tracepoint_open(name, prog)?);
        let (reader, writer) = std::io::pipe().unwrap();
        let name = name.unwrap_or("(tp_btf)").to_string();
        self.open_raw.borrow_mut().push((name, reader));
        Ok(OwnedFd::from(writer))
    }
    fn mmap_shared(&self, fd: BorrowedFd<'_>, len: usize) -> SysResult<NonNull<u8>> {
        self.fake.mmap_shared(fd, len)
    }
    fn mmap_read_only(
        &self,
        fd: BorrowedFd<'_>,
        len: usize,
        offset: usize,
    ) -> SysResult<NonNull<u8>> {
        self.fake.mmap_read_only(fd, len, offset)
    }
    unsafe fn munmap(&self, ptr: NonNull<u8>, len: usize) {
        // SAFETY: forwarded with the caller's own guarantee.
        unsafe { self.fake.munmap(ptr, len) }
    }
    fn membarrier_global(&self) -> SysResult<()> {
        let open = self
            .open_raw
            .borrow()
            .iter()
            .filter(|(_, reader)| !hung_up(reader))
            .count();
        self.raw_open_at_membarrier.borrow_mut().push(open);
        let perf = self
            .open_events
            .borrow()
            .iter()
            .filter(|(_, reader)| !hung_up(reader))
            .map(|(config, _)| *config)
            .collect();
        self.perf_open_at_membarrier.borrow_mut().push(perf);
        self.fake.membarrier_global()
    }
    fn epoll_create(&self) -> SysResult<OwnedFd> {
        self.fake.epoll_create()
    }
    fn epoll_add(&self, epoll: BorrowedFd<'_>, fd: BorrowedFd<'_>, token: u64) -> SysResult<()> {
        self.fake.epoll_add(epoll, fd, token)
    }
    fn epoll_wait(
        &self,
        epoll: BorrowedFd<'_>,
        tokens: &mut [u64],
        timeout_ms: i32,
    ) -> SysResult<usize> {
        self.fake.epoll_wait(epoll, tokens, timeout_ms)
    }
    fn mount(&self, source: &str, target: &Path, fstype: &str) -> SysResult<()> {
        self.fake.mount(source, target, fstype)?;
        self.fake
            .set_file(target.join("events/header_page"), "mounted\n");
        Ok(())
    }
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.fake.read_file(path)
    }
    fn write_file(&self, path: &Path, data: &[u8], append: bool) -> io::Result<()> {
        self.fake.write_file(path, data, append)?;
        let text = String::from_utf8_lossy(data);
        let Some(dir) = path.parent().filter(|_| path.ends_with("kprobe_events")) else {
            return Ok(());
        };
        let line = text.trim_end();
        if let Some(name) = line.strip_prefix("-:") {
            let id = self
                .ids
                .borrow()
                .get(name)
                .copied()
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
            if self.still_open(id) {
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
            self.ids.borrow_mut().remove(name);
        } else if let Some((_, rest)) = line.split_once(':') {
            let name = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            let id = self.next_id.get();
            self.next_id.set(id + 1);
            self.fake.set_file(
                dir.join("events/kprobes").join(&name).join("id"),
                format!("{id}\n"),
            );
            self.ids.borrow_mut().insert(name, id);
        }
        Ok(())
    }
}

/// The BPF_RAW_TRACEPOINT_OPEN calls made: (name, program fd).
fn raw_opens(k: &Kernel) -> Vec<(Option<String>, i32)> {
    k.fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::RawTracepointOpen { name, prog, .. } => Some((name, prog)),
            _ => None,
        })
        .collect()
}

fn program(kind: ProgramKind) -> LoadedProgram {
    let section = match &kind {
        ProgramKind::Kprobe { function } => format!("kprobe/{function}"),
        ProgramKind::Kretprobe { function } => format!("kretprobe/{function}"),
        ProgramKind::Tracepoint { category, name } => format!("tracepoint/{category}/{name}"),
        ProgramKind::RawTracepoint { name } => format!("raw_tracepoint/{name}"),
        ProgramKind::TpBtf { name } => format!("tp_btf/{name}"),
    };
    let fd = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    LoadedProgram { section, kind, fd }
}

fn kprobe(function: &str) -> LoadedProgram {
    program(ProgramKind::Kprobe {
        function: function.into(),
    })
}

const PMU: KprobeMethod = KprobeMethod::Pmu {
    perf_type: 8,
    retprobe_bit: 0,
};

#[test]
fn tracepoint_opens_the_event_by_id_and_sets_the_program() {
    let k = Kernel::new();
    k.fake.set_file(
        format!("{TRACING}/events/syscalls/sys_exit_connect/id"),
        "731\n",
    );
    let prog = program(ProgramKind::Tracepoint {
        category: "syscalls".into(),
        name: "sys_exit_connect".into(),
    });
    let a = attach(&k, &prog, PMU).unwrap();
    assert_eq!(a.describe(), "tracepoint syscalls/sys_exit_connect");

    let opens = k.perf_opens();
    assert_eq!(opens.len(), 1);
    let (attr, pid, cpu, group, flags) = opens[0];
    let expected = PerfEventAttr {
        type_: 2,
        size: 128,
        config: 731,
        sample_period_or_freq: 1,
        ..Default::default()
    };
    assert_eq!(attr, expected);
    assert_eq!((pid, cpu, group, flags), (-1, 0, -1, PERF_FLAG_FD_CLOEXEC));
    assert_eq!(
        k.ioctls(),
        vec![
            PerfEventIoctl::SetBpf(prog.fd.as_raw_fd()),
            PerfEventIoctl::Enable
        ]
    );

    drop(a);
    assert_eq!(
        k.ioctls().last(),
        Some(&PerfEventIoctl::Disable),
        "disabled on drop"
    );
    assert!(!k.still_open(731), "perf fd closed on drop");
    assert!(k.writes().is_empty());
}

#[test]
fn a_raw_tracepoint_needs_neither_tracefs_nor_a_perf_event() {
    let k = Kernel::new();
    let prog = program(ProgramKind::RawTracepoint {
        name: "inet_sock_set_state".into(),
    });
    let a = attach(&k, &prog, PMU).unwrap();
    assert_eq!(a.describe(), "raw tracepoint inet_sock_set_state");
    let opens = raw_opens(&k);
    assert_eq!(
        opens,
        [(Some("inet_sock_set_state".to_string()), prog.fd.as_raw_fd())]
    );
    assert!(k.perf_opens().is_empty() && k.ioctls().is_empty());
    assert!(k.raw_still_open("inet_sock_set_state"));

    // detach_all closes it with the rest; nothing to disable first. Then it waits out a
    // grace period, so no run of its program is still under way when it returns.
    let detached = detach_all(vec![a]);
    assert!(detached.errors.is_empty(), "{detached:?}");
    assert!(!k.raw_still_open("inet_sock_set_state"));
    assert!(k.ioctls().is_empty());
    assert_eq!(*k.raw_open_at_membarrier.borrow(), [0], "after the close");
    // Without membarrier it still returns (after a pause), with nothing to report.
    let a = attach(&k, &prog, PMU).unwrap();
    k.fake.fail_next("membarrier_global", libc::EINVAL);
    let detached = detach_all(vec![a]);
    assert!(detached.errors.is_empty(), "{detached:?}");
    assert_eq!(*k.raw_open_at_membarrier.borrow(), [0, 0]);

    let dropped = attach(&k, &prog, PMU).unwrap();
    drop(dropped);
    assert!(!k.raw_still_open("inet_sock_set_state"), "closed on drop");
}

/// The classic state tracepoint, its tracefs id 12 in `k`.
fn state_tracepoint(k: &Kernel) -> LoadedProgram {
    k.fake.set_file(
        format!("{TRACING}/events/sock/inet_sock_set_state/id"),
        "12\n",
    );
    program(ProgramKind::Tracepoint {
        category: "sock".into(),
        name: "inet_sock_set_state".into(),
    })
}

/// Perf closes wait for grace periods, so they run in parallel, but one syscall tracepoint
/// closes last, alone, after every thread detach_all started has ended (the 5.10 lockup):
/// still open at the membarrier, which runs inside the parallel part.
#[test]
fn one_syscall_tracepoint_closes_after_the_parallel_closes() {
    let k = Kernel::new();
    let mut attachments = Vec::new();
    for (id, name) in [
        (731, "sys_enter_connect"),
        (732, "sys_exit_connect"),
        (733, "sys_exit_accept4"),
    ] {
        k.fake.set_file(
            format!("{TRACING}/events/syscalls/{name}/id"),
            format!("{id}\n"),
        );
        let prog = program(ProgramKind::Tracepoint {
            category: "syscalls".into(),
            name: name.into(),
        });
        attachments.push(attach(&k, &prog, PMU).unwrap());
    }
    let state = state_tracepoint(&k);
    attachments.push(attach(&k, &state, PMU).unwrap());

    let detached = detach_all(attachments);
    assert!(detached.errors.is_empty(), "{detached:?}");
    let at_membarrier = k.perf_open_at_membarrier.borrow().clone();
    assert_eq!(at_membarrier.len(), 1, "one wait for running programs");
    assert!(
        at_membarrier[0].contains(&733),
        "the last syscall tracepoint is still open while the others close: {at_membarrier:?}"
    );
    for id in [731, 732, 733, 12] {
        assert!(!k.still_open(id), "{id} closed by the end");
    }
}

#[test]
fn a_tp_btf_program_is_opened_without_a_name() {
    let k = Kernel::new();
    let prog = program(ProgramKind::TpBtf {
        name: "inet_sock_set_state".into(),
    });
    let a = attach(&k, &prog, PMU).unwrap();
    assert_eq!(a.describe(), "BTF tracepoint inet_sock_set_state");
    let opens = raw_opens(&k);
    assert_eq!(opens, [(None, prog.fd.as_raw_fd())], "its BTF id names it");
    assert!(k.perf_opens().is_empty() && k.ioctls().is_empty());
    drop(a);
    assert!(!k.raw_still_open("(tp_btf)"), "closed on drop");
}

#[test]
fn a_refused_raw_tracepoint_says_why() {
    let k = Kernel::new();
    let prog = program(ProgramKind::RawTracepoint {
        name: "inet_sock_set_state".into(),
    });
    k.fake.fail_next("raw_tracepoint_open", libc::EPERM);
    let e = attach(&k, &prog, PMU).unwrap_err();
    assert!(e.is_permission());
    assert_eq!(
        e.to_string(),
        "attaching the BPF program to raw tracepoint inet_sock_set_state: \
         bpf(BPF_RAW_TRACEPOINT_OPEN) failed: Operation not permitted (EPERM): conntrace needs root or \
         CAP_BPF+CAP_PERFMON"
    );
    let bad = program(ProgramKind::RawTracepoint { name: "a/b".into() });
    assert_eq!(
        attach(&k, &bad, PMU).unwrap_err().to_string(),
        "`a/b` is not a tracepoint name"
    );
}

#[test]
fn one_program_attaches_to_several_tracepoints() {
    let k = Kernel::new();
    k.fake.set_file(
        format!("{TRACING}/events/syscalls/sys_exit_accept/id"),
        "10\n",
    );
    k.fake.set_file(
        format!("{TRACING}/events/syscalls/sys_exit_accept4/id"),
        "11\n",
    );
    let prog = program(ProgramKind::Tracepoint {
        category: "syscalls".into(),
        name: "sys_exit_accept".into(),
    });
    let a = attach(&k, &prog, PMU).unwrap();
    let b = attach_tracepoint(&k, prog.fd.as_fd(), "syscalls", "sys_exit_accept4").unwrap();
    let configs: Vec<u64> = k.perf_opens().iter().map(|o| o.0.config).collect();
    assert_eq!(configs, vec![10, 11]);
    assert!(k.still_open(10) && k.still_open(11));
    drop((a, b));
    assert!(!k.still_open(10) && !k.still_open(11));
}

#[test]
fn a_missing_tracepoint_is_named() {
    let k = Kernel::new();
    let e = attach_tracepoint(&k, k_fd().as_fd(), "syscalls", "sys_exit_accept4").unwrap_err();
    assert_eq!(
        e.to_string(),
        "tracepoint syscalls/sys_exit_accept4 not found: kernel without CONFIG_FTRACE_SYSCALLS?"
    );
    let e = attach_tracepoint(&k, k_fd().as_fd(), "sock", "inet_sock_set_state").unwrap_err();
    assert!(e.to_string().starts_with(
        "tracepoint sock/inet_sock_set_state not found: this kernel has no such tracepoint"
    ));
    let e = attach_tracepoint(&k, k_fd().as_fd(), "..", "x").unwrap_err();
    assert!(matches!(e, AttachError::BadSection(_)));
    assert!(k.perf_opens().is_empty());
}

fn k_fd() -> OwnedFd {
    OwnedFd::from(std::fs::File::open("/dev/null").unwrap())
}

#[test]
fn tracefs_is_found_in_debugfs_or_mounted() {
    // Only the debugfs location: used as is, nothing mounted.
    let k = Kernel::new();
    let fake = FakeSys::new();
    fake.set_file("/sys/kernel/debug/tracing/events/header_page", "x");
    assert_eq!(
        tracefs_root(&fake).unwrap(),
        PathBuf::from("/sys/kernel/debug/tracing")
    );
    assert!(!fake.calls().iter().any(|c| matches!(c, Call::Mount { .. })));

    // Neither: mounted at /sys/kernel/tracing, then used.
    let bare = Kernel {
        fake: FakeSys::new(),
        ..k
    };
    bare.fake.set_file(
        format!("{TRACING}/events/syscalls/sys_enter_getpid/id"),
        "5\n",
    );
    attach_tracepoint(&bare, k_fd().as_fd(), "syscalls", "sys_enter_getpid").unwrap();
    let mounts: Vec<Call> = bare
        .fake
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Mount { .. }))
        .collect();
    assert_eq!(
        mounts,
        vec![Call::Mount {
            source: "tracefs".into(),
            target: PathBuf::from(TRACING),
            fstype: "tracefs".into()
        }]
    );
    assert_eq!(bare.perf_opens()[0].0.config, 5);

    // Mount refused: the error says what to do.
    let fake = FakeSys::new();
    fake.fail_always("mount", libc::EPERM);
    let text = tracefs_root(&fake).unwrap_err().to_string();
    assert!(
        text.contains("tracefs is not mounted and mounting it at /sys/kernel/tracing failed"),
        "{text}"
    );
    assert!(
        text.contains("mount -t tracefs tracefs /sys/kernel/tracing"),
        "{text}"
    );
}

#[test]
fn kprobe_pmu_passes_the_name_and_the_retprobe_bit() {
    let k = Kernel::new();
    let method = KprobeMethod::Pmu {
        perf_type: 8,
        retprobe_bit: 3,
    };
    let entry = attach(&k, &kprobe("tcp_v4_connect"), method).unwrap();
    let ret = attach(
        &k,
        &program(ProgramKind::Kretprobe {
            function: "inet_csk_accept".into(),
        }),
        method,
    )
    .unwrap();
    assert_eq!(entry.describe(), "kprobe tcp_v4_connect");
    assert_eq!(ret.describe(), "kretprobe inet_csk_accept");
    let opens = k.perf_opens();
    assert_eq!(
        (opens[0].0.type_, opens[0].0.config, opens[0].0.config2),
        (8, 0, 0)
    );
    assert_eq!(
        (opens[1].0.type_, opens[1].0.config, opens[1].0.config2),
        (8, 1 << 3, 0)
    );
    assert_ne!(opens[0].0.config1, 0);
    assert_eq!(
        *k.config1_strings.borrow(),
        vec!["tcp_v4_connect".to_string(), "inet_csk_accept".to_string()]
    );
    assert_eq!(opens[0].1..=opens[0].2, -1..=0, "pid -1, cpu 0");
    assert!(k.writes().is_empty(), "the PMU needs no tracefs entries");
    assert_eq!(entry.kprobe_event_name(), None);
}

#[test]
fn kprobe_events_fallback_writes_and_removes_its_entry() {
    let k = Kernel::new();
    let a = attach(&k, &kprobe("tcp_v4_connect"), KprobeMethod::TracefsEvents).unwrap();
    let name = a.kprobe_event_name().unwrap().to_string();
    let pid = std::process::id();
    assert!(name.starts_with(&format!("conntrace_{pid}_")), "{name}");
    let control = PathBuf::from(format!("{TRACING}/kprobe_events"));
    assert_eq!(
        k.writes(),
        vec![(control.clone(), format!("p:{name} tcp_v4_connect\n"))]
    );
    let id = k.ids.borrow()[&name];
    let (attr, ..) = k.perf_opens()[0];
    assert_eq!((attr.type_, attr.config, attr.config1), (2, id, 0));

    let r = attach(
        &k,
        &program(ProgramKind::Kretprobe {
            function: "inet_csk_accept".into(),
        }),
        KprobeMethod::TracefsEvents,
    )
    .unwrap();
    let rname = r.kprobe_event_name().unwrap().to_string();
    assert_ne!(rname, name);
    assert_eq!(k.writes()[1].1, format!("r:{rname} inet_csk_accept\n"));

    // The fake kernel refuses removal with EBUSY while the perf fd is open, so success here
    // means the fd was closed first.
    a.detach().unwrap();
    drop(r);
    let writes = k.writes();
    assert_eq!(writes[2], (control.clone(), format!("-:{name}\n")));
    assert_eq!(writes[3], (control, format!("-:{rname}\n")));
    assert!(k.ids.borrow().is_empty(), "both entries removed");
}

#[test]
fn detach_all_closes_every_event_then_removes_the_entries() {
    let k = Kernel::new();
    let state = state_tracepoint(&k);
    let attachments = vec![
        attach(&k, &kprobe("tcp_v4_connect"), KprobeMethod::TracefsEvents).unwrap(),
        attach(&k, &state, PMU).unwrap(),
        attach(&k, &kprobe("tcp_v6_connect"), KprobeMethod::TracefsEvents).unwrap(),
    ];
    let names: Vec<String> = attachments
        .iter()
        .filter_map(|a| a.kprobe_event_name().map(String::from))
        .collect();
    assert!(k.still_open(12));

    // The fake kernel refuses a removal while its perf fd is open: no error means every fd
    // was closed before the entries went.
    let detached = detach_all(attachments);
    assert!(detached.errors.is_empty(), "{detached:?}");
    assert!(detached.missed.is_empty(), "no attachment counts misses");
    assert!(!k.still_open(12));
    assert!(k.ids.borrow().is_empty(), "both entries removed");
    let removals: Vec<String> = k.writes().into_iter().skip(2).map(|w| w.1).collect();
    assert_eq!(
        removals,
        names.iter().map(|n| format!("-:{n}\n")).collect::<Vec<_>>()
    );
    let disables = k
        .ioctls()
        .iter()
        .filter(|&&i| i == PerfEventIoctl::Disable)
        .count();
    assert_eq!(disables, 3, "each event disabled first");
}

fn kretprobe(function: &str) -> LoadedProgram {
    program(ProgramKind::Kretprobe {
        function: function.into(),
    })
}

#[test]
fn a_return_probe_counting_misses_goes_through_kprobe_events_and_reports_them() {
    let k = Kernel::new();
    k.fake.set_file(format!("{TRACING}/kprobe_profile"), "");
    let pmu = KprobeSupport::Pmu {
        perf_type: 6,
        retprobe_bit: 0,
    };
    let (a, note) = attach_counting_misses(&k, &kretprobe("inet_csk_accept"), pmu, 7).unwrap();
    assert_eq!(note, None);
    assert!(a.counts_misses());
    let name = a.kprobe_event_name().unwrap().to_string();
    assert_eq!(k.writes()[0].1, format!("r7:{name} inet_csk_accept\n"));
    let plain = attach(
        &k,
        &kretprobe("tcp_v4_connect"),
        KprobeMethod::TracefsEvents,
    )
    .unwrap();
    let other = plain.kprobe_event_name().unwrap().to_string();
    k.fake.set_file(
        format!("{TRACING}/kprobe_profile"),
        format!("  {other}   5   2\n  {name}                40              39\n"),
    );
    let detached = detach_all(vec![a, plain]);
    assert!(detached.errors.is_empty(), "{detached:?}");
    assert_eq!(
        detached.missed,
        vec![("kretprobe inet_csk_accept".to_string(), 39)],
        "only the counting attachment's misses, read before its entry went"
    );
    assert!(k.ids.borrow().is_empty(), "both entries removed");
}

#[test]
fn unreadable_misses_are_a_warning_not_a_silent_zero() {
    let k = Kernel::new();
    k.fake
        .set_file(format!("{TRACING}/kprobe_profile"), "  other 1 1\n");
    let (a, _) = attach_counting_misses(
        &k,
        &kretprobe("inet_csk_accept"),
        KprobeSupport::TracefsOnly,
        1,
    )
    .unwrap();
    let detached = detach_all(vec![a]);
    assert!(detached.missed.is_empty());
    let [e] = &detached.errors[..] else {
        panic!("{detached:?}")
    };
    assert!(
        e.to_string()
            .starts_with("cannot read the misses of kretprobe inet_csk_accept"),
        "{e}"
    );
    // No kprobe_profile at all: attached without counting, and said so.
    let k = Kernel::new();
    let (a, note) = attach_counting_misses(
        &k,
        &kretprobe("inet_csk_accept"),
        KprobeSupport::TracefsOnly,
        1,
    )
    .unwrap();
    assert!(!a.counts_misses());
    assert!(note
        .unwrap()
        .contains("cannot be counted (opening /sys/kernel/tracing/kprobe_profile failed"));
}

#[test]
fn without_kprobe_events_a_counting_return_probe_says_it_cannot_count() {
    let k = Kernel::with_kprobe_events(false);
    let pmu = KprobeSupport::Pmu {
        perf_type: 6,
        retprobe_bit: 0,
    };
    let (a, note) = attach_counting_misses(&k, &kretprobe("inet_csk_accept"), pmu, 7).unwrap();
    assert!(!a.counts_misses());
    assert!(a.kprobe_event_name().is_none(), "attached through the PMU");
    assert!(note.unwrap().contains("cannot be counted"));
}

#[test]
fn kprobe_events_entry_is_removed_when_attaching_fails() {
    let k = Kernel::new();
    k.fake.fail_next("ioctl", libc::EINVAL); // PERF_EVENT_IOC_SET_BPF
    let e = attach(&k, &kprobe("tcp_v6_connect"), KprobeMethod::TracefsEvents).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("attaching the BPF program to kprobe tcp_v6_connect: ioctl failed"),
        "{e}"
    );
    let writes = k.writes();
    assert_eq!(writes.len(), 2);
    assert!(writes[1].1.starts_with("-:conntrace_"));
    assert!(k.ids.borrow().is_empty());
}

#[test]
fn kprobe_events_refusal_explains() {
    let k = Kernel::new();
    k.fake.fail_next("write_file", libc::ENOENT);
    let text = attach(&k, &kprobe("no_such_fn"), KprobeMethod::TracefsEvents)
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("kprobe on no_such_fn: writing `p:conntrace_"),
        "{text}"
    );
    assert!(
        text.contains("the function does not exist or cannot be probed"),
        "{text}"
    );
    let text = attach(&k, &kprobe("f\nx"), KprobeMethod::TracefsEvents)
        .unwrap_err()
        .to_string();
    assert!(text.contains("is not a kernel function name"), "{text}");
}

#[test]
fn permission_errors_name_the_capabilities() {
    let k = Kernel::new();
    k.fake.fail_next("perf_event_open", libc::EACCES);
    let text = attach(&k, &kprobe("tcp_v4_connect"), PMU)
        .unwrap_err()
        .to_string();
    assert!(
        text.starts_with("opening a perf event for kprobe tcp_v4_connect: perf_event_open failed"),
        "{text}"
    );
    assert!(
        text.ends_with("conntrace needs root or CAP_BPF+CAP_PERFMON"),
        "{text}"
    );
}

#[test]
fn kprobe_support_prefers_the_pmu() {
    let fake = FakeSys::new();
    fake.set_file("/sys/bus/event_source/devices/kprobe/type", "8\n");
    fake.set_file(
        "/sys/bus/event_source/devices/kprobe/format/retprobe",
        "config:0\n",
    );
    assert_eq!(
        kprobe_support(&fake),
        KprobeSupport::Pmu {
            perf_type: 8,
            retprobe_bit: 0
        }
    );
    assert_eq!(
        kprobe_support(&fake).method(),
        Ok(KprobeMethod::Pmu {
            perf_type: 8,
            retprobe_bit: 0
        })
    );

    let k = Kernel::new(); // tracefs with kprobe_events, no PMU
    assert_eq!(kprobe_support(&k), KprobeSupport::TracefsOnly);
    assert_eq!(
        KprobeSupport::TracefsOnly.method(),
        Ok(KprobeMethod::TracefsEvents)
    );

    let fake = FakeSys::new();
    fake.set_file(format!("{TRACING}/events/header_page"), "x");
    fake.set_file("/sys/bus/event_source/devices/kprobe/type", "8\n"); // no format dir: unusable
    assert_eq!(kprobe_support(&fake), KprobeSupport::None);
    assert_eq!(
        KprobeSupport::None.method().unwrap_err().to_string(),
        "kernel has no kprobes: use --backend tracepoint"
    );
}

#[test]
fn stale_entries_of_dead_conntraces_are_removed() {
    let k = Kernel::new();
    let own = std::process::id();
    k.fake.set_file(
        format!("{TRACING}/kprobe_events"),
        format!(
            "p:kprobes/conntrace_{own}_0 tcp_v4_connect\n\
             p:kprobes/conntrace_4000000_3 tcp_v4_connect\n\
             r16:kprobes/conntrace_77_1 inet_csk_accept\n\
             p:kprobes/someone_else tcp_v4_connect\n"
        ),
    );
    k.fake.set_file("/proc/self/stat", "1 (x)");
    k.fake.set_file("/proc/77/stat", "77 (conntrace)"); // still running
    let removed = remove_stale_kprobe_events(&k.fake).unwrap();
    assert_eq!(removed, vec!["kprobes/conntrace_4000000_3".to_string()]);
    let writes: Vec<String> = k
        .fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::WriteFile { data, .. } => Some(String::from_utf8(data).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(writes, vec!["-:kprobes/conntrace_4000000_3\n".to_string()]);

    // Without /proc nobody can be judged dead: nothing is removed.
    let blind = FakeSys::new();
    blind.set_file(format!("{TRACING}/events/header_page"), "x");
    blind.set_file(
        format!("{TRACING}/kprobe_events"),
        "p:kprobes/conntrace_4000000_3 f\n",
    );
    assert!(remove_stale_kprobe_events(&blind).unwrap().is_empty());
}

struct NoFields;

impl FieldResolver for NoFields {
    fn field(&self, spec: &str) -> Result<FieldOffset, String> {
        Err(format!("no fields in this test ({spec})"))
    }
}

fn is_root() -> bool {
    crate::kernel::sys::process::euid() == 0
}

/// The real kernel: load `r0 = 0; exit` as a tracepoint program and attach it to
/// syscalls/sys_enter_getpid. As root it must work; otherwise the refusal must name the
/// privileges needed.
#[test]
fn real_kernel_loads_and_attaches_a_tracepoint_program() {
    let obj = ProbeObject {
        license: "GPL".into(),
        maps: Vec::new(),
        programs: vec![Program {
            section: "tracepoint/syscalls/sys_enter_getpid".into(),
            kind: ProgramKind::Tracepoint {
                category: "syscalls".into(),
                name: "sys_enter_getpid".into(),
            },
            insns: vec![asm::mov_imm(0, 0), asm::EXIT],
            map_relocs: Vec::new(),
            field_relocs: Vec::new(),
        }],
    };
    let sys = RealSys;
    let opts = LoadOptions {
        nr_cpus: 1,
        kern_version: crate::kernel::load::kernel_version_code(),
        programs: ProgramFilter::All,
        helper_rewrites: Vec::new(),
        permission: PermissionContext::Unprivileged,
        map_sizes: Vec::new(),
        allocated_as_used: Vec::new(),
    };
    let loaded = load(&sys, &obj, &NoFields, &opts);
    if !is_root() {
        let e = loaded.unwrap_err();
        assert!(matches!(e, LoadError::Permission { .. }), "{e}");
        assert!(
            e.to_string().contains("needs root or CAP_BPF+CAP_PERFMON"),
            "{e}"
        );
        return;
    }
    let loaded = loaded.unwrap_or_else(|e| panic!("{e}"));
    let prog = loaded
        .program("tracepoint/syscalls/sys_enter_getpid")
        .unwrap();
    let attachment =
        attach(&sys, prog, KprobeMethod::TracefsEvents).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        attachment.describe(),
        "tracepoint syscalls/sys_enter_getpid"
    );
    // getpid(2) fires the tracepoint the program is on.
    let _ = std::process::id();
    attachment.detach().unwrap();

    let e =
        attach_tracepoint(&sys, prog.fd.as_fd(), "syscalls", "sys_enter_no_such_call").unwrap_err();
    assert_eq!(
        e,
        AttachError::TracepointMissing {
            category: "syscalls".into(),
            name: "sys_enter_no_such_call".into()
        }
    );
}
