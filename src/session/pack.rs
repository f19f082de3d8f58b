//! The byte-oriented LZ77 code the embedded probe objects are stored in: build.rs packs them
//! (`pack`, this file included there by path), the binary unpacks the one it loads (`unpack`).
//! BPF instructions repeat a lot and the two objects are nearly the same programs, so the
//! pair packs to about a fifth of its size; without it they were the largest part of the binary.
//!
//! The stream is a series of tokens, each starting with a LEB128 number `t`:
//! - `t` even: `t / 2` literal bytes follow (at least one);
//! - `t` odd: copy `t / 2 + MIN_MATCH` bytes from `d` bytes back in the output, where `d` is the
//!   LEB128 number that follows (at least 1; a copy may overlap what it writes).

/// Shortest copy a token codes; shorter repeats go as literals.
pub const MIN_MATCH: usize = 4;

/// Decodes `packed` until the output is `len` bytes long (the stream may go on beyond).
/// Never panics: on a malformed or short stream it returns what it decoded so far, so the
/// result is shorter than `len` (build.rs checks that the embedded stream round-trips).
pub fn unpack(packed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut at = 0;
    while out.len() < len {
        let Some(token) = leb128(packed, &mut at) else {
            break;
        };
        let count = token / 2;
        if token % 2 == 0 {
            let Some(literals) = at.checked_add(count).and_then(|end| packed.get(at..end)) else {
                break;
            };
            out.extend_from_slice(literals);
            at += count;
        } else {
            let Some(back) = leb128(packed, &mut at) else {
                break;
            };
            if back == 0 || back > out.len() {
                break;
            }
            let count = count.saturating_add(MIN_MATCH).min(len - out.len());
            let from = out.len() - back;
            if back >= count {
                out.extend_from_within(from..from + count);
            } else {
                for i in from..from + count {
                    out.push(out[i]);
                }
            }
        }
    }
    out.truncate(len);
    out
}

/// Reads one LEB128 number at `*at`, advancing it; `None` past the end or beyond 64 bits.
fn leb128(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return usize::try_from(value).ok();
        }
    }
    None
}

fn put_leb128(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Longest run of literals one token carries before another starts (any would do).
const MAX_LITERALS: usize = 1 << 16;
/// Candidates looked at per position: enough for these objects, fast at build time.
const CHAIN: usize = 512;
const HASH_BITS: u32 = 16;

fn hash(bytes: &[u8]) -> usize {
    let word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    (word.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize
}

/// Encodes `data` (greedy matching over hash chains of 4-byte prefixes, the whole input as the
/// window).
pub fn pack(data: &[u8]) -> Vec<u8> {
    const NONE: usize = usize::MAX;
    let mut head = vec![NONE; 1 << HASH_BITS];
    let mut prev = vec![NONE; data.len()];
    let mut out = Vec::new();
    let mut literals_from = 0;
    let mut at = 0;
    let insert = |head: &mut Vec<usize>, prev: &mut Vec<usize>, pos: usize| {
        if pos + MIN_MATCH <= data.len() {
            let h = hash(&data[pos..]);
            prev[pos] = head[h];
            head[h] = pos;
        }
    };
    while at < data.len() {
        let (mut best_len, mut best_back) = (0, 0);
        if at + MIN_MATCH <= data.len() {
            let mut candidate = head[hash(&data[at..])];
            let mut tries = 0;
            while candidate != NONE && tries < CHAIN {
                let len = data[candidate..]
                    .iter()
                    .zip(&data[at..])
                    .take_while(|(a, b)| a == b)
                    .count();
                if len > best_len {
                    (best_len, best_back) = (len, at - candidate);
                }
                candidate = prev[candidate];
                tries += 1;
            }
        }
        if best_len >= MIN_MATCH {
            flush_literals(&mut out, &data[literals_from..at]);
            put_leb128(&mut out, ((best_len - MIN_MATCH) << 1) | 1);
            put_leb128(&mut out, best_back);
            for pos in at..at + best_len {
                insert(&mut head, &mut prev, pos);
            }
            at += best_len;
            literals_from = at;
        } else {
            insert(&mut head, &mut prev, at);
            at += 1;
        }
    }
    flush_literals(&mut out, &data[literals_from..]);
    out
}

fn flush_literals(out: &mut Vec<u8>, literals: &[u8]) {
    for run in literals.chunks(MAX_LITERALS) {
        put_leb128(out, run.len() << 1);
        out.extend_from_slice(run);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8]) {
        let packed = pack(data);
        assert_eq!(unpack(&packed, data.len()), data);
        // A prefix decodes from the same stream.
        for len in [0, data.len() / 3, data.len().saturating_sub(1)] {
            assert_eq!(unpack(&packed, len), &data[..len]);
        }
    }

    #[test]
    fn round_trips() {
        round_trip(b"");
        round_trip(b"a");
        round_trip(b"abc");
        round_trip(&[7; 1000]);
        round_trip(b"abcdabcdabcdabcdXabcdabcd");
        let mut noise = Vec::new();
        let mut x: u32 = 1;
        for _ in 0..200_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            noise.push((x >> 24) as u8);
        }
        round_trip(&noise);
        let repeated: Vec<u8> = noise[..5000].repeat(3);
        let packed = pack(&repeated);
        assert!(packed.len() < 5100, "{}", packed.len());
        round_trip(&repeated);
    }

    #[test]
    fn malformed_streams_stop_short_without_panicking() {
        // A copy from before the start, a zero distance, literals past the end, a number that
        // never ends.
        for packed in [
            &[0x03, 0x05][..],
            &[0x02, b'x', 0x01, 0x00],
            &[0x08, b'x'],
            &[0xff; 12],
            &[0x01],
        ] {
            assert!(unpack(packed, 100).len() < 100);
        }
        assert_eq!(unpack(&[0x02, b'x', 0x7f, 0x01], 10), [b'x'; 10]);
    }
}
