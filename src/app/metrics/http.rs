//! Just enough HTTP/1.x for a scrape: a pure request parser (any bytes in, an answer out, never
//! a panic) and the responses. One request per connection; the server closes it after its
//! response (`Connection: close`), so there is no body to read and no pipelining to handle.

/// Requests larger than this (request line and headers) are refused with 431.
pub const MAX_REQUEST: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Other,
}

/// What the bytes received so far amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// No complete header block yet, and nothing wrong so far.
    Incomplete,
    Request {
        method: Method,
        /// The target's path, without its query.
        path: &'a [u8],
    },
    /// Not a request we can answer: the status to send and why.
    Bad(u16, &'static str),
}

/// Parses the start of a connection's bytes.
pub fn parse_request(buf: &[u8]) -> Parsed<'_> {
    let Some(line_end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_REQUEST {
            Parsed::Bad(431, "request line too long")
        } else {
            Parsed::Incomplete
        };
    };
    let line = strip_cr(&buf[..line_end]);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Bad(400, "malformed request line");
    };
    if method.is_empty() || method.len() > 16 || !method.iter().all(u8::is_ascii_uppercase) {
        return Parsed::Bad(400, "malformed method");
    }
    if !target.starts_with(b"/") || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Parsed::Bad(400, "the target must be a path, like /metrics");
    }
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Parsed::Bad(505, "only HTTP/1.0 and HTTP/1.1");
    }
    // The headers: each line `name: value`, then an empty line.
    let mut rest = &buf[line_end + 1..];
    loop {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return if buf.len() >= MAX_REQUEST {
                Parsed::Bad(431, "request headers too large")
            } else {
                Parsed::Incomplete
            };
        };
        let header = strip_cr(&rest[..end]);
        rest = &rest[end + 1..];
        if header.is_empty() {
            break;
        }
        let Some(colon) = header.iter().position(|&b| b == b':') else {
            return Parsed::Bad(400, "malformed header line");
        };
        let name = &header[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Parsed::Bad(400, "malformed header name");
        }
    }
    if buf.len() - rest.len() > MAX_REQUEST {
        return Parsed::Bad(431, "request headers too large");
    }
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    };
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    Parsed::Request { method, path }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// RFC 9110's tchar.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The response to a parsed request: `metrics` renders the exposition when it is asked for.
pub fn respond(parsed: &Parsed<'_>, metrics: impl FnOnce() -> String) -> Vec<u8> {
    match *parsed {
        Parsed::Incomplete => response(400, "text/plain", &[], b"incomplete request\n", true),
        Parsed::Bad(status, why) => response(
            status,
            "text/plain",
            &[],
            format!("{why}\n").as_bytes(),
            true,
        ),
        Parsed::Request { path, .. } if path != b"/metrics" => response(
            404,
            "text/plain",
            &[],
            b"not found: conntrace serves /metrics\n",
            true,
        ),
        Parsed::Request {
            method: Method::Other,
            ..
        } => response(
            405,
            "text/plain",
            &[("Allow", "GET, HEAD")],
            b"method not allowed: use GET\n",
            true,
        ),
        Parsed::Request { method, .. } => response(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            &[],
            metrics().as_bytes(),
            method == Method::Get,
        ),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// A complete response; `with_body` false for HEAD (the length is still the body's).
pub fn response(
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    with_body: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    for (name, value) in extra {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(bytes: &[u8]) -> u16 {
        let r = respond(&parse_request(bytes), || "m 1\n".into());
        std::str::from_utf8(&r[9..12]).unwrap().parse().unwrap()
    }

    #[test]
    fn a_scrape_is_answered() {
        let req = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9479\r\nAccept: text/plain\r\n\r\n";
        assert_eq!(
            parse_request(req),
            Parsed::Request {
                method: Method::Get,
                path: b"/metrics"
            }
        );
        let r = respond(&parse_request(req), || "m 1\n".into());
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 4\r\n"));
        assert!(text.ends_with("\r\n\r\nm 1\n"));
        assert_eq!(status(b"GET /metrics?x=1 HTTP/1.0\n\n"), 200);
        let head = respond(&parse_request(b"HEAD /metrics HTTP/1.1\r\n\r\n"), || {
            "m 1\n".into()
        });
        assert!(String::from_utf8(head)
            .unwrap()
            .ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn other_paths_methods_and_garbage_are_refused() {
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 404);
        assert_eq!(status(b"GET /metricsx HTTP/1.1\r\n\r\n"), 404);
        assert_eq!(status(b"POST /metrics HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(status(b"DELETE /metrics HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(status(b"GET /metrics HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(status(b"GET http://x/metrics HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"get /metrics HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET  /metrics HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            status(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n"),
            400
        );
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\n: empty\r\n\r\n"), 400);
        let huge = [b'a'; MAX_REQUEST];
        assert_eq!(status(&huge), 431);
        let mut long_headers = b"GET /metrics HTTP/1.1\r\n".to_vec();
        while long_headers.len() < MAX_REQUEST {
            long_headers.extend_from_slice(b"X-A: b\r\n");
        }
        assert_eq!(status(&long_headers), 431);
    }

    #[test]
    fn partial_requests_wait_and_any_bytes_are_safe() {
        let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..req.len() - 1 {
            assert_eq!(parse_request(&req[..cut]), Parsed::Incomplete, "{cut}");
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| b"GET /metrics HTTP/1.1\r\n: \x00\xff"[(seed >> (i % 60)) as usize % 27])
                .collect();
            let _ = respond(&parse_request(&bytes), String::new);
        }
    }
}
