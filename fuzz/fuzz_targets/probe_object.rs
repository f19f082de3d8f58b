//! Arbitrary bytes as the probe object: `probe_object::parse` must return Ok or an error, and
//! whatever it accepts must go through the loader (maps created, relocations patched, programs
//! loaded, against the fake syscall layer) without a panic.
#![no_main]

use conntrace::kernel::load::{self, LoadOptions, ProgramFilter};
use conntrace::kernel::probe_object;
use conntrace::kernel::sys::fake::FakeSys;
use conntrace::session::fields::FieldSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let object = match probe_object::parse(data) {
        Ok(object) => object,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let opts = LoadOptions {
        nr_cpus: 4,
        kern_version: 0x0006_0c00,
        programs: ProgramFilter::All,
    };
    if let Err(e) = load::load(&FakeSys::new(), &object, &FieldSource::Builtin, &opts) {
        let _ = e.to_string();
    }
});
