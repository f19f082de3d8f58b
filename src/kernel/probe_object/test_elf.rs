//! Builds small probe objects byte by byte for tests, in the layout bpf-asm/README.md describes,
//! with knobs to break each part. Section indices: 0 null, 1..=P programs, then `maps`,
//! `license`, `.conntrace.fields`, the `.rel` sections, `.symtab`, `.strtab`, `.shstrtab`.

pub const EM_BPF: u16 = 247;
const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_REL: u32 = 9;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;

pub struct MapSpec {
    pub name: String,
    /// Offset of its symbol in `maps`; normally index * 20.
    pub symbol_offset: u64,
    pub def: [u32; 5],
}

pub struct Reloc {
    pub program: usize,
    pub offset: u64,
    /// Symbol index: map i is symbol i + 1; the program symbols follow the maps.
    pub symbol: u32,
    pub r_type: u32,
}

pub struct ObjBuilder {
    pub machine: u16,
    pub programs: Vec<(String, Vec<u64>)>,
    pub maps: Vec<MapSpec>,
    /// Overrides the `maps` contents (default: the maps' definitions in order).
    pub maps_bytes: Option<Vec<u8>>,
    pub license: Option<Vec<u8>>,
    pub relocs: Vec<Reloc>,
    pub fields: Option<Vec<u8>>,
}

impl ObjBuilder {
    pub fn new() -> Self {
        ObjBuilder {
            machine: EM_BPF,
            programs: Vec::new(),
            maps: Vec::new(),
            maps_bytes: None,
            license: Some(b"GPL\0".to_vec()),
            relocs: Vec::new(),
            fields: None,
        }
    }

    pub fn program(mut self, section: &str, insns: &[u64]) -> Self {
        self.programs.push((section.to_string(), insns.to_vec()));
        self
    }

    pub fn map(mut self, name: &str, def: [u32; 5]) -> Self {
        let symbol_offset = (self.maps.len() * 20) as u64;
        self.maps.push(MapSpec {
            name: name.to_string(),
            symbol_offset,
            def,
        });
        self
    }

    /// An R_BPF_64_64 relocation at byte `offset` of program `program` against map `map`.
    pub fn map_reloc(mut self, program: usize, offset: u64, map: u32) -> Self {
        self.relocs.push(Reloc {
            program,
            offset,
            symbol: map + 1,
            r_type: 1,
        });
        self
    }

    pub fn fields(mut self, bytes: Vec<u8>) -> Self {
        self.fields = Some(bytes);
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut sections: Vec<RawSection> = Vec::new();
        for (name, insns) in &self.programs {
            let data = insns.iter().flat_map(|i| i.to_le_bytes()).collect();
            sections.push(RawSection::new(
                name,
                SHT_PROGBITS,
                SHF_ALLOC | SHF_EXECINSTR,
                data,
            ));
        }
        let maps_index = if self.maps.is_empty() && self.maps_bytes.is_none() {
            None
        } else {
            let data = self.maps_bytes.clone().unwrap_or_else(|| {
                self.maps
                    .iter()
                    .flat_map(|m| m.def.iter().flat_map(|w| w.to_le_bytes()))
                    .collect()
            });
            sections.push(RawSection::new("maps", SHT_PROGBITS, SHF_ALLOC, data));
            Some(sections.len() as u16)
        };
        if let Some(license) = &self.license {
            sections.push(RawSection::new(
                "license",
                SHT_PROGBITS,
                SHF_ALLOC,
                license.clone(),
            ));
        }
        if let Some(fields) = &self.fields {
            sections.push(RawSection::new(
                ".conntrace.fields",
                SHT_PROGBITS,
                0,
                fields.clone(),
            ));
        }
        let rel_count = self.programs.len();
        let symtab_index = (sections.len() + rel_count + 1) as u32;
        for (p, (name, _)) in self.programs.iter().enumerate() {
            let data: Vec<u8> = self
                .relocs
                .iter()
                .filter(|r| r.program == p)
                .flat_map(|r| {
                    let info = (u64::from(r.symbol) << 32) | u64::from(r.r_type);
                    r.offset.to_le_bytes().into_iter().chain(info.to_le_bytes())
                })
                .collect();
            let mut rel = RawSection::new(&format!(".rel{name}"), SHT_REL, 0, data);
            rel.link = symtab_index;
            rel.info = (p + 1) as u32;
            rel.entsize = 16;
            sections.push(rel);
        }
        // Symbols: null, maps, then one function symbol per program.
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; 24];
        let mut push_sym = |name: &str, info: u8, shndx: u16, value: u64, size: u64| {
            let name_off = strtab.len() as u32;
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
            symtab.extend_from_slice(&name_off.to_le_bytes());
            symtab.push(info);
            symtab.push(0);
            symtab.extend_from_slice(&shndx.to_le_bytes());
            symtab.extend_from_slice(&value.to_le_bytes());
            symtab.extend_from_slice(&size.to_le_bytes());
        };
        const GLOBAL_OBJECT: u8 = 0x11;
        const GLOBAL_FUNC: u8 = 0x12;
        for m in &self.maps {
            push_sym(
                &m.name,
                GLOBAL_OBJECT,
                maps_index.unwrap_or(0),
                m.symbol_offset,
                20,
            );
        }
        for (p, (name, insns)) in self.programs.iter().enumerate() {
            push_sym(
                &name.replace('/', "_"),
                GLOBAL_FUNC,
                (p + 1) as u16,
                0,
                (insns.len() * 8) as u64,
            );
        }
        let mut sym = RawSection::new(".symtab", SHT_SYMTAB, 0, symtab);
        sym.link = symtab_index + 1;
        sym.info = 1;
        sym.entsize = 24;
        sections.push(sym);
        sections.push(RawSection::new(".strtab", SHT_STRTAB, 0, strtab));
        sections.push(RawSection::new(".shstrtab", SHT_STRTAB, 0, Vec::new()));
        write_elf(self.machine, sections)
    }
}

