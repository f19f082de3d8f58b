//! Hooks loaded programs to tracepoints and kprobes through perf events. Each hook is an
//! [`Attachment`] that undoes itself on drop, so every exit path (errors and signals that
//! unwind to main included) leaves no kprobe_events entries behind.

mod counter;
mod kprobe_events;
mod kprobe_pmu;
mod perf;
mod tracefs;

// A test-only fake kernel around FakeSys: it reads the kprobe name a perf_event_attr points
// at and polls pipes, so it may use `unsafe`.
#[cfg(test)]
#[allow(unsafe_code)]
mod tests;

pub use tracefs::root as tracefs_root;

use crate::kernel::abi::PERF_TYPE_TRACEPOINT;
use crate::kernel::load::LoadedProgram;
use crate::kernel::probe_object::ProgramKind;
use crate::kernel::sys::{HeldFile, PerfEventIoctl, Sys, SysError};
pub use counter::{count_tracepoint, TracepointCounter};
use kprobe_events::{KprobeEvent, Removal};
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

const PRIVILEGE_HINT: &str = "conntrace needs root or CAP_BPF+CAP_PERFMON";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachError {
    /// tracefs is neither mounted nor mountable.
    Tracefs(String),
    TracepointMissing {
        category: String,
        name: String,
    },
    /// Neither the kprobe PMU nor tracefs kprobe_events exists.
    NoKprobes,
    Kprobe {
        function: String,
        message: String,
    },
    /// A perf_event_open or ioctl failed; `what` says at which step.
    Sys {
        what: String,
        error: SysError,
    },
    /// The program's section does not name something we can attach to.
    BadSection(String),
    /// Undoing an attachment failed.
    Cleanup(String),
}

impl AttachError {
    fn sys(what: String, error: SysError) -> Self {
        AttachError::Sys { what, error }
    }

