//! The baselines of the remote rows: two processes over a TCP connection on the link the node
//! daemons use ([`Link`]: loopback, or the veth pair between two network namespaces, the
//! server in node 0's, the client in node 1's), blocking sockets with `TCP_NODELAY`.
//!
//! - [`Mode::PingPong`]: a 64-byte request, a 64-byte reply (the remote `sendrec`'s baseline).
//! - [`Mode::Stream`]: a one-byte request, answered with the 64 MiB file of the m3ftp GET
//!   (the remote GET's baseline); the client reads it into one reused 1 MiB buffer. The first
//!   stream, at start, is checked byte for byte.
//!
//! The server is a peer process pinned to the server CPU; the caller is the client (over a veth
//! pair its socket is opened in node 1's namespace, [`crate::netns::in_namespace`]).

use crate::clock::{Record, timed_loop};
use crate::error::{BenchError, Result, io};
use crate::ftp_get::{FILE_BYTES, pattern};
use crate::netns::{self, Link, NETNS_ENV, NsPair};
use crate::peer::{self, Peer};
use crate::placement::{Placement, pin};
use crate::scenario::MESSAGE_BYTES;
use crate::session::{Outcome, Session};
use crate::wakeups::{WakeCounter, Who};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Peer role: the TCP server.
pub const ROLE: &str = "tcp-server";
/// The line after `READY` that gives the server's port.
const PORT_TAG: &str = "PORT";
/// The client's read buffer for a stream.
const READ_CHUNK: usize = 1 << 20;
/// Longest a read or a write may block (a dead peer).
const STALL: Duration = Duration::from_secs(30);
/// Longest the client keeps trying to connect (a veth pair just made may take a moment).
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// What the connection carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Message-sized request and reply.
    PingPong,
    /// One byte asks for the whole file.
    Stream,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::PingPong => "ping-pong",
            Mode::Stream => "stream",
        }
    }
}

