//! Where the formatters append: any [`Sink`]. A `Vec<u8>` is one; [`Line`] is the one the
//! per-event JSON path builds its line in. That path appends ~40 short pieces per record, and
//! through `Vec::extend_from_slice` (not inlined at opt-level "s") each was a call and a
//! `memmove`: 42% of decode + JSON in a profile. A `Line` copies into a fixed array, pieces
//! of a known size become a few moves, and the line reaches the output in one append.

/// A byte sink the formatters write to.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn put_byte(&mut self, byte: u8);
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    #[inline]
    fn put_byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

/// Room for a whole JSON record but for a long cgroup path (~420 bytes is typical); a longer
/// line spills to the output as it goes.
const ROOM: usize = 1024;

/// One line being built in a fixed array, appended to `out` when full and when dropped.
pub struct Line<'a> {
    out: &'a mut Vec<u8>,
    buf: [u8; ROOM],
    len: usize,
}

impl<'a> Line<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Line<'a> {
        Line {
            out,
            buf: [0; ROOM],
            len: 0,
        }
    }

    /// Moves what is buffered to the output, then `bytes` to the buffer, or straight to the
    /// output if they would not fit in it.
    #[cold]
    fn spill(&mut self, bytes: &[u8]) {
        self.flush();
        match self.buf.get_mut(..bytes.len()) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len = bytes.len();
            }
            None => self.out.extend_from_slice(bytes),
        }
    }

    fn flush(&mut self) {
        self.out.extend_from_slice(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Sink for Line<'_> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        // len <= ROOM, so the sum cannot overflow.
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.spill(bytes),
        }
    }

    #[inline(always)]
    fn put_byte(&mut self, byte: u8) {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
            }
            None => self.spill(&[byte]),
        }
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reaches_the_output_whole_and_in_order_at_any_length() {
        for pieces in [0usize, 1, 3, 100, 1000] {
            let mut want = b"before:".to_vec();
            let mut out = want.clone();
            {
                let mut line = Line::new(&mut out);
                for i in 0..pieces {
                    // Pieces of every size up to past the buffer's room, and single bytes.
                    let piece = vec![b'a' + (i % 26) as u8; i % (ROOM + 7)];
                    line.put(&piece);
                    line.put_byte(b'|');
                    want.extend_from_slice(&piece);
                    want.push(b'|');
                }
            }
            assert_eq!(out, want, "{pieces} pieces");
        }
    }

    #[test]
    fn a_vec_is_a_sink_too() {
        let mut out = Vec::new();
        out.put(b"ab");
        out.put_byte(b'c');
        assert_eq!(out, b"abc");
    }
}
