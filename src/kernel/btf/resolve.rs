//! "struct.field.path" to a byte offset and size: find the struct by name, walk its members
//! (descending into anonymous structs and unions), step through typedefs and qualifiers to
//! the next struct, and refuse bitfields, which a BPF load cannot read as whole bytes.

use super::kind::*;
use super::{Btf, BtfError, Field};

/// Chains of typedefs/qualifiers and nests of anonymous members are a handful deep in real
/// kernels; a limit turns a cyclic (corrupt) BTF into an error instead of a hang.
const MAX_DEPTH: usize = 32;
/// Members visited in one field search. vmlinux needs a few hundred; a crafted BTF whose
/// anonymous members fan out at every level would otherwise take exponential time.
const MAX_MEMBERS_VISITED: usize = 1 << 20;

/// A named member found inside a struct, with its offset from the start of that struct.
struct Found {
    bit_offset: u64,
    type_id: u32,
}

impl Btf {
    pub(super) fn resolve(&self, spec: &str) -> Result<Field, BtfError> {
        let mut parts = spec.split('.');
        let struct_name = parts.next().unwrap_or_default();
        let path: Vec<&str> = parts.collect();
        if struct_name.is_empty() || path.is_empty() || path.iter().any(|p| p.is_empty()) {
            return Err(BtfError::new(format!(
                "bad field spec `{spec}`: expected STRUCT.FIELD or STRUCT.FIELD.PATH, \
                 e.g. sock_common.skc_dport"
            )));
        }
        let root = self.find_struct(struct_name).ok_or_else(|| {
            BtfError::new(format!(
                "struct {struct_name} is not in this kernel's BTF (needed for {spec})"
            ))
        })?;

        let mut walked = struct_name.to_string();
        let mut bits: u64 = 0;
        let mut current = root;
        for (step, name) in path.iter().enumerate() {
            let container = if step == 0 {
                root
            } else {
                self.composite_for_step(current, &walked, name)?
            };
            let mut budget = MAX_MEMBERS_VISITED;
            let found = self
                .find_member(container, name, &walked, 0, &mut budget)?
                .ok_or_else(|| self.no_such_field(container, &walked, name))?;
            bits = bits.saturating_add(found.bit_offset);
            current = found.type_id;
            walked.push('.');
            walked.push_str(name);
        }
        let offset = u32::try_from(bits / 8).map_err(|_| {
            BtfError::new(format!(
                "corrupt BTF: the offset of {spec} does not fit in 32 bits"
            ))
        })?;
        let size = self.size_of(current, spec)?;
        Ok(Field { offset, size })
    }

    /// The first complete struct or union with this name.
    pub(super) fn find_struct(&self, name: &str) -> Option<u32> {
        self.names()
            .find(&self.composites, self.strings(), name.as_bytes())
    }

    /// Follows typedefs and qualifiers from `id`; returns the underlying id (0 = void).
    fn skip_modifiers(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..MAX_DEPTH {
            match self.raw_type(id) {
                Some(t) if is_modifier(t.kind()) => id = t.size_or_type,
                _ => return Ok(id),
            }
        }
        Err(BtfError::new(format!(
            "corrupt BTF: type {id} is a typedef or qualifier chain more than {MAX_DEPTH} deep"
        )))
    }

    /// The struct or union that the member at `walked` has as its type, so that the path can
    /// continue into it with `next`.
    fn composite_for_step(&self, id: u32, walked: &str, next: &str) -> Result<u32, BtfError> {
        let id = self.skip_modifiers(id)?;
        match self.raw_type(id).map(|t| t.kind()) {
            Some(k) if is_composite(k) => Ok(id),
            Some(PTR) => Err(BtfError::new(format!(
                "{walked} is a pointer, and a field path cannot follow pointers: resolve \
                 `<pointed-to struct>.{next}` as a separate field"
            ))),
            other => Err(BtfError::new(format!(
                "{walked} is a {}, not a struct or union, so it has no field {next}",
                other.map_or("void", kind_name)
            ))),
        }
    }

