//! Arbitrary bytes as the contents of a CPU's perf ring, then as the BPF ring buffer's: records
//! are parsed one after another (as the ring readers do, skipping what they may skip),
//! samples decoded into events, and events formatted as text and JSON. Nothing on the way may
//! panic.
#![no_main]

use conntrace::app::output::{Clock, Format, Printer};
use conntrace::kernel::ring::{
    parse_record, parse_ringbuf_header, Record, RingBufHeader, RINGBUF_HEADER_SIZE,
};
use conntrace::session::event::{decode_bytes, Loss, LossReason, SockIds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ids = SockIds::new();
    let mut printers = [
        Printer::new(Format::Text { timestamps: true }, Clock::with_offset(0)),
        Printer::new(Format::Json, Clock::with_offset(i64::MAX)),
    ];
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let size = match parse_record(0, rest) {
            Ok(Record::Sample { data, .. }) => {
                match decode_bytes(data, &ids) {
                    Ok(event) => {
                        for p in printers.iter_mut() {
                            p.event(&event, &mut out);
                        }
                    }
                    Err(e) => out.extend_from_slice(e.to_string().as_bytes()),
                }
                record_size(rest)
            }
            Ok(Record::Lost { cpu, count }) => {
                // As the reader reports a perf lost record.
                let loss = Loss {
                    cpu: Some(cpu),
                    count,
                    reason: LossReason::RingFull,
                };
                for p in printers.iter_mut() {
                    p.lost(&loss, 0, &mut out);
                }
                record_size(rest)
            }
            Err(e) if !e.is_malformed() => record_size(rest),
            Err(e) => {
                out.extend_from_slice(e.to_string().as_bytes());
                break;
            }
        };
        rest = rest.get(size..).unwrap_or_default();
        out.clear();
    }
    // The same bytes as the BPF ring buffer's data, from its start to its producer position.
    let mut at = 0;
    while let Some(word) = data.get(at..at + 4) {
        let word = u32::from_ne_bytes([word[0], word[1], word[2], word[3]]);
        match parse_ringbuf_header(word, data.len() - at) {
            Ok(RingBufHeader::Busy) | Err(_) => break,
            Ok(RingBufHeader::Discarded { total }) => at += total,
            Ok(RingBufHeader::Sample { len, total }) => {
                let sample = &data[at + RINGBUF_HEADER_SIZE..at + RINGBUF_HEADER_SIZE + len];
                if let Ok(event) = decode_bytes(sample, &ids) {
                    for p in printers.iter_mut() {
                        p.event(&event, &mut out);
                    }
                }
                at += total;
            }
        }
        out.clear();
    }
});

/// The size of the record `parse_record` just accepted (at least 8, so the loop advances).
fn record_size(bytes: &[u8]) -> usize {
    conntrace::kernel::ring::parse_header(bytes).map_or(bytes.len(), |h| h.size)
}
