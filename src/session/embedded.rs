//! The probe objects build.rs assembled from src/bpf/*.s, embedded in the binary (packed, see
//! [`pack`](super::pack)), and which one a session loads: with or without BTF, to the BPF
//! ring buffer or to the perf rings.

use crate::session::pack;
use crate::session::rings::RingKind;

/// The objects as build.rs packed them: each one's length (u32, little-endian), then one
/// stream of all of them, in `OBJECTS` order.
static PACKED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probes.pack"));

/// (BTF, ring, name) of each object, in build.rs's order.
pub const OBJECTS: [(bool, RingKind, &str); 4] = [
    (true, RingKind::Bpf, "probes.o"),
    (true, RingKind::Perf, "probes-perf.o"),
    (false, RingKind::Bpf, "probes-nobtf.o"),
    (false, RingKind::Perf, "probes-nobtf-perf.o"),
];

fn length(index: usize) -> usize {
    let at = 4 * index;
    let mut word = [0; 4];
    word.copy_from_slice(&PACKED[at..at + 4]);
    u32::from_le_bytes(word) as usize
}

fn index_of(btf: bool, ring: RingKind) -> usize {
    OBJECTS
        .iter()
        .position(|&(b, r, _)| b == btf && r == ring)
        .unwrap_or(0)
}

/// The object's file name, for `conntrace check` and messages.
pub fn name(btf: bool, ring: RingKind) -> &'static str {
    OBJECTS[index_of(btf, ring)].2
}

/// The object with BTF (every field offset from the kernel's own types) or without it
/// (src/bpf/variants/nobtf.s: no field outside the built-in sock_common table), whose records
/// go to `ring`. Unpacked with every object before it in the stream.
pub fn object(btf: bool, ring: RingKind) -> Vec<u8> {
    let index = index_of(btf, ring);
    let before: usize = (0..index).map(length).sum();
    let mut all = pack::unpack(&PACKED[4 * OBJECTS.len()..], before + length(index));
    all.drain(..before.min(all.len()));
    all
}

/// The object for kernels with BTF and the BPF ring buffer.
pub fn probe_object() -> Vec<u8> {
    object(true, RingKind::Bpf)
}

/// The object for kernels without BTF, with the BPF ring buffer.
pub fn probe_object_nobtf() -> Vec<u8> {
    object(false, RingKind::Bpf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_unpacks_whole_and_all_are_smaller_packed() {
        let objects: Vec<Vec<u8>> = OBJECTS.iter().map(|&(b, r, _)| object(b, r)).collect();
        for (i, o) in objects.iter().enumerate() {
            assert_eq!(o.len(), length(i), "{}", OBJECTS[i].2);
            assert_eq!(&o[..4], b"\x7fELF");
            for other in &objects[..i] {
                assert_ne!(o, other, "{} is a copy", OBJECTS[i].2);
            }
        }
        let total: usize = objects.iter().map(Vec::len).sum();
        assert!(
            PACKED.len() * 4 < total,
            "{} packed of {total}",
            PACKED.len()
        );
    }

    #[test]
    fn the_perf_objects_send_through_the_perf_array_and_the_others_through_the_ring_buffer() {
        use crate::kernel::probe_object;
        for &(btf, ring, name) in &OBJECTS {
            let parsed = probe_object::parse(&object(btf, ring)).unwrap();
            let maps: Vec<&str> = parsed.maps.iter().map(|m| m.name.as_str()).collect();
            let (has, lacks) = match ring {
                RingKind::Bpf => ("ring", "events"),
                RingKind::Perf => ("events", "ring"),
            };
            assert!(
                maps.contains(&has) && !maps.contains(&lacks),
                "{name}: {maps:?}"
            );
        }
    }
}
