//! The assembled program model, and the second pass that builds it: statements are collected
//! per section (labels as slot numbers, `lddw` counting two), then constants, labels, maps and
//! struct-field references are resolved and every field range-checked.

use crate::consts::{self, Constants, Definition};
use crate::error::{Diagnostic, Origin};
use crate::expr::{self, EvalError, Expr, Value};
use crate::insn::{Instruction, OpCode};
pub use crate::parser::SymType;
use crate::parser::{parse_line, DataPiece, ImmRange, PendingInsn, Stmt, Target};
use crate::symbols::{resolve_license, resolve_symbols, Labels, SymbolDecls};
pub use crate::symbols::{Binding, Symbol, SymbolPlace};
use std::collections::{HashMap, HashSet};

/// What `offsetof` writes into an `off` field until the loader patches it.
pub const OFF_PLACEHOLDER: i16 = 0x7bad;
/// What `offsetof` writes into an `imm` field until the loader patches it.
pub const IMM_PLACEHOLDER: i32 = 0x7badf00d;

/// Stop collecting after this many errors: later ones are mostly echoes of the first.
const MAX_ERRORS: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// The instruction's 16-bit `off`.
    Off = 1,
    /// The instruction's 32-bit `imm`.
    Imm = 2,
}

/// A struct-field offset the loader fills in from the kernel's BTF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRef {
    pub kind: FieldKind,
    /// `STRUCT.FIELD.PATH`.
    pub name: String,
    pub addend: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Insn {
    pub instruction: Instruction,
    /// For `rN = map NAME ll`: the map whose address the loader puts into `imm`.
    pub map: Option<String>,
    pub field: Option<FieldRef>,
    /// Where it was written.
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub insns: Vec<Insn>,
}

impl Section {
    /// The section's bytes: every instruction encoded, in order.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for insn in &self.insns {
            out.extend_from_slice(&insn.instruction.to_bytes());
        }
        out
    }
}

/// `struct bpf_map_def`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    pub sections: Vec<Section>,
    pub maps: Vec<MapDef>,
    pub license: Option<String>,
    /// Symbols named by `.globl`, `.local`, `.weak`, `.type` or `.size`, in order of first
    /// mention.
    pub symbols: Vec<Symbol>,
}

struct Pending {
    section: usize,
    slot: usize,
    insn: PendingInsn,
    origin: Origin,
}

struct Collected {
    sections: Vec<String>,
    /// `(section, label) -> slot`.
    labels: HashMap<(usize, String), usize>,
    definitions: Vec<Definition>,
    constants: Constants,
    maps: Vec<(String, Vec<Expr>, Origin, usize)>,
    license: Option<String>,
    insns: Vec<Pending>,
    /// Data sections opened (`license`, `.data`, ...); only `license` may hold data.
    data_sections: Vec<String>,
    /// `(data section, label) -> byte offset`.
    data_labels: HashMap<(String, String), u64>,
    /// What data directives put into `license`, in order, and where the first one was.
    license_data: Vec<(DataPiece, Origin)>,
    license_data_at: Option<(Origin, usize)>,
    /// Symbol directives, in order of first mention.
    symbols: SymbolDecls,
}

/// Where statements go.
#[derive(Clone)]
enum Place {
    Program(usize),
    Data(String),
}

/// Builds the program from macro-expanded lines.
pub fn build(lines: &[Origin]) -> Result<Program, Vec<Diagnostic>> {
    build_with_constants(lines).map(|(program, _)| program)
}

/// `.equ`/`.set` constants by name, in order of definition.
pub type ConstantList = Vec<(String, i128)>;

/// Builds the program, and gives every `.equ`/`.set` constant with its value, in order of
/// definition.
pub fn build_with_constants(lines: &[Origin]) -> Result<(Program, ConstantList), Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut collected = collect(lines, &mut errors);
    if errors.len() >= MAX_ERRORS {
        return Err(errors);
    }
    collected.constants = consts::resolve(&collected.definitions, &mut errors);
    let mut program = resolve(&collected, &mut errors);
    let c = &collected;
    if let Some(at) = &c.license_data_at {
        if c.license.is_some() {
            errors.push(Diagnostic::new(
                &at.0,
                at.1,
                "the license is given twice: by .license and by data in the `license` section",
            ));
        }
        program.license = resolve_license(&c.license_data, at, &c.constants, &mut errors);
    }
    let labels = Labels {
        program: &c.labels,
        data: &c.data_labels,
    };
    program.symbols = resolve_symbols(&c.symbols, &labels, &c.constants, &mut errors);
    if errors.is_empty() {
        let constants = c
            .definitions
            .iter()
            .filter_map(|d| c.constants.value(&d.name).map(|v| (d.name.clone(), v)))
            .collect();
        Ok((program, constants))
    } else {
        Err(errors)
    }
}

