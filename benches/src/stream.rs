//! Kernel byte streams as baselines: a pipe pair and a Unix stream socket between two
//! processes. A request is `size` bytes; the reply is as long as the request up to 64 bytes (a
//! message's size: the sendrec baselines), else one byte (the zero-copy baselines: moving the
//! payload is what is measured).

use crate::clock::{Record, timed_loop};
use crate::error::{BenchError, Result, io};
use crate::peer::{self, Peer};
use crate::placement::{Placement, pin};
use crate::session::Session;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Peer role: answer requests on its standard input, replies on its standard output.
pub const PIPE_ROLE: &str = "pipe-server";
/// Peer role: answer requests on a Unix socket.
pub const SOCKET_ROLE: &str = "socket-server";
/// Filler byte of requests and replies (not a newline: stdout is line-buffered).
const FILL: u8 = 0x5a;

/// Which stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Two pipes: the peer's standard input and output.
    Pipe,
    /// One Unix stream socket.
    UnixSocket,
}

/// Bytes of the reply to a request of `size` bytes.
pub fn reply_len(size: usize) -> usize {
    if size <= 64 { size } else { 1 }
}

fn parse_size(extra: &[String]) -> Result<usize> {
    extra
        .first()
        .and_then(|s| s.parse().ok())
        .filter(|&s| s > 0 && s <= 64 << 20)
        .ok_or_else(|| BenchError::new(format!("bad size {extra:?}")))
}

/// Answer requests of `size` bytes from `input` on `output` until the input ends.
fn answer(mut input: impl Read, mut output: impl Write, size: usize) -> Result<()> {
    let mut buf = vec![0u8; size];
    let reply = vec![FILL; reply_len(size)];
    loop {
        match input.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(io("read")(e)),
        }
        output
            .write_all(&reply)
            .and_then(|()| output.flush())
            .map_err(io("write"))?;
    }
}

/// The pipe peer role.
pub fn serve_pipe(extra: &[String]) -> Result<()> {
    let size = parse_size(extra)?;
    peer::ready()?;
    answer(std::io::stdin().lock(), std::io::stdout().lock(), size)
}

/// The socket peer role: listen on `path`, answer the one connection.
pub fn serve_socket(path: &str, extra: &[String]) -> Result<()> {
    let size = parse_size(extra)?;
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(io("bind the socket"))?;
    peer::ready()?;
    let (conn, _) = listener.accept().map_err(io("accept"))?;
    let _ = std::fs::remove_file(path);
    let out = conn.try_clone().map_err(io("socket"))?;
    answer(conn, out, size)
}

/// The client side, in the caller's process.
pub struct StreamSession {
    request: Vec<u8>,
    reply: Vec<u8>,
    socket: Option<UnixStream>,
    peer: Peer,
    path: Option<PathBuf>,
}

impl StreamSession {
    /// Start the peer, connect, pin the caller.
    pub fn start(kind: Kind, size: usize, placement: Placement) -> Result<StreamSession> {
        let (server_cpu, client_cpu) = placement.cpus()?;
        let cpu = peer::cpu_arg(server_cpu);
        let (peer, socket, path) = match kind {
            Kind::Pipe => (
                Peer::spawn(PIPE_ROLE, &["-".into(), cpu, size.to_string()])?,
                None,
                None,
            ),
            Kind::UnixSocket => {
                let path = std::env::temp_dir()
                    .join(format!("m3-bench-{}-{size}.sock", std::process::id()));
                let peer = Peer::spawn(
                    SOCKET_ROLE,
                    &[path.display().to_string(), cpu, size.to_string()],
                )?;
                let deadline = Instant::now() + Duration::from_secs(5);
                let conn = loop {
                    match UnixStream::connect(&path) {
                        Ok(c) => break c,
                        Err(e) if Instant::now() >= deadline => return Err(io("connect")(e)),
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                };
                (peer, Some(conn), Some(path))
            }
        };
        if let Some(cpu) = client_cpu {
            pin(cpu)?;
        }
        Ok(StreamSession {
            request: vec![FILL; size],
            reply: vec![0; reply_len(size)],
            socket,
            peer,
            path,
        })
    }
}

impl Session for StreamSession {
    fn run(&mut self, n: u64, record: Record<'_>) -> Result<Duration> {
        let (request, reply) = (&self.request, &mut self.reply);
        match &mut self.socket {
            Some(conn) => timed_loop(n, record, || {
                conn.write_all(request).map_err(io("write"))?;
                conn.read_exact(reply).map_err(io("read"))
            }),
            None => {
                let peer = &mut self.peer;
                timed_loop(n, record, || {
                    peer.stdin()?.write_all(request).map_err(io("write"))?;
                    peer.stdout().read_exact(reply).map_err(io("read"))
                })
            }
        }
    }
}

impl Drop for StreamSession {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}
