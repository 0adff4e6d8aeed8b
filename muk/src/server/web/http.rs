//! HTTP/1.1 requests and responses as the web server and IS speak them: parsing a request head
//! (with `httparse`), mapping its target to a path inside the web root, `Range` headers,
//! content types, and response heads. Pure functions over bytes, so that the whole request path
//! can be fuzzed (`fuzz/targets/src/http.rs`).

/// Longest request head (request line and headers) accepted: larger is `431`.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a request: more is `431`.
pub const MAX_HEADERS: usize = 64;
/// Longest request target: longer is `414`.
pub const MAX_TARGET: usize = 2048;

/// The methods served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: a `GET`'s head without its body.
    Head,
}

/// A parsed request head: what the servers need of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The target as sent (path and query).
    pub target: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// Whether the connection stays open after the response (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// Bytes of the head, consumed from the connection's input.
    pub head_len: usize,
}

/// What parsing the bytes received so far gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet (and still within [`MAX_HEAD`]).
    Partial,
    /// A request to serve.
    Request(Request),
    /// A request to refuse with this status; `head_len` is its length when known (the
    /// connection closes after the refusal anyway).
    Refuse(u16),
}

/// Parse the start of `buf`, the bytes a connection sent.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            // A target already longer than allowed needs no more bytes to be refused.
            if let Some(line_end) = first_line_len(buf)
                && line_end > MAX_TARGET + 32
            {
                return Parsed::Refuse(414);
            }
            return if buf.len() >= MAX_HEAD {
                if first_line_len(buf).is_none() && buf.len() > MAX_TARGET {
                    Parsed::Refuse(414)
                } else {
                    Parsed::Refuse(431)
                }
            } else {
                Parsed::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::Refuse(431),
        Err(_) => return Parsed::Refuse(400),
    };
    if head_len > MAX_HEAD {
        return Parsed::Refuse(431);
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Refuse(400);
    };
    if target.len() > MAX_TARGET {
        return Parsed::Refuse(414);
    }
    let mut range = None;
    let mut connection: Option<String> = None;
    let mut host = false;
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("");
        if h.name.eq_ignore_ascii_case("range") {
            range = Some(value.trim().to_string());
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection = Some(value.to_ascii_lowercase());
        } else if h.name.eq_ignore_ascii_case("host") {
            host = true;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // No request here has a body; a chunked one cannot be skipped safely.
            return Parsed::Refuse(413);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            match value.trim().parse::<u64>() {
                Ok(0) => {}
                Ok(_) => return Parsed::Refuse(413),
                Err(_) => return Parsed::Refuse(400),
            }
        }
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => return Parsed::Refuse(405),
    };
    if version == 1 && !host {
        return Parsed::Refuse(400);
    }
    let conn_has = |word: &str| {
        connection
            .as_deref()
            .is_some_and(|c| c.split(',').any(|t| t.trim() == word))
    };
    let keep_alive = if version == 1 {
        !conn_has("close")
    } else {
        conn_has("keep-alive")
    };
    Parsed::Request(Request {
        method,
        target: target.to_string(),
        range,
        keep_alive,
        head_len,
    })
}

/// Bytes of the first line (up to its `\n`), if it is complete.
fn first_line_len(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Why a target maps to no path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadTarget {
    /// Not an origin-form target (`/...`), bad percent-encoding, not UTF-8, a control
    /// character: `400`.
    Malformed,
    /// A `..` segment (after decoding): refused, `400`, never resolved.
    Traversal,
}

/// A request target's path, decoded, as a list of names (no empty, `.` or `..` name), and
/// whether it ended with `/`. The query (`?...`) is dropped.
pub fn target_path(target: &str) -> Result<(Vec<String>, bool), BadTarget> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(BadTarget::Malformed);
    }
    let bytes = percent_decode(path.as_bytes()).ok_or(BadTarget::Malformed)?;
    let path = String::from_utf8(bytes).map_err(|_| BadTarget::Malformed)?;
    if path.chars().any(char::is_control) {
        return Err(BadTarget::Malformed);
    }
    let mut names = Vec::new();
    for seg in path.split(['/', '\\']) {
        match seg {
            "" | "." => {}
            ".." => return Err(BadTarget::Traversal),
            s => names.push(s.to_string()),
        }
    }
    Ok((names, path.ends_with('/')))
}

