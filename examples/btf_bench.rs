//! Start-up cost of BTF: read /sys/kernel/btf/vmlinux, parse and validate it, resolve the
//! fields conntrace needs. Prints the median of N runs (default 50) of each stage.
//!
//! cargo run --release --example btf_bench [N]

use std::time::{Duration, Instant};

use conntrace::kernel::btf::{Btf, VMLINUX_BTF};
use conntrace::kernel::probe_object;
use conntrace::session::embedded;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args().nth(1).map_or(Ok(50), |n| n.parse())?;
    // The fields the BTF probe object reads: what conntrace resolves at start-up.
    let object = probe_object::parse(&embedded::probe_object())?;
    let fields = object.field_specs(|_| true);
    let (mut read, mut parse, mut resolve, mut total) = (vec![], vec![], vec![], vec![]);
    let mut type_count = 0;
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        let bytes = std::fs::read(VMLINUX_BTF)?;
        let t1 = Instant::now();
        let btf = Btf::parse(bytes)?;
        let t2 = Instant::now();
        for spec in &fields {
            btf.field(spec)?;
        }
        let t3 = Instant::now();
        type_count = btf.type_count();
        read.push(t1 - t0);
        parse.push(t2 - t1);
        resolve.push(t3 - t2);
        total.push(t3 - t0);
    }
    println!(
        "{VMLINUX_BTF}: {type_count} types; median of {runs} runs: read {:?}, parse+validate {:?}, \
         resolve {} fields {:?}, total {:?}",
        median(read),
        median(parse),
        fields.len(),
        median(resolve),
        median(total)
    );
    Ok(())
}
