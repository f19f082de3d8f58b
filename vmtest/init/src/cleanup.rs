//! Every way a conntrace run ends, each checked for leftovers by the host: kprobe_events
//! entries (the kprobe backend runs with the tracefs method so there are entries to leave)
//! and loaded BPF programs.

use crate::passes::FORCE_TRACEFS;
use crate::tracer::{self, Finish, Launch, Stdout};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Nobody listens here: a connect makes a connect and a failed record, nothing else.
const CLOSED_PORT: u16 = 4900;

/// How the init makes traffic during a case.
#[derive(Clone, Copy)]
enum Traffic {
    None,
    /// One refused connect, then wait for conntrace to print something.
    OneConnect,
    /// Refused connects until conntrace exits by itself.
    UntilExit,
}

struct Case {
    name: &'static str,
    args: &'static [&'static str],
    stdout: Stdout,
    traffic: Traffic,
    finish: Finish,
}

const CASES: [Case; 6] = [
    Case {
        name: "sigint",
        args: &[],
        stdout: Stdout::Pipe,
        traffic: Traffic::OneConnect,
        finish: Finish::Signal(libc::SIGINT),
    },
    Case {
        name: "sigterm",
        args: &[],
        stdout: Stdout::Pipe,
        traffic: Traffic::OneConnect,
        finish: Finish::Signal(libc::SIGTERM),
    },
    Case {
        name: "sigpipe",
        args: &[],
        stdout: Stdout::PipeClosedAfterOneLine,
        traffic: Traffic::UntilExit,
        finish: Finish::Wait,
    },
    Case {
        name: "duration",
        args: &["-d", "1"],
        stdout: Stdout::Pipe,
        traffic: Traffic::None,
        finish: Finish::Wait,
    },
    Case {
        name: "max-events",
        args: &["-n", "2"],
        stdout: Stdout::Pipe,
        traffic: Traffic::UntilExit,
        finish: Finish::Wait,
    },
    Case {
        name: "write-error",
        args: &[],
        stdout: Stdout::DevFull,
        traffic: Traffic::UntilExit,
        finish: Finish::Wait,
    },
];

/// Runs every case with `backend`; runs are named `cleanup-BACKEND-CASE`.
pub fn run_all(backend: &str) {
    let kprobe = backend == "kprobe";
    for case in &CASES {
        let run = format!("cleanup-{backend}-{}", case.name);
        let mut args = vec!["--json", "--backend", backend];
        args.extend_from_slice(case.args);
        let env: &[(&str, &str)] = if kprobe { &[FORCE_TRACEFS] } else { &[] };
        let launch = Launch {
            run: &run,
            args: &args,
            env,
            stdout: case.stdout,
            uid: None,
            list_kprobes_while_attached: kprobe,
        };
        let Some(mut running) = tracer::launch(&launch) else {
            continue;
        };
        if running.attached {
            match case.traffic {
                Traffic::None => {}
                Traffic::OneConnect => {
                    refused_connect();
                    running.await_line(Duration::from_secs(5));
                }
                Traffic::UntilExit => {
                    let deadline = Instant::now() + tracer::EXIT_LIMIT;
                    while !running.has_exited() && Instant::now() < deadline {
                        refused_connect();
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        }
        running.finish(case.finish, &|| {});
    }
}

fn refused_connect() {
    // Refused is the point; any other outcome only shows up as records the host reports.
    let _ = TcpStream::connect(("127.0.0.1", CLOSED_PORT));
}
