//! Arbitrary bytes as a `--btf` file (raw BTF, or ELF with a `.BTF` section), then every field
//! lookup the probes make and a few that walk nested and anonymous members: Ok or an error,
//! never a panic, a hang or an allocation out of proportion to the input.
#![no_main]

use conntrace::kernel::btf::{builtin_specs, Btf};
use libfuzzer_sys::fuzz_target;

/// Specs that exercise each resolver path: plain members, members inside anonymous unions,
/// nested paths through an embedded struct, a pointer in the middle, arrays, and bad syntax.
const SPECS: &[&str] = &[
    "sock.sk_err",
    "sock.sk_protocol",
    "sock.__sk_common.skc_dport",
    "sock.__sk_common.skc_net.net",
    "net.ns.inum",
    "socket.sk",
    "file.private_data",
    "fdtable.fd",
    "fdtable.max_fds",
    "files_struct.fdt",
    "task_struct.files",
    "sock_common.skc_net",
    "sock_common.skc_cookie",
    "sock_common.skc_addrpair",
    "a.b",
    "a.b.c.d.e",
    "sock_common.",
    ".x",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::from_file_bytes(data.to_vec()) else {
        return;
    };
    let _ = btf.type_count();
    for spec in SPECS.iter().copied().chain(builtin_specs()) {
        if let Err(e) = btf.field(spec) {
            let _ = e.to_string();
        }
    }
});
