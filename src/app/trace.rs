//! The program: parse the command line, then check, or trace: set up a session (`session`),
//! verify the built-in layout when there is no BTF (`selftest`), drop privileges, read until
//! told to stop (`reader`), print the totals.

use std::ffi::OsString;

use crate::app::cli::{self, Command, TraceOptions};
use crate::app::fleet::Fleet;
use crate::app::identity::{self, Resolver};
use crate::app::privileges;
use crate::app::reader::read_events;
use crate::app::signals;
use crate::kernel::sys::{RealSys, Sys};
use crate::session::fields;
use crate::session::rings;
use crate::session::start;

/// The program's entry point; returns the exit status (0 done, 1 tracing failed, 2 bad usage).
pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    match command {
        Command::Help => {
            print!("{}", cli::help());
            0
        }
        Command::Version => {
            println!("{}", cli::version());
            0
        }
        Command::Check(opts) => crate::app::check::run(&RealSys, &opts),
        Command::Trace(opts) => match run(&RealSys, &opts) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("conntrace: {e}");
                1
            }
        },
    }
}

fn run(sys: &dyn Sys, opts: &TraceOptions) -> Result<(), String> {
    signals::install();
    let mut session_opts = opts.session();
    if let Some(path) = &opts.cgroup {
        session_opts.cgroup = Some(cgroup_directory(path)?);
    }
    // Before the drop: the cgroup2 mount is opened and the metrics port bound here.
    let mut fleet = Fleet::prepare(opts)?;
    let mut session = start(sys, &session_opts)?;
    if let Some(families) = session.verify_builtin_layout(sys, &session_opts)? {
        eprintln!(
            "conntrace: no BTF: using the built-in sock_common layout (verified on loopback: \
             {families}); off without BTF: {}",
            fields::NO_BTF_LIMITS
        );
    }
    // From here on only rings, stdout and our own fds are used: see `privileges`.
    let dropped = privileges::drop_privileges(sys)?;
    if let Some(warning) = dropped.warning {
        eprintln!("conntrace: warning: {warning}");
    }
    for note in &session.notes {
        eprintln!("conntrace: note: {note}");
    }
    if let Some(why) = fleet.unresolvable() {
        eprintln!("conntrace: note: cgroup_path, container_id and pod_uid will be null: {why}");
    }
    fleet.start()?;
    eprintln!(
        "conntrace: attached {} probes: {} ({}); {}; records through {}; {}; Ctrl-C to stop",
        session.attachments.len(),
        session.why,
        session.describe_hooks(),
        session.variant,
        rings::describe(&session.rings),
        session.state.short()
    );
    let totals = read_events(sys, session, opts, fleet)?;
    let mut summary = format!("conntrace: {} events, {} lost", totals.events, totals.lost);
    if totals.malformed > 0 {
        summary.push_str(&format!(", {} malformed records skipped", totals.malformed));
    }
    eprintln!("{summary}");
    Ok(())
}

/// The directory `--cgroup PATH` names: as given when it is on the cgroup2 mount, else the
/// same path below the mount (`/system.slice/x.scope`).
fn cgroup_directory(path: &std::path::Path) -> Result<std::path::PathBuf, String> {
    let mountinfo = std::fs::read("/proc/self/mountinfo")
        .map_err(|e| format!("--cgroup: cannot read /proc/self/mountinfo: {e}"))?;
    let mount = identity::cgroup2_mount(&mountinfo).map_err(|e| format!("--cgroup: {e}"))?;
    let dir = Resolver::directory_of(&mount, path);
    if !dir.is_dir() {
        return Err(format!(
            "--cgroup {}: no such cgroup ({} is not a directory)",
            path.display(),
            dir.display()
        ));
    }
    Ok(dir)
}
