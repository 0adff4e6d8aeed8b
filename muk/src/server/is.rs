//! IS (slot 8, the information server): this MUK2 as a web page a person reads, live, and the
//! same data as JSON.
//!
//! `GET /` is one HTML page: the DC and its limits, the servers of this process with their
//! runner, FS and RDISK figures, the pool's use, the socket sleeps of the scheduler, and the
//! process table with flags, `getfrom`/`sendto` and counters. A little script fetches
//! `/api/state` about once a second and redraws the tables in place (no reload); a value that
//! changed since the page loaded is marked. `GET /api/state` is that JSON. Served by the same
//! connection engine as the web server ([`super::web::engine`]).

use super::web::engine::{self, Body, Limits, Reply, Site};
use super::web::http::{self, Method, Request};
use crate::ipc::Ipc;
use crate::server::Server;
use crate::storage::fs::FS_INFO;
use crate::storage::rdisk::RD_GEOMETRY;
use crate::storage::reply_result;
use m3ipc::{Message, Result, Timeout};
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};

/// How long IS waits for FS or RDISK to say their figures.
const ASK: Timeout = Timeout::Millis(1000);

/// The information server.
pub struct Is {
    /// Taken while the engine serves (the engine borrows `self` as the site beside it).
    listener: Option<TcpListener>,
    fs_nr: i32,
    rdisk_nr: i32,
    served: u64,
}