    /// A refusal for want of privilege: no other hook would fare better.
    pub fn is_permission(&self) -> bool {
        matches!(self, AttachError::Sys { error, .. }
            if error.errno == libc::EPERM || error.errno == libc::EACCES)
    }
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::Tracefs(message)
            | AttachError::BadSection(message)
            | AttachError::Cleanup(message) => f.write_str(message),
            AttachError::TracepointMissing { category, name } => {
                let hint = if category == "syscalls" {
                    "kernel without CONFIG_FTRACE_SYSCALLS?".to_string()
                } else {
                    format!(
                        "this kernel has no such tracepoint (see {}/available_events)",
                        tracefs::TRACING
                    )
                };
                write!(f, "tracepoint {category}/{name} not found: {hint}")
            }
            AttachError::NoKprobes => {
                f.write_str("kernel has no kprobes: use --backend tracepoint")
            }
            AttachError::Kprobe { function, message } => {
                write!(f, "kprobe on {function}: {message}")
            }
            AttachError::Sys { what, error } => {
                write!(f, "{what}: {error}")?;
                if error.errno == libc::EPERM || error.errno == libc::EACCES {
                    write!(f, ": {PRIVILEGE_HINT}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for AttachError {}

/// How this kernel offers kprobes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KprobeSupport {
    Pmu { perf_type: u32, retprobe_bit: u32 },
    TracefsOnly,
    None,
}

impl KprobeSupport {
    /// The method to attach kprobes with, or [`AttachError::NoKprobes`].
    pub fn method(self) -> Result<KprobeMethod, AttachError> {
        match self {
            KprobeSupport::Pmu {
                perf_type,
                retprobe_bit,
            } => Ok(KprobeMethod::Pmu {
                perf_type,
                retprobe_bit,
            }),
            KprobeSupport::TracefsOnly => Ok(KprobeMethod::TracefsEvents),
            KprobeSupport::None => Err(AttachError::NoKprobes),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KprobeMethod {
    Pmu {
        perf_type: u32,
        retprobe_bit: u32,
    },
    /// Entries in tracefs kprobe_events (kernels before 4.17).
    TracefsEvents,
}

/// Probes the kprobe PMU, then tracefs kprobe_events (mounting tracefs if needed).
pub fn kprobe_support(sys: &dyn Sys) -> KprobeSupport {
    if let Some((perf_type, retprobe_bit)) = kprobe_pmu::detect(sys) {
        return KprobeSupport::Pmu {
            perf_type,
            retprobe_bit,
        };
    }
    if has_kprobe_events(sys) {
        KprobeSupport::TracefsOnly
    } else {
        KprobeSupport::None
    }
}

/// Whether tracefs `kprobe_events` is usable (mounting tracefs if needed), PMU or not.
pub fn has_kprobe_events(sys: &dyn Sys) -> bool {
    match tracefs::root(sys) {
        Ok(root) => sys.read_file(&root.join("kprobe_events")).is_ok(),
        Err(_) => false,
    }
}

/// A program hooked to one event. Dropping it disables the event, closes its fd and then
/// removes the kprobe_events entry, if any (the kernel refuses while the fd is open).
pub struct Attachment<'s> {
    sys: &'s dyn Sys,
    what: String,
    perf: Option<OwnedFd>,
    /// A raw tracepoint's fd: closing it detaches, with no grace period to wait out.
    raw: Option<OwnedFd>,
    kprobe_event: Option<Removal<'s>>,
    /// Its kprobe_events entry's misses are lost events: read from this kprobe_profile
    /// before the entry goes.
    profile: Option<HeldFile>,
}

impl fmt::Debug for Attachment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("what", &self.what)
            .field("perf", &self.perf)
            .field("raw", &self.raw)
            .finish()
    }
}

impl<'s> Attachment<'s> {
    fn new(
        sys: &'s dyn Sys,
        what: String,
        perf: OwnedFd,
        kprobe_event: Option<Removal<'s>>,
    ) -> Self {
        Attachment {
            sys,
            what,
            perf: Some(perf),
            raw: None,
            kprobe_event,
            profile: None,
        }
    }

    fn raw(sys: &'s dyn Sys, what: String, fd: OwnedFd) -> Self {
        Attachment {
            sys,
            what,
            perf: None,
            raw: Some(fd),
            kprobe_event: None,
            profile: None,
        }
    }

    /// Whether the kernel's miss count of this hook is read at detach ([`detach_all`]).
    pub fn counts_misses(&self) -> bool {
        self.profile.is_some()
    }

    /// "tracepoint syscalls/sys_exit_connect", "kprobe tcp_v4_connect", ...
    pub fn describe(&self) -> &str {
        &self.what
    }

    /// The name of the kprobe_events entry behind this attachment, if it uses one.
    pub fn kprobe_event_name(&self) -> Option<&str> {
        self.kprobe_event.as_ref().map(|r| r.event.name())
    }

    /// Detaches now, reporting a failure to clean up (Drop can only ignore it).
    pub fn detach(mut self) -> Result<(), AttachError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), AttachError> {
        drop(self.raw.take());
        if let Some(fd) = self.perf.take() {
            let _ = self.sys.ioctl(fd.as_fd(), PerfEventIoctl::Disable);
            drop(fd);
        }
        match self.kprobe_event.take() {
            Some(mut removal) => removal.remove_now(),
            None => Ok(()),
        }
    }
}

/// What detaching left to report.
#[derive(Debug, Default)]
pub struct Detached {
    /// What failed to clean up.
    pub errors: Vec<AttachError>,
    /// (hook, calls the kernel could not follow) for each attachment that counts misses.
    pub missed: Vec<(String, u64)>,
}

/// Detaches every attachment at once. The kernel waits out an RCU grace period when the last
/// perf event of a tracepoint or kprobe closes: closed one after another that was one wait
/// each (60-90 ms apiece on the 2-CPU test machine, most of conntrace's run time with -d);
/// closed from parallel threads, the waits overlap. kprobe_events entries are removed after
/// every fd is closed (the kernel refuses while one is open), and their miss counts read in
/// between: final by then, and gone with the entry.
///
/// It returns only once no program it detached can still be running: a raw tracepoint or
/// link is unhooked without a grace period, so a program already under way on another CPU
/// could send a record after the reader's last drain, neither printed nor counted. A perf
/// event's close waits for one only when it is the tracepoint's last user, so this does not
/// rely on it: it waits for a grace period itself (membarrier), beside the parallel closes.
pub fn detach_all(attachments: Vec<Attachment<'_>>) -> Detached {
    let sys = attachments.first().map(|a| a.sys);
    let mut fds = Vec::with_capacity(attachments.len());
    let mut syscall_fds = Vec::new();
    let mut removals = Vec::new();
    let mut counted = Vec::new();
    for mut a in attachments {
        // No grace period behind it: closed at once, here.
        drop(a.raw.take());
        if let Some(fd) = a.perf.take() {
            let _ = a.sys.ioctl(fd.as_fd(), PerfEventIoctl::Disable);
            if a.what.starts_with("tracepoint syscalls/") {
                syscall_fds.push(fd);
            } else {
                fds.push(fd);
            }
        }
        if let Some(removal) = a.kprobe_event.take() {
            if let Some(profile) = a.profile.take() {
                counted.push((a.what.clone(), removal.event.name().to_string(), profile));
            }
            removals.push(removal);
        }
    }
    // Each perf close waits for grace periods (tracepoint_synchronize_unregister, 50-95 ms
    // here; event_mutex is held across it, so those waits still queue, but the rest of each
    // close overlaps), so all close in parallel but for one syscall tracepoint: closed last,
    // once every thread started here has ended. That close may clear every task's
    // syscall-tracepoint flag, and on 5.10 doing so while threads were being spawned left CPUs
    // spinning in syscall_trace_enter (a soft lockup, seen in the VM suite); until it, the
    // flag stays set whatever the others do.
    let last_syscall = syscall_fds.pop();
    std::thread::scope(|scope| {
        for fd in fds.into_iter().chain(syscall_fds) {
            // If no thread can be had, spawn_scoped drops the closure, closing fd right here:
            // slower, never wrong.
            let _ = std::thread::Builder::new().spawn_scoped(scope, move || drop(fd));
        }
        if let Some(sys) = sys {
            wait_for_running_programs(sys);
        }
    });
    drop(last_syscall);
    let mut detached = Detached::default();
    if let Some((_, _, profile)) = counted.first() {
        let names: Vec<&str> = counted.iter().map(|(_, name, _)| name.as_str()).collect();
        let sys = removals.first().map(|r| r.sys);
        match sys.map(|sys| kprobe_events::misses(sys, profile, &names)) {
            Some(Ok(misses)) => {
                detached.missed = counted
                    .iter()
                    .map(|(w, _, _)| w.clone())
                    .zip(misses)
                    .collect()
            }
            Some(Err(e)) => detached.errors.push(AttachError::Cleanup(format!(
                "cannot read the misses of {}: {e}; events they stand for may be missing",
                counted
                    .iter()
                    .map(|(w, _, _)| w.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            None => {}
        }
    }
    detached.errors.extend(
        removals
            .into_iter()
            .filter_map(|mut removal| removal.remove_now().err()),
    );
    detached
}

/// Waits until every program that was running has finished: an RCU grace period, as BPF
/// programs run with preemption disabled. Without membarrier (CONFIG_MEMBARRIER off, or
/// nohz_full CPUs) a pause far longer than any program run stands in.
fn wait_for_running_programs(sys: &dyn Sys) {
    if sys.membarrier_global().is_err() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl Drop for Attachment<'_> {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// Attaches `prog` where its section says: tracepoint/CAT/NAME, raw_tracepoint/NAME,
/// tp_btf/NAME, kprobe/FUNC, kretprobe/FUNC. `method` is used for kprobes only.
pub fn attach<'s>(
    sys: &'s dyn Sys,
    prog: &LoadedProgram,
    method: KprobeMethod,
) -> Result<Attachment<'s>, AttachError> {
    match &prog.kind {
        ProgramKind::Tracepoint { category, name } => {
            attach_tracepoint(sys, prog.fd.as_fd(), category, name)
        }
        ProgramKind::RawTracepoint { name } => attach_raw_tracepoint(sys, prog.fd.as_fd(), name),
        ProgramKind::TpBtf { name } => attach_tp_btf(sys, prog.fd.as_fd(), name),
        ProgramKind::Kprobe { function } => {
            attach_kprobe(sys, prog.fd.as_fd(), function, false, method, None)
        }
        ProgramKind::Kretprobe { function } => {
            attach_kprobe(sys, prog.fd.as_fd(), function, true, method, None)
        }
    }
}

/// Room for calls in flight at once that a return probe asks for where it can (tracefs):
/// the kernel's default is max(10, 2 x CPUs), and every thread blocked in the function holds
/// one. The kernel's ceiling is 4096.
pub const KRETPROBE_MAXACTIVE: u32 = 1024;

/// Attaches the return probe `prog` so that the calls it misses are counted: through tracefs
/// kprobe_events with room for `maxactive` calls at once, its misses read at detach (see
/// [`detach_all`]). Where only the kprobe PMU exists, attaches through it and says in the
/// returned note that misses cannot be counted.
pub fn attach_counting_misses<'s>(
    sys: &'s dyn Sys,
    prog: &LoadedProgram,
    support: KprobeSupport,
    maxactive: u32,
) -> Result<(Attachment<'s>, Option<String>), AttachError> {
    let ProgramKind::Kretprobe { function } = &prog.kind else {
        return attach(sys, prog, support.method()?).map(|a| (a, None));
    };
    let why_not = match tracefs::root(sys) {
        Ok(root) if has_kprobe_events(sys) => match kprobe_events::open_profile(sys, &root) {
            Ok(profile) => {
                let mut a = attach_kprobe(
                    sys,
                    prog.fd.as_fd(),
                    function,
                    true,
                    KprobeMethod::TracefsEvents,
                    Some(maxactive),
                )?;
                a.profile = Some(profile);
                return Ok((a, None));
            }
            Err(e) => e,
        },
        Ok(_) => "tracefs has no kprobe_events".to_string(),
        Err(e) => e.to_string(),
    };
    let a = attach_kprobe(
        sys,
        prog.fd.as_fd(),
        function,
        true,
        support.method()?,
        None,
    )?;
    let note = format!(
        "the misses of kretprobe {function} cannot be counted ({why_not}): calls beyond its \
         instances would be lost unseen"
    );
    Ok((a, Some(note)))
}

/// Attaches a tracepoint program to CATEGORY/NAME; one program may be attached to several.
pub fn attach_tracepoint<'s>(
    sys: &'s dyn Sys,
    prog: BorrowedFd<'_>,
    category: &str,
    name: &str,
) -> Result<Attachment<'s>, AttachError> {
    if !is_identifier(category) || !is_identifier(name) {
        return Err(AttachError::BadSection(format!(
            "`{category}/{name}` is not a tracepoint name"
        )));
    }
    let root = tracefs::root(sys)?;
    let id_path = root.join("events").join(category).join(name).join("id");
    let id = read_id(sys, &id_path).map_err(|_| AttachError::TracepointMissing {
        category: category.to_string(),
        name: name.to_string(),
    })?;
    let what = format!("tracepoint {category}/{name}");
    let fd = perf::open_with_program(sys, &perf::attr(PERF_TYPE_TRACEPOINT, id), prog, &what)?;
    Ok(Attachment::new(sys, what, fd, None))
}

/// Attaches a raw tracepoint program to the tracepoint NAME (BPF_RAW_TRACEPOINT_OPEN, 4.17+).
/// Neither tracefs nor a perf event is involved.
pub fn attach_raw_tracepoint<'s>(
    sys: &'s dyn Sys,
    prog: BorrowedFd<'_>,
    name: &str,
) -> Result<Attachment<'s>, AttachError> {
    if !is_identifier(name) {
        return Err(AttachError::BadSection(format!(
            "`{name}` is not a tracepoint name"
        )));
    }
    let what = format!("raw tracepoint {name}");
    let fd = sys
        .raw_tracepoint_open(Some(name), prog)
        .map_err(|error| AttachError::sys(format!("attaching the BPF program to {what}"), error))?;
    Ok(Attachment::raw(sys, what, fd))
}

