//! Name lookup for structs and unions, built on first use from the named composites the
//! validating pass listed (~10k of a kernel's ~130k types): a start-up resolving a dozen
//! fields would otherwise scan every type once per struct. A chained hash table of indexes
//! into that list, keyed by a hash of each name's first [`HASHED`] bytes; names are compared
//! in place, never copied.
//!
//! The work is bounded by the input whatever it holds: hashing reads at most [`HASHED`]
//! bytes of a name, inserting is O(1) (no probing, so names that hash alike cannot make it
//! quadratic), and a lookup compares each candidate for at most the wanted name's length.

use super::bytes::name_is;

/// Bytes of a name that go into its hash: as long as most kernel struct names (the average
/// is 19), and a bound on the work per name however long the string at its offset is.
/// Names that share this prefix share a bucket, and are told apart by comparing them.
const HASHED: usize = 24;

pub(super) struct NameIndex {
    /// Per hash bucket: 1 + the index (in the composites list) of its first entry, 0 = empty.
    /// The length is a power of two.
    heads: Vec<u32>,
    /// Per composite: 1 + the index of the next entry in its bucket, 0 = last.
    next: Vec<u32>,
}

impl NameIndex {
    /// Indexes `composites` (`(id, name_off)` in id order, names in `strings`).
    pub fn build(composites: &[(u32, u32)], strings: &[u8]) -> NameIndex {
        let buckets = composites.len().next_power_of_two().max(16);
        let mask = buckets - 1;
        let mut heads = vec![0u32; buckets];
        let mut next = vec![0u32; composites.len()];
        // Pushed at the head of their bucket last id first, so that each bucket lists its
        // entries in id order and a lookup meets the first definition of a name first.
        for (i, (&(_, name_off), link)) in composites.iter().zip(next.iter_mut()).enumerate().rev()
        {
            let name = strings.get(name_off as usize..).unwrap_or_default();
            if let Some(head) = heads.get_mut(hash(name) as usize & mask) {
                *link = *head;
                // Fits: there are fewer composites than types, and type ids are 20-bit.
                *head = i as u32 + 1;
            }
        }
        NameIndex { heads, next }
    }

    /// The id of the first struct or union called `name`.
    pub fn find(&self, composites: &[(u32, u32)], strings: &[u8], name: &[u8]) -> Option<u32> {
        let mask = self.heads.len() - 1;
        let mut entry = *self.heads.get(hash(name) as usize & mask)?;
        // Each link points at a later index (see `build`), so this ends even if they did not
        // come from `build`.
        while let Some(at) = (entry as usize).checked_sub(1) {
            let &(id, name_off) = composites.get(at)?;
            if name_is(strings, name_off, name) {
                return Some(id);
            }
            let following = *self.next.get(at)?;
            if following <= entry {
                return None;
            }
            entry = following;
        }
        None
    }
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// A hash of the name at the start of `bytes`: of the bytes before its NUL (or the end of
/// `bytes`), at most the first [`HASHED`]. Three words, masked at the NUL without a branch,
/// so that hashing costs the same for every name and a name in the string section hashes
/// like the same name given alone.
pub(super) fn hash(bytes: &[u8]) -> u32 {
    let padded = match bytes.first_chunk::<HASHED>() {
        Some(&whole) => whole,
        None => {
            // Near the end of the section, or a short name given alone: zeros after it.
            let mut padded = [0u8; HASHED];
            for (to, &from) in padded.iter_mut().zip(bytes) {
                *to = from;
            }
            padded
        }
    };
    let (words, _) = padded.as_chunks::<8>();
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    // All ones until the word that holds the NUL.
    let mut before_nul = u64::MAX;
    for &word in words {
        let word = u64::from_le_bytes(word);
        // The lowest set bit marks the first zero byte (false positives only above it).
        let zeros = word.wrapping_sub(LOW_BITS) & !word & HIGH_BITS;
        let kept = (zeros & zeros.wrapping_neg()).wrapping_sub(1) & before_nul;
        h = (h ^ (word & kept))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(29);
        before_nul &= u64::from(zeros == 0).wrapping_neg();
    }
    let h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    (h ^ (h >> 32)) as u32
}
