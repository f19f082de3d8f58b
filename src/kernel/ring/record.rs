//! Ring records as bytes: a perf ring's `struct perf_event_header` then a body, and the BPF
//! ring buffer's length word. Pure functions that never panic, so they can be fuzzed: every
//! size field is checked before it is used.

use std::fmt;

pub use crate::kernel::abi::BPF_RINGBUF_HDR_SZ as RINGBUF_HEADER_SIZE;
use crate::kernel::abi::{BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT};
pub use crate::kernel::abi::{
    PERF_EVENT_HEADER_SIZE as HEADER_SIZE, PERF_RECORD_LOST, PERF_RECORD_SAMPLE,
};

/// One record from a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// What a BPF program passed to `bpf_perf_event_output`, plus the kernel's padding (up to
    /// 7 zero bytes, so the raw part ends 8-aligned): decoders must accept a longer slice; or
    /// exactly what it passed to `bpf_ringbuf_output`. `cpu`: the CPU whose perf ring it came
    /// from; None from the BPF ring buffer, which all CPUs share.
    Sample { cpu: Option<u32>, data: &'a [u8] },
    /// The kernel dropped `count` records on this CPU because the ring was full.
    Lost { cpu: u32, count: u64 },
}

/// A record header's type and total size, already checked to be a plausible size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u32,
    pub size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer than 8 bytes: not even a header.
    ShortHeader { len: usize },
    /// The header's size is below 8 or not a multiple of 8; the kernel writes neither.
    BadSize { size: usize },
    /// The header claims more bytes than there are.
    Truncated { size: usize, available: usize },
    /// A sample's raw size word points past the end of its record.
    RawSizeTooBig { raw: u32, room: usize },
    /// A LOST record too short for its id and count.
    ShortLost { size: usize },
    /// A well-formed record of a type we do not read; it is skipped by its size.
    UnknownType { kind: u32, size: usize },
    /// A BPF ring buffer record longer than what the producer has published.
    RingBufTooLong { len: usize, available: usize },
}

/// What the length word of a BPF ring buffer record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingBufHeader {
    /// Reserved and not yet submitted: nothing after it may be read yet.
    Busy,
    /// `len` bytes of sample after the header; `total` is the whole record, padded to 8.
    Sample { len: usize, total: usize },
    /// Its program discarded it: skip `total` bytes.
    Discarded { total: usize },
}

/// Reads a BPF ring buffer record's length word, where `available` bytes are published from
/// the record's start on.
pub fn parse_ringbuf_header(word: u32, available: usize) -> Result<RingBufHeader, RecordError> {
    if word & BPF_RINGBUF_BUSY_BIT != 0 {
        return Ok(RingBufHeader::Busy);
    }
    let len = (word & !(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)) as usize;
    let total = len
        .checked_add(RINGBUF_HEADER_SIZE)
        .map(|n| n.next_multiple_of(8))
        .filter(|&total| total <= available)
        .ok_or(RecordError::RingBufTooLong { len, available })?;
    Ok(if word & BPF_RINGBUF_DISCARD_BIT != 0 {
        RingBufHeader::Discarded { total }
    } else {
        RingBufHeader::Sample { len, total }
    })
}

impl RecordError {
    /// Whether the ring's contents can no longer be trusted (as opposed to a record we merely
    /// skip).
    pub fn is_malformed(&self) -> bool {
        !matches!(self, RecordError::UnknownType { .. })
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::ShortHeader { len } => write!(
                f,
                "perf record of {len} bytes is shorter than its 8-byte header"
            ),
            RecordError::BadSize { size } => {
                write!(f, "perf record size {size} is not a positive multiple of 8")
            }
            RecordError::Truncated { size, available } => {
                write!(
                    f,
                    "perf record claims {size} bytes but only {available} are there"
                )
            }
            RecordError::RawSizeTooBig { raw, room } => {
                write!(
                    f,
                    "perf sample claims {raw} bytes of data but its record has room for {room}"
                )
            }
            RecordError::ShortLost { size } => {
                write!(f, "perf LOST record of {size} bytes is shorter than 24")
            }
            RecordError::UnknownType { kind, size } => {
                write!(f, "perf record of unknown type {kind} ({size} bytes)")
            }
            RecordError::RingBufTooLong { len, available } => write!(
                f,
                "BPF ring buffer record of {len} bytes is longer than the {available} published"
            ),
        }
    }
}

impl std::error::Error for RecordError {}

/// Reads and checks the header at the start of `bytes`.
pub fn parse_header(bytes: &[u8]) -> Result<Header, RecordError> {
    let (Some(kind), Some(size)) = (ne_u32(bytes, 0), bytes.get(6..8)) else {
        return Err(RecordError::ShortHeader { len: bytes.len() });
    };
    let size = usize::from(u16::from_ne_bytes([size[0], size[1]]));
    if size < HEADER_SIZE || size % 8 != 0 {
        return Err(RecordError::BadSize { size });
    }
    Ok(Header { kind, size })
}

