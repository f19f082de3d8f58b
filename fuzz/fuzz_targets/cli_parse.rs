//! Arbitrary bytes as a command line (arguments split at NUL bytes, not necessarily UTF-8):
//! `cli::parse` must return a command or a usage error, never panic, and what it accepts must
//! answer the questions the tracer asks of it.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use conntrace::app::cli::{self, Command};
use conntrace::session::event::Kind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|&b| b == 0)
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect()
    };
    match cli::parse(&args) {
        Ok(Command::Trace(opts)) => {
            let _ = opts.format();
            for kind in [Kind::Connect, Kind::Established, Kind::Failed, Kind::Accept] {
                let _ = opts.wants(kind, true);
                let _ = opts.wants(kind, false);
            }
        }
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
