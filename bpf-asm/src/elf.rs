//! Writes a `Program` as a relocatable ELF64 object for EM_BPF (the layout is specified in
//! README.md, "The object file").

use crate::error::Error;
use crate::program::{Binding, Program, SymType, SymbolPlace};
use object::write::{Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    elf, Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags,
    SymbolKind, SymbolScope,
};

/// "TCFR" read as bytes, little-endian.
pub const FIELDS_MAGIC: u32 = 0x5246_4354;
pub const FIELDS_VERSION: u32 = 1;
pub const FIELDS_SECTION: &str = ".conntrace.fields";
pub const MAP_DEF_SIZE: u64 = 20;

fn too_big(what: &str) -> Error {
    Error::other(format!(
        "{what} does not fit the 32-bit fields of the object format"
    ))
}

fn u32_of(n: usize, what: &str) -> Result<u32, Error> {
    u32::try_from(n).map_err(|_| too_big(what))
}

pub fn write(program: &Program) -> Result<Vec<u8>, Error> {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);

    // The writer numbers sections in the order they are added, each `.rel` section right
    // after its section; the field table needs those numbers before the object is written.
    let mut next_index = 1u32;
    let mut program_sections: Vec<(SectionId, u32)> = Vec::new();
    for section in &program.sections {
        let id = obj.add_section(
            Vec::new(),
            section.name.as_bytes().to_vec(),
            SectionKind::Text,
        );
        let bytes = section.bytes();
        obj.append_section_data(id, &bytes, 8);
        program_sections.push((id, next_index));
        let has_relocations = section.insns.iter().any(|i| i.map.is_some());
        next_index += 1 + u32::from(has_relocations);
        // Sources that name their own symbols (llvm's output: `.globl f` / `f:`) get those
        // only; otherwise each program is named after its section.
        let named = program
            .symbols
            .iter()
            .any(|s| s.place == SymbolPlace::Program(program_sections.len() - 1));
        if named {
            continue;
        }
        let symbol = section.name.replace('/', "_");
        obj.add_symbol(Symbol {
            name: symbol.into_bytes(),
            value: 0,
            size: bytes.len() as u64,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(id),
            flags: SymbolFlags::None,
        });
    }

    let mut map_symbols: Vec<(&str, SymbolId)> = Vec::new();
    if !program.maps.is_empty() {
        let maps = obj.add_section(Vec::new(), b"maps".to_vec(), SectionKind::Data);
        for map in &program.maps {
            let mut def = Vec::with_capacity(MAP_DEF_SIZE as usize);
            for v in [
                map.map_type,
                map.key_size,
                map.value_size,
                map.max_entries,
                map.flags,
            ] {
                def.extend_from_slice(&v.to_le_bytes());
            }
            let offset = obj.append_section_data(maps, &def, 4);
            let symbol = obj.add_symbol(Symbol {
                name: map.name.as_bytes().to_vec(),
                value: offset,
                size: MAP_DEF_SIZE,
                kind: SymbolKind::Data,
                scope: SymbolScope::Dynamic,
                weak: false,
                section: SymbolSection::Section(maps),
                flags: SymbolFlags::None,
            });
            map_symbols.push((&map.name, symbol));
        }
    }

    for (section, (id, _)) in program.sections.iter().zip(&program_sections) {
        let mut offset = 0u64;
        for insn in &section.insns {
            if let Some(name) = &insn.map {
                let symbol = map_symbols
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, s)| *s)
                    .ok_or_else(|| Error::other(format!("map `{name}` has no symbol")))?;
                obj.add_relocation(
                    *id,
                    Relocation {
                        offset,
                        symbol,
                        addend: 0,
                        flags: RelocationFlags::Elf {
                            r_type: elf::R_BPF_64_64,
                        },
                    },
                )
                .map_err(|e| Error::other(format!("cannot add a relocation: {e}")))?;
            }
            offset += insn.instruction.slots() as u64 * 8;
        }
    }

    let mut license_id = None;
    if let Some(license) = &program.license {
        let id = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
        let mut bytes = license.as_bytes().to_vec();
        bytes.push(0);
        obj.append_section_data(id, &bytes, 1);
        license_id = Some(id);
    }

    for symbol in &program.symbols {
        let section = match symbol.place {
            SymbolPlace::Program(i) => program_sections.get(i).map(|(id, _)| *id),
            SymbolPlace::License => license_id,
        };
        let Some(section) = section else {
            return Err(Error::other(format!(
                "symbol `{}` is in a section that is not written",
                symbol.name
            )));
        };
        obj.add_symbol(Symbol {
            name: symbol.name.as_bytes().to_vec(),
            value: symbol.offset,
            size: symbol.size,
            kind: match symbol.kind {
                SymType::Func => SymbolKind::Text,
                SymType::Object => SymbolKind::Data,
                SymType::NoType => SymbolKind::Label,
            },
            scope: match symbol.binding {
                Binding::Local => SymbolScope::Compilation,
                Binding::Global | Binding::Weak => SymbolScope::Dynamic,
            },
            weak: symbol.binding == Binding::Weak,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
    }

    let fields = field_table(program, &program_sections)?;
    let id = obj.add_section(
        Vec::new(),
        FIELDS_SECTION.as_bytes().to_vec(),
        SectionKind::Other,
    );
    obj.append_section_data(id, &fields, 4);

    obj.write()
        .map_err(|e| Error::other(format!("cannot write the ELF object: {e}")))
}

/// The `.conntrace.fields` section: header, 24-byte records, string table.
fn field_table(program: &Program, indices: &[(SectionId, u32)]) -> Result<Vec<u8>, Error> {
    let mut records = Vec::new();
    let mut strings: Vec<u8> = Vec::new();
    let mut count = 0u32;
    for (section, (_, elf_index)) in program.sections.iter().zip(indices) {
        let mut offset = 0usize;
        for insn in &section.insns {
            if let Some(field) = &insn.field {
                let name_offset = u32_of(strings.len(), "the field string table")?;
                strings.extend_from_slice(field.name.as_bytes());
                strings.push(0);
                let placeholder = match field.kind {
                    crate::program::FieldKind::Off => i32::from(crate::program::OFF_PLACEHOLDER),
                    crate::program::FieldKind::Imm => crate::program::IMM_PLACEHOLDER,
                };
                for v in [
                    *elf_index,
                    u32_of(offset, "a program section")?,
                    field.kind as u32,
                ] {
                    records.extend_from_slice(&v.to_le_bytes());
                }
                records.extend_from_slice(&placeholder.to_le_bytes());
                records.extend_from_slice(&field.addend.to_le_bytes());
                records.extend_from_slice(&name_offset.to_le_bytes());
                count = count
                    .checked_add(1)
                    .ok_or_else(|| too_big("the field count"))?;
            }
            offset += insn.instruction.slots() * 8;
        }
    }
    let mut out = Vec::with_capacity(16 + records.len() + strings.len());
    for v in [
        FIELDS_MAGIC,
        FIELDS_VERSION,
        count,
        u32_of(strings.len(), "the field string table")?,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&records);
    out.extend_from_slice(&strings);
    Ok(out)
}
