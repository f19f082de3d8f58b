//! Reads the probe object bpf-asm writes (format: bpf-asm/README.md) into programs, map
//! definitions and relocations, validating everything the loader will rely on. Pure: bytes in,
//! a [`ProbeObject`] or an [`ObjectError`] out, never a panic.

mod fields;
pub mod insn;

#[cfg(test)]
pub(crate) mod test_elf;
#[cfg(test)]
mod tests;

use crate::kernel::abi::{
    BPF_PROG_TYPE_KPROBE, BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_PROG_TYPE_TRACEPOINT,
    BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP,
};
use bpf_insn::{Instruction, OpCode};
use object::elf;
use object::read::elf::{FileHeader, Rel, SectionHeader, SectionTable, Sym, SymbolTable};
use object::{Endianness, SectionIndex, SymbolIndex};
use std::fmt;

type Elf = elf::FileHeader64<Endianness>;

/// Size of `struct bpf_map_def` in the `maps` section.
pub const MAP_DEF_SIZE: usize = 20;
/// The section prefix of a second program for a raw tracepoint that already has one.
pub const RAW_TRACEPOINT_SECOND: &str = "raw_tracepoint.rescue/";
/// The same for a `tp_btf` program.
pub const TP_BTF_SECOND: &str = "tp_btf.rescue/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeObject {
    pub license: String,
    pub maps: Vec<MapDef>,
    pub programs: Vec<Program>,
}

