//! Turns a parsed probe object into kernel objects: creates its maps, patches map fds and
//! struct-field offsets into the instructions, and loads the programs, with the verifier's
//! log tail when the kernel refuses one.

mod kernel_version;
mod patch;
mod skipped;
mod verifier;

#[cfg(test)]
mod tests;

pub use kernel_version::{kernel_version_code, parse_kernel_release};
pub use verifier::tail as log_tail;

use crate::kernel::abi::{
    BPF_ANY, BPF_FUNC_PROBE_READ, BPF_FUNC_PROBE_READ_KERNEL, BPF_FUNC_PROBE_READ_KERNEL_STR,
    BPF_FUNC_PROBE_READ_STR, BPF_FUNC_PROBE_READ_USER, BPF_FUNC_PROBE_READ_USER_STR,
    BPF_F_NO_PREALLOC, BPF_MAP_TYPE_PERF_EVENT_ARRAY, BPF_MAP_TYPE_SK_STORAGE,
};
use crate::kernel::btf::storage_map_btf;
use crate::kernel::probe_object::{MapDef, ProbeObject, Program, ProgramKind};
use crate::kernel::sys::{MapBtf, MapCreate, ProgLoad, Sys, SysError};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

const PRIVILEGE_HINT: &str = "needs root or CAP_BPF+CAP_PERFMON";

/// Where a struct field lives in the running kernel, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldOffset {
    pub offset: u32,
    pub size: u32,
}

/// Resolves "STRUCT.FIELD.PATH" (e.g. "sock_common.skc_dport") for the running kernel. The
/// BTF module implements it; the error says why the field cannot be found.
pub trait FieldResolver {
    fn field(&self, spec: &str) -> Result<FieldOffset, String>;

    /// The running kernel's BTF id of the tracepoint `name`'s typedef `btf_trace_NAME`,
    /// which a `tp_btf` program is loaded with. Only the running kernel's own BTF has it.
    fn tracepoint_btf_id(&self, name: &str) -> Result<u32, String> {
        Err(format!(
            "tp_btf/{name} needs the running kernel's BTF to name its tracepoint"
        ))
    }
}

/// Which program sections to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramFilter {
    All,
    /// Exact section names ("kprobe/tcp_v4_connect") or prefixes ending in '/' ("tracepoint/").
    /// Each entry must match at least one program.
    Only(Vec<String>),
}

impl ProgramFilter {
    fn entry_matches(entry: &str, section: &str) -> bool {
        if entry.ends_with('/') {
            section.starts_with(entry)
        } else {
            section == entry
        }
    }

