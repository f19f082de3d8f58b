//! ctload: loopback TCP load for conntrace's benchmarks (scripts/bench.sh) and soak tests.
//! See `ctload --help`.

mod args;
mod load;
mod report;
mod sock;
mod syscalls;

use args::Parsed;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let opts = match args::parse(&argv) {
        Ok(Parsed::Run(opts)) => opts,
        Ok(Parsed::Syscalls(opts)) => {
            let t = syscalls::time_getppid(opts.count);
            if opts.report_json {
                println!("{}", syscalls::json(&t));
            } else {
                println!("{}", syscalls::text(&t));
            }
            return;
        }
        Ok(Parsed::Help) => {
            print!("{}", args::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match load::run(&opts) {
        Ok(r) => {
            if opts.report_json {
                println!("{}", report::json(&r));
            } else {
                println!("{}", report::text(&r));
            }
            std::process::exit(if r.complete() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("ctload: {e}");
            std::process::exit(1);
        }
    }
}
