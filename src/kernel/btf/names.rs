//! Name lookup for structs and unions, built on first use: a start-up resolving a dozen
//! fields would otherwise scan 100k+ types once per struct. One pass fills an open-addressing
//! table of type ids keyed by name hash; names are compared in place, never copied.

use super::kind::{is_composite, INT};
use super::Btf;

/// Pointer size when the BTF has no `long` to tell (every kernel BTF has one).
const DEFAULT_POINTER_SIZE: u32 = 8;

pub(super) struct NameIndex {
    /// Type ids (0 = empty slot); length is a power of two.
    slots: Vec<u32>,
    /// Bytes in a pointer on the BTF's architecture, taken from the size of `long`.
    pub pointer_size: u32,
}

impl NameIndex {
    pub fn build(btf: &Btf) -> NameIndex {
        let mut composites = Vec::new();
        let mut pointer_size = None;
        for id in 1..=btf.type_count() as u32 {
            let Some(t) = btf.raw_type(id) else { continue };
            if is_composite(t.kind()) && t.name_off != 0 {
                composites.push(id);
            } else if t.kind() == INT && pointer_size.is_none() && is_long(btf.name(t.name_off)) {
                pointer_size = Some(t.size_or_type).filter(|s| matches!(s, 4 | 8));
            }
        }
        let mut slots = vec![0u32; (composites.len() * 2).next_power_of_two().max(16)];
        let mask = slots.len() - 1;
        for id in composites {
            let Some(name) = btf.raw_type(id).map(|t| btf.name(t.name_off)) else {
                continue;
            };
            let mut slot = hash(name) as usize & mask;
            while let Some(entry) = slots.get_mut(slot) {
                if *entry == 0 {
                    *entry = id;
                    break;
                }
                // Same name seen earlier: the first complete definition wins.
                if btf.raw_type(*entry).map(|t| btf.name(t.name_off)) == Some(name) {
                    break;
                }
                slot = (slot + 1) & mask;
            }
        }
        NameIndex {
            slots,
            pointer_size: pointer_size.unwrap_or(DEFAULT_POINTER_SIZE),
        }
    }

    /// The first struct or union called `name`.
    pub fn find(&self, btf: &Btf, name: &[u8]) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut slot = hash(name) as usize & mask;
        loop {
            let id = *self.slots.get(slot)?;
            if id == 0 {
                return None;
            }
            if btf.raw_type(id).map(|t| btf.name(t.name_off)) == Some(name) {
                return Some(id);
            }
            slot = (slot + 1) & mask;
        }
    }
}

fn is_long(name: &[u8]) -> bool {
    matches!(
        name,
        b"long" | b"long int" | b"unsigned long" | b"long unsigned int" | b"unsigned long int"
    )
}

/// FNV-1a: short identifiers, no allocation, good enough spread for a half-full table.
fn hash(name: &[u8]) -> u32 {
    name.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}
