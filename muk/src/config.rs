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

/// The embedded default config: every known server hosted, MUK2 runner.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

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

/// The `[isolate]` section: a network interface of the host to move into the isolated
/// unikernel's network namespace (which otherwise has only its own loopback).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsolateSpec {
    /// The interface's name on the host (1..=15 bytes, no `/`, `:` or white space).
    pub interface: String,
    /// Its IPv4 address and prefix length, set inside; `None`: the interface is only brought
    /// up (its addresses are someone else's business).
    pub address: Option<InterfaceAddress>,
}

/// An IPv4 address with its prefix length (`10.9.0.2/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// The address.
    pub ip: Ipv4Addr,
    /// The prefix length, 1..=32.
    pub prefix: u8,
}

impl InterfaceAddress {
    /// The netmask of the prefix (`/24`: 255.255.255.0).
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(self.prefix))
                .unwrap_or(0),
        )
    }
}

impl std::fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

/// Longest interface name the kernel takes (`IFNAMSIZ` less its NUL).
pub const MAX_INTERFACE_NAME: usize = 15;

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

/// A config that cannot be used: what is wrong and, when known, on which line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line of the offending value in the file, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The ways a config can be wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    /// The file could not be read.
    #[error("cannot read {path}: {why}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        why: String,
    },
    /// Not TOML, a missing or unknown key, or a value of the wrong type.
    #[error("{0}")]
    Syntax(String),
    /// A server name this crate does not know.
    #[error("unknown server {name:?} (known: {known})")]
    UnknownServer {
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// The same server listed twice.
    #[error("server {name:?} is listed twice (first on line {first_line})")]
    DuplicateServer {
        /// The server.
        name: String,
        /// Line of its first entry.
        first_line: usize,
    },
    /// Two servers on one slot.
    #[error("servers {first:?} and {second:?} both use nr {nr}")]
    DuplicateNr {
        /// The slot.
        nr: i64,
        /// The server listed first.
        first: String,
        /// The server listed second.
        second: String,
    },
    /// A slot outside the DC's system-process slots (or not an `i32` at all).
    #[error(
        "server {name:?}: nr {nr} is not a system-process slot of this DC (servers need nr {lo}..={hi})"
    )]
    NrOutOfRange {
        /// The server.
        name: String,
        /// The nr given.
        nr: i64,
        /// Smallest allowed.
        lo: i32,
        /// Largest allowed.
        hi: i32,
    },
    /// `nr = -1`: HARDWARE is never bindable.
    #[error("server {name:?}: nr -1 is HARDWARE, which no process can bind")]
    HardwareNr {
        /// The server.
        name: String,
    },
    /// A stack below [`MIN_STACK`] or above [`MAX_STACK_KIB`].
    #[error("server {name:?}: stack_kib {kib} is outside {min}..={max}")]
    Stack {
        /// The server.
        name: String,
        /// The size given.
        kib: i64,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
    /// `node` outside 0..[`NODES`].
    #[error("node {0} is out of range (0..={max})", max = NODES - 1)]
    Node(i64),
    /// `dcid` outside 0..[`DCS`].
    #[error("dcid {0} is out of range (0..={max})", max = DCS - 1)]
    Dcid(i64),
    /// The DC name is empty, too long or has other characters than `[A-Za-z0-9._-]`.
    #[error("DC name {name:?} is {why}")]
    DcName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The DC limits are inconsistent.
    #[error(
        "bad DC limits (procs {procs}, tasks {tasks}, sysprocs {sysprocs}): need procs >= 1, \
         tasks <= 35, tasks < sysprocs <= tasks + procs, tasks + procs <= 1024"
    )]
    Limits {
        /// Process slots.
        procs: i64,
        /// Task slots.
        tasks: i64,
        /// System-process slots.
        sysprocs: i64,
    },
    /// A file mode above 0o777 or without the owner's read and write.
    #[error("mode {0:#o} must be at most 0o777 and include 0o600 (0o660 shares with the group)")]
    Mode(i64),
    /// An empty group name.
    #[error("group must not be empty")]
    Group,
    /// No `[[server]]` entry.
    #[error("no server to host: list at least one [[server]]")]
    NoServers,
    /// The `[cluster]` section is wrong, or disagrees with the rest (the text names the key).
    #[error("[cluster] {0}")]
    Cluster(String),
    /// The `[isolate]` section is wrong (the text names the key).
    #[error("[isolate] {0}")]
    Isolate(String),
    /// A storage setting that is wrong or given to a server that does not take it.
    #[error("server {name:?}: {why}")]
    Storage {
        /// The server.
        name: String,
        /// What is wrong.
        why: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    runner: RawRunner,
    dc: Spanned<RawDc>,
    #[serde(default)]
    server: Vec<RawServer>,
    #[serde(default)]
    cluster: Option<Spanned<NodeSection>>,
    #[serde(default)]
    isolate: Option<RawIsolate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIsolate {
    interface: Spanned<String>,
    #[serde(default)]
    address: Option<Spanned<String>>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawRunner {
    #[default]
    Coroutines,
    Threads,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDc {
    name: Spanned<String>,
    #[serde(default)]
    node: Option<Spanned<i64>>,
    #[serde(default)]
    dcid: Option<Spanned<i64>>,
    #[serde(default)]
    procs: Option<Spanned<i64>>,
    #[serde(default)]
    tasks: Option<Spanned<i64>>,
    #[serde(default)]
    sysprocs: Option<Spanned<i64>>,
    #[serde(default)]
    mode: Option<Spanned<i64>>,
    #[serde(default)]
    group: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: Spanned<String>,
    #[serde(default)]
    nr: Option<Spanned<i64>>,
    #[serde(default)]
    stack_kib: Option<Spanned<i64>>,
    #[serde(default)]
    memory_mib: Option<Spanned<i64>>,
    #[serde(default)]
    image: Option<Spanned<String>>,
    #[serde(default)]
    format: Option<Spanned<String>>,
    #[serde(default)]
    port: Option<Spanned<i64>>,
    #[serde(default)]
    address: Option<Spanned<String>>,
    #[serde(default)]
    root: Option<Spanned<String>>,
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

type At<'a> = dyn Fn(Range<usize>, ConfigErrorKind) -> ConfigError + 'a;

/// `[cluster]` and `[dc]` agree: the same node, and a fixed DC id (every node must create the DC
/// with the same one). The proxy slot's nr.
fn cluster_agrees(
    cluster: &NodeConfig,
    raw: &Spanned<RawDc>,
    dc: &DcSpec,
    at: &At<'_>,
) -> Result<i32, ConfigError> {
    if let Some(n) = &raw.get_ref().node
        && *n.get_ref() != i64::from(cluster.node)
    {
        return Err(at(
            n.span(),
            ConfigErrorKind::Cluster(format!(
                "node = {} but [dc] node = {}: both are this node's id (leave [dc] node out)",
                cluster.node,
                n.get_ref()
            )),
        ));
    }
    if dc.dcid.is_none() {
        return Err(at(
            raw.span(),
            ConfigErrorKind::Cluster(
                "needs [dc] dcid: every node creates the DC with the same id".into(),
            ),
        ));
    }
    Ok(cluster.proxy_nr(&dc.name, dc.tasks))
}

fn dc_spec(
    raw: &RawDc,
    table: Range<usize>,
    default_node: u32,
    at: &At<'_>,
) -> Result<DcSpec, ConfigError> {
    let name = raw.name.get_ref();
    let bad_name = |why| {
        Err(at(
            raw.name.span(),
            ConfigErrorKind::DcName {
                name: name.clone(),
                why,
            },
        ))
    };
    if name.is_empty() {
        return bad_name("empty");
    }
    if name.len() > MAX_NAME {
        return bad_name("longer than 15 bytes");
    }
    // The same rule the region file's name follows; checked here to name the line.
    if name.starts_with('.')
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad_name("not made of letters, digits, '.', '_' and '-' (not first '.')");
    }
    let node = match &raw.node {
        None => default_node,
        Some(n) => u32::try_from(*n.get_ref())
            .ok()
            .filter(|&v| v < NODES)
            .ok_or_else(|| at(n.span(), ConfigErrorKind::Node(*n.get_ref())))?,
    };
    let dcid = match &raw.dcid {
        None => None,
        Some(n) => Some(
            u32::try_from(*n.get_ref())
                .ok()
                .filter(|&v| v < DCS)
                .ok_or_else(|| at(n.span(), ConfigErrorKind::Dcid(*n.get_ref())))?,
        ),
    };
    let defaults = DcConfig::default();
    let value = |v: &Option<Spanned<i64>>, default: u32| {
        v.as_ref().map_or(default.into(), |s| *s.get_ref())
    };
    let (procs, tasks, sysprocs) = (
        value(&raw.procs, defaults.nr_procs),
        value(&raw.tasks, defaults.nr_tasks),
        value(&raw.sysprocs, defaults.nr_sysprocs),
    );
    let limits_err = || {
        let span = [&raw.procs, &raw.tasks, &raw.sysprocs]
            .into_iter()
            .flatten()
            .map(Spanned::span)
            .next()
            .unwrap_or_else(|| table.clone());
        at(
            span,
            ConfigErrorKind::Limits {
                procs,
                tasks,
                sysprocs,
            },
        )
    };
    let as_u32 = |v: i64| u32::try_from(v).map_err(|_| limits_err());
    let spec = DcSpec {
        name: name.clone(),
        node,
        dcid,
        procs: as_u32(procs)?,
        tasks: as_u32(tasks)?,
        sysprocs: as_u32(sysprocs)?,
        mode: match &raw.mode {
            None => defaults.mode,
            Some(m) => u32::try_from(*m.get_ref())
                .ok()
                .filter(|v| v & !0o777 == 0 && v & 0o600 == 0o600)
                .ok_or_else(|| at(m.span(), ConfigErrorKind::Mode(*m.get_ref())))?,
        },
        group: match &raw.group {
            None => None,
            Some(g) if g.get_ref().is_empty() => {
                return Err(at(g.span(), ConfigErrorKind::Group));
            }
            Some(g) => Some(g.get_ref().clone()),
        },
    };
    if spec.dc_config(0).validate().is_err() {
        return Err(limits_err());
    }
    Ok(spec)
}

fn check_nr(name: &str, nr: &Spanned<i64>, dc: &DcSpec, at: &At<'_>) -> Result<i32, ConfigError> {
    let v = *nr.get_ref();
    if v == i64::from(HARDWARE) {
        return Err(at(
            nr.span(),
            ConfigErrorKind::HardwareNr { name: name.into() },
        ));
    }
    let range = dc.system_nrs();
    i32::try_from(v)
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            at(
                nr.span(),
                ConfigErrorKind::NrOutOfRange {
                    name: name.into(),
                    nr: v,
                    lo: range.start,
                    hi: range.end - 1,
                },
            )
        })
}

/// The storage settings of one entry: each key only for the server that takes it.
fn storage_options(
    kind: ServerKind,
    s: &RawServer,
    at: &At<'_>,
) -> Result<ServerOptions, ConfigError> {
    let name = s.name.get_ref();
    let wrong = |span: Range<usize>, why: String| {
        at(
            span,
            ConfigErrorKind::Storage {
                name: name.clone(),
                why,
            },
        )
    };
    let mut opts = ServerOptions::default();
    let only = |key: &str, server: ServerKind| {
        format!(
            "{key} is a setting of {}, not of this server",
            server.name()
        )
    };
    if let Some(mib) = &s.memory_mib {
        if kind != ServerKind::Rdisk {
            return Err(wrong(mib.span(), only("memory_mib", ServerKind::Rdisk)));
        }
        let v = *mib.get_ref();
        let bytes = u64::try_from(v)
            .ok()
            .filter(|m| (1..=MAX_MEMORY_MIB).contains(m))
            .ok_or_else(|| {
                wrong(
                    mib.span(),
                    format!("memory_mib {v} is outside 1..={MAX_MEMORY_MIB}"),
                )
            })?;
        opts.disk = DiskSpec::Memory(bytes << 20);
    }
    if let Some(image) = &s.image {
        if kind != ServerKind::Rdisk {
            return Err(wrong(image.span(), only("image", ServerKind::Rdisk)));
        }
        if s.memory_mib.is_some() {
            return Err(wrong(
                image.span(),
                "give either image or memory_mib, not both".into(),
            ));
        }
        if image.get_ref().is_empty() {
            return Err(wrong(image.span(), "image is an empty path".into()));
        }
        opts.disk = DiskSpec::Image(image.get_ref().into());
    }
    if let Some(format) = &s.format {
        if kind != ServerKind::Fs {
            return Err(wrong(format.span(), only("format", ServerKind::Fs)));
        }
        opts.format = FormatPolicy::from_name(format.get_ref()).ok_or_else(|| {
            wrong(
                format.span(),
                format!(
                    "format {:?} is not one of never, if-blank, always",
                    format.get_ref()
                ),
            )
        })?;
    }
    let net = matches!(kind, ServerKind::Web | ServerKind::Is);
    if let Some(port) = &s.port {
        if !net {
            return Err(wrong(port.span(), only("port", ServerKind::Web)));
        }
        opts.port = Some(u16::try_from(*port.get_ref()).map_err(|_| {
            wrong(
                port.span(),
                format!("port {} is outside 0..=65535", port.get_ref()),
            )
        })?);
    }
    if let Some(addr) = &s.address {
        if !net {
            return Err(wrong(addr.span(), only("address", ServerKind::Web)));
        }
        opts.address = Some(addr.get_ref().parse().map_err(|_| {
            wrong(
                addr.span(),
                format!("address {:?} is not an IP address", addr.get_ref()),
            )
        })?);
    }
    if let Some(root) = &s.root {
        if kind != ServerKind::Web {
            return Err(wrong(root.span(), only("root", ServerKind::Web)));
        }
        if crate::storage::path::check(root.get_ref()).is_err() {
            return Err(wrong(
                root.span(),
                format!("root {:?} is not an absolute path", root.get_ref()),
            ));
        }
        opts.web_root = Some(root.get_ref().clone());
    }
    Ok(opts)
}

/// The `[isolate]` section: a name the kernel could give an interface, and an IPv4 address with
/// its prefix.
fn isolate_spec(raw: &RawIsolate, at: &At<'_>) -> Result<IsolateSpec, ConfigError> {
    let name = raw.interface.get_ref();
    let bad = |span: Range<usize>, why: String| at(span, ConfigErrorKind::Isolate(why));
    if name.is_empty()
        || name.len() > MAX_INTERFACE_NAME
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(bad(
            raw.interface.span(),
            format!(
                "interface {name:?} is not an interface name (1..={MAX_INTERFACE_NAME} bytes, \
                 no '/', ':' or white space)"
            ),
        ));
    }
    let address = match &raw.address {
        None => None,
        Some(raw_addr) => {
            let text = raw_addr.get_ref();
            let parsed = text.split_once('/').and_then(|(ip, prefix)| {
                let ip: Ipv4Addr = ip.parse().ok()?;
                let prefix: u8 = prefix.parse().ok().filter(|p| (1..=32).contains(p))?;
                Some(InterfaceAddress { ip, prefix })
            });
            let a = parsed.ok_or_else(|| {
                bad(
                    raw_addr.span(),
                    format!(
                        "address {text:?} is not an IPv4 address with its prefix length \
                         (e.g. \"10.9.0.2/24\", prefix 1..=32)"
                    ),
                )
            })?;
            if a.ip.is_unspecified() || a.ip.is_loopback() || a.ip.is_multicast() {
                return Err(bad(
                    raw_addr.span(),
                    format!("address {text:?} cannot be an interface's own address"),
                ));
            }
            Some(a)
        }
    };
    Ok(IsolateSpec {
        interface: name.clone(),
        address,
    })
}

