//! Integers into a byte buffer without `format!`: the per-event path must not allocate or go
//! through `core::fmt`.

use super::sink::Sink;

/// Appends `n` in decimal.
pub fn push_u64(out: &mut impl Sink, n: u64) {
    let mut buf = [0u8; 20]; // u64::MAX has 20 digits
    let start = write_backwards(&mut buf, n);
    out.put(buf.get(start..).unwrap_or_default());
}

/// Appends `n` in decimal, zero-padded on the left to at least `width` digits.
pub fn push_u64_zero_padded(out: &mut impl Sink, n: u64, width: usize) {
    let mut buf = [0u8; 20];
    let start = write_backwards(&mut buf, n);
    let digits = buf.len() - start;
    for _ in digits..width {
        out.put_byte(b'0');
    }
    out.put(buf.get(start..).unwrap_or_default());
}

/// Appends `n` in decimal with a leading `-` when negative.
pub fn push_i64(out: &mut impl Sink, n: i64) {
    if n < 0 {
        out.put_byte(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Appends `n` as exactly 16 lowercase hex digits.
pub fn push_hex16(out: &mut impl Sink, n: u64) {
    let mut digits = [0u8; 16];
    for (i, d) in digits.iter_mut().enumerate() {
        *d = HEX[((n >> ((15 - i) * 4)) & 0xf) as usize];
    }
    out.put(&digits);
}

/// Appends `n` in lowercase hex without leading zeros ("0" for zero).
pub fn push_hex_short(out: &mut impl Sink, n: u16) {
    let mut started = false;
    for shift in (0..4).rev() {
        let nibble = (n >> (shift * 4)) & 0xf;
        if nibble != 0 || started || shift == 0 {
            out.put_byte(HEX[usize::from(nibble)]);
            started = true;
        }
    }
}

pub const HEX: &[u8; 16] = b"0123456789abcdef";

/// "00" to "99", two digits at a time: half the divisions of one digit at a time.
const PAIRS: [u8; 200] = {
    let mut table = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        table[2 * i] = b'0' + (i / 10) as u8;
        table[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    table
};

/// Writes the digits of `n` at the end of `buf`; returns where they start.
fn write_backwards(buf: &mut [u8; 20], mut n: u64) -> usize {
    let mut i = buf.len();
    // A u64 has at most 20 digits: at most 9 pairs here and 2 digits below, so `i` never
    // underflows.
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn decimal() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            4026531840,
            1 << 53,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(text(|o| push_u64(o, n)), n.to_string());
        }
        for n in [0, -1, 42, i64::MIN, i64::MAX] {
            assert_eq!(text(|o| push_i64(o, n)), n.to_string());
        }
    }

    #[test]
    fn every_length_of_number_two_digits_at_a_time() {
        // Each count of digits, odd and even, at its edges: 0-1000 whole, then 10^k - 1,
        // 10^k and 10^k + 1 up to u64's 20 digits.
        let mut numbers: Vec<u64> = (0..=1000).collect();
        for k in 3..=19 {
            let p = 10u64.pow(k);
            numbers.extend([p - 1, p, p + 1, p / 3 * 2]);
        }
        for n in numbers {
            assert_eq!(text(|o| push_u64(o, n)), n.to_string());
        }
    }

    #[test]
    fn zero_padded() {
        assert_eq!(text(|o| push_u64_zero_padded(o, 7, 2)), "07");
        assert_eq!(text(|o| push_u64_zero_padded(o, 123, 6)), "000123");
        assert_eq!(text(|o| push_u64_zero_padded(o, 123456, 6)), "123456");
        assert_eq!(text(|o| push_u64_zero_padded(o, 12345, 2)), "12345");
        assert_eq!(text(|o| push_u64_zero_padded(o, 0, 4)), "0000");
    }

    #[test]
    fn hex() {
        assert_eq!(
            text(|o| push_hex16(o, 0x9f3a_0c22_e1d0_4b11)),
            "9f3a0c22e1d04b11"
        );
        assert_eq!(text(|o| push_hex16(o, 1)), "0000000000000001");
        assert_eq!(text(|o| push_hex_short(o, 0)), "0");
        assert_eq!(text(|o| push_hex_short(o, 0x0db8)), "db8");
        assert_eq!(text(|o| push_hex_short(o, 0xffff)), "ffff");
        assert_eq!(text(|o| push_hex_short(o, 0x1000)), "1000");
    }
}
