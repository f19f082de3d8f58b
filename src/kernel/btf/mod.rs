//! The kernel's BTF: parse it (raw, or from an ELF vmlinux's `.BTF` section) and resolve
//! "struct.field" specs to byte offsets for patching into BPF instructions.
//!
//! Parsing is a pure function over bytes that validates everything up front, in stages
//! (header, strings, every type record), so that lookups afterwards never see bad data, and
//! reports every defect as a `BtfError`, never a panic. Struct names are indexed lazily,
//! from the list of named structs and unions that the validating pass keeps.

mod blob;
mod builtin;
mod bytes;
mod elf;
mod file;
mod header;
mod index;
mod kind;
mod names;
mod resolve;
#[cfg(test)]
mod tests;
mod types;

use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

pub use blob::{storage_map_btf, StorageTypes};
pub use builtin::{builtin_field, builtin_specs};

/// Where the running kernel exposes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The most BTF conntrace reads: a kernel's is a few MiB, so anything this large is not BTF
/// (and reading it whole would only waste memory).
pub const MAX_BTF_BYTES: u64 = 256 << 20;

/// Parsed, validated BTF. Owns its bytes.
pub struct Btf {
    bytes: Vec<u8>,
    sections: header::Sections,
    /// Start offset of each type record; index `i` is type id `i + 1`.
    starts: Vec<u32>,
    /// `(id, name_off)` of each named struct and union, in id order.
    composites: Vec<(u32, u32)>,
    /// Bytes in a pointer on the BTF's architecture, taken from the size of `long`.
    pointer_size: u32,
    names: OnceLock<names::NameIndex>,
}

/// Pointer size when the BTF has no `long` to tell (every kernel BTF has one).
const DEFAULT_POINTER_SIZE: u32 = 8;

/// A struct member's place: byte offset from the start of the outermost struct, and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
}

/// Why BTF could not be read or a field not resolved; `Display` is a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfError {
    message: String,
}

impl BtfError {
    pub(crate) fn new(message: impl Into<String>) -> BtfError {
        BtfError {
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BtfError {}

impl Btf {
    /// Parses and validates raw BTF (what `/sys/kernel/btf/vmlinux` holds). A pure function
    /// of its input (no I/O, no global state): the natural fuzz target, together with `field`.
    pub fn parse(bytes: Vec<u8>) -> Result<Btf, BtfError> {
        let sections = header::parse(&bytes)?;
        let table = index::index_types(&bytes, sections.types.clone(), sections.strings.clone())?;
        Ok(Btf {
            bytes,
            sections,
            starts: table.starts,
            composites: table.composites,
            pointer_size: table.long_size.unwrap_or(DEFAULT_POINTER_SIZE),
            names: OnceLock::new(),
        })
    }

    /// Parses raw BTF, or the `.BTF` section if `bytes` is an ELF file.
    pub fn from_file_bytes(bytes: Vec<u8>) -> Result<Btf, BtfError> {
        if elf::is_elf(&bytes) {
            Btf::parse(elf::btf_section(bytes.as_slice())?)
        } else {
            Btf::parse(bytes)
        }
    }

    /// Resolves "STRUCT.FIELD" or "STRUCT.FIELD.PATH" (e.g. "sock_common.skc_dport",
    /// "net.ns.inum") to the field's byte offset from the start of STRUCT and its size.
    pub fn field(&self, spec: &str) -> Result<Field, BtfError> {
        self.resolve(spec)
    }

    /// The id of the typedef named `name`, as a `tp_btf` program is attached by
    /// (`btf_trace_inet_sock_set_state`). Typedefs are not indexed: one pass over the types,
    /// made once per session where it is needed.
    pub fn typedef_id(&self, name: &str) -> Option<u32> {
        (1..=self.starts.len() as u32).find(|&id| {
            self.raw_type(id).is_some_and(|t| {
                t.kind() == kind::TYPEDEF && self.name_is(t.name_off, name.as_bytes())
            })
        })
    }

    /// How many types the BTF defines (not counting `void`).
    pub fn type_count(&self) -> usize {
        self.starts.len()
    }

    fn names(&self) -> &names::NameIndex {
        self.names
            .get_or_init(|| names::NameIndex::build(&self.composites, self.strings()))
    }
}

/// Reads and parses the running kernel's BTF, [`VMLINUX_BTF`].
pub fn load_vmlinux() -> Result<Btf, BtfError> {
    let in_file = |e: BtfError| BtfError::new(format!("{VMLINUX_BTF}: {e}"));
    let bytes = file::read_raw(Path::new(VMLINUX_BTF))
        .map_err(|e| {
            BtfError::new(format!(
                "cannot read {VMLINUX_BTF}: {e}. This kernel may be built without \
                 CONFIG_DEBUG_INFO_BTF; pass --btf PATH with a vmlinux that has BTF"
            ))
        })?
        .map_err(in_file)?;
    Btf::parse(bytes).map_err(in_file)
}

/// Reads and parses a BTF file: raw BTF, or an ELF vmlinux with a `.BTF` section.
pub fn load_file(path: &Path) -> Result<Btf, BtfError> {
    let shown = path.display();
    let named = |e: BtfError| BtfError::new(format!("cannot use the BTF file {shown}: {e}"));
    Btf::parse(file::read_btf_file(path).map_err(named)?).map_err(named)
}
