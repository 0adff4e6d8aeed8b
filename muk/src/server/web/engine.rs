//! The HTTP connection engine the web server and IS share: one listening socket and every
//! connection of one server, driven by socket events ([`Ipc::wait_io`]), each connection a
//! small state machine (read a head, answer it, stream its body, read the next). Nothing
//! blocks on one client: a slow reader keeps only its own output waiting, a stalled sender
//! only its own input, and both are dropped after their timeout.

use super::http::{self, Method, Parsed, Request};
use crate::ipc::{IoEvent, Ipc};
use m3ipc::{Errno, Result, Timeout};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// A response body.
pub(crate) enum Body {
    /// Bytes at hand (possibly none).
    Bytes(Vec<u8>),
    /// `[start, end)` of the file with this inode, read from FS as the socket takes it.
    File {
        /// The file's inode.
        ino: u32,
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
}

/// A response: its head and body (a `HEAD` request's body is dropped by the engine).
pub(crate) struct Reply {
    /// Status line and headers.
    pub(crate) head: Vec<u8>,
    /// The body.
    pub(crate) body: Body,
    /// Close the connection after it.
    pub(crate) close: bool,
}

/// What serves the requests of the engine.
pub(crate) trait Site {
    /// The response to `req`.
    fn respond(&mut self, ipc: &mut dyn Ipc, req: &Request) -> Reply;
    /// Read up to `len` bytes of file `ino` at `offset`, appended to `out`; bytes read (0 at
    /// the end of the file).
    fn read(
        &mut self,
        ipc: &mut dyn Ipc,
        ino: u32,
        offset: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize>;
}

/// The engine's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A connection that has not sent a whole request head this long after it connected or
    /// after its last response is answered `408` and closed.
    pub head_timeout: Duration,
    /// A connection that neither reads nor writes for this long while a response is pending is
    /// closed.
    pub idle_timeout: Duration,
    /// Most connections at once; more are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

/// Bytes read from FS per step of a file body (then written before the next step).
const FILE_STEP: usize = 256 * 1024;
/// Bytes read from a socket per read.
const READ_STEP: usize = 8 * 1024;
/// A file body's next step is read behind pending output of at most this many bytes (a
/// response head), so that both go out in one write.
const TOP_UP_BELOW: usize = 16 * 1024;
/// The listener's token.
const LISTENER: u64 = 0;

struct Conn {
    stream: TcpStream,
    token: u64,
    input: Vec<u8>,
    out: Vec<u8>,
    out_at: usize,
    /// The rest of a file body: inode, next byte, end.
    file: Option<(u32, u64, u64)>,
    /// Close once the output is written.
    close_after: bool,
    /// The peer closed its sending half: no more requests.
    read_closed: bool,
    /// A read may find bytes: set by a readable event, cleared by a read that came short.
    may_read: bool,
    /// When the current wait (for a head, or for the peer to take output) started.
    since: Instant,
}

/// Run the engine on `listener` until the server is asked to stop.
pub(crate) fn serve(
    site: &mut dyn Site,
    ipc: &mut dyn Ipc,
    listener: &TcpListener,
    limits: Limits,
) -> Result<()> {
    ipc.watch_fd(listener.as_raw_fd(), LISTENER)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut generation: u64 = 0;
    let mut events: Vec<IoEvent> = Vec::new();
    // Every socket read lands here first (no buffer zeroed per read).
    let mut scratch = vec![0u8; READ_STEP];
    let mut next_sweep = Instant::now() + Duration::from_secs(1);
    let sweep_every = (limits.head_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        if ipc.stopping() {
            break;
        }
        events.clear();
        let left = next_sweep.saturating_duration_since(Instant::now());
        let ms = u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1);
        match ipc.wait_io(&mut events, Timeout::Millis(ms)) {
            Ok(()) => {}
            Err(Errno::EDVSSHUTDOWN) => break,
            Err(e) => return Err(e),
        }
        for ev in &events {
            if ev.token == LISTENER {
                accept_all(
                    ipc,
                    listener,
                    &mut conns,
                    &mut free,
                    &mut generation,
                    limits,
                );
                continue;
            }
            let i = (ev.token & 0xffff_ffff) as usize;
            let Some(Some(c)) = conns.get_mut(i) else {
                continue;
            };
            if c.token != ev.token {
                continue;
            }
            c.may_read |= ev.readable;
            if !drive(site, ipc, c, &mut scratch) {
                close(ipc, &mut conns, &mut free, i);
            }
        }
        if Instant::now() >= next_sweep {
            sweep(ipc, &mut conns, &mut free, limits);
            next_sweep = Instant::now() + sweep_every;
        }
    }
    for i in 0..conns.len() {
        close(ipc, &mut conns, &mut free, i);
    }
    let _ = ipc.unwatch_fd(listener.as_raw_fd());
    Ok(())
}

fn accept_all(
    ipc: &mut dyn Ipc,
    listener: &TcpListener,
    conns: &mut Vec<Option<Conn>>,
    free: &mut Vec<usize>,
    generation: &mut u64,
    limits: Limits,
) {
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // A connection reset before we took it, or out of descriptors: try the next one
            // later (the listener is edge-triggered: a later connection reports again).
            Err(_) => return,
        };
        let live = conns.len() - free.len();
        if live >= limits.max_connections || stream.set_nonblocking(true).is_err() {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let i = free.pop().unwrap_or_else(|| {
            conns.push(None);
            conns.len() - 1
        });
        *generation = (*generation + 1) & 0xffff;
        let token = (*generation << 32) | i as u64;
        if ipc.watch_fd(stream.as_raw_fd(), token).is_err() {
            free.push(i);
            continue;
        }
        if let Some(slot) = conns.get_mut(i) {
            *slot = Some(Conn {
                stream,
                token,
                input: Vec::new(),
                out: Vec::new(),
                out_at: 0,
                file: None,
                close_after: false,
                read_closed: false,
                may_read: true,
                since: Instant::now(),
            });
        }
    }
}

