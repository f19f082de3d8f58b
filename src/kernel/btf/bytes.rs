//! Bounds-checked little-endian reads: every parser access goes through these, so a short or
//! corrupt input yields `None` instead of a panic.

/// The little-endian `u16` at `off`, if `bytes` holds two bytes there.
pub(super) fn u16_at(bytes: &[u8], off: usize) -> Option<u16> {
    let end = off.checked_add(2)?;
    let raw: [u8; 2] = bytes.get(off..end)?.try_into().ok()?;
    Some(u16::from_le_bytes(raw))
}

/// The little-endian `u32` at `off`, if `bytes` holds four bytes there.
pub(super) fn u32_at(bytes: &[u8], off: usize) -> Option<u32> {
    let end = off.checked_add(4)?;
    let raw: [u8; 4] = bytes.get(off..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(raw))
}

/// The NUL-terminated string starting at `off` (without its NUL), if one starts there.
pub(super) fn c_str_at(bytes: &[u8], off: usize) -> Option<&[u8]> {
    let rest = bytes.get(off..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    rest.get(..len)
}

/// Whether the NUL-terminated string at `off` is `name`, read no further than `name` and its
/// NUL (so comparing is O(`name`), however long the string there is). A `name` with a NUL in
/// it is never a BTF string.
pub(super) fn name_is(strings: &[u8], off: u32, name: &[u8]) -> bool {
    if name.is_empty() {
        return name_is_empty(strings, off);
    }
    let off = off as usize;
    let Some(end) = off.checked_add(name.len()) else {
        return false;
    };
    strings.get(off..end) == Some(name) && strings.get(end) == Some(&0) && !name.contains(&0)
}

/// Whether the string at `off` is empty (an anonymous type or member), or `off` is out of
/// bounds, which reads as empty too.
pub(super) fn name_is_empty(strings: &[u8], off: u32) -> bool {
    strings.get(off as usize).is_none_or(|&b| b == 0)
}
