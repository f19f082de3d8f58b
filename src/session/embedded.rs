//! The probe objects build.rs assembled from src/bpf/*.s, embedded in the binary, and which
//! one a field source can load.

use crate::session::fields::FieldSource;

/// The programs for kernels with BTF: every field offset comes from the kernel's own types.
pub static PROBE_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probes.o"));
/// The same programs for kernels without BTF (src/bpf/variants/nobtf.s): no field outside the
/// built-in sock_common table.
pub static PROBE_OBJECT_NOBTF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probes-nobtf.o"));

/// The embedded object written for `fields`: without BTF, the one whose programs use no field
/// outside the built-in table.
pub fn object_for(fields: &FieldSource) -> &'static [u8] {
    if fields.has_btf() {
        PROBE_OBJECT
    } else {
        PROBE_OBJECT_NOBTF
    }
}
