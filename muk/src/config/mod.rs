//! The unikernel's configuration: which DC to create, which runner, which servers to host.
//!
//! The successor of the original's `muk.cfg`, in TOML:
//!
//! ```toml
//! runner = "coroutines"          # or "threads" (MUK); default coroutines (MUK2)
//!
//! [dc]
//! name = "DC0"                   # region file m3ipc-dc-DC0
//! node = 0                       # 0..31
//! # dcid = 0                     # optional, 0..31; default the lowest id no other DC uses
//! # procs = 221                  # optional limits, as `dvs dc create` takes them
//! # tasks = 34
//! # sysprocs = 64
//! # mode = 0o660                # optional: the region and pool files' mode (default 0o600)
//! # group = "m3"                 # optional: their group, whose members may then bind
//!
//! [[server]]
//! name = "systask"               # a known server: systask, pm, echo
//! # nr = -2                      # optional; default its well-known number
//! # stack_kib = 256              # optional coroutine (or thread) stack
//!
//! [[server]]
//! name = "pm"
//!
//! [[server]]
//! name = "rdisk"                 # the block device: either
//! memory_mib = 32                #   a zero-filled memory disk (default 64 MiB), or
//! # image = "/path/disk.img"     #   an image file, read and written in place (a relative
//!                                #   path is taken from the config file's directory)
//!
//! [[server]]
//! name = "fs"                    # the MINIX v3 file system on RDISK
//! format = "if-blank"            # "never", "if-blank" (default) or "always"
//!
//! [[server]]
//! name = "ftp"                   # m3ftpd, for the m3ftp client
//!
//! [cluster]                      # optional: the DC spans nodes (see below)
//! node = 0                       # this node's id (`[dc] node` may be left out, or must agree)
//! listen = "127.0.0.1:7000"      # where the other nodes reach this one
//!
//! [[cluster.peer]]               # one entry per other node
//! node = 1
//! address = "127.0.0.1:7001"
//!
//! [isolate]                      # optional, `muk2 run --isolate` only: a network interface
//! interface = "veth-m3"          # moved into the unikernel's network namespace,
//! address = "10.9.0.2/24"        # optional: its IPv4 address and prefix, set there
//! ```
//!
//! With `[cluster]`, `muk2 run` starts the node daemon of `m3cluster` for its DC inside its own
//! process (no `dvs node run` beside it): the section has the keys of the daemon's `node.toml`
//! (its `dcs` is this config's DC) and is checked by the same code
//! ([`m3cluster::config::NodeSection`]). Every node creates the DC with the same id and limits,
//! so `[dc] dcid` is required then. The daemon binds the proxy slot, the DC's lowest task slot
//! (`-tasks`), which no server may then use.
//!
//! With `[isolate]`, web and IS listen on the interface's address unless their own `address`
//! says otherwise (their default, 127.0.0.1, would be the unikernel's own loopback, reachable
//! from nowhere else).
//!
//! A known server left out of the config is expected from outside: started as its own process
//! with `muk2 serve NAME --dc DC`, as the original let a commented-out `*_ep` line run that
//! component elsewhere. [`Config::parse`] checks everything a mistake could put in the file and
//! names the line where TOML gives it; nothing is guessed.

use crate::runner::{DEFAULT_STACK, MIN_STACK, Runner};
use crate::server::fs::FormatPolicy;
use crate::server::rdisk::DiskSpec;
use crate::server::{ServerKind, ServerOptions};
use m3cluster::config::{NodeConfig, NodeSection};
use m3ipc::endpoint::{HARDWARE, systask};
use m3ipc::{DcConfig, MAX_NAME};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

mod checks;
mod error;
mod isolate;
mod raw;
#[cfg(test)]
mod tests;

use checks::*;
pub use error::{ConfigError, ConfigErrorKind};
use isolate::isolate_spec;
pub use isolate::{InterfaceAddress, IsolateSpec, MAX_INTERFACE_NAME};
use raw::*;