fn close(ipc: &mut dyn Ipc, conns: &mut [Option<Conn>], free: &mut Vec<usize>, i: usize) {
    if let Some(slot) = conns.get_mut(i)
        && let Some(c) = slot.take()
    {
        let _ = ipc.unwatch_fd(c.stream.as_raw_fd());
        free.push(i);
    }
}

/// Drop the connections past their timeouts: a head not sent in time gets a `408` (best
/// effort, one write) first.
fn sweep(ipc: &mut dyn Ipc, conns: &mut [Option<Conn>], free: &mut Vec<usize>, limits: Limits) {
    let now = Instant::now();
    for i in 0..conns.len() {
        let Some(Some(c)) = conns.get_mut(i) else {
            continue;
        };
        let busy = c.out_at < c.out.len() || c.file.is_some();
        let expired = if busy {
            now.duration_since(c.since) >= limits.idle_timeout
        } else {
            now.duration_since(c.since) >= limits.head_timeout
        };
        if expired {
            if !busy && !c.input.is_empty() {
                let _ = c.stream.write(&http::error_page(408, &[], false, true));
            }
            let _ = c.stream.shutdown(Shutdown::Both);
            close(ipc, conns, free, i);
        }
    }
}

/// Make all the progress the socket allows; `false`: close the connection.
///
/// Per request on a keep-alive connection this makes one read (the request) and one write
/// (the head and, for a file of up to [`FILE_STEP`] bytes, its whole body: one segment for the
/// client to wake up to, not two), and no read that would block when the last one came short
/// (an edge-triggered socket reports the next bytes anew).
fn drive(site: &mut dyn Site, ipc: &mut dyn Ipc, c: &mut Conn, scratch: &mut [u8]) -> bool {
    loop {
        // 1. The next step of a file body, behind what is pending (a response head): read
        //    before the head is written, so that both go out in one write.
        if let Some((ino, next, end)) = c.file
            && c.out.len() - c.out_at <= TOP_UP_BELOW
        {
            if next >= end {
                c.file = None;
            } else {
                c.out.drain(..c.out_at);
                c.out_at = 0;
                let want = usize::try_from(end - next)
                    .unwrap_or(FILE_STEP)
                    .min(FILE_STEP);
                match site.read(ipc, ino, next, want, &mut c.out) {
                    Ok(n) if n > 0 => c.file = Some((ino, next + n as u64, end)),
                    // The file shrank or FS failed mid-body: the length is promised, so the
                    // only honest end is closing.
                    _ => return false,
                }
            }
        }
        // 2. Write what is pending.
        while c.out_at < c.out.len() {
            match c.stream.write(&c.out[c.out_at..]) {
                Ok(0) => return false,
                Ok(n) => {
                    c.out_at += n;
                    c.since = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        c.out.clear();
        c.out_at = 0;
        if c.file.is_some() {
            continue;
        }
        // 3. The response is out.
        if c.close_after {
            let _ = c.stream.shutdown(Shutdown::Both);
            return false;
        }
        // 4. The next request, if its head is here.
        match http::parse(&c.input) {
            Parsed::Request(req) => {
                c.input.drain(..req.head_len.min(c.input.len()));
                answer(site, ipc, c, &req);
                c.since = Instant::now();
                continue;
            }
            Parsed::Refuse(status) => {
                let extra: &[(&str, &str)] = if status == 405 {
                    &[("Allow", "GET, HEAD")]
                } else {
                    &[]
                };
                c.out = http::error_page(status, extra, false, true);
                c.close_after = true;
                c.input.clear();
                continue;
            }
            Parsed::Partial => {}
        }
        // 5. More input.
        if c.read_closed {
            // Half-closed and no whole request left: the peer is done.
            return false;
        }
        if !c.may_read {
            // The last read came short: the socket reports the next bytes.
            return true;
        }
        match c.stream.read(scratch) {
            Ok(0) => c.read_closed = true,
            Ok(n) => {
                c.input.extend_from_slice(&scratch[..n]);
                c.may_read = n == scratch.len();
            }
            Err(e) => match e.kind() {
                ErrorKind::WouldBlock => {
                    c.may_read = false;
                    return true;
                }
                ErrorKind::Interrupted => {}
                _ => return false,
            },
        }
    }
}

fn answer(site: &mut dyn Site, ipc: &mut dyn Ipc, c: &mut Conn, req: &Request) {
    let reply = site.respond(ipc, req);
    c.out = reply.head;
    c.close_after = reply.close || !req.keep_alive;
    if req.method == Method::Head {
        return;
    }
    match reply.body {
        Body::Bytes(b) => c.out.extend_from_slice(&b),
        Body::File { ino, start, end } => c.file = Some((ino, start, end)),
    }
}