    fn selects(&self, section: &str) -> bool {
        match self {
            ProgramFilter::All => true,
            ProgramFilter::Only(entries) => entries.iter().any(|e| Self::entry_matches(e, section)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// max_entries of a PERF_EVENT_ARRAY defined with 0: one slot per possible CPU.
    pub nr_cpus: u32,
    /// KERNEL_VERSION of the running kernel, see [`kernel_version_code`].
    pub kern_version: u32,
    pub programs: ProgramFilter,
    /// Helper calls to rewrite before loading, `(missing helper, the one to call instead)`:
    /// what the running kernel lacks, probed (see [`helper_fallback`]).
    pub helper_rewrites: Vec<(u32, u32)>,
    /// What an EPERM from the kernel means for this process, for the error message.
    pub permission: PermissionContext,
    /// `(map name, max_entries)`: sizes that replace the object's, for the maps whose size is
    /// chosen at run time (the state maps, `session::capacity`). Each name must be a map of
    /// the object.
    pub map_sizes: Vec<(String, u32)>,
    /// Hash maps to create with BPF_F_NO_PREALLOC, their entries allocated as they are used
    /// rather than all at creation (tens of milliseconds for the state maps, and their whole
    /// memory): only where the kernel allocates safely from any program (bpf_mem_alloc).
    /// Each name must be a map of the object.
    pub allocated_as_used: Vec<String>,
}

/// The older helper that does the job of a newer one on kernels without it: the
/// bpf_probe_read_{kernel,user}{,_str} helpers (5.5) were split from bpf_probe_read (4.1)
/// and bpf_probe_read_str (4.11), which read either address space on the architectures
/// conntrace supports.
pub fn helper_fallback(helper: u32) -> Option<u32> {
    match helper {
        BPF_FUNC_PROBE_READ_USER | BPF_FUNC_PROBE_READ_KERNEL => Some(BPF_FUNC_PROBE_READ),
        BPF_FUNC_PROBE_READ_USER_STR | BPF_FUNC_PROBE_READ_KERNEL_STR => {
            Some(BPF_FUNC_PROBE_READ_STR)
        }
        _ => None,
    }
}

/// Why the kernel may answer EPERM to this process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PermissionContext {
    /// Neither root nor CAP_SYS_ADMIN/CAP_BPF: EPERM is the missing privilege.
    #[default]
    Unprivileged,
    /// Root or CAP_SYS_ADMIN/CAP_BPF: EPERM is not the privilege but, mostly, the
    /// locked-memory limit; `memlock` says what it is and what was tried about it.
    Privileged { memlock: String },
}

#[derive(Debug)]
pub struct LoadedMap {
    pub def: MapDef,
    pub fd: OwnedFd,
}

#[derive(Debug)]
pub struct LoadedProgram {
    pub section: String,
    pub kind: ProgramKind,
    pub fd: OwnedFd,
}

/// Everything `load` created. Dropping it closes the fds; attached programs stay alive as long
/// as their perf events hold them.
#[derive(Debug)]
pub struct Loaded {
    pub maps: Vec<LoadedMap>,
    pub programs: Vec<LoadedProgram>,
}

impl Loaded {
    pub fn map(&self, name: &str) -> Option<&LoadedMap> {
        self.maps.iter().find(|m| m.def.name == name)
    }

    pub fn map_fd(&self, name: &str) -> Option<BorrowedFd<'_>> {
        self.map(name).map(|m| m.fd.as_fd())
    }

    pub fn program(&self, section: &str) -> Option<&LoadedProgram> {
        self.programs.iter().find(|p| p.section == section)
    }

    /// Every possible CPU's `value_size`-byte value at `key` of the per-CPU map `name`, CPU 0
    /// first (the kernel pads each to 8 bytes); None when the object has no such map.
    pub fn lookup_per_cpu(
        &self,
        sys: &dyn Sys,
        name: &str,
        key: u32,
        value_size: usize,
    ) -> Result<Option<Vec<u8>>, String> {
        let Some(map) = self.map_fd(name) else {
            return Ok(None);
        };
        let possible = crate::kernel::ring::possible_cpus(sys).map_err(|e| e.to_string())?;
        let slots = possible.iter().max().map_or(1, |&m| m as usize + 1);
        let mut values = vec![0u8; slots * value_size.next_multiple_of(8)];
        sys.map_lookup(map, &key.to_ne_bytes(), &mut values)
            .map_err(|e| e.to_string())?;
        Ok(Some(values))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// A filter entry that matches no program of the object.
    NoSuchProgram {
        wanted: String,
    },
    NoSuchMap {
        name: String,
    },
    MapCreate {
        map: String,
        error: SysError,
    },
    /// A relocation could not be applied (bad object, unknown field, offset out of range).
    Patch {
        program: String,
        message: String,
    },
    Verifier {
        program: String,
        errno: i32,
        log_tail: Vec<String>,
        log_truncated: bool,
    },
    /// The kernel answered EPERM/EACCES (`what` names the step; `context` says whether that
    /// is the privilege or the locked-memory limit).
    Permission {
        what: String,
        error: SysError,
        context: PermissionContext,
    },
    MapUpdate {
        map: String,
        message: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NoSuchProgram { wanted } => {
                write!(f, "the probe object has no program matching `{wanted}`")
            }
            LoadError::NoSuchMap { name } => {
                write!(f, "the probe object has no map named `{name}`")
            }
            LoadError::MapCreate { map, error } => {
                write!(f, "creating BPF map `{map}`: {error}: this kernel does not support the map as defined")
            }
            LoadError::Patch { program, message } => {
                write!(f, "preparing program {program}: {message}")
            }
            LoadError::Verifier {
                program,
                errno,
                log_tail,
                log_truncated,
            } => {
                let why = crate::kernel::errno::name(*errno)
                    .map_or_else(|| format!("errno {errno}"), str::to_string);
                write!(f, "the kernel refused to load program {program} ({why})")?;
                if log_tail.is_empty() {
                    return write!(f, " and gave no verifier log");
                }
                if *log_truncated {
                    write!(f, "; the verifier log outgrew 16 MiB")?;
                }
                write!(f, "; the verifier said:")?;
                for line in log_tail {
                    write!(f, "\n    {line}")?;
                }
                Ok(())
            }
            LoadError::Permission {
                what,
                error,
                context: PermissionContext::Unprivileged,
            } => write!(f, "{what}: {error}: conntrace {PRIVILEGE_HINT}"),
            LoadError::Permission {
                what,
                error,
                context: PermissionContext::Privileged { memlock },
            } => write!(
                f,
                "{what}: {error}: conntrace has the privileges (root or CAP_SYS_ADMIN/CAP_BPF), \
                 so this is most likely the locked-memory limit, RLIMIT_MEMLOCK, which kernels \
                 before 5.11 charge BPF maps and programs to: {memlock}; raise it \
                 (`ulimit -l unlimited`, or LimitMEMLOCK=infinity for a service) and retry \
                 (other causes: kernel lockdown, an LSM or seccomp policy)"
            ),
            LoadError::MapUpdate { map, message } => {
                write!(f, "updating BPF map `{map}`: {message}")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Creates every map of `obj`, then patches and loads the programs `opts.programs` selects.
pub fn load(
    sys: &dyn Sys,
    obj: &ProbeObject,
    fields: &dyn FieldResolver,
    opts: &LoadOptions,
) -> Result<Loaded, LoadError> {
    if let ProgramFilter::Only(entries) = &opts.programs {
        if let Some(missing) = entries.iter().find(|e| {
            !obj.programs
                .iter()
                .any(|p| ProgramFilter::entry_matches(e, &p.section))
        }) {
            return Err(LoadError::NoSuchProgram {
                wanted: missing.clone(),
            });
        }
    }
    if let Some(missing) = opts
        .map_sizes
        .iter()
        .map(|(name, _)| name)
        .chain(&opts.allocated_as_used)
        .find(|name| !obj.maps.iter().any(|m| &m.name == *name))
    {
        return Err(LoadError::NoSuchMap {
            name: missing.clone(),
        });
    }
    let selected: Vec<&Program> = obj
        .programs
        .iter()
        .filter(|p| opts.programs.selects(&p.section))
        .collect();
    // Only the maps the selected programs use: creating one costs time (a preallocated hash
    // map of 262,144 entries takes ~20 ms) and memory, and no-BTF discovery's dump map is
    // nothing to a session with BTF.
    let used = |index: usize| {
        selected
            .iter()
            .any(|p| p.map_relocs.iter().any(|&(_, m)| m == index))
    };
    let maps = obj
        .maps
        .iter()
        .enumerate()
        .map(|(i, def)| used(i).then(|| create_map(sys, def, opts)).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    let mut programs = Vec::new();
    for program in selected {
        let fd = load_program(sys, obj, program, &maps, fields, opts)?;
        programs.push(LoadedProgram {
            section: program.section.clone(),
            kind: program.kind.clone(),
            fd,
        });
    }
    Ok(Loaded {
        maps: maps.into_iter().flatten().collect(),
        programs,
    })
}

fn create_map(sys: &dyn Sys, def: &MapDef, opts: &LoadOptions) -> Result<LoadedMap, LoadError> {
    let sized = opts
        .map_sizes
        .iter()
        .find(|(name, _)| *name == def.name)
        .map(|&(_, n)| n);
    let max_entries = match sized {
        Some(n) => n,
        None if def.map_type == BPF_MAP_TYPE_PERF_EVENT_ARRAY && def.max_entries == 0 => {
            opts.nr_cpus
        }
        None => def.max_entries,
    };
    // Socket-local storage maps are created with BTF for their key and value (the kernel
    // requires it); the map keeps its own reference, so the BTF's fd is closed after.
    let btf = if def.map_type == BPF_MAP_TYPE_SK_STORAGE {
        let (blob, types) = storage_map_btf(def.value_size);
        let fd = sys.btf_load(&blob).map_err(|error| LoadError::MapCreate {
            map: def.name.clone(),
            error,
        })?;
        Some((fd, types))
    } else {
        None
    };
    let flags = if opts.allocated_as_used.contains(&def.name) {
        def.flags | BPF_F_NO_PREALLOC
    } else {
        def.flags
    };
    let req = MapCreate {
        name: &def.name,
        map_type: def.map_type,
        key_size: def.key_size,
        value_size: def.value_size,
        max_entries,
        flags,
        btf: btf.as_ref().map(|(fd, types)| MapBtf {
            fd: fd.as_raw_fd(),
            key_type_id: types.key,
            value_type_id: types.value,
        }),
    };
    let fd = sys.map_create(&req).map_err(|error| {
        if error.errno == libc::EPERM {
            // Before 5.11 an exhausted RLIMIT_MEMLOCK also gives EPERM: `permission` tells.
            LoadError::Permission {
                what: format!("creating BPF map `{}`", def.name),
                error,
                context: opts.permission.clone(),
            }
        } else {
            LoadError::MapCreate {
                map: def.name.clone(),
                error,
            }
        }
    })?;
    Ok(LoadedMap {
        def: MapDef {
            max_entries,
            flags,
            ..def.clone()
        },
        fd,
    })
}

fn load_program(
    sys: &dyn Sys,
    obj: &ProbeObject,
    program: &Program,
    maps: &[Option<LoadedMap>],
    fields: &dyn FieldResolver,
    opts: &LoadOptions,
) -> Result<OwnedFd, LoadError> {
    let patch_error = |message| LoadError::Patch {
        program: program.section.clone(),
        message,
    };
    let mut insns = program.insns.clone();
    for &(insn_index, map_index) in &program.map_relocs {
        let Some(Some(map)) = maps.get(map_index) else {
            let message = format!("map relocation at instruction {insn_index} names map {map_index}, but there are {}", maps.len());
            return Err(patch_error(message));
        };
        patch::map_fd(program, &mut insns, insn_index, map.fd.as_raw_fd()).map_err(patch_error)?;
    }
    for reloc in &program.field_relocs {
        patch::field(program, &mut insns, reloc, fields).map_err(patch_error)?;
    }
    for &(from, to) in &opts.helper_rewrites {
        patch::helper_calls(program, &mut insns, from, to).map_err(patch_error)?;
    }
    let attach_btf_id = match &program.kind {
        ProgramKind::TpBtf { name } => fields.tracepoint_btf_id(name).map_err(patch_error)?,
        _ => 0,
    };
    let name = program_name(&program.kind);
    let req = ProgLoad {
        name: &name,
        prog_type: program.kind.prog_type(),
        insns: &insns,
        license: &obj.license,
        kern_version: opts.kern_version,
        expected_attach_type: program.kind.expected_attach_type(),
        attach_btf_id,
    };
    verifier::load_with_log(sys, &req).map_err(|failure| match failure {
        verifier::Failure::Verifier {
            errno,
            log_tail,
            log_truncated,
        } => LoadError::Verifier {
            program: program.section.clone(),
            errno,
            log_tail,
            log_truncated,
        },
        verifier::Failure::Permission(error) => LoadError::Permission {
            what: format!("loading BPF program {}", program.section),
            error,
            context: opts.permission.clone(),
        },
    })
}

/// The kernel's name for the program (bpftool shows it; 15 characters survive).
fn program_name(kind: &ProgramKind) -> String {
    match kind {
        ProgramKind::Kprobe { function } => format!("kp_{function}"),
        ProgramKind::Kretprobe { function } => format!("kr_{function}"),
        ProgramKind::Tracepoint { name, .. } => format!("tp_{name}"),
        ProgramKind::RawTracepoint { name } => format!("rt_{name}"),
        ProgramKind::TpBtf { name } => format!("tb_{name}"),
    }
}

/// Writes one entry into map `name`, checking the key and value sizes against its definition.
pub fn update_map(
    sys: &dyn Sys,
    loaded: &Loaded,
    name: &str,
    key: &[u8],
    value: &[u8],
) -> Result<(), LoadError> {
    let map = loaded.map(name).ok_or_else(|| LoadError::NoSuchMap {
        name: name.to_string(),
    })?;
    let sizes = (key.len(), value.len());
    if sizes != (map.def.key_size as usize, map.def.value_size as usize) {
        let message = format!(
            "got a {}-byte key and {}-byte value, the map holds {}-byte keys and {}-byte values",
            sizes.0, sizes.1, map.def.key_size, map.def.value_size
        );
        return Err(LoadError::MapUpdate {
            map: name.to_string(),
            message,
        });
    }
    sys.map_update(map.fd.as_fd(), key, value, BPF_ANY)
        .map_err(|e| LoadError::MapUpdate {
            map: name.to_string(),
            message: e.to_string(),
        })
}
