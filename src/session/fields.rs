//! Where struct-field offsets come from: the kernel's BTF, or (without BTF) the built-in
//! table of fields whose layout has been stable for a decade, the fields the layout discovery
//! found at start-up (`session::discover`), and the tracepoints' own tracefs `format` files
//! for the records the tracepoint programs read.

use std::cell::RefCell;

use crate::kernel::attach;
use crate::kernel::btf::{self, Btf};
use crate::kernel::load::{FieldOffset, FieldResolver};
use crate::kernel::sys::Sys;
use crate::kernel::tracepoint_format::{self, FormatField};
use crate::session::features::BtfFacts;
use crate::session::options::BtfSource;

/// The tracepoint records the probes read, by their BTF struct name, and where tracefs
/// describes each ("category/name").
const TRACEPOINT_RECORDS: [(&str, &str); 1] = [(
    "trace_event_raw_inet_sock_set_state",
    "sock/inet_sock_set_state",
)];

/// Without BTF: each tracepoint record's fields from its format file, or why it is unknown.
pub struct TracepointFormats(Vec<(&'static str, Result<Vec<FormatField>, String>)>);

impl TracepointFormats {
    /// Reads the format file of every record in [`TRACEPOINT_RECORDS`].
    pub fn read(sys: &dyn Sys) -> TracepointFormats {
        let root = attach::tracefs_root(sys).map_err(|e| e.to_string());
        TracepointFormats(
            TRACEPOINT_RECORDS
                .iter()
                .map(|&(record, event)| {
                    let fields = root.clone().and_then(|root| {
                        let path = root.join("events").join(event).join("format");
                        let bytes = sys
                            .read_file(&path)
                            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                        tracepoint_format::parse(&String::from_utf8_lossy(&bytes))
                            .map_err(|e| format!("{}: {e}", path.display()))
                    });
                    (record, fields)
                })
                .collect(),
        )
    }

    /// `Some` when `spec` names a tracepoint record ("trace_event_raw_X.field").
    fn field(&self, spec: &str) -> Option<Result<FieldOffset, String>> {
        let (record, name) = spec.split_once('.')?;
        let (_, fields) = self.0.iter().find(|(r, _)| *r == record)?;
        Some(match fields {
            Err(why) => Err(why.clone()),
            Ok(fields) => fields
                .iter()
                .find(|f| f.name == name)
                .map(|f| FieldOffset {
                    offset: f.offset,
                    size: f.size,
                })
                .ok_or_else(|| format!("the tracepoint's format has no field {name}")),
        })
    }
}

/// What tracing without BTF cannot do, for stderr and `conntrace check`.
pub const NO_BTF_LIMITS: &str = "the tracepoint backend (kprobe backend only)";

/// The fields outside the built-in table that the probes read without BTF, found at start-up
/// by the layout discovery (`session::discover`) before the programs load.
pub const DISCOVERED_SPECS: [&str; 6] = [
    "sock.sk_err",
    "inet_sock.inet_sport",
    "net.ns.inum",
    "tcp_sock.bytes_acked",
    "tcp_sock.bytes_received",
    "sock_common.skc_flags",
];

/// Without BTF: the tracepoints' formats, and the fields the layout discovery found.
pub struct NoBtf {
    formats: TracepointFormats,
    discovered: Vec<(&'static str, FieldOffset)>,
}

pub enum FieldSource {
    /// `kernel`: the running kernel's own BTF (not a file given with --btf), which alone
    /// names what a `tp_btf` program attaches to; `trace_ids` caches those lookups.
    Btf {
        btf: Btf,
        kernel: bool,
        trace_ids: RefCell<Vec<(String, Option<u32>)>>,
    },
    /// No BTF: only the fields of `btf::builtin_field`, those the layout discovery found,
    /// and the tracepoints' formats.
    Builtin(NoBtf),
}

impl FieldSource {
    /// `--btf PATH`, `--btf none`, or the running kernel's BTF.
    pub fn open(sys: &dyn Sys, source: &BtfSource) -> Result<FieldSource, String> {
        match source {
            BtfSource::None => Ok(FieldSource::Builtin(NoBtf {
                formats: TracepointFormats::read(sys),
                discovered: Vec::new(),
            })),
            BtfSource::Path(path) => btf::load_file(path)
                .map(|btf| FieldSource::with_btf(btf, false))
                // The error names the file already.
                .map_err(|e| e.to_string()),
            // A kernel built without BTF (most embedded ones) has no file there at all: use
            // the built-in layout, which the self-test proves before anything is printed. A
            // file that is there but unreadable or damaged is an error, not a quiet fallback.
            BtfSource::Kernel if !std::path::Path::new(btf::VMLINUX_BTF).exists() => {
                FieldSource::open(sys, &BtfSource::None)
            }
            BtfSource::Kernel => btf::load_vmlinux()
                .map(|btf| FieldSource::with_btf(btf, true))
                .map_err(|e| {
                    format!(
                        "cannot read the kernel's BTF ({}): {e}; pass --btf PATH or --btf none",
                        btf::VMLINUX_BTF
                    )
                }),
        }
    }

    /// Without BTF: the offsets the layout discovery found (each spec of
    /// [`DISCOVERED_SPECS`]), which then resolve like the built-in ones. With BTF: nothing.
    pub fn set_discovered(&mut self, fields: &[(&'static str, FieldOffset)]) {
        if let FieldSource::Builtin(no_btf) = self {
            no_btf.discovered = fields.to_vec();
        }
    }

    fn with_btf(btf: Btf, kernel: bool) -> FieldSource {
        FieldSource::Btf {
            btf,
            kernel,
            trace_ids: RefCell::new(Vec::new()),
        }
    }

    pub fn has_btf(&self) -> bool {
        matches!(self, FieldSource::Btf { .. })
    }

    /// What the running kernel's own BTF tells the feature probes (nothing without it).
    pub fn kernel_facts(&self) -> BtfFacts {
        let FieldSource::Btf {
            btf, kernel: true, ..
        } = self
        else {
            return BtfFacts::default();
        };
        BtfFacts {
            state_tracepoint: self.trace_id(crate::session::STATE_TRACEPOINT),
            hash_mem_alloc: Some(btf.field("bpf_htab.ma").is_ok()),
        }
    }

    /// The running kernel's BTF id of `btf_trace_NAME`, looked up once; None without the
    /// kernel's own BTF or where it has no such tracepoint.
    pub fn trace_id(&self, name: &str) -> Option<u32> {
        let FieldSource::Btf {
            btf,
            kernel: true,
            trace_ids,
        } = self
        else {
            return None;
        };
        if let Some((_, id)) = trace_ids.borrow().iter().find(|(n, _)| n == name) {
            return *id;
        }
        let id = btf.typedef_id(&format!("btf_trace_{name}"));
        trace_ids.borrow_mut().push((name.to_string(), id));
        id
    }

    pub fn describe(&self) -> &'static str {
        match self {
            FieldSource::Btf { .. } => "BTF",
            FieldSource::Builtin(_) => {
                "the built-in sock_common layout and tracefs formats (no BTF)"
            }
        }
    }
}

impl FieldResolver for FieldSource {
    fn field(&self, spec: &str) -> Result<FieldOffset, String> {
        match self {
            FieldSource::Btf { btf, .. } => btf
                .field(spec)
                .map(|f| FieldOffset {
                    offset: f.offset,
                    size: f.size,
                })
                .map_err(|e| e.to_string()),
            FieldSource::Builtin(no_btf) => {
                if let Some(found) = no_btf.formats.field(spec) {
                    return found;
                }
                if let Some(&(_, found)) = no_btf.discovered.iter().find(|(s, _)| *s == spec) {
                    return Ok(found);
                }
                if DISCOVERED_SPECS.contains(&spec) {
                    return Err(format!(
                        "{spec} is found at start-up by the layout discovery, which has not run"
                    ));
                }
                btf::builtin_field(spec)
                    .map(|f| FieldOffset {
                        offset: f.offset,
                        size: f.size,
                    })
                    .ok_or_else(|| {
                        format!(
                            "{spec} is not in the built-in layout and there is no BTF to find it"
                        )
                    })
            }
        }
    }

    fn tracepoint_btf_id(&self, name: &str) -> Result<u32, String> {
        self.trace_id(name).ok_or_else(|| match self {
            FieldSource::Btf { kernel: true, .. } => {
                format!("the kernel's BTF has no btf_trace_{name}")
            }
            _ => format!(
                "tp_btf/{name} needs the running kernel's own BTF ({}) to name its tracepoint",
                btf::VMLINUX_BTF
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::sys::fake::FakeSys;

    const FORMAT: &str = "/sys/kernel/tracing/events/sock/inet_sock_set_state/format";

    fn builtin(fake: &FakeSys) -> FieldSource {
        fake.set_file("/sys/kernel/tracing/events/header_page", "x");
        FieldSource::open(fake, &BtfSource::None).unwrap()
    }

    #[test]
    fn without_btf_tracepoint_fields_come_from_the_format_file() {
        let fake = FakeSys::new();
        fake.set_file(
            FORMAT,
            "format:\n\tfield:__u8 protocol;\toffset:30;\tsize:1;\tsigned:0;\n\
             \tfield:__u8 saddr[4];\toffset:31;\tsize:4;\tsigned:0;\n",
        );
        let f = builtin(&fake);
        let at = |spec: &str| f.field(spec);
        assert_eq!(
            at("trace_event_raw_inet_sock_set_state.saddr"),
            Ok(FieldOffset {
                offset: 31,
                size: 4
            })
        );
        assert_eq!(
            at("trace_event_raw_inet_sock_set_state.protocol"),
            Ok(FieldOffset {
                offset: 30,
                size: 1
            })
        );
        assert_eq!(
            at("trace_event_raw_inet_sock_set_state.daddr"),
            Err("the tracepoint's format has no field daddr".into())
        );
        // sock_common still comes from the built-in table.
        assert!(at("sock_common.skc_dport").is_ok());
    }

    #[test]
    fn discovered_fields_resolve_once_set() {
        let fake = FakeSys::new();
        let mut f = builtin(&fake);
        for spec in DISCOVERED_SPECS {
            let e = f.field(spec).unwrap_err();
            assert!(e.contains("layout discovery, which has not run"), "{e}");
        }
        assert_eq!(
            f.field("sock.sk_protocol"),
            Err(
                "sock.sk_protocol is not in the built-in layout and there is no BTF to find it"
                    .into()
            )
        );
        let at = |offset, size| FieldOffset { offset, size };
        f.set_discovered(&[
            ("sock.sk_err", at(284, 4)),
            ("inet_sock.inet_sport", at(782, 2)),
            ("net.ns.inum", at(136, 4)),
            ("tcp_sock.bytes_acked", at(1824, 8)),
            ("tcp_sock.bytes_received", at(1752, 8)),
            ("sock_common.skc_flags", at(96, 8)),
        ]);
        assert_eq!(f.field("sock.sk_err"), Ok(at(284, 4)));
        assert_eq!(f.field("inet_sock.inet_sport"), Ok(at(782, 2)));
        assert_eq!(f.field("net.ns.inum"), Ok(at(136, 4)));
        assert_eq!(f.field("tcp_sock.bytes_acked"), Ok(at(1824, 8)));
        assert_eq!(f.field("tcp_sock.bytes_received"), Ok(at(1752, 8)));
        assert_eq!(f.field("sock_common.skc_flags"), Ok(at(96, 8)));
        // The built-in table is unchanged.
        assert_eq!(f.field("sock_common.skc_net"), Ok(at(48, 8)));
        assert_eq!(f.field("sock_common.skc_prot"), Ok(at(40, 8)));
    }

    #[test]
    fn an_unreadable_format_is_named_when_a_field_is_asked_for() {
        let f = builtin(&FakeSys::new());
        let e = f
            .field("trace_event_raw_inet_sock_set_state.sport")
            .unwrap_err();
        assert!(e.starts_with(&format!("cannot read {FORMAT}")), "{e}");
    }
}