fn check_stack(name: &str, kib: &Spanned<i64>, at: &At<'_>) -> Result<usize, ConfigError> {
    let min = MIN_STACK / 1024;
    usize::try_from(*kib.get_ref())
        .ok()
        .filter(|k| (min..=MAX_STACK_KIB).contains(k))
        .map(|k| k * 1024)
        .ok_or_else(|| {
            at(
                kib.span(),
                ConfigErrorKind::Stack {
                    name: name.into(),
                    kib: *kib.get_ref(),
                    min,
                    max: MAX_STACK_KIB,
                },
            )
        })
}

fn known_names() -> String {
    ServerKind::ALL.map(ServerKind::name).join(", ")
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn err(text: &str) -> ConfigError {
        Config::parse(text).expect_err("config should be refused")
    }

    const DC: &str = "[dc]\nname = \"t\"\n";

    #[test]
    fn default_config_hosts_every_server() {
        let c = Config::default_config().unwrap();
        assert_eq!(c.runner, Runner::Coroutines);
        assert_eq!(c.dc.name, "muk2");
        assert_eq!(c.dc.node, 0);
        let kinds: Vec<_> = c.servers.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, ServerKind::ALL.to_vec());
        assert!(c.external().is_empty());
        let nrs: Vec<_> = c.servers.iter().map(|s| s.nr).collect();
        assert_eq!(nrs, vec![-2, 0, 20, 3, 1, 14, 22, 8]);
        assert_eq!(c.servers[3].options.disk, DiskSpec::Memory(32 << 20));
        assert_eq!(c.servers[4].options.format, FormatPolicy::IfBlank);
        assert_eq!(c.servers[4].options.below_nr, Some(3));
        assert_eq!(c.servers[5].options.below_nr, Some(1));
    }

    #[test]
    fn full_config_is_read() {
        let c = Config::parse(
            "runner = \"threads\"\n[dc]\nname = \"DC3\"\nnode = 3\ndcid = 7\nprocs = 100\n\
             tasks = 10\nsysprocs = 40\n[[server]]\nname = \"pm\"\nnr = 5\nstack_kib = 64\n\
             [[server]]\nname = \"systask\"\n",
        )
        .unwrap();
        assert_eq!(c.runner, Runner::Threads);
        assert_eq!(
            c.dc,
            DcSpec {
                name: "DC3".into(),
                node: 3,
                dcid: Some(7),
                procs: 100,
                tasks: 10,
                sysprocs: 40,
                mode: 0o600,
                group: None,
            }
        );
        assert_eq!(
            c.servers,
            vec![
                ServerSpec {
                    kind: ServerKind::Pm,
                    nr: 5,
                    stack_size: 64 * 1024,
                    options: ServerOptions::default(),
                },
                // SYSTASK of node 3.
                ServerSpec {
                    kind: ServerKind::Systask,
                    nr: -5,
                    stack_size: DEFAULT_STACK,
                    options: ServerOptions::default(),
                },
            ]
        );
        assert_eq!(
            c.external(),
            vec![
                ServerKind::Echo,
                ServerKind::Rdisk,
                ServerKind::Fs,
                ServerKind::Ftp
            ]
        );
        assert_eq!(c.dc.dc_config(7).validate(), Ok(()));
    }

    #[test]
    fn unknown_server() {
        let e = err(&format!("{DC}[[server]]\nname = \"nfs\"\n"));
        assert_eq!(e.line, Some(4));
        assert!(matches!(e.kind, ConfigErrorKind::UnknownServer { ref name, .. } if name == "nfs"));
        assert!(
            e.to_string()
                .contains("known: systask, pm, echo, rdisk, fs, ftp"),
            "{e}"
        );
    }

    #[test]
    fn mode_and_group_share_the_dc() {
        let c = Config::parse(
            "[dc]\nname = \"S\"\nmode = 0o660\ngroup = \"m3\"\n[[server]]\nname = \"pm\"\n",
        )
        .unwrap();
        assert_eq!((c.dc.mode, c.dc.group.as_deref()), (0o660, Some("m3")));
        // The files are made 0600 and get the mode once they have the group.
        assert_eq!(c.dc.dc_config(0).mode, 0o600);
        let c =
            Config::parse("[dc]\nname = \"S\"\nmode = 0o640\n[[server]]\nname = \"pm\"\n").unwrap();
        assert_eq!(c.dc.dc_config(0).mode, 0o640);
        for (bad, line) in [
            ("mode = 0o1660", 3),
            ("mode = 0o460", 3),
            ("group = \"\"", 3),
        ] {
            let e = err(&format!(
                "[dc]\nname = \"S\"\n{bad}\n[[server]]\nname = \"pm\"\n"
            ));
            assert_eq!(e.line, Some(line), "{bad}: {e}");
            assert!(
                matches!(e.kind, ConfigErrorKind::Mode(_) | ConfigErrorKind::Group),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn unknown_keys() {
        let e = err(&format!("{DC}[[server]]\nname = \"pm\"\nstack = 64\n"));
        assert_eq!(e.line, Some(5));
        assert!(e.to_string().contains("unknown field `stack`"), "{e}");
        let e = err("[dc]\nname = \"t\"\nnodes = 1\n[[server]]\nname = \"pm\"\n");
        assert_eq!(e.line, Some(3));
        assert!(e.to_string().contains("unknown field `nodes`"), "{e}");
        let e = err(&format!("color = 1\n{DC}[[server]]\nname = \"pm\"\n"));
        assert_eq!(e.line, Some(1));
        assert!(e.to_string().contains("unknown field `color`"), "{e}");
    }

    #[test]
    fn syntax_and_types() {
        let e = err("[dc\nname = 1\n");
        assert_eq!(e.line, Some(1));
        assert!(matches!(e.kind, ConfigErrorKind::Syntax(_)));
        let e = err("[dc]\nname = 1\n");
        assert_eq!(e.line, Some(2));
        let e = err("[[server]]\nname = \"pm\"\n");
        assert!(e.to_string().contains("missing field `dc`"), "{e}");
        let e = err(&format!(
            "runner = \"fibers\"\n{DC}[[server]]\nname = \"pm\"\n"
        ));
        assert_eq!(e.line, Some(1));
        assert!(e.to_string().contains("fibers"), "{e}");
    }

    #[test]
    fn duplicate_server() {
        let e = err(&format!(
            "{DC}[[server]]\nname = \"pm\"\n[[server]]\nname = \"pm\"\nnr = 3\n"
        ));
        assert_eq!(e.line, Some(6));
        assert_eq!(
            e.kind,
            ConfigErrorKind::DuplicateServer {
                name: "pm".into(),
                first_line: 4
            }
        );
    }

    #[test]
    fn duplicate_nr() {
        let e = err(&format!(
            "{DC}[[server]]\nname = \"pm\"\n[[server]]\nname = \"echo\"\nnr = 0\n"
        ));
        assert_eq!(e.line, Some(7));
        assert_eq!(
            e.kind,
            ConfigErrorKind::DuplicateNr {
                nr: 0,
                first: "pm".into(),
                second: "echo".into()
            }
        );
    }

    #[test]
    fn nr_outside_the_table() {
        // The default DC: tasks -34..-1, system processes up to nr 29.
        for (nr, line) in [("30", 5), ("-35", 5), ("4000", 5), ("99999999999", 5)] {
            let e = err(&format!("{DC}[[server]]\nname = \"echo\"\nnr = {nr}\n"));
            assert_eq!(e.line, Some(line), "{nr}");
            assert!(
                matches!(
                    e.kind,
                    ConfigErrorKind::NrOutOfRange {
                        lo: -34,
                        hi: 29,
                        ..
                    }
                ),
                "{nr}: {e}"
            );
        }
        let e = err(&format!("{DC}[[server]]\nname = \"echo\"\nnr = -1\n"));
        assert_eq!(
            e.kind,
            ConfigErrorKind::HardwareNr {
                name: "echo".into()
            }
        );
        // A smaller DC moves the bound.
        let e =
            err("[dc]\nname = \"t\"\ntasks = 4\nsysprocs = 8\n[[server]]\nname = \"pm\"\nnr = 4\n");
        assert!(
            matches!(e.kind, ConfigErrorKind::NrOutOfRange { lo: -4, hi: 3, .. }),
            "{e}"
        );
        // SYSTASK of node 33 would be -35: the node is refused first.
        let e = err("[dc]\nname = \"t\"\nnode = 33\n[[server]]\nname = \"systask\"\n");
        assert_eq!(e.kind, ConfigErrorKind::Node(33));
    }

    #[test]
    fn node_out_of_range() {
        for node in ["32", "-1", "1000"] {
            let e = err(&format!(
                "[dc]\nname = \"t\"\nnode = {node}\n[[server]]\nname = \"pm\"\n"
            ));
            assert_eq!(e.line, Some(3));
            assert!(matches!(e.kind, ConfigErrorKind::Node(_)), "{e}");
        }
        let e = err("[dc]\nname = \"t\"\ndcid = 32\n[[server]]\nname = \"pm\"\n");
        assert_eq!(e.kind, ConfigErrorKind::Dcid(32));
    }

    #[test]
    fn stack_bounds() {
        let small = err(&format!("{DC}[[server]]\nname = \"pm\"\nstack_kib = 8\n"));
        assert_eq!(small.line, Some(5));
        assert!(matches!(small.kind, ConfigErrorKind::Stack { kib: 8, .. }));
        assert!(small.to_string().contains("16..=65536"), "{small}");
        let huge = err(&format!(
            "{DC}[[server]]\nname = \"pm\"\nstack_kib = 10000000\n"
        ));
        assert!(matches!(huge.kind, ConfigErrorKind::Stack { .. }));
        let negative = err(&format!("{DC}[[server]]\nname = \"pm\"\nstack_kib = -4\n"));
        assert!(matches!(negative.kind, ConfigErrorKind::Stack { .. }));
        let ok = Config::parse(&format!("{DC}[[server]]\nname = \"pm\"\nstack_kib = 16\n"));
        assert_eq!(ok.unwrap().servers[0].stack_size, MIN_STACK);
    }

    #[test]
    fn dc_name() {
        let e = err("[dc]\nname = \"\"\n[[server]]\nname = \"pm\"\n");
        assert_eq!(e.line, Some(2));
        assert!(matches!(
            e.kind,
            ConfigErrorKind::DcName { why: "empty", .. }
        ));
        let e = err("[dc]\nname = \"a-name-of-16-byte\"\n[[server]]\nname = \"pm\"\n");
        assert!(matches!(e.kind, ConfigErrorKind::DcName { .. }), "{e}");
        let e = err("[dc]\nname = \"a/b\"\n[[server]]\nname = \"pm\"\n");
        assert!(matches!(e.kind, ConfigErrorKind::DcName { .. }), "{e}");
    }

    #[test]
    fn limits_and_empty() {
        let e = err("[dc]\nname = \"t\"\ntasks = 40\n[[server]]\nname = \"pm\"\n");
        assert_eq!(e.line, Some(3));
        assert!(
            matches!(e.kind, ConfigErrorKind::Limits { tasks: 40, .. }),
            "{e}"
        );
        let e = err("[dc]\nname = \"t\"\nprocs = -3\n[[server]]\nname = \"pm\"\n");
        assert!(
            matches!(e.kind, ConfigErrorKind::Limits { procs: -3, .. }),
            "{e}"
        );
        let e = err(DC);
        assert_eq!(e.kind, ConfigErrorKind::NoServers);
    }

    #[test]
    fn storage_settings() {
        let c = Config::parse(&format!(
            "{DC}[[server]]\nname = \"rdisk\"\nnr = 5\nimage = \"/tmp/x.img\"\n\
             [[server]]\nname = \"fs\"\nformat = \"never\"\n[[server]]\nname = \"ftp\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.servers[0].options.disk,
            DiskSpec::Image("/tmp/x.img".into())
        );
        assert_eq!(c.servers[1].options.format, FormatPolicy::Never);
        assert_eq!(c.servers[1].options.below_nr, Some(5));
        assert_eq!(c.servers[2].options.below_nr, Some(1));
        for (text, line, want) in [
            (
                "name = \"pm\"\nmemory_mib = 4\n",
                5,
                "memory_mib is a setting of rdisk",
            ),
            ("name = \"rdisk\"\nmemory_mib = 0\n", 5, "outside 1..=16384"),
            (
                "name = \"rdisk\"\nmemory_mib = 4\nimage = \"a\"\n",
                6,
                "not both",
            ),
            (
                "name = \"echo\"\nformat = \"never\"\n",
                5,
                "format is a setting of fs",
            ),
            (
                "name = \"fs\"\nformat = \"sometimes\"\n",
                5,
                "not one of never",
            ),
        ] {
            let e = err(&format!("{DC}[[server]]\n{text}"));
            assert_eq!(e.line, Some(line), "{text}: {e}");
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn relative_image_is_the_config_files() {
        let dir = std::env::temp_dir().join(format!("muk-config-image-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let disk_of = |image: &str| {
            let text = format!("{DC}[[server]]\nname = \"rdisk\"\nimage = \"{image}\"\n");
            let file = dir.join("muk.toml");
            std::fs::write(&file, &text).unwrap();
            let loaded = Config::load(&file).unwrap();
            let parsed = Config::parse(&text).unwrap();
            (
                loaded.servers[0].options.disk.clone(),
                parsed.servers[0].options.disk.clone(),
            )
        };
        let relative = disk_of("disks/a.img");
        let absolute = disk_of("/abs/b.img");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(relative.0, DiskSpec::Image(dir.join("disks/a.img")));
        assert_eq!(absolute.0, DiskSpec::Image("/abs/b.img".into()));
        // Without a file, the path stays as written (the working directory's).
        assert_eq!(relative.1, DiskSpec::Image("disks/a.img".into()));
    }

    const CLUSTER: &str = "[dc]\nname = \"C\"\ndcid = 4\n[[server]]\nname = \"rdisk\"\n\
                           [cluster]\nnode = 1\nlisten = \"127.0.0.1:7001\"\n\
                           [[cluster.peer]]\nnode = 0\naddress = \"127.0.0.1:7000\"\n";

    #[test]
    fn cluster_section_names_the_node_and_its_peers() {
        let c = Config::parse(CLUSTER).unwrap();
        let n = c.cluster.as_ref().unwrap();
        assert_eq!((n.node, n.listen.port()), (1, 7001));
        assert_eq!(n.dcs, ["C"]);
        assert_eq!((n.peers[0].node, n.peers[0].address.port()), (0, 7000));
        // `[dc] node` left out: the section's.
        assert_eq!(c.dc.node, 1);
        // SYSTASK of node 1 then.
        let c = Config::parse(&CLUSTER.replace("\"rdisk\"", "\"systask\"")).unwrap();
        assert_eq!(c.servers[0].nr, -3);
        let c = Config::parse(&CLUSTER.replace("dcid = 4", "dcid = 4\nnode = 1")).unwrap();
        assert_eq!(c.dc.node, 1);
        assert_eq!(Config::parse(DC_PM).unwrap().cluster, None);
    }

    /// The commented-out example of the default config from line `start` to the end of its
    /// comment block, uncommented.
    fn default_example(start: &str) -> String {
        let at = DEFAULT_TOML.find(start).unwrap();
        DEFAULT_TOML[at..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches('#').trim_start())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_default_configs_cluster_example_parses() {
        let example = default_example("# [cluster]");
        let c = Config::parse(&format!(
            "{DC}dcid = 0\n[[server]]\nname = \"pm\"\n{example}"
        ))
        .unwrap();
        let n = c.cluster.unwrap();
        assert_eq!((n.node, n.peers.len()), (0, 1));
    }

    #[test]
    fn the_default_configs_isolate_example_parses() {
        let example = default_example("# [isolate]");
        let c = Config::parse(&format!("{DEFAULT_TOML}{example}\n")).unwrap();
        let i = c.isolate.unwrap();
        assert_eq!(i.interface, "veth-m3");
        assert_eq!(
            i.address.map(|a| a.to_string()).as_deref(),
            Some("10.9.0.2/24")
        );
    }

    const DC_PM: &str = "[dc]\nname = \"t\"\n[[server]]\nname = \"pm\"\n";

    #[test]
    fn a_bad_cluster_section_is_named() {
        for (text, line, want) in [
            (
                CLUSTER.replace("listen = \"127.0.0.1:7001\"", "listen = \"nowhere\""),
                6,
                "[cluster] listen = \"nowhere\": not HOST:PORT",
            ),
            (
                CLUSTER.replace("node = 0", "node = 1"),
                6,
                "[cluster] [[cluster.peer]] node = 1: that is this node's own id",
            ),
            (
                CLUSTER.replace("node = 1", "node = 40"),
                6,
                "[cluster] node = 40: a node id is 0..32",
            ),
            (
                CLUSTER.replace("dcid = 4", "dcid = 4\nnode = 2"),
                4,
                "[cluster] node = 1 but [dc] node = 2",
            ),
            (
                CLUSTER.replace("dcid = 4\n", ""),
                1,
                "[cluster] needs [dc] dcid",
            ),
            (
                CLUSTER.replace("\"rdisk\"", "\"rdisk\"\nnr = -34"),
                6,
                "[cluster] needs nr -34 (the DC's lowest task slot) for the node daemon's proxy, \
                 but server \"rdisk\" uses it",
            ),
            (
                CLUSTER.replace("listen =", "lisen ="),
                8,
                "unknown field `lisen`",
            ),
            (
                CLUSTER.replace("address =", "addr ="),
                11,
                "unknown field `addr`",
            ),
            (
                CLUSTER.replace("listen = \"127.0.0.1:7001\"\n", ""),
                6,
                "missing field `listen`",
            ),
        ] {
            let e = err(&text);
            assert!(e.to_string().contains(want), "{want:?} not in {e}");
            assert_eq!(e.line, Some(line), "{want}: {e}");
        }
    }

    #[test]
    fn isolate_section_names_an_interface_and_web_and_is_listen_on_it() {
        let net = "[[server]]\nname = \"web\"\n[[server]]\nname = \"is\"\n\
                   address = \"0.0.0.0\"\n";
        let c = Config::parse(&format!(
            "{DC}{net}[isolate]\ninterface = \"veth-m3\"\naddress = \"10.9.0.2/24\"\n"
        ))
        .unwrap();
        let a = InterfaceAddress {
            ip: Ipv4Addr::new(10, 9, 0, 2),
            prefix: 24,
        };
        assert_eq!(
            c.isolate,
            Some(IsolateSpec {
                interface: "veth-m3".into(),
                address: Some(a),
            })
        );
        assert_eq!(a.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(a.to_string(), "10.9.0.2/24");
        // Web had no address: the interface's. IS said its own: kept.
        assert_eq!(c.servers[0].options.address, Some(IpAddr::V4(a.ip)));
        assert_eq!(
            c.servers[1].options.address,
            Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        );
        // Without an address the interface is only moved; web keeps its default.
        let c = Config::parse(&format!("{DC}{net}[isolate]\ninterface = \"eth1\"\n")).unwrap();
        assert_eq!(c.isolate.as_ref().map(|i| i.address), Some(None));
        assert_eq!(c.servers[0].options.address, None);
        assert_eq!(Config::parse(&format!("{DC}{net}")).unwrap().isolate, None);
        let masks = [
            (1, [128, 0, 0, 0]),
            (30, [255, 255, 255, 252]),
            (32, [255; 4]),
        ];
        for (prefix, mask) in masks {
            let a = InterfaceAddress { ip: a.ip, prefix };
            assert_eq!(a.netmask(), Ipv4Addr::from(mask), "/{prefix}");
        }
    }

    #[test]
    fn a_bad_isolate_section_is_named() {
        let pm = "[[server]]\nname = \"pm\"\n";
        for (section, want) in [
            (
                "interface = \"\"",
                "interface \"\" is not an interface name",
            ),
            (
                "interface = \"a-very-long-name0\"",
                "is not an interface name (1..=15",
            ),
            ("interface = \"a/b\"", "interface \"a/b\" is not"),
            ("interface = \"eth0:1\"", "interface \"eth0:1\" is not"),
            (
                "interface = \"x\"\naddress = \"10.9.0.2\"",
                "with its prefix length",
            ),
            (
                "interface = \"x\"\naddress = \"10.9.0.2/33\"",
                "\"10.9.0.2/33\" is not",
            ),
            (
                "interface = \"x\"\naddress = \"10.9.0.2/0\"",
                "\"10.9.0.2/0\" is not",
            ),
            (
                "interface = \"x\"\naddress = \"fd00::2/64\"",
                "is not an IPv4 address",
            ),
            (
                "interface = \"x\"\naddress = \"127.0.0.2/8\"",
                "cannot be an interface's",
            ),
            (
                "interface = \"x\"\naddress = \"0.0.0.0/8\"",
                "cannot be an interface's",
            ),
            ("interface = \"x\"\nmtu = 1500", "unknown field `mtu`"),
            ("address = \"10.9.0.2/24\"", "missing field `interface`"),
        ] {
            let e = err(&format!("{DC}{pm}[isolate]\n{section}\n"));
            assert!(e.to_string().contains(want), "{want:?} not in {e}");
            assert!(e.line.is_some_and(|l| l >= 5), "{want}: {e}");
        }
    }

    #[test]
    fn missing_file() {
        let e = Config::load(Path::new("/nonexistent/muk.toml")).unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/muk.toml"), "{e}");
    }
}