fn collect(lines: &[Origin], errors: &mut Vec<Diagnostic>) -> Collected {
    let mut c = Collected {
        sections: Vec::new(),
        labels: HashMap::new(),
        definitions: Vec::new(),
        constants: Constants::default(),
        maps: Vec::new(),
        license: None,
        insns: Vec::new(),
        data_sections: Vec::new(),
        data_labels: HashMap::new(),
        license_data: Vec::new(),
        license_data_at: None,
        symbols: SymbolDecls::default(),
    };
    let mut slots: Vec<usize> = Vec::new();
    let mut constant_names: HashSet<String> = HashSet::new();
    let mut current: Option<Place> = None;
    let mut license_len: u64 = 0;
    for origin in lines {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        let statements = match parse_line(origin) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        for stmt in statements {
            let outside = |col: usize| {
                Diagnostic::new(
                    origin,
                    col,
                    "instructions and labels must follow a .text or .section directive (e.g. .section kprobe/tcp_v4_connect)",
                )
            };
            match stmt {
                Stmt::Section { name, code, col } => {
                    let program = c.sections.iter().position(|s| *s == name);
                    let data = c.data_sections.contains(&name);
                    if (code && data) || (!code && program.is_some()) {
                        let was = if code {
                            "data (flags without \"x\")"
                        } else {
                            "a program section"
                        };
                        errors.push(Diagnostic::new(
                            origin,
                            col,
                            format!("section `{name}` was opened before as {was}: give it the same flags every time"),
                        ));
                        continue;
                    }
                    current = Some(if code {
                        Place::Program(program.unwrap_or_else(|| {
                            c.sections.push(name);
                            slots.push(0);
                            c.sections.len() - 1
                        }))
                    } else {
                        if !data {
                            c.data_sections.push(name.clone());
                        }
                        Place::Data(name)
                    });
                }
                Stmt::Label(name, col) => match &current {
                    None => errors.push(outside(col)),
                    Some(Place::Program(section)) => {
                        let slot = slots.get(*section).copied().unwrap_or(0);
                        if c.labels.insert((*section, name.clone()), slot).is_some() {
                            errors.push(Diagnostic::new(
                                origin,
                                col,
                                format!("label `{name}` is defined twice in this section"),
                            ));
                        }
                    }
                    Some(Place::Data(section)) => {
                        let offset = if section == "license" { license_len } else { 0 };
                        if c.data_labels
                            .insert((section.clone(), name.clone()), offset)
                            .is_some()
                        {
                            errors.push(Diagnostic::new(
                                origin,
                                col,
                                format!("label `{name}` is defined twice in this section"),
                            ));
                        }
                    }
                },
                Stmt::Insn(insn) => {
                    let section = match &current {
                        Some(Place::Program(section)) => *section,
                        Some(Place::Data(name)) => {
                            errors.push(Diagnostic::new(origin, insn.col, format!("instructions must go in a program section, and `{name}` holds data: switch with .text or .section NAME,\"ax\"")));
                            continue;
                        }
                        None => {
                            errors.push(outside(insn.col));
                            continue;
                        }
                    };
                    let Some(slot) = slots.get_mut(section) else {
                        continue;
                    };
                    let at = *slot;
                    *slot += insn.insn.slots();
                    c.insns.push(Pending {
                        section,
                        slot: at,
                        insn: *insn,
                        origin: origin.clone(),
                    });
                }
                Stmt::Data(pieces, col) => {
                    if !matches!(&current, Some(Place::Data(name)) if name == "license") {
                        errors.push(Diagnostic::new(origin, col, "data directives are honoured only in the `license` section (.section \"license\",\"aw\",@progbits): bpf-asm objects hold programs, maps (.map) and the license, no other data"));
                        continue;
                    }
                    if c.license_data_at.is_none() {
                        c.license_data_at = Some((origin.clone(), col));
                    }
                    for piece in pieces {
                        license_len += piece.len() as u64;
                        c.license_data.push((piece, origin.clone()));
                    }
                }
                Stmt::Align { bytes, col } => {
                    // Instructions are 8 bytes in 8-aligned sections, so up to 8 needs no
                    // padding; larger, llvm-mc pads with jumps, which bpf-asm does not do.
                    let padding_needed = match &current {
                        Some(Place::Program(_)) => bytes > 8,
                        Some(Place::Data(name)) if name == "license" => {
                            !license_len.is_multiple_of(bytes)
                        }
                        _ => false,
                    };
                    if padding_needed {
                        errors.push(Diagnostic::new(origin, col, format!("alignment to {bytes} bytes here needs padding, which bpf-asm does not insert: program sections are aligned to 8, data must be aligned by hand")));
                    }
                }
                Stmt::Symbols(list) => {
                    for (name, attr, col) in list {
                        c.symbols.declare(name, attr, origin, col, errors);
                    }
                }
                Stmt::Nothing => {}
                Stmt::License(text) => {
                    if c.license.is_some() {
                        errors.push(Diagnostic::new(origin, 1, ".license is given twice"));
                    }
                    c.license = Some(text);
                }
                Stmt::Equ(name, expr, col) => {
                    if constant_names.insert(name.clone()) {
                        c.definitions.push(Definition {
                            name,
                            expr,
                            origin: origin.clone(),
                        });
                    } else {
                        errors.push(Diagnostic::new(
                            origin,
                            col,
                            format!("constant `{name}` is defined twice"),
                        ));
                    }
                }
                Stmt::Map { name, values, col } => {
                    if c.maps.iter().any(|m| m.0 == name) {
                        errors.push(Diagnostic::new(
                            origin,
                            col,
                            format!("map `{name}` is defined twice"),
                        ));
                    } else {
                        c.maps.push((name, values, origin.clone(), col));
                    }
                }
            }
        }
    }
    c
}

