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
