//! Arbitrary bytes as the probe object: `probe_object::parse` must return Ok or an error, and
//! whatever it accepts must go through the loader (maps created, relocations patched, programs
//! loaded, against the fake syscall layer) without a panic.
#![no_main]

use conntrace::kernel::load::{self, LoadOptions, PermissionContext, ProgramFilter};
use conntrace::kernel::probe_object;
use conntrace::kernel::sys::fake::FakeSys;
use conntrace::session::fields::FieldSource;
use conntrace::session::options::BtfSource;
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
        // The old helper in place of bpf_probe_read_kernel, as on kernels before 5.5.
        helper_rewrites: vec![(113, 4)],
        permission: PermissionContext::Unprivileged,
        map_sizes: Vec::new(),
        allocated_as_used: Vec::new(),
    };
    let sys = FakeSys::new();
    // No BTF: the built-in layout (the fake has no tracefs formats: those fields fail cleanly).
    let Ok(fields) = FieldSource::open(&sys, &BtfSource::None) else {
        return;
    };
    if let Err(e) = load::load(&sys, &object, &fields, &opts) {
        let _ = e.to_string();
    }
});