/// Attaches a `tp_btf` program: the kernel knows its tracepoint from the BTF id it was
/// loaded with, so it is opened without a name; `name` is for messages.
pub fn attach_tp_btf<'s>(
    sys: &'s dyn Sys,
    prog: BorrowedFd<'_>,
    name: &str,
) -> Result<Attachment<'s>, AttachError> {
    let what = format!("BTF tracepoint {name}");
    let fd = sys
        .raw_tracepoint_open(None, prog)
        .map_err(|error| AttachError::sys(format!("attaching the BPF program to {what}"), error))?;
    Ok(Attachment::raw(sys, what, fd))
}

fn attach_kprobe<'s>(
    sys: &'s dyn Sys,
    prog: BorrowedFd<'_>,
    function: &str,
    retprobe: bool,
    method: KprobeMethod,
    maxactive: Option<u32>,
) -> Result<Attachment<'s>, AttachError> {
    // Also keeps newlines and options out of the kprobe_events line.
    if !function
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        || function.is_empty()
    {
        return Err(AttachError::BadSection(format!(
            "`{function}` is not a kernel function name"
        )));
    }
    let what = format!(
        "{} {function}",
        if retprobe { "kretprobe" } else { "kprobe" }
    );
    match method {
        KprobeMethod::Pmu {
            perf_type,
            retprobe_bit,
        } => {
            let fd = kprobe_pmu::open(
                sys,
                perf_type,
                retprobe_bit,
                function,
                retprobe,
                prog,
                &what,
            )?;
            Ok(Attachment::new(sys, what, fd, None))
        }
        KprobeMethod::TracefsEvents => {
            let root = tracefs::root(sys)?;
            let (removal, id) = KprobeEvent::create(sys, &root, function, retprobe, maxactive)?;
            // On error `removal` drops after the perf fd is gone, removing the entry.
            let fd =
                perf::open_with_program(sys, &perf::attr(PERF_TYPE_TRACEPOINT, id), prog, &what)?;
            Ok(Attachment::new(sys, what, fd, Some(removal)))
        }
    }
}

/// Removes kprobe_events entries left by conntrace processes that no longer run (a crash);
/// returns their names. Does nothing when tracefs or kprobe_events is absent.
pub fn remove_stale_kprobe_events(sys: &dyn Sys) -> Result<Vec<String>, AttachError> {
    match tracefs::root(sys) {
        Ok(root) => kprobe_events::remove_stale(sys, &root),
        Err(_) => Ok(Vec::new()),
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A trace event id file: a decimal number and a newline.
fn read_id(sys: &dyn Sys, path: &Path) -> Result<u64, String> {
    let bytes = sys
        .read_file(path)
        .map_err(|e| format!("reading {} failed: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    text.trim().parse().map_err(|_| {
        format!(
            "{} holds {:?}, not an event id",
            path.display(),
            text.trim()
        )
    })
}