/// The path inside the file system of `names` under `root` (an absolute path).
pub fn fs_path(root: &str, names: &[String]) -> String {
    let mut p = root.trim_end_matches('/').to_string();
    for n in names {
        p.push('/');
        p.push_str(n);
    }
    if p.is_empty() {
        p.push('/');
    }
    p
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Percent-encode a name for a link (everything but unreserved characters).
pub fn percent_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Escape text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a `Range` header asks of a body of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAsk {
    /// Serve the whole body (no header, a syntax not understood, or several ranges: a server
    /// may ignore a `Range` it does not serve).
    Whole,
    /// Serve `[start, end)` as `206`.
    Part(u64, u64),
    /// `416`: no byte of the body is asked.
    Unsatisfiable,
}

/// Interpret one `Range` header value against a body of `size` bytes.
pub fn range(value: Option<&str>, size: u64) -> RangeAsk {
    let Some(v) = value else {
        return RangeAsk::Whole;
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => RangeAsk::Unsatisfiable,
            Some(n) if size == 0 => {
                let _ = n;
                RangeAsk::Unsatisfiable
            }
            Some(n) => RangeAsk::Part(size.saturating_sub(n), size),
            None => RangeAsk::Whole,
        },
        // bytes=A-
        (false, true) => match num(a) {
            Some(s) if s < size => RangeAsk::Part(s, size),
            Some(_) => RangeAsk::Unsatisfiable,
            None => RangeAsk::Whole,
        },
        // bytes=A-B
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if s <= e => {
                if s >= size {
                    RangeAsk::Unsatisfiable
                } else {
                    RangeAsk::Part(s, e.saturating_add(1).min(size))
                }
            }
            _ => RangeAsk::Whole,
        },
        (true, true) => RangeAsk::Whole,
    }
}

/// The `Content-Type` of a file by its name's extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "text" | "md" | "log" => "text/plain; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "tar" => "application/x-tar",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// The reason phrase of a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A response head: status line, the given headers, `Content-Length`, `Connection`.
pub fn head(status: u16, headers: &[(&str, &str)], length: u64, keep_alive: bool) -> Vec<u8> {
    let mut h = format!(
        "HTTP/1.1 {status} {}\r\nServer: muk2-web\r\n",
        reason(status)
    );
    for (k, v) in headers {
        h.push_str(k);
        h.push_str(": ");
        h.push_str(v);
        h.push_str("\r\n");
    }
    h.push_str(&format!("Content-Length: {length}\r\n"));
    h.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    h.into_bytes()
}

