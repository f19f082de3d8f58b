//! The probe objects build.rs assembled from src/bpf/*.s, embedded in the binary (packed, see
//! [`pack`](super::pack)), and which one a field source can load.

use crate::session::fields::FieldSource;
use crate::session::pack;

/// Both objects as build.rs packed them: each one's length (u32, little-endian), then the
/// stream of the BTF object followed by the no-BTF one.
static PACKED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probes.pack"));

fn lengths() -> (usize, usize) {
    let len = |at: usize| {
        let mut word = [0; 4];
        word.copy_from_slice(&PACKED[at..at + 4]);
        u32::from_le_bytes(word) as usize
    };
    (len(0), len(4))
}

/// The programs for kernels with BTF: every field offset comes from the kernel's own types.
pub fn probe_object() -> Vec<u8> {
    let (btf, _) = lengths();
    pack::unpack(&PACKED[8..], btf)
}

/// The same programs for kernels without BTF (src/bpf/variants/nobtf.s): no field outside the
/// built-in sock_common table.
pub fn probe_object_nobtf() -> Vec<u8> {
    let (btf, nobtf) = lengths();
    let mut both = pack::unpack(&PACKED[8..], btf + nobtf);
    both.drain(..btf.min(both.len()));
    both
}

/// The embedded object written for `fields`: without BTF, the one whose programs use no field
/// outside the built-in table.
pub fn object_for(fields: &FieldSource) -> Vec<u8> {
    if fields.has_btf() {
        probe_object()
    } else {
        probe_object_nobtf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_objects_unpack_whole_and_are_smaller_packed() {
        let (btf, nobtf) = lengths();
        let (a, b) = (probe_object(), probe_object_nobtf());
        assert_eq!((a.len(), b.len()), (btf, nobtf));
        assert_ne!(a, b);
        for object in [&a, &b] {
            assert_eq!(&object[..4], b"\x7fELF");
        }
        assert!(PACKED.len() * 2 < btf + nobtf, "{} packed", PACKED.len());
    }
}
