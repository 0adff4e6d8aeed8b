#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The web server (slot 22) end to end under both runners: every status code and header it
//! sends, keep-alive, `HEAD`, ranges, directory pages, path traversal, oversized heads,
//! half-closed and stalled clients, 1 000 connections at once; and MUK2's sleep woken by a
//! socket.

mod support;

use muk::ftp_client::{ConnectOptions, FtpClient};
use muk::server::ServerKind;
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use muk::server::web::{Web, WebLimits};
use muk::{Host, Hosted, Runner};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::TestDc;

const BIG: usize = 700 * 1024 + 17;

fn big_bytes() -> Vec<u8> {
    (0..BIG).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// RDISK, FS, FTP and a web server on `/www` under `runner`, with files put through FTP.
fn boot(t: &TestDc, runner: Runner, limits: WebLimits) -> (Host, SocketAddr) {
    let opts = muk::server::ServerOptions {
        disk: DiskSpec::Memory(16 << 20),
        format: FormatPolicy::IfBlank,
        below_nr: None,
        ..Default::default()
    };
    let mut servers: Vec<Hosted> = [ServerKind::Rdisk, ServerKind::Fs, ServerKind::Ftp]
        .iter()
        .map(|&k| Hosted {
            name: k.name().into(),
            nr: k.default_nr(),
            stack_size: muk::host::DEFAULT_STACK,
            server: k.build_with(&opts).unwrap(),
        })
        .collect();
    let web = Web::bind("127.0.0.1:0".parse().unwrap(), "/www", 1)
        .unwrap()
        .with_limits(limits);
    let addr = web.local_addr().unwrap();
    servers.push(Hosted {
        name: "web".into(),
        nr: 22,
        stack_size: muk::host::DEFAULT_STACK,
        server: Box::new(web),
    });
    let host = Host::start(&t.dc, servers, runner).unwrap();
    let mut c = FtpClient::connect(&t.name, &ConnectOptions::default()).unwrap();
    for d in ["/www", "/www/d", "/www/site", "/www/a b"] {
        c.mkdir(d).unwrap();
    }
    let mut put = |path: &str, data: &[u8]| {
        c.put(&mut &data[..], data.len() as u64, "x", path, &mut |_, _| {})
            .unwrap();
    };
    put("/www/a.txt", b"hello, web\n");
    put("/www/big.bin", &big_bytes());
    put("/www/d/x.html", b"<p>x</p>");
    put("/www/d/<odd>.txt", b"odd");
    put("/www/site/index.html", b"<h1>site</h1>");
    put("/www/a b/c.css", b"p{}");
    put("/www/empty.json", b"");
    put("/secret", b"not served");
    (host, addr)
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read one response from `s` (`head_only`: a HEAD's, no body whatever Content-Length says).
fn read_resp(s: &mut TcpStream, pending: &mut Vec<u8>, head_only: bool) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(p) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        assert!(Instant::now() < deadline, "no response head");
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before a head: {:?}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(pending[..head_end].to_vec()).unwrap();
    pending.drain(..head_end);
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let mut r = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = r.header("Content-Length").unwrap().parse().unwrap();
    if !head_only {
        while pending.len() < len {
            assert!(Instant::now() < deadline, "body too slow");
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed mid-body");
            pending.extend_from_slice(&buf[..n]);
        }
        r.body = pending.drain(..len).collect();
    }
    r
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// One request on a new connection.
fn get(addr: SocketAddr, raw: &str) -> Resp {
    let mut s = connect(addr);
    s.write_all(raw.as_bytes()).unwrap();
    read_resp(&mut s, &mut Vec::new(), raw.starts_with("HEAD"))
}

fn req(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

fn assert_closed(s: &mut TcpStream) {
    let mut b = [0u8; 16];
    assert_eq!(s.read(&mut b).unwrap_or(0), 0, "connection still open");
}

fn statuses_and_headers(runner: Runner) {
    let t = TestDc::new('w');
    let (host, addr) = boot(&t, runner, WebLimits::default());

    // 200, Content-Type, Content-Length, keep-alive: three requests on one connection.
    let mut s = connect(addr);
    let mut pending = Vec::new();
    s.write_all(req("/a.txt").as_bytes()).unwrap();
    let r = read_resp(&mut s, &mut pending, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello, web\n");
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("Content-Length"), Some("11"));
    assert_eq!(r.header("Connection"), Some("keep-alive"));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    // Two pipelined requests, the second a big file streamed in steps.
    s.write_all((req("/big.bin") + &req("/a%20b/c.css")).as_bytes())
        .unwrap();
    let r = read_resp(&mut s, &mut pending, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert!(r.body == big_bytes(), "big body differs");
    let r = read_resp(&mut s, &mut pending, false);
    assert_eq!((r.status, &r.body[..]), (200, &b"p{}"[..]));
    assert_eq!(r.header("Content-Type"), Some("text/css; charset=utf-8"));
    let r = get(addr, &req("/empty.json"));
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("Content-Type"), Some("application/json"));

    // HEAD: the GET's head, no body (the next response follows at once).
    s.write_all(b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_resp(&mut s, &mut pending, true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(&*BIG.to_string()));
    s.write_all(req("/a.txt").as_bytes()).unwrap();
    let r = read_resp(&mut s, &mut pending, false);
    assert_eq!(r.body, b"hello, web\n");

    // Ranges: 206 with Content-Range, 416 with the size.
    let range = |spec: &str| {
        get(
            addr,
            &format!("GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: {spec}\r\n\r\n"),
        )
    };
    let big = big_bytes();
    let r = range("bytes=1000-299999");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("Content-Range"),
        Some(&*format!("bytes 1000-299999/{BIG}"))
    );
    assert!(r.body == big[1000..300_000]);
    let r = range("bytes=-5");
    assert_eq!((r.status, &r.body[..]), (206, &big[BIG - 5..]));
    let r = range(&format!("bytes={BIG}-"));
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range"), Some(&*format!("bytes */{BIG}")));
    let r = range("bytes=0-1,5-6");
    assert_eq!((r.status, r.body.len()), (200, BIG));

    // Directories: 301 to the slash, index.html, a listing (names escaped).
    let r = get(addr, &req("/d"));
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("/d/"));
    let r = get(addr, &req("/d/"));
    assert_eq!(r.status, 200);
    let page = String::from_utf8(r.body).unwrap();
    assert!(page.contains("href=\"x.html\""), "{page}");
    assert!(page.contains("&lt;odd&gt;.txt"), "{page}");
    let r = get(addr, &req("/site/"));
    assert_eq!((r.status, &r.body[..]), (200, &b"<h1>site</h1>"[..]));
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    let r = get(addr, &req("/"));
    assert!(String::from_utf8(r.body).unwrap().contains("big.bin"));

    // 404, 405 (with Allow), 413, 414, 431, 400; each refusal closes.
    assert_eq!(get(addr, &req("/nope")).status, 404);
    assert_eq!(get(addr, &req("/a.txt/")).status, 404);
    let r = get(addr, "POST /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.header("Allow")), (405, Some("GET, HEAD")));
    let r = get(
        addr,
        "GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789",
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.header("Connection"), Some("close"));
    assert_eq!(
        get(addr, &req(&format!("/{}", "a".repeat(3000)))).status,
        414
    );
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = get(addr, &format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n"));
    assert_eq!(r.status, 431);
    let mut s2 = connect(addr);
    s2.write_all(format!("GET / HTTP/1.1\r\nHost: t\r\nX: {}", "v".repeat(20_000)).as_bytes())
        .unwrap();
    let r = read_resp(&mut s2, &mut Vec::new(), false);
    assert_eq!(r.status, 431);
    assert_closed(&mut s2);
    assert_eq!(get(addr, "GARBAGE\r\n\r\n").status, 400);
    assert_eq!(get(addr, "GET / HTTP/1.1\r\n\r\n").status, 400, "no Host");

    // Path traversal, however spelled, is refused; nothing outside /www is served.
    for t in [
        "/../secret",
        "/%2e%2e/secret",
        "/%2E%2E%2fsecret",
        "/d/..%2F..%2Fsecret",
        "/d/%2e%2e/../secret",
        "http://t/../secret",
        "/..\\secret",
    ] {
        let r = get(addr, &req(t));
        assert_eq!(r.status, 400, "{t}");
        assert!(!String::from_utf8_lossy(&r.body).contains("not served"));
    }
    assert_eq!(get(addr, &req("//secret")).status, 404);

    // Connection: close and HTTP/1.0 close after the response.
    let mut s3 = connect(addr);
    s3.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_resp(&mut s3, &mut Vec::new(), false);
    assert_eq!(r.header("Connection"), Some("close"));
    assert_closed(&mut s3);
    let mut s4 = connect(addr);
    s4.write_all(b"GET /a.txt HTTP/1.0\r\n\r\n").unwrap();
    let r = read_resp(&mut s4, &mut Vec::new(), false);
    assert_eq!((r.status, r.header("Connection")), (200, Some("close")));
    assert_closed(&mut s4);

    // Half-closed: the request, then our sending half shut; the answer still comes.
    let mut s5 = connect(addr);
    s5.write_all(req("/big.bin").as_bytes()).unwrap();
    s5.shutdown(Shutdown::Write).unwrap();
    let r = read_resp(&mut s5, &mut Vec::new(), false);
    assert_eq!((r.status, r.body.len()), (200, BIG));
    assert_closed(&mut s5);

    // A client gone mid-body does not hurt the next one.
    let mut s6 = connect(addr);
    s6.write_all(req("/big.bin").as_bytes()).unwrap();
    drop(s6);
    assert_eq!(get(addr, &req("/a.txt")).status, 200);

    support::stop(host, 4);
}

#[test]
fn statuses_and_headers_muk2() {
    statuses_and_headers(Runner::Coroutines);
}

#[test]
fn statuses_and_headers_muk() {
    statuses_and_headers(Runner::Threads);
}

/// Time `n` keep-alive requests of /a.txt on one connection.
fn time_requests(addr: SocketAddr, n: usize) -> Duration {
    let mut s = connect(addr);
    let mut pending = Vec::new();
    let start = Instant::now();
    for _ in 0..n {
        s.write_all(req("/a.txt").as_bytes()).unwrap();
        assert_eq!(read_resp(&mut s, &mut pending, false).status, 200);
    }
    start.elapsed()
}

fn stalled_clients(runner: Runner) {
    let t = TestDc::new('s');
    let limits = WebLimits {
        head_timeout: Duration::from_secs(60),
        ..WebLimits::default()
    };
    let (host, addr) = boot(&t, runner, limits);
    time_requests(addr, 50);
    let alone = time_requests(addr, 300);
    // 50 clients that stop mid-head, and 50 that ask for a big file and never read.
    let mut stalled = Vec::new();
    for i in 0..100 {
        let mut s = connect(addr);
        if i % 2 == 0 {
            s.write_all(b"GET /a.txt HTTP/1.1\r\nHo").unwrap();
        } else {
            s.write_all(req("/big.bin").as_bytes()).unwrap();
        }
        stalled.push(s);
    }
    // Let the server take them in and fill the non-readers' socket buffers: from then on they
    // are stalled, which is what is measured.
    std::thread::sleep(Duration::from_millis(500));
    let with = time_requests(addr, 300);
    // Generous: twice the time alone, plus 200 ms for a noisy machine.
    assert!(
        with <= alone * 2 + Duration::from_millis(200),
        "alone {alone:?}, with 100 stalled clients {with:?}"
    );
    drop(stalled);
    support::stop(host, 4);
}

#[test]
fn stalled_clients_do_not_slow_others_muk2() {
    stalled_clients(Runner::Coroutines);
}

#[test]
fn stalled_clients_do_not_slow_others_muk() {
    stalled_clients(Runner::Threads);
}

#[test]
fn slow_heads_time_out_with_408() {
    let t = TestDc::new('o');
    let limits = WebLimits {
        head_timeout: Duration::from_millis(300),
        ..WebLimits::default()
    };
    let (host, addr) = boot(&t, Runner::Coroutines, limits);
    let mut s = connect(addr);
    s.write_all(b"GET /a.txt HTTP/1.1\r\n").unwrap();
    let start = Instant::now();
    let r = read_resp(&mut s, &mut Vec::new(), false);
    assert_eq!(r.status, 408);
    assert_closed(&mut s);
    assert!(start.elapsed() < Duration::from_secs(10));
    // A silent connection is closed without a word.
    let mut q = connect(addr);
    assert_closed(&mut q);
    support::stop(host, 4);
}

#[test]
fn a_thousand_connections_at_once() {
    let t = TestDc::new('k');
    let (host, addr) = boot(&t, Runner::Coroutines, WebLimits::default());
    let mut conns: Vec<TcpStream> = (0..1000).map(|_| connect(addr)).collect();
    for s in &mut conns {
        s.write_all(req("/a.txt").as_bytes()).unwrap();
    }
    for s in &mut conns {
        let r = read_resp(s, &mut Vec::new(), false);
        assert_eq!((r.status, &r.body[..]), (200, &b"hello, web\n"[..]));
    }
    drop(conns);
    support::stop(host, 4);
}

/// A request to a MUK2 whose servers all sleep is answered because its socket woke the
/// scheduler's sleep, not a timer: the sleeps ended by a socket grow by the request.
#[test]
fn an_idle_muk2_is_woken_by_the_socket() {
    let t = TestDc::new('i');
    let (host, addr) = boot(&t, Runner::Coroutines, WebLimits::default());
    let mut s = connect(addr);
    std::thread::sleep(Duration::from_millis(200));
    let before = muk::io_sleep_stats();
    s.write_all(req("/a.txt").as_bytes()).unwrap();
    let r = read_resp(&mut s, &mut Vec::new(), false);
    let after = muk::io_sleep_stats();
    assert_eq!(r.status, 200);
    assert!(
        after.by_socket > before.by_socket,
        "no sleep ended by a socket: {before:?} -> {after:?}"
    );
    support::stop(host, 4);
}