/// A complete small response with an HTML body saying `status` (and `extra` headers).
pub fn error_page(status: u16, extra: &[(&str, &str)], keep_alive: bool, body: bool) -> Vec<u8> {
    let text = format!(
        "<!doctype html><title>{status} {r}</title><h1>{status} {r}</h1>\n",
        r = reason(status)
    );
    let mut headers = vec![("Content-Type", "text/html; charset=utf-8")];
    headers.extend_from_slice(extra);
    let mut out = head(status, &headers, text.len() as u64, keep_alive);
    if body {
        out.extend_from_slice(text.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Parsed {
        parse(s.as_bytes())
    }

    #[test]
    fn requests_parse_and_are_refused_for_the_right_reasons() {
        let Parsed::Request(r) =
            req("GET /a/b.txt?x=1 HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n\r\nGET")
        else {
            panic!("not parsed")
        };
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.target, "/a/b.txt?x=1");
        assert_eq!(r.range.as_deref(), Some("bytes=0-1"));
        assert!(r.keep_alive);
        assert_eq!(r.head_len, 56);
        assert_eq!(req("GET / HTTP/1.1\r\nHost: h\r\n"), Parsed::Partial);
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: h\r\n\r\n"),
            Parsed::Refuse(405)
        );
        assert_eq!(req("GET / HTTP/1.1\r\n\r\n"), Parsed::Refuse(400));
        assert_eq!(req("G@T / HTTP/1.1\r\n\r\n"), Parsed::Refuse(400));
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"),
            Parsed::Refuse(413)
        );
        let long = format!(
            "GET /{} HTTP/1.1\r\nHost: h\r\n\r\n",
            "a".repeat(MAX_TARGET)
        );
        assert_eq!(req(&long), Parsed::Refuse(414));
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert_eq!(
            req(&format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n")),
            Parsed::Refuse(431)
        );
        let big = format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}", "v".repeat(MAX_HEAD));
        assert_eq!(req(&big), Parsed::Refuse(431));
        let Parsed::Request(r) = req("HEAD / HTTP/1.0\r\n\r\n") else {
            panic!("1.0")
        };
        assert!(!r.keep_alive);
        assert_eq!(r.method, Method::Head);
    }

    #[test]
    fn targets_map_inside_the_root_or_are_refused() {
        let ok = |t: &str| target_path(t).map(|(n, _)| fs_path("/www", &n));
        assert_eq!(ok("/a/b.txt?q"), Ok("/www/a/b.txt".into()));
        assert_eq!(ok("/a%20b"), Ok("/www/a b".into()));
        assert_eq!(ok("/"), Ok("/www".into()));
        assert_eq!(ok("/./a//b/"), Ok("/www/a/b".into()));
        assert_eq!(ok("/../etc/passwd"), Err(BadTarget::Traversal));
        assert_eq!(ok("/a/%2e%2e/%2E%2E/x"), Err(BadTarget::Traversal));
        assert_eq!(ok("/a%2f..%2fb"), Err(BadTarget::Traversal));
        assert_eq!(ok("/a\\..\\b"), Err(BadTarget::Traversal));
        assert_eq!(ok("http://x/etc"), Err(BadTarget::Malformed));
        assert_eq!(ok("a"), Err(BadTarget::Malformed));
        assert_eq!(ok("/%zz"), Err(BadTarget::Malformed));
        assert_eq!(ok("/%00"), Err(BadTarget::Malformed));
        assert_eq!(ok("/%ff"), Err(BadTarget::Malformed));
        assert_eq!(fs_path("/", &[]), "/");
        assert_eq!(target_path("/d/").map(|p| p.1), Ok(true));
    }

    #[test]
    fn ranges() {
        assert_eq!(range(None, 10), RangeAsk::Whole);
        assert_eq!(range(Some("bytes=0-4"), 10), RangeAsk::Part(0, 5));
        assert_eq!(range(Some("bytes=5-"), 10), RangeAsk::Part(5, 10));
        assert_eq!(range(Some("bytes=-3"), 10), RangeAsk::Part(7, 10));
        assert_eq!(range(Some("bytes=-30"), 10), RangeAsk::Part(0, 10));
        assert_eq!(range(Some("bytes=8-100"), 10), RangeAsk::Part(8, 10));
        assert_eq!(range(Some("bytes=10-"), 10), RangeAsk::Unsatisfiable);
        assert_eq!(range(Some("bytes=10-12"), 10), RangeAsk::Unsatisfiable);
        assert_eq!(range(Some("bytes=-0"), 10), RangeAsk::Unsatisfiable);
        assert_eq!(range(Some("bytes=0-0"), 0), RangeAsk::Unsatisfiable);
        assert_eq!(range(Some("bytes=5-4"), 10), RangeAsk::Whole);
        assert_eq!(range(Some("bytes=0-1,3-4"), 10), RangeAsk::Whole);
        assert_eq!(range(Some("items=0-1"), 10), RangeAsk::Whole);
        assert_eq!(range(Some("bytes=x-1"), 10), RangeAsk::Whole);
        assert_eq!(
            range(Some("bytes=99999999999999999999-"), 10),
            RangeAsk::Whole
        );
    }

    #[test]
    fn content_types_and_heads() {
        assert_eq!(content_type("a.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type("x.png"), "image/png");
        assert_eq!(content_type("noext"), "application/octet-stream");
        let h = String::from_utf8(head(206, &[("A", "b")], 3, false)).unwrap_or_default();
        assert!(h.starts_with("HTTP/1.1 206 Partial Content\r\n"));
        assert!(h.contains("A: b\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"));
        assert_eq!(percent_encode("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(html_escape("<a&\"'>"), "&lt;a&amp;&quot;&#39;&gt;");
    }
}