    /// Searches the members of struct/union `id` for `name`, descending into anonymous
    /// struct/union members, whose fields C lets you name as if they were the parent's.
    fn find_member(
        &self,
        id: u32,
        name: &str,
        walked: &str,
        depth: usize,
        budget: &mut usize,
    ) -> Result<Option<Found>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::new(format!(
                "corrupt BTF: anonymous members nested more than {MAX_DEPTH} deep in {walked}"
            )));
        }
        let Some(container) = self.raw_type(id) else {
            return Ok(None);
        };
        let kind_flag = container.kind_flag();
        for member in container.members() {
            *budget = budget.checked_sub(1).ok_or_else(|| {
                BtfError::new(format!(
                    "corrupt BTF: searching {walked} for {name} visits more than \
                     {MAX_MEMBERS_VISITED} members"
                ))
            })?;
            // With kind_flag set, the top byte of `offset` is the bitfield size.
            let (bit_offset, bitfield_size) = if kind_flag {
                (member.offset & 0x00ff_ffff, member.offset >> 24)
            } else {
                (member.offset, 0)
            };
            if self.name_is(member.name_off, name.as_bytes()) {
                if bitfield_size != 0 || bit_offset % 8 != 0 || self.is_int_bitfield(member.type_id)
                {
                    return Err(BtfError::new(format!(
                        "{walked}.{name} is a bitfield in this kernel's BTF; conntrace reads \
                         whole bytes and cannot use it"
                    )));
                }
                return Ok(Some(Found {
                    bit_offset: bit_offset as u64,
                    type_id: member.type_id,
                }));
            }
            if self.name_is_empty(member.name_off) {
                let inner = self.skip_modifiers(member.type_id)?;
                let is_nested = self.raw_type(inner).is_some_and(|t| is_composite(t.kind()));
                if is_nested {
                    if let Some(found) = self.find_member(inner, name, walked, depth + 1, budget)? {
                        return Ok(Some(Found {
                            bit_offset: found.bit_offset.saturating_add(bit_offset as u64),
                            type_id: found.type_id,
                        }));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Old-style bitfields (no kind_flag) are INT types whose bit count or bit offset do not
    /// cover their whole storage.
    fn is_int_bitfield(&self, id: u32) -> bool {
        let Ok(id) = self.skip_modifiers(id) else {
            return false;
        };
        let Some(t) = self.raw_type(id).filter(|t| t.kind() == INT) else {
            return false;
        };
        let encoding = t.int_encoding().unwrap_or(0);
        let nr_bits = encoding & 0xff;
        let bit_offset = (encoding >> 16) & 0xff;
        bit_offset != 0 || u64::from(nr_bits) != u64::from(t.size_or_type) * 8
    }

    fn no_such_field(&self, container: u32, walked: &str, name: &str) -> BtfError {
        let described = match self.raw_type(container) {
            Some(t) if t.name_off != 0 => format!(
                "{} {}",
                kind_name(t.kind()),
                String::from_utf8_lossy(self.name(t.name_off))
            ),
            Some(t) => format!("{walked} (an anonymous {})", kind_name(t.kind())),
            None => walked.to_string(),
        };
        BtfError::new(format!(
            "{described} has no field {name} in this kernel's BTF"
        ))
    }

    /// The size in bytes of type `id`, through typedefs, qualifiers and arrays.
    fn size_of(&self, mut id: u32, spec: &str) -> Result<u32, BtfError> {
        let mut count: u64 = 1;
        for _ in 0..MAX_DEPTH {
            let t = self
                .raw_type(id)
                .ok_or_else(|| BtfError::new(format!("{spec} has type void, which has no size")))?;
            let element = match t.kind() {
                INT | STRUCT | UNION | ENUM | ENUM64 | FLOAT | DATASEC => t.size_or_type,
                PTR => self.pointer_size,
                k if is_modifier(k) => {
                    id = t.size_or_type;
                    continue;
                }
                ARRAY => {
                    let (element_type, elements) = t.array().unwrap_or((0, 0));
                    count = count.saturating_mul(u64::from(elements));
                    id = element_type;
                    continue;
                }
                k => {
                    return Err(BtfError::new(format!(
                        "{spec} has a type of kind {}, which has no size",
                        kind_name(k)
                    )))
                }
            };
            return u32::try_from(count.saturating_mul(u64::from(element))).map_err(|_| {
                BtfError::new(format!(
                    "corrupt BTF: the size of {spec} does not fit in 32 bits"
                ))
            });
        }
        Err(BtfError::new(format!(
            "corrupt BTF: the type of {spec} is nested more than {MAX_DEPTH} deep"
        )))
    }
}