/// Parses the record at the start of `bytes` (which may continue past it), read on `cpu`.
pub fn parse_record(cpu: u32, bytes: &[u8]) -> Result<Record<'_>, RecordError> {
    let header = parse_header(bytes)?;
    let Some(record) = bytes.get(..header.size) else {
        return Err(RecordError::Truncated {
            size: header.size,
            available: bytes.len(),
        });
    };
    match header.kind {
        PERF_RECORD_SAMPLE => {
            // PERF_SAMPLE_RAW is our only sample field: u32 size, then the data.
            let body = record.get(HEADER_SIZE + 4..).unwrap_or(&[]);
            let Some(raw) = ne_u32(record, HEADER_SIZE) else {
                return Err(RecordError::RawSizeTooBig { raw: 0, room: 0 });
            };
            match usize::try_from(raw).ok().and_then(|n| body.get(..n)) {
                Some(data) => Ok(Record::Sample {
                    cpu: Some(cpu),
                    data,
                }),
                None => Err(RecordError::RawSizeTooBig {
                    raw,
                    room: body.len(),
                }),
            }
        }
        PERF_RECORD_LOST => match ne_u64(record, HEADER_SIZE + 8) {
            // The u64 before the count is the event id, of no use with one event per ring.
            Some(count) => Ok(Record::Lost { cpu, count }),
            None => Err(RecordError::ShortLost { size: header.size }),
        },
        kind => Err(RecordError::UnknownType {
            kind,
            size: header.size,
        }),
    }
}

fn ne_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(b.try_into().ok()?))
}

fn ne_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_ne_bytes(b.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::sys::fake::{perf_lost_record, perf_record_header, perf_sample_record};

    #[test]
    fn sample_yields_its_raw_data_with_padding() {
        let rec = perf_sample_record(b"hello");
        assert_eq!(
            parse_record(3, &rec),
            Ok(Record::Sample {
                cpu: Some(3),
                data: b"hello\0\0\0\0\0\0\0"
            })
        );
    }

    #[test]
    fn lost_yields_its_count() {
        assert_eq!(
            parse_record(1, &perf_lost_record(77, 17)),
            Ok(Record::Lost { cpu: 1, count: 17 })
        );
    }

    #[test]
    fn record_may_be_followed_by_more_bytes() {
        let mut two = perf_lost_record(0, 1);
        two.extend(perf_sample_record(b"x"));
        assert_eq!(parse_record(0, &two), Ok(Record::Lost { cpu: 0, count: 1 }));
    }

    #[test]
    fn unknown_types_are_skippable_not_malformed() {
        let mut rec = perf_record_header(1, 16);
        rec.resize(16, 0);
        let err = parse_record(0, &rec).unwrap_err();
        assert_eq!(err, RecordError::UnknownType { kind: 1, size: 16 });
        assert!(!err.is_malformed());
    }

    #[test]
    fn bad_sizes_are_malformed() {
        let cases: Vec<(Vec<u8>, RecordError)> = vec![
            (vec![9, 0, 0], RecordError::ShortHeader { len: 3 }),
            (perf_record_header(9, 0), RecordError::BadSize { size: 0 }),
            (perf_record_header(9, 4), RecordError::BadSize { size: 4 }),
            (perf_record_header(9, 20), RecordError::BadSize { size: 20 }),
            (
                perf_record_header(9, 64),
                RecordError::Truncated {
                    size: 64,
                    available: 8,
                },
            ),
            (
                perf_record_header(9, 8),
                RecordError::RawSizeTooBig { raw: 0, room: 0 },
            ),
            (
                perf_record_header(2, 16)
                    .into_iter()
                    .chain([0; 8])
                    .collect(),
                RecordError::ShortLost { size: 16 },
            ),
        ];
        for (bytes, want) in cases {
            let got = parse_record(0, &bytes).unwrap_err();
            assert_eq!(got, want, "{bytes:?}");
            assert!(got.is_malformed());
        }
        let mut rec = perf_sample_record(b"abcd");
        rec[8..12].copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(
            parse_record(0, &rec),
            Err(RecordError::RawSizeTooBig { raw: 5, room: 4 })
        );
        rec[8..12].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_record(0, &rec).unwrap_err().is_malformed());
    }

    #[test]
    fn never_panics_on_arbitrary_prefixes_and_bytes() {
        // A cheap stand-in for the fuzzer: every truncation of valid records, and noise.
        let mut valid = perf_sample_record(&[0xab; 29]);
        valid.extend(perf_lost_record(1, 2));
        for n in 0..=valid.len() {
            let _ = parse_record(0, &valid[..n]);
        }
        let mut x: u32 = 0x1234_5678;
        let mut noise = [0u8; 64];
        for _ in 0..5000 {
            for b in noise.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            noise[0] = [2, 9, 1][(x % 3) as usize];
            noise[6] = (x >> 8) as u8 & 0x78;
            noise[7] = 0;
            let _ = parse_record(0, &noise[..(x as usize >> 10) % 65]);
        }
    }
}