/// Evaluates an instruction's or directive's expression; constants are resolved by now.
fn eval(c: &Collected, expr: &Expr, origin: &Origin) -> Result<Value, EvalError> {
    expr::eval(expr, origin, &mut |name, col| {
        c.constants.get(name, origin, col)
    })
}

fn out_of_range(origin: &Origin, col: usize, what: &str, value: i128, range: &str) -> Diagnostic {
    Diagnostic::new(
        origin,
        col,
        format!("{what} {value} is out of range: it must fit {range}"),
    )
}

fn resolve(c: &Collected, errors: &mut Vec<Diagnostic>) -> Program {
    let mut program = Program {
        sections: c
            .sections
            .iter()
            .map(|name| Section {
                name: name.clone(),
                insns: Vec::new(),
            })
            .collect(),
        maps: Vec::new(),
        license: c.license.clone(),
        symbols: Vec::new(),
    };

    for (name, values, origin, col) in &c.maps {
        let mut fields = [0u32; 5];
        for (i, expr) in values.iter().enumerate() {
            match eval(c, expr, origin) {
                Ok(v) => match u32::try_from(v.constant) {
                    Ok(n) => {
                        if let Some(slot) = fields.get_mut(i) {
                            *slot = n;
                        }
                    }
                    Err(_) => errors.push(out_of_range(
                        origin,
                        expr.col,
                        "map parameter",
                        v.constant,
                        "in u32",
                    )),
                },
                Err(EvalError::Diag(e)) => errors.push(e),
                Err(_) => {}
            }
        }
        let _ = col;
        let [map_type, key_size, value_size, max_entries, flags] = fields;
        program.maps.push(MapDef {
            name: name.clone(),
            map_type,
            key_size,
            value_size,
            max_entries,
            flags,
        });
    }

    for pending in &c.insns {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        match resolve_insn(c, pending) {
            Ok(insn) => {
                if let Some(section) = program.sections.get_mut(pending.section) {
                    section.insns.push(insn);
                }
            }
            Err(EvalError::Diag(e)) => errors.push(e),
            Err(_) => {}
        }
    }
    program
}

