//! `http_request`: the web server's whole request path over arbitrary bytes: the head parser
//! (`httparse` with our limits), the target's mapping into the web root, and the `Range`
//! header against a few file sizes.
//!
//! Checked: nothing panics; a parsed request's head lies within the input; a mapped path stays
//! under the root and holds no `..` name or control character; a range served lies inside the
//! file and is not empty.

use muk::server::web::http::{self, Parsed, RangeAsk};

/// One input.
pub fn run(data: &[u8]) {
    match http::parse(data) {
        Parsed::Request(r) => {
            assert!(r.head_len <= data.len() && r.head_len <= http::MAX_HEAD);
            assert!(r.target.len() <= http::MAX_TARGET);
            path(&r.target);
            for size in [0u64, 1, 4096, u64::MAX] {
                range(r.range.as_deref(), size);
            }
        }
        Parsed::Refuse(status) => assert!((400..=431).contains(&status)),
        Parsed::Partial => assert!(data.len() < http::MAX_HEAD),
    }
    // The mapping and the ranges on the raw bytes too, not only on what parses.
    let text = String::from_utf8_lossy(data);
    path(&text);
    range(Some(&text), 1000);
}

fn path(target: &str) {
    if let Ok((names, _)) = http::target_path(target) {
        let p = http::fs_path("/www", &names);
        assert!(
            p == "/www" || p.starts_with("/www/"),
            "{p:?} escapes the root"
        );
        for n in p.split('/') {
            assert!(n != ".." && n != ".", "{p:?} holds a dot name");
        }
        assert!(
            !p.chars().any(char::is_control),
            "{p:?} holds a control character"
        );
    }
}

fn range(value: Option<&str>, size: u64) {
    if let RangeAsk::Part(start, end) = http::range(value, size) {
        assert!(start < end && end <= size, "{start}..{end} of {size}");
    }
}
