//! One record against what each of its fields must hold, and the words for a mismatch.

use crate::json::Value;

/// What a field must hold.
#[derive(Clone)]
pub(super) enum Want<'a> {
    Str(&'a str),
    /// That string, or null (a value conntrace may not be able to learn).
    StrOrNull(&'a str),
    Int(u64),
    Null,
    /// A non-zero integer (a port we could not learn in advance).
    NonZero,
    /// One of these strings.
    OneOf(&'a [&'a str]),
    /// Any unsigned integer (cgroup id).
    AnyInt,
    /// A latency or a duration in microseconds: an integer >= 0.
    Micros,
    /// 16 lowercase hex digits (the opaque socket id).
    SockId,
    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`
    Timestamp,
}

pub(super) fn field_problem(rec: &Value, field: &str, want: &Want<'_>) -> Option<String> {
    let Some(got) = rec.get(field) else {
        return Some(format!("{field} is absent"));
    };
    let ok = match want {
        Want::Str(s) => got.as_str() == Some(*s),
        Want::StrOrNull(s) => got.is_null() || got.as_str() == Some(*s),
        Want::Int(n) => got.as_u64() == Some(*n),
        Want::Null => got.is_null(),
        Want::NonZero => got.as_u64().is_some_and(|n| n != 0),
        Want::OneOf(all) => got.as_str().is_some_and(|g| all.contains(&g)),
        Want::AnyInt | Want::Micros => got.as_u64().is_some(),
        Want::SockId => got.as_str().is_some_and(|s| {
            s.len() == 16
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }),
        Want::Timestamp => got.as_str().is_some_and(is_timestamp),
    };
    if ok {
        return None;
    }
    let wanted = match want {
        Want::Str(s) => format!("\"{s}\""),
        Want::StrOrNull(s) => format!("\"{s}\" or null"),
        Want::Int(n) => n.to_string(),
        Want::Null => "null".into(),
        Want::NonZero => "a non-zero integer".into(),
        Want::OneOf(all) => {
            let quoted: Vec<String> = all.iter().map(|s| format!("\"{s}\"")).collect();
            format!("one of {}", quoted.join(", "))
        }
        Want::AnyInt => "an unsigned integer".into(),
        Want::Micros => "an integer >= 0".into(),
        Want::SockId => "16 lowercase hex digits".into(),
        Want::Timestamp => "a UTC timestamp like 2026-11-28T02:30:00.123456Z".into(),
    };
    Some(format!("{field} is {}, expected {wanted}", show(got)))
}

pub(super) fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digit_at = |i: &[usize]| i.iter().all(|&i| b.get(i).is_some_and(u8::is_ascii_digit));
    b.len() == 27
        && digit_at(&[
            0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25,
        ])
        && b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && b.get(10) == Some(&b'T')
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':')
        && b.get(19) == Some(&b'.')
        && b.get(26) == Some(&b'Z')
}

pub(super) fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.clone(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// One line summary of a record: what a person scanning a failure wants to see.
pub(super) fn summary(rec: &Value) -> String {
    let f = |k: &str| rec.get(k).map(show).unwrap_or_else(|| "-".into());
    let addr = |a: &str, p: &str| {
        let addr = rec.get(a).and_then(Value::as_str).unwrap_or("-");
        if addr.contains(':') {
            format!("[{addr}]:{}", f(p))
        } else {
            format!("{addr}:{}", f(p))
        }
    };
    let event = rec.get("event").and_then(Value::as_str).unwrap_or("?");
    let mut line = format!(
        "{event} {} {} -> {} pid={} tid={} uid={} comm={} sock={} error={} latency_us={}",
        rec.get("family").and_then(Value::as_str).unwrap_or("?"),
        addr("laddr", "lport"),
        addr("raddr", "rport"),
        f("pid"),
        f("tid"),
        f("uid"),
        f("comm"),
        f("sock"),
        f("error"),
        f("latency_us"),
    );
    if event == "close" {
        line.push_str(&format!(
            " duration_us={} bytes_sent={} bytes_received={} closed_by={}",
            f("duration_us"),
            f("bytes_sent"),
            f("bytes_received"),
            f("closed_by")
        ));
    }
    line
}

pub(super) fn str_of<'a>(rec: &'a Value, key: &str) -> Option<&'a str> {
    rec.get(key).and_then(Value::as_str)
}

pub(super) fn u64_of(rec: &Value, key: &str) -> Option<u64> {
    rec.get(key).and_then(Value::as_u64)
}

/// Checks a record against a list of wants, adding "<what>: <problem>" per mismatch.
pub(super) fn check_fields(
    failures: &mut Vec<String>,
    what: &str,
    rec: &Value,
    wants: &[(&str, Want<'_>)],
) {
    let problems: Vec<String> = wants
        .iter()
        .filter_map(|(field, want)| field_problem(rec, field, want))
        .collect();
    if !problems.is_empty() {
        failures.push(format!(
            "{what}: {} (record: {})",
            problems.join("; "),
            summary(rec)
        ));
    }
}

/// Exactly one record expected; complains about none or several. Returns the first.
pub(super) fn one<'a>(
    failures: &mut Vec<String>,
    what: &str,
    found: Vec<&'a Value>,
) -> Option<&'a Value> {
    match found.len() {
        0 => failures.push(format!("missing {what}")),
        1 => {}
        n => failures.push(format!("{n} records for {what}, expected exactly one")),
    }
    found.first().copied()
}