/// The embedded default config: every known server hosted, MUK2 runner.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// Node ids are 0..NODES (the original's 32-node bitmaps).
pub const NODES: u32 = 32;
/// DC ids are 0..DCS (the fabric's limit).
pub const DCS: u32 = m3ipc::MAX_DCS;
/// Largest `stack_kib` accepted: 64 MiB, far beyond what a server needs; larger is a typo.
pub const MAX_STACK_KIB: usize = 64 * 1024;
/// Largest memory disk accepted, in MiB: 16 GiB.
pub const MAX_MEMORY_MIB: u64 = 16 * 1024;

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The DC to create (`muk2 run`) or to serve in.
    pub dc: DcSpec,
    /// How the hosted servers run.
    pub runner: Runner,
    /// The servers hosted in this process, in boot order (the order of the file).
    pub servers: Vec<ServerSpec>,
    /// The `[cluster]` section: the node daemon to run for the DC, when it spans nodes.
    pub cluster: Option<NodeConfig>,
    /// The `[isolate]` section: the interface `muk2 run --isolate` moves in, when it names one.
    pub isolate: Option<IsolateSpec>,
}

/// The `[dc]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcSpec {
    /// The DC's name (at most [`MAX_NAME`] bytes of `[A-Za-z0-9._-]`).
    pub name: String,
    /// This node's id, 0..[`NODES`].
    pub node: u32,
    /// The DC id; `None`: the lowest id not used by another DC when it is created.
    pub dcid: Option<u32>,
    /// Process slots (servers and users).
    pub procs: u32,
    /// Task slots (negative `nr`).
    pub tasks: u32,
    /// Slots, from the first task, that are system processes.
    pub sysprocs: u32,
    /// The region and pool files' mode (default 0o600; 0o660 shares the DC with `group`).
    pub mode: u32,
    /// The files' group (a name or a number); `None`: the creator's.
    pub group: Option<String>,
}

impl DcSpec {
    /// The limits to create the DC with, under id `dcid`.
    pub fn dc_config(&self, dcid: u32) -> DcConfig {
        DcConfig {
            dcid,
            node: self.node,
            nr_procs: self.procs,
            nr_tasks: self.tasks,
            nr_sysprocs: self.sysprocs,
            // With a group, the files stay 0600 until they have it (`Dc::share`).
            mode: if self.group.is_some() {
                0o600
            } else {
                self.mode
            },
            ..DcConfig::default()
        }
    }

    /// Smallest and one-past-largest `nr` of a system-process slot: servers must bind there
    /// (a user slot may only `sendrec`).
    pub fn system_nrs(&self) -> Range<i32> {
        -(self.tasks as i32)..self.sysprocs as i32 - self.tasks as i32
    }
}

/// One `[[server]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    /// Which server.
    pub kind: ServerKind,
    /// The slot it binds.
    pub nr: i32,
    /// Its stack in bytes.
    pub stack_size: usize,
    /// The storage servers' settings (the default for the others). FS's RDISK and FTP's FS
    /// are the slots the config gives those servers (their well-known ones when left out).
    pub options: ServerOptions,
}

/// The well-known slot of `kind` on node `node`: SYSTASK of node n is `-2 - n`
/// (docs/ARCHITECTURE.md section 2), the others do not depend on the node.
pub fn default_nr(kind: ServerKind, node: u32) -> i32 {
    match kind {
        ServerKind::Systask => systask(node as i32),
        _ => kind.default_nr(),
    }
}