fn resolve_insn(c: &Collected, pending: &Pending) -> Result<Insn, EvalError> {
    let origin = &pending.origin;
    let p = &pending.insn;
    let mut insn = p.insn;
    let mut field = None;

    if let Some((expr, range, field_allowed)) = &p.imm {
        let v = eval(c, expr, origin)?;
        if let Some(name) = v.field {
            if !field_allowed {
                return Err(Diagnostic::new(origin, expr.col, "bad offsetof: it may only be a memory offset or the immediate of an ALU instruction").into());
            }
            let addend = i32::try_from(v.constant).map_err(|_| {
                out_of_range(origin, expr.col, "offsetof addend", v.constant, "in i32")
            })?;
            insn.imm = i64::from(IMM_PLACEHOLDER);
            field = Some(FieldRef {
                kind: FieldKind::Imm,
                name,
                addend,
            });
        } else {
            // The value must lie in [lo, hi]; `range` says so in the error.
            let within = |lo: i128, hi: i128, what: &str, range: &str| {
                if (lo..=hi).contains(&v.constant) {
                    Ok(())
                } else {
                    Err(out_of_range(origin, expr.col, what, v.constant, range))
                }
            };
            insn.imm = match range {
                ImmRange::I32 => {
                    within(
                        i32::MIN.into(),
                        i32::MAX.into(),
                        "immediate",
                        "in i32 (-2147483648 to 2147483647)",
                    )?;
                    v.constant as i64
                }
                ImmRange::Bits32 => {
                    within(
                        i32::MIN.into(),
                        u32::MAX.into(),
                        "immediate",
                        "in 32 bits (-2147483648 to 4294967295)",
                    )?;
                    i64::from(v.constant as u32 as i32)
                }
                ImmRange::Bits64 => {
                    within(i64::MIN.into(), u64::MAX.into(), "constant", "in 64 bits")?;
                    v.constant as u64 as i64
                }
            };
        }
    }

    if let Some(expr) = &p.off {
        let v = eval(c, expr, origin)?;
        if let Some(name) = v.field {
            if field.is_some() {
                return Err(Diagnostic::new(
                    origin,
                    expr.col,
                    "bad offsetof: one instruction can take only one offsetof",
                )
                .into());
            }
            let addend = i32::try_from(v.constant).map_err(|_| {
                out_of_range(origin, expr.col, "offsetof addend", v.constant, "in i32")
            })?;
            insn.off = OFF_PLACEHOLDER;
            field = Some(FieldRef {
                kind: FieldKind::Off,
                name,
                addend,
            });
        } else {
            insn.off = i16::try_from(v.constant).map_err(|_| {
                out_of_range(
                    origin,
                    expr.col,
                    "offset",
                    v.constant,
                    "in i16 (-32768 to 32767)",
                )
            })?;
        }
    }

    if let Some(target) = &p.target {
        let long = insn.opcode == OpCode::Gotol;
        let (distance, col) = match target {
            Target::Relative(expr) => {
                let v = eval(c, expr, origin)?;
                if v.field.is_some() {
                    return Err(Diagnostic::new(
                        origin,
                        expr.col,
                        "bad offsetof: a jump offset cannot be a struct offset",
                    )
                    .into());
                }
                (v.constant, expr.col)
            }
            Target::Label(name, col) => {
                let Some(slot) = c.labels.get(&(pending.section, name.clone())) else {
                    let elsewhere = c.labels.keys().any(|(_, n)| n == name);
                    let why = if elsewhere {
                        format!("label `{name}` is in another section: jumps cannot leave their section")
                    } else {
                        format!("undefined label `{name}`")
                    };
                    return Err(Diagnostic::new(origin, *col, why).into());
                };
                // Offsets count from the slot after the jump.
                (*slot as i128 - pending.slot as i128 - 1, *col)
            }
        };
        if long {
            insn.imm = i32::try_from(distance)
                .map(i64::from)
                .map_err(|_| out_of_range(origin, col, "jump offset", distance, "in i32"))?;
        } else {
            insn.off = i16::try_from(distance).map_err(|_| {
                out_of_range(
                    origin,
                    col,
                    "jump offset",
                    distance,
                    "in i16 (-32768 to 32767 instructions)",
                )
            })?;
        }
    }

    if let Some((name, col)) = &p.map {
        if !c.maps.iter().any(|m| m.0 == *name) {
            return Err(Diagnostic::new(origin, *col, format!("unknown map `{name}`: define it with .map {name}, TYPE, KEY_SIZE, VALUE_SIZE, MAX_ENTRIES")).into());
        }
    }

    Ok(Insn {
        instruction: insn,
        map: p.map.as_ref().map(|(n, _)| n.clone()),
        field,
        origin: origin.clone(),
    })
}