impl ProbeObject {
    pub fn program(&self, section: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.section == section)
    }

    pub fn map(&self, name: &str) -> Option<&MapDef> {
        self.maps.iter().find(|m| m.name == name)
    }

    /// The struct-field specs ("sock_common.skc_dport") the programs `used` picks read, each
    /// once, in the order they first appear: what the loader will resolve for them.
    pub fn field_specs(&self, used: impl Fn(&Program) -> bool) -> Vec<&str> {
        let mut specs: Vec<&str> = Vec::new();
        for reloc in self
            .programs
            .iter()
            .filter(|p| used(p))
            .flat_map(|p| &p.field_relocs)
        {
            if !specs.contains(&reloc.name.as_str()) {
                specs.push(&reloc.name);
            }
        }
        specs
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDef {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// Where a program attaches, from its section name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramKind {
    Kprobe {
        function: String,
    },
    Kretprobe {
        function: String,
    },
    Tracepoint {
        category: String,
        name: String,
    },
    /// A raw tracepoint: the program's context is the tracepoint's arguments, u64 each.
    RawTracepoint {
        name: String,
    },
    /// A BTF-typed raw tracepoint (`tp_btf`, BPF_PROG_TYPE_TRACING): the same context, its
    /// pointers typed by the kernel's BTF, so it may call the helpers that take kernel
    /// objects (bpf_sk_storage_get). Loaded with the BTF id of `btf_trace_NAME`.
    TpBtf {
        name: String,
    },
}

impl ProgramKind {
    /// `kprobe/SYM`, `kretprobe/SYM`, `tracepoint/CAT/NAME`, `raw_tracepoint/NAME`,
    /// `tp_btf/NAME`, or `raw_tracepoint.rescue/NAME` and `tp_btf.rescue/NAME` (a second
    /// program for the same tracepoint).
    pub fn from_section(section: &str) -> std::result::Result<ProgramKind, String> {
        let single =
            |rest: &str| (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string());
        let parsed = if let Some(rest) = section.strip_prefix("kprobe/") {
            single(rest).map(|function| ProgramKind::Kprobe { function })
        } else if let Some(rest) = section.strip_prefix("kretprobe/") {
            single(rest).map(|function| ProgramKind::Kretprobe { function })
        } else if let Some(rest) = section
            .strip_prefix("raw_tracepoint/")
            .or_else(|| section.strip_prefix(RAW_TRACEPOINT_SECOND))
        {
            single(rest).map(|name| ProgramKind::RawTracepoint { name })
        } else if let Some(rest) = section
            .strip_prefix("tp_btf/")
            .or_else(|| section.strip_prefix(TP_BTF_SECOND))
        {
            single(rest).map(|name| ProgramKind::TpBtf { name })
        } else if let Some(rest) = section.strip_prefix("tracepoint/") {
            rest.split_once('/').and_then(|(cat, name)| {
                let ok = !cat.is_empty() && !name.is_empty() && !name.contains('/');
                ok.then(|| ProgramKind::Tracepoint {
                    category: cat.to_string(),
                    name: name.to_string(),
                })
            })
        } else {
            None
        };
        parsed.ok_or_else(|| {
            format!("program section `{section}` is not named kprobe/FUNCTION, kretprobe/FUNCTION, tracepoint/CATEGORY/NAME, raw_tracepoint/NAME, tp_btf/NAME, raw_tracepoint.rescue/NAME or tp_btf.rescue/NAME")
        })
    }

    /// BPF_PROG_TYPE_KPROBE, _TRACEPOINT, _RAW_TRACEPOINT or _TRACING.
    pub fn prog_type(&self) -> u32 {
        match self {
            ProgramKind::Kprobe { .. } | ProgramKind::Kretprobe { .. } => BPF_PROG_TYPE_KPROBE,
            ProgramKind::Tracepoint { .. } => BPF_PROG_TYPE_TRACEPOINT,
            ProgramKind::RawTracepoint { .. } => BPF_PROG_TYPE_RAW_TRACEPOINT,
            ProgramKind::TpBtf { .. } => BPF_PROG_TYPE_TRACING,
        }
    }

    /// The `expected_attach_type` it is loaded with: BPF_TRACE_RAW_TP for `tp_btf`, none
    /// for the others.
    pub fn expected_attach_type(&self) -> u32 {
        match self {
            ProgramKind::TpBtf { .. } => BPF_TRACE_RAW_TP,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub section: String,
    pub kind: ProgramKind,
    pub insns: Vec<u64>,
    /// (instruction index of an lddw, index into [`ProbeObject::maps`]).
    pub map_relocs: Vec<(usize, usize)>,
    pub field_relocs: Vec<FieldReloc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRelocKind {
    /// The instruction's 16-bit `off` field (a memory access).
    Off,
    /// The instruction's 32-bit `imm` field (an ALU immediate).
    Imm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldReloc {
    pub insn_index: usize,
    pub kind: FieldRelocKind,
    pub placeholder: i32,
    pub addend: i32,
    /// "STRUCT.FIELD.PATH", e.g. "sock_common.skc_dport".
    pub name: String,
}

/// Why the probe object could not be read. The message is complete, "probe object: ..." included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectError(String);

impl ObjectError {
    fn new(why: impl Into<String>) -> Self {
        ObjectError(format!("probe object: {}", why.into()))
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ObjectError {}

type Result<T> = std::result::Result<T, ObjectError>;

fn bad<T>(why: impl Into<String>) -> Result<T> {
    Err(ObjectError::new(why))
}

/// The pieces of the ELF file every step needs.
struct Reader<'a> {
    bytes: &'a [u8],
    endian: Endianness,
    sections: SectionTable<'a, Elf>,
}

impl<'a> Reader<'a> {
    fn section_name(&self, header: &elf::SectionHeader64<Endianness>) -> Result<String> {
        let name = self
            .sections
            .section_name(self.endian, header)
            .map_err(|e| ObjectError::new(format!("bad section name: {e}")))?;
        String::from_utf8(name.to_vec())
            .map_err(|_| ObjectError::new("a section name is not UTF-8"))
    }

    fn data(&self, header: &elf::SectionHeader64<Endianness>, name: &str) -> Result<&'a [u8]> {
        header
            .data(self.endian, self.bytes)
            .map_err(|_| ObjectError::new(format!("section `{name}` lies outside the file")))
    }
}

/// Parses a probe object. Every program section, map, and relocation is validated.
pub fn parse(bytes: &[u8]) -> Result<ProbeObject> {
    // The `object` crate (without its "unaligned" feature) needs the ELF structures 8-aligned;
    // `include_bytes!` data is not, so read from an aligned copy.
    let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
    let copy: &mut [u8] = bytemuck::cast_slice_mut(&mut aligned);
    copy[..bytes.len()].copy_from_slice(bytes);
    parse_aligned(&copy[..bytes.len()])
}

fn parse_aligned(bytes: &[u8]) -> Result<ProbeObject> {
    let header =
        Elf::parse(bytes).map_err(|e| ObjectError::new(format!("not a 64-bit ELF file ({e})")))?;
    let endian = header
        .endian()
        .map_err(|e| ObjectError::new(format!("bad ELF header ({e})")))?;
    if endian != Endianness::Little {
        return bad("is big-endian; BPF objects for this loader are little-endian");
    }
    let machine = header.e_machine(endian);
    if machine != elf::EM_BPF {
        return bad(format!(
            "is for ELF machine {machine}, not BPF ({})",
            elf::EM_BPF
        ));
    }
    let sections = header
        .sections(endian, bytes)
        .map_err(|e| ObjectError::new(format!("bad section table ({e})")))?;
    let reader = Reader {
        bytes,
        endian,
        sections,
    };

    let mut programs = Vec::new();
    let mut program_sections = Vec::new(); // ELF index of each entry of `programs`
    let mut maps_section = None;
    let mut license = None;
    let mut fields_section = None;
    for (index, sh) in reader.sections.enumerate() {
        let name = reader.section_name(sh)?;
        let executable = sh.sh_flags(endian) & u64::from(elf::SHF_EXECINSTR) != 0;
        // llvm-mc always emits an empty `.text`; it holds no program.
        let empty_text = name == ".text" && sh.sh_size(endian) == 0;
        if sh.sh_type(endian) == elf::SHT_PROGBITS && executable && !empty_text {
            programs.push(read_program(&reader, sh, &name)?);
            program_sections.push(index);
        } else if name == "maps" {
            maps_section = Some((index, reader.data(sh, &name)?));
        } else if name == "license" {
            license = Some(read_license(reader.data(sh, &name)?)?);
        } else if name == ".conntrace.fields" {
            fields_section = Some(reader.data(sh, &name)?);
        }
    }
    let license = match license {
        Some(l) => l,
        None => {
            return bad("has no `license` section (add `.license \"GPL\"` to the probe source)")
        }
    };
    if programs.is_empty() {
        return bad("has no program sections");
    }

    let symbols = reader
        .sections
        .symbols(endian, bytes, elf::SHT_SYMTAB)
        .map_err(|e| ObjectError::new(format!("bad symbol table ({e})")))?;
    let maps = match maps_section {
        Some((index, data)) => read_maps(&reader, &symbols, index, data)?,
        None => Vec::new(),
    };

    for (index, sh) in reader.sections.enumerate() {
        let name = reader.section_name(sh)?;
        if sh.sh_type(endian) == elf::SHT_RELA {
            return bad(format!(
                "section `{name}` holds RELA relocations; BPF objects use REL"
            ));
        }
        let Some((rels, link)) = sh
            .rel(endian, bytes)
            .map_err(|e| ObjectError::new(format!("section `{name}`: {e}")))?
        else {
            continue;
        };
        if link != symbols.section() {
            return bad(format!(
                "relocation section `{name}` does not use the symbol table"
            ));
        }
        let target = SectionIndex(sh.sh_info(endian) as usize);
        let Some(slot) = program_sections.iter().position(|&s| s == target) else {
            return bad(format!("relocation section `{name}` (section {}) applies to a section that is not a program", index.0));
        };
        let maps_index = maps_section.map(|(i, _)| i);
        let program = &mut programs[slot];
        for rel in rels {
            let reloc = map_reloc(&reader, &symbols, maps_index, program, rel)?;
            program.map_relocs.push(reloc);
        }
    }

    if let Some(data) = fields_section {
        for raw in fields::parse(data).map_err(ObjectError::new)? {
            let slot = program_sections
                .iter()
                .position(|&s| s.0 == raw.section as usize);
            let Some(program) = slot.and_then(|s| programs.get_mut(s)) else {
                return bad(format!(
                    "field relocation for `{}` names section {}, which is not a program section",
                    raw.name, raw.section
                ));
            };
            let insn_index = insn_index(program, u64::from(raw.insn_offset), "field relocation")?;
            let kind = if raw.kind == fields::KIND_OFF {
                FieldRelocKind::Off
            } else {
                FieldRelocKind::Imm
            };
            program.field_relocs.push(FieldReloc {
                insn_index,
                kind,
                placeholder: raw.placeholder,
                addend: raw.addend,
                name: raw.name,
            });
        }
    }

    Ok(ProbeObject {
        license,
        maps,
        programs,
    })
}

fn read_program(
    reader: &Reader<'_>,
    sh: &elf::SectionHeader64<Endianness>,
    name: &str,
) -> Result<Program> {
    let kind = ProgramKind::from_section(name).map_err(ObjectError::new)?;
    let data = reader.data(sh, name)?;
    if data.is_empty() || data.len() % 8 != 0 {
        return bad(format!(
            "program section `{name}` is {} bytes, not a non-zero multiple of 8",
            data.len()
        ));
    }
    let insns = data
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    Ok(Program {
        section: name.to_string(),
        kind,
        insns,
        map_relocs: Vec::new(),
        field_relocs: Vec::new(),
    })
}

fn read_license(data: &[u8]) -> Result<String> {
    let Some(end) = data.iter().position(|&b| b == 0) else {
        return bad("the `license` section is not NUL-terminated");
    };
    let text = std::str::from_utf8(&data[..end])
        .map_err(|_| ObjectError::new("the license string is not UTF-8"))?;
    if text.is_empty() {
        return bad("the license string is empty");
    }
    Ok(text.to_string())
}

fn read_maps(
    reader: &Reader<'_>,
    symbols: &SymbolTable<'_, Elf>,
    maps_index: SectionIndex,
    data: &[u8],
) -> Result<Vec<MapDef>> {
    if !data.len().is_multiple_of(MAP_DEF_SIZE) {
        return bad(format!(
            "the `maps` section is {} bytes, not a multiple of {MAP_DEF_SIZE}",
            data.len()
        ));
    }
    let mut names: Vec<Option<String>> = vec![None; data.len() / MAP_DEF_SIZE];
    for sym in symbols.iter() {
        if sym.st_shndx(reader.endian) as usize != maps_index.0 || sym.st_type() != elf::STT_OBJECT
        {
            continue;
        }
        let name = symbol_name(reader, symbols, sym)?;
        let offset = sym.st_value(reader.endian);
        if offset % MAP_DEF_SIZE as u64 != 0 {
            return bad(format!("map symbol `{name}` is at offset {offset} of `maps`, not on a {MAP_DEF_SIZE}-byte boundary"));
        }
        let slot = usize::try_from(offset / MAP_DEF_SIZE as u64)
            .ok()
            .and_then(|i| names.get_mut(i));
        match slot {
            None => {
                return bad(format!(
                    "map symbol `{name}` is at offset {offset}, past the end of `maps` ({} bytes)",
                    data.len()
                ))
            }
            Some(Some(other)) => {
                return bad(format!(
                    "map symbols `{other}` and `{name}` both name offset {offset} of `maps`"
                ))
            }
            Some(slot) => *slot = Some(name),
        }
    }
    let mut maps = Vec::with_capacity(names.len());
    for (i, (chunk, name)) in data.chunks_exact(MAP_DEF_SIZE).zip(names).enumerate() {
        let Some(name) = name else {
            return bad(format!(
                "the map definition at offset {} of `maps` has no symbol naming it",
                i * MAP_DEF_SIZE
            ));
        };
        let word = |k: usize| {
            u32::from_le_bytes([
                chunk[4 * k],
                chunk[4 * k + 1],
                chunk[4 * k + 2],
                chunk[4 * k + 3],
            ])
        };
        maps.push(MapDef {
            name,
            map_type: word(0),
            key_size: word(1),
            value_size: word(2),
            max_entries: word(3),
            flags: word(4),
        });
    }
    Ok(maps)
}

fn symbol_name(
    reader: &Reader<'_>,
    symbols: &SymbolTable<'_, Elf>,
    sym: &elf::Sym64<Endianness>,
) -> Result<String> {
    let name = symbols
        .symbol_name(reader.endian, sym)
        .map_err(|e| ObjectError::new(format!("bad symbol name ({e})")))?;
    match std::str::from_utf8(name) {
        Ok(n) if !n.is_empty() => Ok(n.to_string()),
        _ => bad("a map symbol has an empty or non-UTF-8 name"),
    }
}

/// The instruction index at byte `offset` of `program`, checked to be in range and aligned.
fn insn_index(program: &Program, offset: u64, what: &str) -> Result<usize> {
    let section = &program.section;
    if !offset.is_multiple_of(8) {
        return bad(format!(
            "{what} at {section}+{offset} is not on an 8-byte instruction boundary"
        ));
    }
    match usize::try_from(offset / 8) {
        Ok(i) if i < program.insns.len() => Ok(i),
        _ => bad(format!(
            "{what} at {section}+{offset} is past the end of the program ({} bytes)",
            program.insns.len() * 8
        )),
    }
}

fn map_reloc(
    reader: &Reader<'_>,
    symbols: &SymbolTable<'_, Elf>,
    maps_index: Option<SectionIndex>,
    program: &Program,
    rel: &elf::Rel64<Endianness>,
) -> Result<(usize, usize)> {
    let endian = reader.endian;
    let offset = rel.r_offset(endian);
    let at = format!("{}+{offset}", program.section);
    let r_type = rel.r_type(endian);
    if r_type != elf::R_BPF_64_64 {
        return bad(format!(
            "relocation at {at} has type {r_type}; only R_BPF_64_64 (1) map loads are supported"
        ));
    }
    let index = insn_index(program, offset, "map relocation")?;
    let sym = symbols
        .symbol(SymbolIndex(rel.r_sym(endian) as usize))
        .map_err(|_| {
            ObjectError::new(format!(
                "map relocation at {at} names symbol {}, which does not exist",
                rel.r_sym(endian)
            ))
        })?;
    let is_map = maps_index.is_some_and(|m| sym.st_shndx(endian) as usize == m.0)
        && sym.st_type() == elf::STT_OBJECT;
    if !is_map {
        let name = symbols
            .symbol_name(endian, sym)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        return bad(format!(
            "relocation at {at} refers to symbol `{name}`, which is not a map in `maps`"
        ));
    }
    let map = usize::try_from(sym.st_value(endian) / MAP_DEF_SIZE as u64).unwrap_or(usize::MAX);
    // Decoding checks the lddw's second slot too (opcode, registers and offset 0).
    let slots = program.insns.get(index..).unwrap_or_default();
    match Instruction::decode_words(slots) {
        Ok(insn) if insn.opcode == OpCode::LoadImm64 => Ok((index, map)),
        Ok(insn) => bad(format!(
            "map relocation at {at} is not on an lddw instruction (it is `{insn}`)"
        )),
        Err(why) => bad(format!(
            "map relocation at {at} is not on an lddw instruction ({why})"
        )),
    }
}
