//! BTF type kinds and the fixed part of each type record (include/uapi/linux/btf.h).

pub(super) const INT: u32 = 1;
pub(super) const PTR: u32 = 2;
pub(super) const ARRAY: u32 = 3;
pub(super) const STRUCT: u32 = 4;
pub(super) const UNION: u32 = 5;
pub(super) const ENUM: u32 = 6;
pub(super) const FWD: u32 = 7;
pub(super) const TYPEDEF: u32 = 8;
pub(super) const VOLATILE: u32 = 9;
pub(super) const CONST: u32 = 10;
pub(super) const RESTRICT: u32 = 11;
pub(super) const FUNC: u32 = 12;
pub(super) const FUNC_PROTO: u32 = 13;
pub(super) const VAR: u32 = 14;
pub(super) const DATASEC: u32 = 15;
pub(super) const FLOAT: u32 = 16;
pub(super) const DECL_TAG: u32 = 17;
pub(super) const TYPE_TAG: u32 = 18;
pub(super) const ENUM64: u32 = 19;

/// `struct btf_type`: name_off, info, size-or-type.
pub(super) const TYPE_HEADER_LEN: usize = 12;
/// `struct btf_member`: name_off, type, offset.
pub(super) const MEMBER_LEN: usize = 12;

/// Fields packed into `btf_type.info`.
pub(super) fn kind_of(info: u32) -> u32 {
    (info >> 24) & 0x1f
}
pub(super) fn vlen_of(info: u32) -> usize {
    (info & 0xffff) as usize
}
pub(super) fn kind_flag_of(info: u32) -> bool {
    info >> 31 != 0
}

/// Kinds that only qualify another type: followed to reach the type underneath.
pub(super) fn is_modifier(kind: u32) -> bool {
    matches!(kind, TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG)
}

pub(super) fn is_composite(kind: u32) -> bool {
    matches!(kind, STRUCT | UNION)
}

/// A readable kind name for error messages.
pub(super) fn kind_name(kind: u32) -> &'static str {
    match kind {
        INT => "int",
        PTR => "pointer",
        ARRAY => "array",
        STRUCT => "struct",
        UNION => "union",
        ENUM => "enum",
        FWD => "forward declaration",
        TYPEDEF => "typedef",
        VOLATILE => "volatile",
        CONST => "const",
        RESTRICT => "restrict",
        FUNC => "function",
        FUNC_PROTO => "function prototype",
        VAR => "variable",
        DATASEC => "data section",
        FLOAT => "float",
        DECL_TAG => "declaration tag",
        TYPE_TAG => "type tag",
        ENUM64 => "enum64",
        _ => "unknown kind",
    }
}
