//! The servers a unikernel hosts, with the original's well-known slot numbers.
//!
//! Each server is written once against [`Ipc`] and runs under both runners.

use crate::ipc::Ipc;
use m3ipc::{ANY, Errno, Message, Result, Timeout};
use std::time::{Duration, Instant};

pub mod echo;
pub mod fs;
pub mod ftp;
mod image_lock;
pub mod is;
pub mod pm;
pub mod rdisk;
pub mod systask;
pub mod web;

/// A server: its loop, run on a coroutine (MUK2) or a thread (MUK).
pub trait Server: Send {
    /// Serve until the host stops (`EDVSSHUTDOWN` from a receive or sleep, or
    /// [`Ipc::stopping`]) or a fatal error. Asked to stop, a server may still call the servers
    /// below it to finish its work (FS writes back to RDISK) before it returns.
    fn serve(&mut self, ipc: &mut dyn Ipc) -> Result<()>;

    /// How many servers it stands on (FTP 2 over FS 1 over RDISK 0): a stop asks upper layers
    /// to finish first, so that what they hand down on the way out is still taken.
    fn layer(&self) -> u8 {
        0
    }
}

/// The servers this crate knows, by the name a config uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// SYSTASK: the kernel-call server.
    Systask,
    /// PM: the process manager.
    Pm,
    /// A small echo/sink server for tests and benchmarks.
    Echo,
    /// RDISK: the block device (memory or an image file).
    Rdisk,
    /// FS: the MINIX v3 file system over RDISK.
    Fs,
    /// FTP (`m3ftpd`): file transfer for outside clients, over FS.
    Ftp,
    /// The web server (nweb): static files from FS over HTTP.
    Web,
    /// IS, the information server: this MUK2 as a live web page and JSON.
    Is,
}

/// The settings of the storage servers, as a config or a command line gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerOptions {
    /// RDISK: where its blocks live.
    pub disk: rdisk::DiskSpec,
    /// FS: what to do with a disk at start.
    pub format: fs::FormatPolicy,
    /// FS: the slot of its RDISK; FTP: the slot of its FS (`None`: the well-known one).
    pub below_nr: Option<i32>,
    /// Web, IS: the TCP port to listen on (`None` or 0: any free port).
    pub port: Option<u16>,
    /// Web, IS: the address to listen on (`None`: 127.0.0.1).
    pub address: Option<std::net::IpAddr>,
    /// Web: the directory of FS it serves (`None`: `/`).
    pub web_root: Option<String>,
}

impl ServerKind {
    /// Every known server, in boot order.
    pub const ALL: [ServerKind; 8] = [
        ServerKind::Systask,
        ServerKind::Pm,
        ServerKind::Echo,
        ServerKind::Rdisk,
        ServerKind::Fs,
        ServerKind::Ftp,
        ServerKind::Web,
        ServerKind::Is,
    ];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Systask => "systask",
            ServerKind::Pm => "pm",
            ServerKind::Echo => "echo",
            ServerKind::Rdisk => "rdisk",
            ServerKind::Fs => "fs",
            ServerKind::Ftp => "ftp",
            ServerKind::Web => "web",
            ServerKind::Is => "is",
        }
    }

    /// The server of that name, if there is one.
    pub fn from_name(name: &str) -> Option<ServerKind> {
        ServerKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// A fresh instance of this server with default options (RDISK: a memory disk of
    /// [`rdisk::DEFAULT_MEMORY`] bytes; FS: format it if blank), ready to be hosted.
    pub fn build(self) -> Box<dyn Server> {
        self.build_in_memory(&ServerOptions::default())
    }

    /// A fresh instance of this server with `opts` (only the storage servers read them).
    /// Errors: RDISK's image file cannot be opened, or its memory disk does not fit.
    pub fn build_with(self, opts: &ServerOptions) -> std::result::Result<Box<dyn Server>, String> {
        match self {
            ServerKind::Rdisk => Ok(Box::new(rdisk::Rdisk::open(&opts.disk)?)),
            ServerKind::Web => {
                let root = opts.web_root.as_deref().unwrap_or("/");
                let fs_nr = opts.below_nr.unwrap_or(ServerKind::Fs.default_nr());
                let w = web::Web::bind(listen_addr(opts), root, fs_nr)
                    .map_err(|e| format!("cannot listen on {}: {e}", listen_addr(opts)))?;
                if let Ok(a) = w.local_addr() {
                    crate::sockets::announce("web", a);
                }
                Ok(Box::new(w))
            }
            ServerKind::Is => {
                let s = is::Is::bind(listen_addr(opts))
                    .map_err(|e| format!("cannot listen on {}: {e}", listen_addr(opts)))?;
                if let Ok(a) = s.local_addr() {
                    crate::sockets::announce("is", a);
                }
                Ok(Box::new(s))
            }
            _ => Ok(self.build_in_memory(opts)),
        }
    }

    /// Every server but an RDISK on an image file, which may fail to open (RDISK here gets
    /// the default memory disk).
    fn build_in_memory(self, opts: &ServerOptions) -> Box<dyn Server> {
        match self {
            ServerKind::Systask => Box::new(systask::Systask::new()),
            ServerKind::Pm => Box::new(pm::Pm::new()),
            ServerKind::Echo => Box::new(echo::Echo::new()),
            ServerKind::Rdisk => Box::new(rdisk::Rdisk::memory(vec![
                0;
                rdisk::DEFAULT_MEMORY as usize
            ])),
            ServerKind::Fs => Box::new(fs::Fs::new(
                opts.below_nr.unwrap_or(ServerKind::Rdisk.default_nr()),
                opts.format,
            )),
            ServerKind::Ftp => Box::new(ftp::Ftp::new(
                opts.below_nr.unwrap_or(ServerKind::Fs.default_nr()),
            )),
            ServerKind::Web | ServerKind::Is => match self.build_with(opts) {
                Ok(s) => s,
                Err(why) => Box::new(Failed(why)),
            },
        }
    }

    /// The original's well-known slot number (SYSTASK `-2`, PM `0`, FS `1`, RDISK `3`, FTP
    /// `14`); echo uses 20.
    pub fn default_nr(self) -> i32 {
        match self {
            ServerKind::Systask => -2,
            ServerKind::Pm => 0,
            ServerKind::Echo => 20,
            ServerKind::Rdisk => 3,
            ServerKind::Fs => 1,
            ServerKind::Ftp => 14,
            ServerKind::Web => 22,
            ServerKind::Is => 8,
        }
    }
}

