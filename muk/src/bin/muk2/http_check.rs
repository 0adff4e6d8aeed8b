//! The default boot's check of its network servers: a file put through FTP fetched back
//! through the web server, and IS's page and JSON, over HTTP from this process.

use crate::Error;
use muk::ftp_client::{ConnectOptions, FtpClient};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::Result;

/// The URLs of this process's network servers, one line each.
pub fn urls() -> String {
    let mut s = String::new();
    if let Some(a) = muk::sockets::announced("web") {
        s.push_str(&format!("web: http://{a}/\n"));
    }
    if let Some(a) = muk::sockets::announced("is") {
        s.push_str(&format!("is:  http://{a}/  (JSON: http://{a}/api/state)\n"));
    }
    s
}

/// One `GET` on a new connection (`Connection: close`): status and body.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>)> {
    let fail = |e: std::io::Error| Error(format!("GET http://{addr}{path}: {e}"));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(fail)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(fail)?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(fail)?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).map_err(fail)?;
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error(format!("GET http://{addr}{path}: no response head")))?;
    let status = std::str::from_utf8(all.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, all.split_off(end + 4)))
}

/// Check the web server at `web` and IS at `is`, each when given (`muk2 check --web --is`; the
/// default boot passes the addresses its servers announced); print a line each.
pub fn check(dc: &str, web: Option<SocketAddr>, is: Option<SocketAddr>) -> Result<()> {
    if let Some(web) = web {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut c = FtpClient::connect(dc, &ConnectOptions::default())
            .map_err(|e| Error(format!("web check: {e}")))?;
        c.put(
            &mut &body[..],
            body.len() as u64,
            "check",
            "/web-check.bin",
            &mut |_, _| {},
        )
        .map_err(|e| Error(format!("web check: put: {e}")))?;
        let start = Instant::now();
        let (status, got) = get(web, "/web-check.bin")?;
        let took = start.elapsed();
        let _ = c.rm("/web-check.bin");
        if status != 200 || got != body {
            return Err(Error(format!(
                "web check: GET /web-check.bin gave {status} and {} bytes, not 200 and the {} bytes put",
                got.len(),
                body.len()
            )));
        }
        crate::run::print_flush(&format!(
            "  web      nr  22  ok   GET of a {} KiB file over HTTP in {:.2} ms\n",
            body.len() / 1024,
            took.as_secs_f64() * 1e3
        ));
    }
    if let Some(is) = is {
        let (s1, page) = get(is, "/")?;
        let (s2, json) = get(is, "/api/state")?;
        let page = String::from_utf8_lossy(&page);
        let json = String::from_utf8_lossy(&json);
        if s1 != 200
            || !page.contains("MUK2 information server")
            || s2 != 200
            || !json.contains("\"procs\":[")
        {
            return Err(Error(format!(
                "IS check: page {s1}, /api/state {s2}: not the IS page and state"
            )));
        }
        crate::run::print_flush(&format!(
            "  is       nr   8  ok   page {} bytes, /api/state {} bytes\n",
            page.len(),
            json.len()
        ));
    }
    Ok(())
}
