//! The `--help` and `--version` texts.

use super::spec::SPECS;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `--help` text: usage, every option with a one-line description, examples.
pub fn help() -> String {
    let mut text = String::from(
        "conntrace: see every TCP connection this machine makes and accepts\n\
         \n\
         Usage: conntrace [OPTIONS]\n\
         \x20      conntrace check [--btf PATH|none]   report what this kernel supports\n\
         \n\
         Options:\n",
    );
    for s in &SPECS {
        let short = s
            .short
            .map(|c| format!("-{}, ", c as char))
            .unwrap_or_default();
        let value = s.value.map(|v| format!(" {v}")).unwrap_or_default();
        let left = format!("  {short:>4}--{}{value}", s.long);
        text.push_str(&format!("{left:<29} {}\n", s.help));
    }
    text.push_str(
        "\n\
         Examples:\n\
         \x20 conntrace                      every connect, outcome and accept, as a table\n\
         \x20 conntrace -j > conns.jsonl     the same as JSON lines\n\
         \x20 conntrace -p 1234 -t           one process, with timestamps\n\
         \x20 conntrace -P 80,443 -4         IPv4 connections on ports 80 and 443\n\
         \x20 conntrace --failed -d 60       connection failures during one minute\n\
         \x20 conntrace -e accept -n 10      the next ten accepted connections\n\
         \x20 conntrace -c 10                counts by process and peer every 10 s (and at\n\
         \x20                                Ctrl-C): connects, failures, bytes, latency\n\
         \x20 conntrace --containers         which container made each connection (JSON\n\
         \x20                                always has cgroup_path, container_id, pod_uid)\n\
         \x20 conntrace --container 4f1c     the connections of one container\n\
         \x20 conntrace -q --metrics 0.0.0.0:9479   Prometheus metrics only\n\
         \x20 conntrace --btf ./vmlinux      layouts from a vmlinux with BTF (a file named\n\
         \x20                                \"none\" is ./none)\n\
         \x20 conntrace check --btf none     can this kernel run without BTF?\n\
         \n\
         Exit status: 0 done, 1 tracing failed, 2 bad command line.\n",
    );
    text
}

/// The `--version` text.
pub fn version() -> String {
    format!("conntrace {VERSION}\n")
}
