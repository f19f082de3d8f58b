//! Handshake latencies with bounded memory: a fixed log-bucket histogram of microseconds.
//!
//! Values below [`LINEAR`] µs have a bucket each (exact). Above, every power of two is cut into
//! [`LINEAR`] buckets of equal width (1/16 of an octave), up to [`MAX_US`] (about 71 minutes;
//! longer values count in the last bucket). A percentile is the middle of its bucket, so it is
//! exact below 16 µs and within 1/32 (3.125 %) above; it is also clamped to the exact minimum
//! and maximum seen, and is exactly them for the first and last rank (so a row of one
//! handshake reports that handshake exactly).
//! [`BUCKETS`] u32 counters: 1,856 bytes per histogram, whatever the number of samples.

/// Sub-buckets per power of two, and the exact region below it.
const SUB_BITS: u32 = 4;
pub const LINEAR: u64 = 1 << SUB_BITS;
/// The largest value with a bucket of its own; larger ones count in the last bucket.
pub const MAX_US: u64 = (1 << 32) - 1;
pub const BUCKETS: usize = bucket_of(MAX_US) + 1;
const _: () = assert!(BUCKETS == 464);

#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: [u32; BUCKETS],
    /// Samples, exact (the buckets saturate at u32::MAX, this does not in practice).
    count: u64,
    min_us: u64,
    max_us: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min_us", &self.min_us)
            .field("max_us", &self.max_us)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKETS],
            count: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }
}

/// The bucket of a value in microseconds.
pub const fn bucket_of(us: u64) -> usize {
    let us = if us > MAX_US { MAX_US } else { us };
    if us < LINEAR {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros(); // >= SUB_BITS
    let shift = octave - SUB_BITS;
    let sub = (us >> shift) & (LINEAR - 1);
    (LINEAR + (shift as u64) * LINEAR + sub) as usize
}

/// The lowest and highest value of a bucket.
pub fn bounds(bucket: usize) -> (u64, u64) {
    let bucket = bucket as u64;
    if bucket < LINEAR {
        return (bucket, bucket);
    }
    let shift = (bucket - LINEAR) / LINEAR;
    let sub = (bucket - LINEAR) % LINEAR;
    let low = (LINEAR + sub) << shift;
    (low, low + (1 << shift) - 1)
}

impl Histogram {
    pub fn observe_ns(&mut self, ns: u64) {
        let us = ns / 1000;
        let slot = &mut self.counts[bucket_of(us)];
        *slot = slot.saturating_add(1);
        self.count += 1;
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds another histogram's samples (folding a row into "other").
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.count += other.count;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The nearest-rank percentile `per_mille`/1000 (500: median, 990: p99) in microseconds:
    /// the middle of the bucket holding the ceil(n * q)-th smallest sample, clamped to the
    /// exact minimum and maximum (and exactly them for the first and last rank). None without
    /// samples.
    pub fn percentile_us(&self, per_mille: u64) -> Option<u64> {
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return None;
        }
        let rank = (total * per_mille.min(1000)).div_ceil(1000).max(1);
        if rank == 1 {
            return Some(self.min_us);
        }
        if rank == total {
            return Some(self.max_us);
        }
        let mut seen = 0;
        for (bucket, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                let (low, high) = bounds(bucket);
                let middle = low + (high - low) / 2;
                return Some(middle.clamp(self.min_us, self.max_us));
            }
        }
        Some(self.max_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for bucket in 0..BUCKETS {
            let (low, high) = bounds(bucket);
            assert!(low <= high);
            if bucket > 0 {
                assert_eq!(low, last + 1, "bucket {bucket} follows the previous one");
            }
            assert_eq!(bucket_of(low), bucket);
            assert_eq!(bucket_of(high), bucket);
            last = high;
        }
        assert_eq!(last, MAX_US);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn bucket_width_is_at_most_a_sixteenth_of_its_values() {
        for bucket in LINEAR as usize..BUCKETS {
            let (low, high) = bounds(bucket);
            assert!(
                (high - low + 1) * LINEAR <= low,
                "bucket {bucket}: {low}..={high}"
            );
        }
    }

    #[test]
    fn exact_below_sixteen_microseconds() {
        let mut h = Histogram::default();
        for us in [3, 3, 5, 7, 15] {
            h.observe_ns(us * 1000 + 999);
        }
        assert_eq!(h.percentile_us(500), Some(5));
        assert_eq!(h.percentile_us(990), Some(15));
        assert_eq!(h.percentile_us(0), Some(3));
    }

    #[test]
    fn one_sample_is_exact() {
        let mut h = Histogram::default();
        h.observe_ns(123_456_789);
        assert_eq!(h.percentile_us(500), Some(123_456));
        assert_eq!(h.percentile_us(990), Some(123_456));
        assert_eq!(Histogram::default().percentile_us(500), None);
    }

    /// Against the exact nearest-rank percentiles of a spread of values: within 1/32.
    #[test]
    fn percentiles_within_the_stated_precision() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..50 {
            let mut h = Histogram::default();
            let mut values = Vec::new();
            let n = 1 + round * 37;
            for _ in 0..n {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Log-uniform from 1 µs to about 1000 s.
                let us = 1u64 << (state % 30);
                let us = us + (state >> 32) % us;
                values.push(us);
                h.observe_ns(us * 1000);
            }
            values.sort_unstable();
            for q in [500u64, 990] {
                let rank = (values.len() as u64 * q).div_ceil(1000).max(1);
                let exact = values[rank as usize - 1];
                let got = h.percentile_us(q).unwrap();
                let error = got.abs_diff(exact);
                assert!(
                    error * 32 <= exact || exact < LINEAR && error == 0,
                    "round {round} q {q}: {got} for {exact}"
                );
            }
        }
    }

    #[test]
    fn merge_adds_samples() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        for _ in 0..99 {
            a.observe_ns(10_000);
        }
        b.observe_ns(5_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.percentile_us(500), Some(10));
        assert_eq!(a.percentile_us(990), Some(10));
        assert_eq!(a.percentile_us(1000), Some(5_000));
    }

    #[test]
    fn huge_values_stay_in_the_last_bucket() {
        let mut h = Histogram::default();
        h.observe_ns(u64::MAX);
        h.observe_ns(u64::MAX);
        assert_eq!(h.percentile_us(500), Some(u64::MAX / 1000));
    }
}
