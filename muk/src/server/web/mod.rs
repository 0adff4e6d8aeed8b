//! The web server (slot 22, the original's nweb): static files from our MINIX FS over HTTP/1.1.
//!
//! Files come from FS through the FS protocol, by grant (`fs_link`): the server's data buffer
//! is granted to FS, which reads a file's bytes straight into it. HTTP/1.1 with keep-alive,
//! `Content-Length`, `Content-Type` by extension, `HEAD`, one `Range` per request (`206`, or
//! `416` when no byte is asked), an index page for a directory (its `index.html` if it has one,
//! else a listing; a directory named without its trailing `/` is redirected, `301`), and
//! `400` (malformed, or a `..` in the path, however encoded), `404`, `405`, `413` (a request
//! body), `414`, `431` (a head over 16 KiB or 64 headers), `408` (no whole head in time).
//! Requests are parsed by `httparse` ([`http`]); connections are driven by socket events
//! ([`engine`]), so that one slow or stalled client never holds up the others.

pub mod engine;
mod fs_link;
pub mod http;

use crate::ipc::Ipc;
use crate::server::Server;
use engine::{Body, Limits, Reply, Site};
use fs_link::FsLink;
use http::{Method, RangeAsk, Request};
use m3ipc::{Errno, Result};
use std::net::{SocketAddr, TcpListener};

pub use engine::Limits as WebLimits;

/// The web server.
pub struct Web {
    listener: TcpListener,
    root: String,
    fs: FsLink,
    limits: Limits,
}

impl Web {
    /// A web server listening on `addr` (port 0: any free port; see [`Web::local_addr`]),
    /// serving the FS directory `root` (absolute) of the FS at slot `fs_nr`.
    pub fn bind(addr: SocketAddr, root: &str, fs_nr: i32) -> std::io::Result<Web> {
        if crate::storage::path::check(root).is_err() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("web root {root:?} is not an absolute path"),
            ));
        }
        Ok(Web {
            listener: crate::sockets::listen(addr)?,
            root: root.to_string(),
            fs: FsLink::new(fs_nr),
            limits: Limits::default(),
        })
    }

    /// Change the timeouts and the connection limit.
    pub fn with_limits(mut self, limits: Limits) -> Web {
        self.limits = limits;
        self
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Server for Web {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> Result<()> {
        let Web {
            listener,
            root,
            fs,
            limits,
        } = self;
        let mut site = Files { root, fs };
        engine::serve(&mut site, ipc, listener, *limits)
    }

    fn layer(&self) -> u8 {
        2
    }
}

struct Files<'a> {
    root: &'a str,
    fs: &'a mut FsLink,
}

fn page(status: u16, req: &Request, extra: &[(&str, &str)]) -> Reply {
    Reply {
        head: http::error_page(status, extra, req.keep_alive, req.method == Method::Get),
        body: Body::Bytes(Vec::new()),
        close: false,
    }
}

impl Files<'_> {
    fn file(&mut self, req: &Request, st: &minixfs::Stat, name: &str) -> Reply {
        let size = st.size;
        let ctype = http::content_type(name);
        match http::range(req.range.as_deref(), size) {
            RangeAsk::Whole => Reply {
                head: http::head(
                    200,
                    &[("Content-Type", ctype), ("Accept-Ranges", "bytes")],
                    size,
                    req.keep_alive,
                ),
                body: Body::File {
                    ino: st.ino,
                    start: 0,
                    end: size,
                },
                close: false,
            },
            RangeAsk::Part(start, end) => {
                let cr = format!("bytes {start}-{}/{size}", end - 1);
                Reply {
                    head: http::head(
                        206,
                        &[
                            ("Content-Type", ctype),
                            ("Accept-Ranges", "bytes"),
                            ("Content-Range", &cr),
                        ],
                        end - start,
                        req.keep_alive,
                    ),
                    body: Body::File {
                        ino: st.ino,
                        start,
                        end,
                    },
                    close: false,
                }
            }
            RangeAsk::Unsatisfiable => {
                let cr = format!("bytes */{size}");
                page(416, req, &[("Content-Range", &cr)])
            }
        }
    }

    fn index(&mut self, ipc: &mut dyn Ipc, req: &Request, ino: u32, shown: &str) -> Reply {
        let entries = match self.fs.list(ipc, ino) {
            Ok(e) => e,
            Err(_) => return page(500, req, &[]),
        };
        let mut entries = entries;
        entries.sort_by(|a, b| (!a.is_dir(), &a.name).cmp(&(!b.is_dir(), &b.name)));
        let title = http::html_escape(shown);
        let mut b = format!(
            "<!doctype html><meta charset=utf-8><title>Index of {title}</title>\
             <style>body{{font:14px system-ui,sans-serif;margin:2em}}td{{padding:2px 12px}}\
             td.n{{text-align:right;font-variant-numeric:tabular-nums}}</style>\
             <h1>Index of {title}</h1><table><tr><th>name</th><th>size</th></tr>\n"
        );
        if shown != "/" {
            b.push_str("<tr><td><a href=\"../\">../</a></td><td></td></tr>\n");
        }
        for e in &entries {
            let slash = if e.is_dir() { "/" } else { "" };
            b.push_str(&format!(
                "<tr><td><a href=\"{}{slash}\">{}{slash}</a></td><td class=n>{}</td></tr>\n",
                http::percent_encode(&e.name),
                http::html_escape(&e.name),
                if e.is_dir() {
                    String::new()
                } else {
                    e.size.to_string()
                }
            ));
        }
        b.push_str("</table>\n");
        Reply {
            head: http::head(
                200,
                &[("Content-Type", "text/html; charset=utf-8")],
                b.len() as u64,
                req.keep_alive,
            ),
            body: Body::Bytes(b.into_bytes()),
            close: false,
        }
    }
}

impl Site for Files<'_> {
    fn respond(&mut self, ipc: &mut dyn Ipc, req: &Request) -> Reply {
        let (names, slash) = match http::target_path(&req.target) {
            Ok(p) => p,
            Err(_) => return page(400, req, &[]),
        };
        let path = http::fs_path(self.root, &names);
        let st = match self.fs.lookup(ipc, &path) {
            Ok(st) => st,
            Err(Errno::EDVSNOENT | Errno::EDVSNOTDIR | Errno::EDVSNAMETOOLONG) => {
                return page(404, req, &[]);
            }
            Err(Errno::EDVSINVAL) => return page(400, req, &[]),
            Err(_) => return page(500, req, &[]),
        };
        let shown = format!(
            "/{}{}",
            names.join("/"),
            if names.is_empty() { "" } else { "/" }
        );
        if st.is_dir() {
            if !slash && !names.is_empty() {
                let to: String = names
                    .iter()
                    .map(|n| format!("/{}", http::percent_encode(n)))
                    .collect::<String>()
                    + "/";
                return page(301, req, &[("Location", &to)]);
            }
            let index = format!("{}/index.html", path.trim_end_matches('/'));
            return match self.fs.lookup(ipc, &index) {
                Ok(ist) if !ist.is_dir() => self.file(req, &ist, "index.html"),
                _ => self.index(ipc, req, st.ino, &shown),
            };
        }
        if slash {
            return page(404, req, &[]);
        }
        let name = names.last().map_or("", String::as_str);
        self.file(req, &st, name)
    }

    fn read(
        &mut self,
        ipc: &mut dyn Ipc,
        ino: u32,
        offset: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize> {
        self.fs.read(ipc, ino, offset, len, out)
    }
}
