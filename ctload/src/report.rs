//! The end-of-run report: a sentence for people, one JSON object for scripts.

use crate::load::Report;

pub fn text(r: &Report) -> String {
    let mut s = format!(
        "ctload: {} port {}: {} connects ok, {} failed, {} accepts in {:.3} s: {:.0} connections/s",
        r.family,
        r.port,
        r.connects_ok,
        r.connects_failed,
        r.accepts,
        r.seconds,
        r.rate()
    );
    if let Some(e) = &r.first_error {
        s.push_str(&format!(" (first connect error: {e})"));
    }
    s
}

pub fn json(r: &Report) -> String {
    let first_error = match &r.first_error {
        Some(e) => json_string(e),
        None => "null".into(),
    };
    format!(
        "{{\"family\":\"{}\",\"port\":{},\"pid\":{},\"connects_ok\":{},\"connects_failed\":{},\
         \"accepts\":{},\"seconds\":{:.6},\"rate\":{:.1},\"first_error\":{}}}",
        r.family,
        r.port,
        r.pid,
        r.connects_ok,
        r.connects_failed,
        r.accepts,
        r.seconds,
        r.rate(),
        first_error
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            family: "ipv6",
            port: 40000,
            pid: 77,
            connects_ok: 1000,
            connects_failed: 2,
            accepts: 1000,
            seconds: 0.5,
            first_error: Some("Connection \"refused\"\n".into()),
        }
    }

    #[test]
    fn json_has_every_count_and_escapes_the_error() {
        assert_eq!(
            json(&report()),
            "{\"family\":\"ipv6\",\"port\":40000,\"pid\":77,\"connects_ok\":1000,\
             \"connects_failed\":2,\"accepts\":1000,\"seconds\":0.500000,\"rate\":2000.0,\
             \"first_error\":\"Connection \\\"refused\\\"\\u000a\"}"
        );
        let clean = Report {
            first_error: None,
            ..report()
        };
        assert!(json(&clean).ends_with("\"first_error\":null}"));
    }

    #[test]
    fn text_reads_as_a_sentence() {
        assert_eq!(
            text(&report()),
            "ctload: ipv6 port 40000: 1000 connects ok, 2 failed, 1000 accepts in 0.500 s: \
             2000 connections/s (first connect error: Connection \"refused\"\n)"
        );
    }
}
