//! The running kernel's BTF (/sys/kernel/btf/vmlinux must exist on the test machine).

use std::sync::OnceLock;
use std::time::Instant;

use crate::kernel::btf::{
    builtin_field, builtin_specs, load_file, load_vmlinux, Btf, Field, VMLINUX_BTF,
};

/// The fields conntrace's probes need.
pub const LIVE_SPECS: &[&str] = &[
    "sock_common.skc_dport",
    "sock_common.skc_num",
    "sock_common.skc_family",
    "sock_common.skc_daddr",
    "sock_common.skc_rcv_saddr",
    "sock_common.skc_state",
    "sock_common.skc_v6_daddr",
    "sock_common.skc_v6_rcv_saddr",
    "sock_common.skc_net.net",
    "sock_common.skc_net",
    "sock_common.skc_prot",
    "inet_sock.inet_sport",
    "net.ns.inum",
    "task_struct.files",
    "files_struct.fdt",
    "fdtable.fd",
    "fdtable.max_fds",
    "file.private_data",
    "socket.sk",
    "sock.sk_err",
    "sock.sk_protocol",
];

pub fn live_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(VMLINUX_BTF).expect("this test machine has BTF"))
}

fn live() -> &'static Btf {
    static BTF: OnceLock<Btf> = OnceLock::new();
    BTF.get_or_init(|| Btf::parse(live_bytes().to_vec()).expect("live BTF parses"))
}

fn field(spec: &str) -> Field {
    live().field(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

#[test]
fn sock_common_offsets_through_anonymous_unions() {
    // skc_daddr/skc_rcv_saddr sit in an anonymous struct in an anonymous union, and so do
    // skc_dport/skc_num; layout unchanged on 64-bit kernels for a decade.
    assert_eq!(field("sock_common.skc_daddr"), Field { offset: 0, size: 4 });
    assert_eq!(
        field("sock_common.skc_rcv_saddr"),
        Field { offset: 4, size: 4 }
    );
    assert_eq!(
        field("sock_common.skc_portpair"),
        Field {
            offset: 12,
            size: 4
        }
    );
    assert_eq!(
        field("sock_common.skc_dport"),
        Field {
            offset: 12,
            size: 2
        }
    );
    assert_eq!(
        field("sock_common.skc_num"),
        Field {
            offset: 14,
            size: 2
        }
    );
    assert_eq!(
        field("sock_common.skc_family"),
        Field {
            offset: 16,
            size: 2
        }
    );
    assert_eq!(
        field("sock_common.skc_state"),
        Field {
            offset: 18,
            size: 1
        }
    );
    assert_eq!(field("sock_common.skc_v6_daddr").size, 16);
}

#[test]
fn every_needed_field_resolves_with_a_plausible_size() {
    for spec in LIVE_SPECS {
        let f = field(spec);
        assert!(matches!(f.size, 1 | 2 | 4 | 8 | 16), "{spec}: {f:?}");
    }
    // Pointers on this 64-bit kernel.
    for spec in [
        "task_struct.files",
        "files_struct.fdt",
        "fdtable.fd",
        "file.private_data",
        "socket.sk",
        "sock_common.skc_net.net",
        "sock_common.skc_net",
        "sock_common.skc_prot",
    ] {
        assert_eq!(field(spec).size, 8, "{spec}");
    }
    assert_eq!(field("fdtable.max_fds").size, 4);
    assert_eq!(field("net.ns.inum").size, 4);
    assert_eq!(field("sock.sk_err").size, 4);
    // skc_net is the first step of a path through a typedef'd anonymous struct.
    assert_eq!(
        field("sock_common.skc_net.net").offset,
        field("sock_common.skc_net").offset
    );
}

#[test]
fn sock_fields_lie_beyond_sock_common() {
    let sock_common_size = field("sock.__sk_common").size;
    assert!(field("sock.sk_err").offset >= sock_common_size);
    assert!(field("sock.sk_protocol").offset >= sock_common_size);
    // struct sock begins with its sock_common, so the same field resolves through it.
    assert_eq!(
        field("sock.__sk_common.skc_dport"),
        field("sock_common.skc_dport")
    );
}

#[test]
fn bitfield_is_refused() {
    let message = live()
        .field("sock_common.skc_reuse")
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "sock_common.skc_reuse is a bitfield in this kernel's BTF; conntrace reads whole bytes and cannot use it"
    );
}

#[test]
fn unknown_struct_and_field_are_reported() {
    assert_eq!(
        live().field("sock_common.skc_foo").unwrap_err().to_string(),
        "struct sock_common has no field skc_foo in this kernel's BTF"
    );
    assert_eq!(
        live().field("no_such_struct_zz.x").unwrap_err().to_string(),
        "struct no_such_struct_zz is not in this kernel's BTF (needed for no_such_struct_zz.x)"
    );
}

#[test]
fn builtin_table_matches_this_kernel() {
    let mut checked = 0;
    for spec in builtin_specs() {
        assert_eq!(builtin_field(spec), Some(field(spec)), "{spec}");
        checked += 1;
    }
    assert_eq!(checked, 10);
    assert_eq!(builtin_field("sock.sk_err"), None);
}

#[test]
fn load_reads_vmlinux_and_files() {
    let btf = load_vmlinux().expect("vmlinux");
    assert_eq!(btf.type_count(), live().type_count());
    let btf = load_file(VMLINUX_BTF.as_ref()).expect("path");
    assert_eq!(btf.field("socket.sk"), Ok(field("socket.sk")));

    let message = load_file("/nonexistent/vmlinux".as_ref())
        .err()
        .expect("missing file")
        .to_string();
    assert!(
        message.starts_with("cannot use the BTF file /nonexistent/vmlinux: cannot read it:"),
        "{message}"
    );
}

#[test]
fn start_up_cost_is_small() {
    // Debug builds are ~10x slower than release; `cargo run --release --example btf_bench`
    // gives the real number. This prints the timings (use --nocapture) and bounds them loosely.
    let start = Instant::now();
    let bytes = std::fs::read(VMLINUX_BTF).expect("read");
    let read = start.elapsed();
    let btf = Btf::parse(bytes).expect("parse");
    let parsed = start.elapsed();
    for spec in LIVE_SPECS {
        btf.field(spec).expect("resolve");
    }
    let total = start.elapsed();
    println!(
        "live BTF, {} types: read {read:?}, parse {:?}, resolve {} fields {:?}, total {total:?}",
        btf.type_count(),
        parsed - read,
        LIVE_SPECS.len(),
        total - parsed
    );
    assert!(total.as_millis() < 2000, "BTF start-up took {total:?}");
}