/// Connect to the server, retrying a refused or unreachable connect for a while.
fn connect(ip: IpAddr, port: u16) -> Result<TcpStream> {
    let until = Instant::now() + CONNECT_WAIT;
    loop {
        match TcpStream::connect((ip, port)) {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= until => {
                return Err(io(format!("connect to {ip}:{port}"))(e));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn tune(s: &TcpStream) -> Result<()> {
    s.set_nodelay(true).map_err(io("TCP_NODELAY"))?;
    s.set_read_timeout(Some(STALL))
        .and_then(|()| s.set_write_timeout(Some(STALL)))
        .map_err(io("socket timeouts"))
}

/// The server role: `ADDRESS CPU ping-pong|stream` (`-` for 127.0.0.1). Listens on a free port
/// of that address, says it after `READY`, answers the one connection until it closes.
pub fn serve(target: &str, extra: &[String]) -> Result<()> {
    let mode = match extra.first().map(String::as_str) {
        Some("ping-pong") => Mode::PingPong,
        Some("stream") => Mode::Stream,
        other => return Err(BenchError::new(format!("bad TCP mode {other:?}"))),
    };
    let addr: IpAddr = match target {
        "-" => Ipv4Addr::LOCALHOST.into(),
        a => a
            .parse()
            .map_err(|_| BenchError::new(format!("bad listen address {a:?}")))?,
    };
    let listener = TcpListener::bind((addr, 0)).map_err(io(format!("bind a port of {addr}")))?;
    let port = listener.local_addr().map_err(io("local address"))?.port();
    peer::ready()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{PORT_TAG} {port}")
        .and_then(|()| out.flush())
        .map_err(io("stdout"))?;
    let (mut conn, _) = listener.accept().map_err(io("accept"))?;
    tune(&conn)?;
    let (mut request, reply) = match mode {
        Mode::PingPong => (vec![0u8; MESSAGE_BYTES], vec![0x5au8; MESSAGE_BYTES]),
        Mode::Stream => (vec![0u8; 1], pattern(FILE_BYTES)),
    };
    loop {
        match conn.read_exact(&mut request) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(io("read")(e)),
        }
        conn.write_all(&reply).map_err(io("write"))?;
    }
}

/// The client side, in the caller's process.
pub struct TcpSession {
    mode: Mode,
    conn: TcpStream,
    buf: Vec<u8>,
    ops: u64,
    wakeups: WakeCounter,
    // Dropped in order: the server, then the namespaces (the connection goes first).
    _peer: Peer,
    _ns: Option<Arc<NsPair>>,
}

impl TcpSession {
    /// Start the server peer, connect over `link`, pin the caller; a stream is fetched once and
    /// checked.
    pub fn start(mode: Mode, link: Link, placement: Placement) -> Result<TcpSession> {
        let (server_cpu, client_cpu) = placement.cpus()?;
        let ns = match link {
            Link::Loopback => None,
            Link::Veth => Some(NsPair::shared()?),
        };
        let server_ip: IpAddr = match link {
            Link::Loopback => Ipv4Addr::LOCALHOST.into(),
            Link::Veth => NsPair::addr(0).into(),
        };
        let args = [
            match link {
                Link::Loopback => "-".into(),
                Link::Veth => server_ip.to_string(),
            },
            peer::cpu_arg(server_cpu),
            mode.label().into(),
        ];
        let mut peer = match &ns {
            Some(pair) => {
                Peer::spawn_with_env(ROLE, &args, &[(NETNS_ENV, pair.path(0)?.as_path())])?
            }
            None => Peer::spawn(ROLE, &args)?,
        };
        let line = peer.read_line()?;
        let port: u16 = line
            .strip_prefix(PORT_TAG)
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| BenchError::new(format!("TCP server said {line:?}")))?;
        if let Some(cpu) = client_cpu {
            pin(cpu)?;
        }
        let conn = match &ns {
            Some(pair) => netns::in_namespace(&pair.path(1)?, || connect(server_ip, port))?,
            None => connect(server_ip, port)?,
        };
        tune(&conn)?;
        let buf = vec![
            0u8;
            match mode {
                Mode::PingPong => MESSAGE_BYTES,
                Mode::Stream => READ_CHUNK,
            }
        ];
        let who = vec![
            ("server".into(), Who::Process(peer.pid())),
            ("client".into(), Who::ThisThread),
        ];
        let mut s = TcpSession {
            mode,
            conn,
            buf,
            ops: 0,
            wakeups: WakeCounter::start(Vec::new()),
            _peer: peer,
            _ns: ns,
        };
        if mode == Mode::Stream {
            s.check_stream()?;
        }
        // Counted from here: the checked stream is not an operation.
        s.wakeups = WakeCounter::start(who);
        Ok(s)
    }

    /// One stream, every byte compared with the file's.
    fn check_stream(&mut self) -> Result<()> {
        let want = pattern(FILE_BYTES);
        let mut got = Vec::with_capacity(FILE_BYTES);
        self.conn.write_all(&[1]).map_err(io("write"))?;
        while got.len() < FILE_BYTES {
            let left = (FILE_BYTES - got.len()).min(self.buf.len());
            let n = self.conn.read(&mut self.buf[..left]).map_err(io("read"))?;
            if n == 0 {
                return Err(BenchError::new("the TCP server closed mid-stream"));
            }
            got.extend_from_slice(&self.buf[..n]);
        }
        if got != want {
            return Err(BenchError::new("the TCP stream brought other bytes"));
        }
        Ok(())
    }

    fn op(&mut self) -> Result<()> {
        match self.mode {
            Mode::PingPong => {
                self.conn.write_all(&self.buf).map_err(io("write"))?;
                self.conn.read_exact(&mut self.buf).map_err(io("read"))
            }
            Mode::Stream => {
                self.conn.write_all(&[1]).map_err(io("write"))?;
                let mut left = FILE_BYTES;
                while left > 0 {
                    let want = left.min(self.buf.len());
                    let n = self.conn.read(&mut self.buf[..want]).map_err(io("read"))?;
                    if n == 0 {
                        return Err(BenchError::new("the TCP server closed mid-stream"));
                    }
                    left -= n;
                }
                Ok(())
            }
        }
    }
}

impl Session for TcpSession {
    fn run(&mut self, n: u64, record: Record<'_>) -> Result<Duration> {
        let took = timed_loop(n, record, || self.op())?;
        self.ops += n;
        Ok(took)
    }

    fn finish(self: Box<Self>) -> Result<Outcome> {
        Ok(Outcome {
            peer_samples: None,
            note: self.wakeups.report(self.ops),
        })
    }
}