/// The address a network server listens on.
fn listen_addr(opts: &ServerOptions) -> std::net::SocketAddr {
    let ip = opts
        .address
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    std::net::SocketAddr::new(ip, opts.port.unwrap_or(0))
}

/// A server that could not be built: it fails at once, saying why.
struct Failed(String);

impl Server for Failed {
    fn serve(&mut self, _: &mut dyn Ipc) -> Result<()> {
        crate::diag!("{}", self.0);
        Err(Errno::EDVSINVAL)
    }
}

/// What a request-serving server does with each request, and periodically.
pub(crate) trait Handler {
    /// The reply to request `m` (`m.m_source` is the client, stamped by the fabric). An `Err`
    /// becomes an error reply, except `EDVSSHUTDOWN`, which ends the loop.
    fn handle(&mut self, ipc: &mut dyn Ipc, m: &Message) -> Result<Message>;

    /// How often [`Handler::tick`] runs, busy or idle; `None`: never.
    fn tick_every(&self) -> Option<Duration> {
        None
    }

    /// Periodic work (PM's sweep for dead clients).
    fn tick(&mut self, _ipc: &mut dyn Ipc) {}

    /// The last work when the host stops, after the last request (RDISK flushes its image
    /// file). Its error becomes the server's.
    fn finish(&mut self, _ipc: &mut dyn Ipc) -> Result<()> {
        Ok(())
    }
}

/// The loop every server of this crate runs: receive from anyone, answer every request, never
/// stop on a client's mistake.
///
/// Ends with [`Handler::finish`]'s result when the host stops (`EDVSSHUTDOWN`), with `Err`
/// when the server can no longer serve (its slot or the DC is gone). Everything received is answered, notifications included
/// (their types are unknown requests): a `reply` reaches only a client waiting in `sendrec` to
/// us, so the answer to a real notification fails harmlessly, while a request that merely looks
/// like one (a client chooses its `m_type`) still gets its error reply. A reply that fails (the
/// client died or gave up) is dropped: the server stays healthy.
pub(crate) fn serve_requests(h: &mut impl Handler, ipc: &mut dyn Ipc) -> Result<()> {
    let every = h.tick_every();
    let mut next_tick = every.map(|d| Instant::now() + d);
    let mut m = Message::default();
    loop {
        if ipc.stopping() {
            return h.finish(ipc);
        }
        // With a tick, wait no longer than until it is due, so an idle server still ticks.
        let timeout = match next_tick {
            None => Timeout::Forever,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now()).as_millis();
                Timeout::Millis(u32::try_from(left).unwrap_or(u32::MAX).max(1))
            }
        };
        match ipc.receive(ANY, &mut m, timeout) {
            Ok(()) => {
                let reply = match h.handle(ipc, &m) {
                    Ok(r) => r,
                    Err(Errno::EDVSSHUTDOWN) => return h.finish(ipc),
                    Err(e) => crate::protocol::error_reply(e),
                };
                // The client may have died or timed out meanwhile: its problem, not ours.
                let _ = ipc.reply(m.m_source, &reply);
            }
            Err(Errno::EDVSSHUTDOWN) => return h.finish(ipc),
            // Nothing came, someone woke us, or a peer went away: serve on.
            Err(
                Errno::EDVSTIMEDOUT
                | Errno::EDVSAGAIN
                | Errno::EDVSWOKENUP
                | Errno::EDVSSRCDIED
                | Errno::EDVSDEADSRCDST
                | Errno::EDVSENDPOINT,
            ) => {}
            // Our slot, our rights or the DC are gone: nothing more can be served.
            Err(e) => return Err(e),
        }
        if let (Some(at), Some(d)) = (next_tick, every)
            && Instant::now() >= at
        {
            h.tick(ipc);
            next_tick = Some(Instant::now() + d);
        }
    }
}
