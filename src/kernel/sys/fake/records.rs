//! Perf records as the kernel writes them into a ring, for tests to push into a [`FakeRing`].
//!
//! [`FakeRing`]: super::FakeRing

/// `PERF_RECORD_SAMPLE` with `PERF_SAMPLE_RAW`, as `bpf_perf_event_output` writes it: header,
/// u32 raw size, the data, zero padding so the raw part plus its size word is 8-aligned.
pub fn perf_sample_record(data: &[u8]) -> Vec<u8> {
    let raw = (4 + data.len()).next_multiple_of(8) - 4;
    let size = 8 + 4 + raw;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&9u32.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&(size as u16).to_ne_bytes());
    out.extend_from_slice(&(raw as u32).to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(size, 0);
    out
}

/// `PERF_RECORD_LOST`: header, u64 id, u64 count of lost records.
pub fn perf_lost_record(id: u64, lost: u64) -> Vec<u8> {
    let mut out = perf_record_header(2, 24);
    out.extend_from_slice(&id.to_ne_bytes());
    out.extend_from_slice(&lost.to_ne_bytes());
    out
}

/// A bare `struct perf_event_header` (type, misc 0, size), for hand-made or malformed records.
pub fn perf_record_header(kind: u32, size: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&size.to_ne_bytes());
    out
}
