//! Where struct-field offsets come from: the kernel's BTF, or (without BTF) the built-in
//! table of fields whose layout has been stable for a decade.

use crate::kernel::btf::{self, Btf};
use crate::kernel::load::{FieldOffset, FieldResolver};
use crate::session::options::BtfSource;

/// What tracing without BTF cannot do, for stderr and `conntrace check`.
pub const NO_BTF_LIMITS: &str = "failed records carry no error (null), netns is not \
    reported (null), no socket-protocol check (inet_csk_accept also serves DCCP where the \
    kernel has it), an accept whose connection was reset before accept() returned shows \
    local port 0, kprobe backend only";

pub enum FieldSource {
    Btf(Btf),
    /// No BTF: only the fields of `btf::builtin_field`.
    Builtin,
}

impl FieldSource {
    /// `--btf PATH`, `--btf none`, or the running kernel's BTF.
    pub fn open(source: &BtfSource) -> Result<FieldSource, String> {
        match source {
            BtfSource::None => Ok(FieldSource::Builtin),
            BtfSource::Path(path) => btf::load_file(path)
                .map(FieldSource::Btf)
                // The error names the file already.
                .map_err(|e| e.to_string()),
            BtfSource::Kernel => btf::load_vmlinux().map(FieldSource::Btf).map_err(|e| {
                format!(
                    "cannot read the kernel's BTF ({}): {e}; pass --btf PATH or --btf none",
                    btf::VMLINUX_BTF
                )
            }),
        }
    }

    pub fn has_btf(&self) -> bool {
        matches!(self, FieldSource::Btf(_))
    }

    pub fn describe(&self) -> &'static str {
        match self {
            FieldSource::Btf(_) => "BTF",
            FieldSource::Builtin => "the built-in sock_common layout (no BTF)",
        }
    }
}

impl FieldResolver for FieldSource {
    fn field(&self, spec: &str) -> Result<FieldOffset, String> {
        match self {
            FieldSource::Btf(btf) => btf
                .field(spec)
                .map(|f| FieldOffset {
                    offset: f.offset,
                    size: f.size,
                })
                .map_err(|e| e.to_string()),
            FieldSource::Builtin => btf::builtin_field(spec)
                .map(|f| FieldOffset {
                    offset: f.offset,
                    size: f.size,
                })
                .ok_or_else(|| {
                    format!("{spec} is not in the built-in layout and there is no BTF to find it")
                }),
        }
    }
}
