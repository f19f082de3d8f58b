//! Value grammars shared by the options (UTF-8, plain decimal numbers, seconds) and the
//! shape of their error message.

use super::{CliError, MAX_DURATION_SECS};
use std::ffi::OsStr;
use std::time::Duration;

pub(super) fn invalid(what: &str, value: &str, spelled: &str, expected: &str) -> CliError {
    CliError::new(format!(
        "invalid {what} '{value}' for {spelled}: {expected}"
    ))
}

pub(super) fn utf8<'a>(value: &'a OsStr, spelled: &str) -> Result<&'a str, CliError> {
    value.to_str().ok_or_else(|| {
        CliError::new(format!(
            "invalid value '{}' for {spelled}: not valid UTF-8",
            value.to_string_lossy()
        ))
    })
}

/// A plain decimal number: digits only (no sign, no spaces), no overflow.
pub(super) fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Seconds as `N`, `N.F` or `.F`: above zero, at most MAX_DURATION_SECS, nanosecond precision
/// (further digits are dropped).
pub(super) fn seconds(s: &str) -> Option<Duration> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos: u32 = 0;
    for (i, digit) in fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .enumerate()
    {
        let _ = i;
        nanos = nanos * 10 + u32::from(digit - b'0');
    }
    let duration = Duration::new(secs, nanos);
    (!duration.is_zero() && duration <= Duration::from_secs(MAX_DURATION_SECS)).then_some(duration)
}