impl Config {
    /// The embedded default config ([`DEFAULT_TOML`]).
    pub fn default_config() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_TOML)
    }

    /// Read and validate the config file at `path`. A relative `image` is taken from the
    /// file's directory, not from the working directory: the config means the same whoever
    /// runs it from wherever. ([`Config::parse`] has no file, and leaves such a path relative:
    /// the embedded default config names no image, and a text given without a file is read
    /// from the working directory.)
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            line: None,
            kind: ConfigErrorKind::Read {
                path: path.display().to_string(),
                why: e.to_string(),
            },
        })?;
        let mut config = Config::parse(&text)?;
        let dir = path.parent().unwrap_or(Path::new(""));
        for server in &mut config.servers {
            if let DiskSpec::Image(image) = &mut server.options.disk
                && image.is_relative()
            {
                *image = dir.join(&*image);
            }
        }
        Ok(config)
    }

    /// Parse and validate a config.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let at = |span: Range<usize>, kind| ConfigError {
            line: Some(line_of(text, span.start)),
            kind,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            line: e.span().map(|s| line_of(text, s.start)),
            kind: ConfigErrorKind::Syntax(e.message().trim().to_string()),
        })?;
        let cluster = match &raw.cluster {
            None => None,
            Some(c) => Some(
                c.get_ref()
                    .for_dc("cluster", raw.dc.get_ref().name.get_ref())
                    .map_err(|e| at(c.span(), ConfigErrorKind::Cluster(e.to_string())))?,
            ),
        };
        // `[dc] node` may be left out with `[cluster]`: it is the section's node then.
        let node = cluster.as_ref().map_or(0, |c| c.node);
        let dc = dc_spec(raw.dc.get_ref(), raw.dc.span(), node, &at)?;
        let proxy_nr = match &cluster {
            None => None,
            Some(c) => Some(cluster_agrees(c, &raw.dc, &dc, &at)?),
        };
        if raw.server.is_empty() {
            return Err(at(raw.dc.span(), ConfigErrorKind::NoServers));
        }
        let mut servers: Vec<(ServerSpec, usize)> = Vec::new();
        for s in &raw.server {
            let name = s.name.get_ref();
            let line = line_of(text, s.name.span().start);
            let kind = ServerKind::from_name(name).ok_or_else(|| {
                at(
                    s.name.span(),
                    ConfigErrorKind::UnknownServer {
                        name: name.clone(),
                        known: known_names(),
                    },
                )
            })?;
            if let Some((_, first_line)) = servers.iter().find(|(p, _)| p.kind == kind) {
                return Err(at(
                    s.name.span(),
                    ConfigErrorKind::DuplicateServer {
                        name: name.clone(),
                        first_line: *first_line,
                    },
                ));
            }
            let nr = match &s.nr {
                None => default_nr(kind, dc.node),
                Some(nr) => check_nr(name, nr, &dc, &at)?,
            };
            if proxy_nr == Some(nr) {
                let span = s.nr.as_ref().map_or(s.name.span(), Spanned::span);
                return Err(at(
                    span,
                    ConfigErrorKind::Cluster(format!(
                        "needs nr {nr} (the DC's lowest task slot) for the node daemon's proxy, \
                         but server {name:?} uses it"
                    )),
                ));
            }
            if let Some((other, _)) = servers.iter().find(|(p, _)| p.nr == nr) {
                let span = s.nr.as_ref().map_or(s.name.span(), Spanned::span);
                return Err(at(
                    span,
                    ConfigErrorKind::DuplicateNr {
                        nr: nr.into(),
                        first: other.kind.name().into(),
                        second: name.clone(),
                    },
                ));
            }
            let stack_size = match &s.stack_kib {
                None => DEFAULT_STACK,
                Some(kib) => check_stack(name, kib, &at)?,
            };
            let options = storage_options(kind, s, &at)?;
            servers.push((
                ServerSpec {
                    kind,
                    nr,
                    stack_size,
                    options,
                },
                line,
            ));
        }
        // FS finds its RDISK, and FTP its FS, at the slots this config gives them.
        let nr_of = |k: ServerKind| servers.iter().find(|(p, _)| p.kind == k).map(|(p, _)| p.nr);
        let (rdisk_nr, fs_nr) = (nr_of(ServerKind::Rdisk), nr_of(ServerKind::Fs));
        for (spec, _) in &mut servers {
            spec.options.below_nr = match spec.kind {
                ServerKind::Fs => rdisk_nr,
                ServerKind::Ftp => fs_nr,
                _ => None,
            };
        }
        let isolate = raw
            .isolate
            .as_ref()
            .map(|i| isolate_spec(i, &at))
            .transpose()?;
        // Isolated, 127.0.0.1 is the unikernel's own loopback: listen on the interface.
        if let Some(a) = isolate.as_ref().and_then(|i| i.address) {
            for (spec, _) in &mut servers {
                if matches!(spec.kind, ServerKind::Web | ServerKind::Is)
                    && spec.options.address.is_none()
                {
                    spec.options.address = Some(IpAddr::V4(a.ip));
                }
            }
        }
        Ok(Config {
            dc,
            runner: match raw.runner {
                RawRunner::Coroutines => Runner::Coroutines,
                RawRunner::Threads => Runner::Threads,
            },
            servers: servers.into_iter().map(|(s, _)| s).collect(),
            cluster,
            isolate,
        })
    }

    /// The known servers this config does not host: they are expected from outside.
    pub fn external(&self) -> Vec<ServerKind> {
        ServerKind::ALL
            .into_iter()
            // The network servers are optional: nobody waits for them.
            .filter(|k| !matches!(k, ServerKind::Web | ServerKind::Is))
            .filter(|k| self.servers.iter().all(|s| s.kind != *k))
            .collect()
    }
}

pub(super) type At<'a> = dyn Fn(Range<usize>, ConfigErrorKind) -> ConfigError + 'a;
pub(super) fn known_names() -> String {
    ServerKind::ALL.map(ServerKind::name).join(", ")
}

/// 1-based line of byte `offset` in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
