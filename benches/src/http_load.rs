//! The load generator of the `web` group: an HTTP/1.1 client with N keep-alive connections to
//! one server, one request in flight per connection (as `wrk` does), driven by one epoll set
//! in the caller's thread.
//!
//! Each request is `GET PATH HTTP/1.1` with a `Host` header and nothing else. Each response
//! must be `200` with a `Content-Length` equal to the file's size, and bring exactly that many
//! bytes (with [`Load::verify`], the very bytes of the file); anything else, or a connection the
//! server closes, is an error. A request's latency is from its write to the last byte of its
//! response, timed with the time-stamp counter; a batch's wall time is from its first write to
//! its last response, so requests per second are the batch's requests over that time.

use crate::clock::{self, Record, ticks};
use crate::error::{BenchError, Result, io};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Bytes read from a socket at once (a 64 MiB body comes in reads of up to this much).
const READ_CHUNK: usize = 1 << 20;
/// Longest head a response may have.
const MAX_HEAD: usize = 16 << 10;
/// Longest a batch may wait for any response (a dead or stalled server).
const STALL: Duration = Duration::from_secs(30);

/// One file the load asks for, and what its response must be.
#[derive(Clone, Debug)]
pub struct Target {
    /// The request path (`/s/3`).
    pub path: String,
    /// The file's bytes (only their length is checked unless the load verifies).
    pub body: std::sync::Arc<[u8]>,
}

/// Where a connection is in its current response.
#[derive(Debug)]
enum Phase {
    /// No request in flight.
    Idle,
    /// Reading the head (bytes so far in `head`).
    Head,
    /// Reading the body: bytes still to come.
    Body(u64),
}

struct Conn {
    stream: TcpStream,
    phase: Phase,
    head: Vec<u8>,
    /// Which target the request in flight asks for.
    target: usize,
    /// Body bytes received so far (for the check).
    got: u64,
    /// The body, kept when verifying.
    body: Vec<u8>,
    sent_at: u64,
}

/// N keep-alive connections to one server.
pub struct Load {
    epoll: OwnedFd,
    conns: Vec<Conn>,
    targets: Vec<Target>,
    requests: Vec<Vec<u8>>,
    next_target: usize,
    buf: Vec<u8>,
    verify: bool,
}

fn epoll_add(epoll: &OwnedFd, fd: i32, token: u64) -> Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: `ev` lives on this frame for the call; the kernel copies it.
    let rc = unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    if rc != 0 {
        return Err(io("epoll_ctl")(std::io::Error::last_os_error()));
    }
    Ok(())
}

impl Load {
    /// Open `connections` connections to `addr` (non-blocking, `TCP_NODELAY`); requests go to
    /// the `targets` in turn.
    pub fn connect(addr: SocketAddr, connections: usize, targets: Vec<Target>) -> Result<Load> {
        if connections == 0 || targets.is_empty() {
            return Err(BenchError::new("a load needs a connection and a target"));
        }
        // SAFETY: epoll_create1 takes no pointer; a non-negative result is a new descriptor we
        // own from here on.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io("epoll_create1")(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut conns = Vec::with_capacity(connections);
        for i in 0..connections {
            let stream = TcpStream::connect(addr).map_err(io(format!("connect to {addr}")))?;
            stream.set_nodelay(true).map_err(io("TCP_NODELAY"))?;
            stream.set_nonblocking(true).map_err(io("O_NONBLOCK"))?;
            epoll_add(&epoll, stream.as_raw_fd(), i as u64)?;
            conns.push(Conn {
                stream,
                phase: Phase::Idle,
                head: Vec::with_capacity(512),
                target: 0,
                got: 0,
                body: Vec::new(),
                sent_at: 0,
            });
        }
        let host = addr.to_string();
        let requests = targets
            .iter()
            .map(|t| format!("GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n", t.path).into_bytes())
            .collect();
        Ok(Load {
            epoll,
            conns,
            targets,
            requests,
            next_target: 0,
            buf: vec![0; READ_CHUNK],
            verify: false,
        })
    }

    /// Check every body byte for byte from now on (else only its length).
    pub fn verify(&mut self, on: bool) {
        self.verify = on;
    }

    /// Ask for every target once, each response checked byte for byte.
    pub fn check_all(&mut self) -> Result<()> {
        self.verify(true);
        let n = self.targets.len() as u64;
        let r = self.run(n, None);
        self.verify(false);
        r.map(drop)
    }

    fn send(&mut self, i: usize) -> Result<()> {
        let t = self.next_target;
        self.next_target = (t + 1) % self.targets.len();
        let req = &self.requests[t];
        let c = &mut self.conns[i];
        c.phase = Phase::Head;
        c.head.clear();
        c.body.clear();
        c.got = 0;
        c.target = t;
        c.sent_at = ticks();
        // One short request into an empty send buffer (one request in flight): all or error.
        match c.stream.write(req) {
            Ok(n) if n == req.len() => Ok(()),
            Ok(n) => Err(BenchError::new(format!(
                "the request went out short ({n} of {} bytes)",
                req.len()
            ))),
            Err(e) => Err(io("write a request")(e)),
        }
    }