impl Is {
    /// IS listening on `addr` (port 0: any free port), showing FS and RDISK at their
    /// well-known slots.
    pub fn bind(addr: SocketAddr) -> std::io::Result<Is> {
        Ok(Is {
            listener: Some(crate::sockets::listen(addr)?),
            fs_nr: crate::ServerKind::Fs.default_nr(),
            rdisk_nr: crate::ServerKind::Rdisk.default_nr(),
            served: 0,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.listener {
            Some(l) => l.local_addr(),
            None => Err(std::io::Error::other("IS is serving")),
        }
    }
}

impl Server for Is {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> Result<()> {
        // Taken, not cloned: a clone is a system call the sandbox does not allow.
        let listener = self.listener.take().ok_or(m3ipc::Errno::EDVSBADCALL)?;
        let r = engine::serve(self, ipc, &listener, Limits::default());
        self.listener = Some(listener);
        r
    }

    fn layer(&self) -> u8 {
        3
    }
}

/// A JSON string.
fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn ep_name(ep: m3ipc::Endpoint) -> String {
    match ep {
        m3ipc::ANY => "ANY".into(),
        m3ipc::NONE => "NONE".into(),
        m3ipc::SELF => "SELF".into(),
        m3ipc::HARDWARE => "HARDWARE".into(),
        e => e.to_string(),
    }
}

impl Is {
    /// One request to a server of the DC at slot `nr`; its reply, if it answered in time.
    fn ask(ipc: &mut dyn Ipc, nr: i32, m_type: i32) -> Option<Message> {
        let ep = ipc.dc().wait4bind(nr, Timeout::NoWait).ok()?;
        let mut m = Message::new(m_type);
        ipc.sendrec(ep, &mut m, ASK).ok()?;
        reply_result(&m).ok()?;
        Some(m)
    }

    /// The state as JSON.
    fn state(&mut self, ipc: &mut dyn Ipc) -> String {
        let dc = ipc.dc().clone();
        let info = dc.info();
        let me = std::process::id();
        // The MUK2 scheduler thread is named "muk2"; under MUK each server has its own thread.
        let runner = if std::thread::current().name() == Some("muk2") {
            "MUK2 (coroutines on one thread)"
        } else {
            "MUK (one thread per server)"
        };
        let procs = dc.procs();
        let mut o = String::with_capacity(4096);
        let c = &info.config;
        let _ = write!(
            o,
            "{{\"dc\":{{\"name\":{},\"dcid\":{},\"node\":{},\"procs\":{},\"tasks\":{},\"sysprocs\":{},\"bound\":{},\"creator_pid\":{},\"region_bytes\":{}}}",
            js(&info.name),
            c.dcid,
            c.node,
            c.nr_procs,
            c.nr_tasks,
            c.nr_sysprocs,
            info.bound,
            info.creator_pid,
            info.region_bytes
        );
        let _ = write!(
            o,
            ",\"host\":{{\"pid\":{me},\"runner\":{},\"is_requests\":{}}}",
            js(runner),
            self.served
        );
        o.push_str(",\"servers\":[");
        let mut first = true;
        for p in procs.iter().filter(|p| p.pid == me) {
            if !first {
                o.push(',');
            }
            first = false;
            let _ = write!(
                o,
                "{{\"name\":{},\"nr\":{},\"endpoint\":{},\"runner\":{}}}",
                js(&p.name),
                p.nr,
                p.endpoint,
                js(runner)
            );
        }
        o.push(']');
        match Self::ask(ipc, self.fs_nr, FS_INFO) {
            Some(m) => {
                let _ = write!(
                    o,
                    ",\"fs\":{{\"blocks\":{},\"free_blocks\":{},\"inodes\":{},\"free_inodes\":{}}}",
                    m.payload[0],
                    m.payload[1],
                    m.payload[2] & 0xffff_ffff,
                    m.payload[2] >> 32
                );
            }
            None => o.push_str(",\"fs\":null"),
        }
        match Self::ask(ipc, self.rdisk_nr, RD_GEOMETRY) {
            Some(m) => {
                let _ = write!(
                    o,
                    ",\"rdisk\":{{\"blocks\":{},\"block_size\":{}}}",
                    m.payload[0], m.payload[1]
                );
            }
            None => o.push_str(",\"rdisk\":null"),
        }
        match info.pool {
            Some(p) => {
                let _ = write!(
                    o,
                    ",\"pool\":{{\"total_bytes\":{},\"used_bytes\":{},\"buffers\":{},\"grants\":{},\"grant_slots\":{},\"copies\":{},\"copied_bytes\":{}}}",
                    p.total_bytes,
                    p.used_bytes,
                    p.buffers,
                    p.grants,
                    p.grant_slots,
                    p.copies,
                    p.copied_bytes
                );
            }
            None => o.push_str(",\"pool\":null"),
        }
        let s = crate::io_sleep_stats();
        let _ = write!(
            o,
            ",\"sleeps\":{{\"total\":{},\"by_socket\":{},\"by_doorbell\":{},\"by_timeout\":{},\"socket_events\":{}}}",
            s.sleeps, s.by_socket, s.by_doorbell, s.by_timeout, s.events
        );
        o.push_str(",\"procs\":[");
        for (i, p) in procs.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let mut flags = p.flag_letters();
            if !p.owner_alive {
                flags.push('D');
            }
            let _ = write!(
                o,
                "{{\"nr\":{},\"endpoint\":{},\"pid\":{},\"name\":{},\"flags\":{},\"getfrom\":{},\"sendto\":{},\"sent\":{},\"received\":{},\"direct\":{},\"notified\":{},\"buffers\":{},\"buffer_bytes\":{},\"grants\":{}}}",
                p.nr,
                p.endpoint,
                p.pid,
                js(&p.name),
                js(if flags.is_empty() { "-" } else { &flags }),
                js(&ep_name(p.getfrom)),
                js(&ep_name(p.sendto)),
                p.sent,
                p.received,
                p.received_direct,
                p.notified,
                p.holdings.buffers,
                p.holdings.bytes,
                p.holdings.grants
            );
        }
        o.push_str("]}");
        o
    }
}

fn ok(req: &Request, ctype: &str, body: Vec<u8>) -> Reply {
    Reply {
        head: http::head(
            200,
            &[("Content-Type", ctype), ("Cache-Control", "no-store")],
            body.len() as u64,
            req.keep_alive,
        ),
        body: Body::Bytes(body),
        close: false,
    }
}

impl Site for Is {
    fn respond(&mut self, ipc: &mut dyn Ipc, req: &Request) -> Reply {
        self.served += 1;
        let path = req.target.split('?').next().unwrap_or("");
        match path {
            "/" | "/index.html" => ok(req, "text/html; charset=utf-8", PAGE.as_bytes().to_vec()),
            "/api/state" | "/api/" | "/api" => {
                let body = self.state(ipc).into_bytes();
                ok(req, "application/json", body)
            }
            _ => Reply {
                head: http::error_page(404, &[], req.keep_alive, req.method == Method::Get),
                body: Body::Bytes(Vec::new()),
                close: false,
            },
        }
    }

    fn read(
        &mut self,
        _: &mut dyn Ipc,
        _: u32,
        _: u64,
        _: usize,
        _: &mut Vec<u8>,
    ) -> Result<usize> {
        Ok(0)
    }
}

/// The page: static HTML; the script fills it from `/api/state` every second.
const PAGE: &str = include_str!("is_page.html");