impl Default for ObjBuilder {
    fn default() -> Self {
        Self::new()
    }
}

struct RawSection {
    name: String,
    sh_type: u32,
    flags: u64,
    data: Vec<u8>,
    link: u32,
    info: u32,
    entsize: u64,
}

impl RawSection {
    fn new(name: &str, sh_type: u32, flags: u64, data: Vec<u8>) -> Self {
        RawSection {
            name: name.to_string(),
            sh_type,
            flags,
            data,
            link: 0,
            info: 0,
            entsize: 0,
        }
    }
}

/// Lays out header, section contents, then section headers. The last section is .shstrtab
/// and gets its contents here.
fn write_elf(machine: u16, mut sections: Vec<RawSection>) -> Vec<u8> {
    let mut shstrtab = vec![0u8];
    let mut name_offsets = Vec::new();
    for s in &sections {
        name_offsets.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(s.name.as_bytes());
        shstrtab.push(0);
    }
    if let Some(last) = sections.last_mut() {
        last.data = shstrtab;
    }
    let mut out = vec![0u8; 64];
    let mut offsets = Vec::new();
    for s in &sections {
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        offsets.push(out.len() as u64);
        out.extend_from_slice(&s.data);
    }
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let shoff = out.len() as u64;
    out.extend_from_slice(&[0u8; 64]); // the null section
    for ((s, name), offset) in sections.iter().zip(&name_offsets).zip(&offsets) {
        out.extend_from_slice(&name.to_le_bytes());
        out.extend_from_slice(&s.sh_type.to_le_bytes());
        out.extend_from_slice(&s.flags.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&(s.data.len() as u64).to_le_bytes());
        out.extend_from_slice(&s.link.to_le_bytes());
        out.extend_from_slice(&s.info.to_le_bytes());
        out.extend_from_slice(&8u64.to_le_bytes());
        out.extend_from_slice(&s.entsize.to_le_bytes());
    }
    let mut header = Vec::with_capacity(64);
    header.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    header.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
    header.extend_from_slice(&machine.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&0u64.to_le_bytes()); // entry
    header.extend_from_slice(&0u64.to_le_bytes()); // phoff
    header.extend_from_slice(&shoff.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes()); // flags
    header.extend_from_slice(&64u16.to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes());
    header.extend_from_slice(&0u16.to_le_bytes());
    header.extend_from_slice(&64u16.to_le_bytes());
    header.extend_from_slice(&((sections.len() + 1) as u16).to_le_bytes());
    header.extend_from_slice(&(sections.len() as u16).to_le_bytes()); // .shstrtab is last
    out[..64].copy_from_slice(&header);
    out
}

/// A `.conntrace.fields` section: (section, insn_offset, kind, placeholder, addend, name).
pub fn fields_section(records: &[(u32, u32, u32, i32, i32, &str)]) -> Vec<u8> {
    let mut strings = vec![0u8];
    let mut body = Vec::new();
    for &(section, insn_offset, kind, placeholder, addend, name) in records {
        let name_off = strings.len() as u32;
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        for w in [
            section,
            insn_offset,
            kind,
            placeholder as u32,
            addend as u32,
            name_off,
        ] {
            body.extend_from_slice(&w.to_le_bytes());
        }
    }
    let mut out = Vec::new();
    for w in [
        0x5246_4354u32,
        1,
        records.len() as u32,
        strings.len() as u32,
    ] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend(body);
    out.extend(strings);
    out
}

/// Instruction encoders for test programs.
pub mod asm {
    /// `rD = 0 ll` (both slots of an lddw).
    pub fn lddw(dst: u8) -> [u64; 2] {
        [0x18 | (u64::from(dst) << 8), 0]
    }
    /// `rD = *(SIZE *)(rS + off)`; size_bits: 0x00 w, 0x08 h, 0x10 b, 0x18 dw.
    pub fn ldx(size_bits: u8, dst: u8, src: u8, off: i16) -> u64 {
        u64::from(0x61 | size_bits)
            | (u64::from(dst | (src << 4)) << 8)
            | (u64::from(off as u16) << 16)
    }
    /// `rD += imm`.
    pub fn add_imm(dst: u8, imm: i32) -> u64 {
        0x07 | (u64::from(dst) << 8) | (u64::from(imm as u32) << 32)
    }
    /// `r0 = imm` (32-bit immediate, sign-extended).
    pub fn mov_imm(dst: u8, imm: i32) -> u64 {
        0xb7 | (u64::from(dst) << 8) | (u64::from(imm as u32) << 32)
    }
    pub const EXIT: u64 = 0x95;
}