    /// Run `n` requests over the connections; with `record`, each one's latency in ns.
    /// Returns the batch's wall time.
    pub fn run(&mut self, n: u64, mut record: Record<'_>) -> Result<Duration> {
        let start = Instant::now();
        let mut issued = 0u64;
        let mut done = 0u64;
        for i in 0..self.conns.len() {
            if issued == n {
                break;
            }
            self.send(i)?;
            issued += 1;
        }
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        let mut last = Instant::now();
        while done < n {
            // SAFETY: `events` is a writable array of 64 epoll_event, and 64 is passed.
            let got =
                unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 64, 1000) };
            if got < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(io("epoll_wait")(e));
            }
            if got == 0 {
                if last.elapsed() > STALL {
                    return Err(BenchError::new(format!(
                        "no response for {} s ({done} of {n} requests answered)",
                        STALL.as_secs()
                    )));
                }
                continue;
            }
            last = Instant::now();
            for ev in &events[..got as usize] {
                let i = ev.u64 as usize;
                while let Some(latency) = self.read_some(i)? {
                    done += 1;
                    if let Some(rec) = record.as_mut() {
                        rec(clock::to_ns(latency));
                    }
                    if issued < n {
                        self.send(i)?;
                        issued += 1;
                    } else {
                        break;
                    }
                }
            }
        }
        Ok(start.elapsed())
    }

    /// Read what connection `i` has; `Some(ticks)` when its response is complete (its
    /// latency), `None` when the socket has no more for now.
    fn read_some(&mut self, i: usize) -> Result<Option<u64>> {
        loop {
            let c = &mut self.conns[i];
            if matches!(c.phase, Phase::Idle) {
                // Nothing asked: bytes here would be a protocol error, caught at the next read.
                return Ok(None);
            }
            let want = match c.phase {
                Phase::Body(left) => usize::try_from(left).unwrap_or(READ_CHUNK).min(READ_CHUNK),
                _ => READ_CHUNK,
            };
            let n = match c.stream.read(&mut self.buf[..want.max(1)]) {
                Ok(0) => {
                    return Err(BenchError::new(
                        "the server closed a keep-alive connection mid-response",
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io("read a response")(e)),
            };
            let mut bytes = &self.buf[..n];
            if matches!(c.phase, Phase::Head) {
                let before = c.head.len();
                c.head.extend_from_slice(bytes);
                let Some(end) = c.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                    if c.head.len() > MAX_HEAD {
                        return Err(BenchError::new("a response head over 16 KiB"));
                    }
                    continue;
                };
                let head_len = end + 4;
                let want = self.targets[c.target].body.len() as u64;
                check_head(&c.head[..head_len], want, &self.targets[c.target].path)?;
                c.phase = Phase::Body(want);
                bytes = &bytes[head_len - before..];
            }
            if let Phase::Body(left) = c.phase {
                let take = bytes.len() as u64;
                if take > left {
                    return Err(BenchError::new(format!(
                        "{} bytes past the Content-Length of {}",
                        take - left,
                        self.targets[c.target].path
                    )));
                }
                if self.verify {
                    c.body.extend_from_slice(bytes);
                }
                c.got += take;
                if take == left {
                    c.phase = Phase::Idle;
                    let t = &self.targets[c.target];
                    if self.verify && c.body[..] != t.body[..] {
                        return Err(BenchError::new(format!(
                            "{}: the body differs from the file",
                            t.path
                        )));
                    }
                    return Ok(Some(ticks().wrapping_sub(c.sent_at)));
                }
                c.phase = Phase::Body(left - take);
            }
        }
    }
}

/// Check a response head: `HTTP/1.1 200`, and a `Content-Length` of `want`.
fn check_head(head: &[u8], want: u64, path: &str) -> Result<()> {
    let text = std::str::from_utf8(head)
        .map_err(|_| BenchError::new(format!("{path}: a response head that is not text")))?;
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 200 ") {
        return Err(BenchError::new(format!("{path}: answered {status:?}")));
    }
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok());
    match length {
        Some(l) if l == want => Ok(()),
        other => Err(BenchError::new(format!(
            "{path}: Content-Length {other:?}, the file has {want} bytes"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_checked() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
        assert!(check_head(ok, 5, "/a").is_ok());
        assert!(check_head(ok, 6, "/a").is_err());
        assert!(
            check_head(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\n",
                5,
                "/a"
            )
            .is_err()
        );
        assert!(check_head(b"HTTP/1.1 200 OK\r\n\r\n", 0, "/a").is_err());
        assert!(check_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0, "/a").is_err());
    }

    /// A server thread answering two requests on one connection; the load checks both.
    #[test]
    fn a_load_runs_against_a_tiny_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
            let mut buf = [0u8; 1024];
            let mut pending = Vec::new();
            let mut answered = 0;
            while answered < 3 {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&buf[..n]);
                while let Some(p) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    pending.drain(..p + 4);
                    // The third answer is short: the client must see it as wrong.
                    let body: &[u8] = if answered < 2 { b"hello" } else { b"hell" };
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    let _ = s.write_all(head.as_bytes());
                    let _ = s.write_all(body);
                    answered += 1;
                }
            }
        });
        let target = Target {
            path: "/h".into(),
            body: std::sync::Arc::from(&b"hello"[..]),
        };
        let mut load = Load::connect(addr, 1, vec![target]).unwrap_or_else(|e| panic!("{e}"));
        load.check_all().unwrap_or_else(|e| panic!("{e}"));
        let mut seen = 0;
        load.run(1, Some(&mut |_| seen += 1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, 1);
        assert!(load.run(1, None).is_err());
        drop(load);
        let _ = server.join();
    }
}
