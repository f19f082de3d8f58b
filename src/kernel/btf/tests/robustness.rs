//! Hostile input: every truncation and every single-bit flip of a small blob, random type
//! sections, and bit flips in the live BTF must give a result or an error, never a panic.

use super::builder::{sample, BtfBuilder, SAMPLE_SPECS};
use super::live::{live_bytes, LIVE_SPECS};
use crate::kernel::btf::Btf;

/// Parses and, if that works, resolves every spec: any panic fails the test.
fn exercise(bytes: Vec<u8>, specs: &[&str]) -> bool {
    match Btf::parse(bytes) {
        Ok(btf) => {
            for spec in specs {
                let _ = btf.field(spec);
            }
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    let blob = sample();
    for len in 0..blob.len() {
        let mut bytes = blob.clone();
        bytes.truncate(len);
        assert!(
            !exercise(bytes, SAMPLE_SPECS),
            "truncated to {len} bytes was accepted"
        );
    }
    assert!(exercise(blob, SAMPLE_SPECS));
}

#[test]
fn every_bit_flip_is_survived() {
    let blob = sample();
    let mut accepted = 0;
    for bit in 0..blob.len() * 8 {
        let mut bytes = blob.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        accepted += usize::from(exercise(bytes, SAMPLE_SPECS));
    }
    // Flips in names and offsets keep the blob valid; flips in the header do not.
    assert!(
        accepted > 0 && accepted < blob.len() * 8,
        "{accepted} accepted"
    );
}

/// xorshift64: deterministic pseudo-random input without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_type_sections_are_survived() {
    let mut rng = Rng(0x5eed_b7f0_1234_5678);
    for _ in 0..3000 {
        let mut b = BtfBuilder::new();
        for name in ["int", "outer", "inner", "a", "b", "x", ""] {
            b.string(name);
        }
        let words: Vec<u32> = (0..rng.next() % 40)
            .map(|_| match rng.next() % 4 {
                // Plausible info words: small kind, small vlen, maybe kind_flag.
                0 => ((rng.next() % 21) as u32) << 24 | (rng.next() % 4) as u32,
                1 => (rng.next() % 12) as u32,
                2 => (rng.next() % 24) as u32 * 8,
                _ => rng.next() as u32,
            })
            .collect();
        b.words(&words);
        exercise(b.build(), SAMPLE_SPECS);
    }
}

#[test]
fn bit_flips_in_live_btf_are_survived() {
    let live = live_bytes();
    let mut rng = Rng(0x0bad_cafe_f00d_1234);
    // Parsing several MB in a debug build is slow: a few dozen flips, plus the header.
    let positions: Vec<usize> = (0..24)
        .chain((0..24).map(|_| rng.next() as usize % live.len()))
        .collect();
    for pos in positions {
        let mut bytes = live.to_vec();
        bytes[pos] ^= 1 << (rng.next() % 8);
        exercise(bytes, LIVE_SPECS);
    }
}
