//! A node daemon's configuration (`node.toml`): which node this is, where it listens, the DCs it
//! serves here, and its peers.
//!
//! ```toml
//! node = 0                      # this node's id, 0..32
//! listen = "127.0.0.1:7000"     # where the peers reach this node
//! dcs = ["DC0"]                 # the DCs this node serves (their regions exist on this node)
//!
//! [proxy_nr]                    # optional: the proxy slot's nr in a DC
//! DC0 = -34                     # default: the DC's lowest task slot, -nr_tasks
//!
//! [[peer]]                      # one entry per other node (a static list)
//! node = 1
//! address = "127.0.0.1:7001"
//! ```
//!
//! Instead of `[[peer]]`, the nodes may find each other through etcd (see
//! [`crate::membership`]): `etcd = ["http://127.0.0.1:2379"]`. Then `listen` must be an address
//! the peers can reach (it is what the node's record tells them). A file gives one or the other.
//!
//! The daemon binds each DC's proxy slot at `proxy_nr` (see [`NodeConfig::proxy_nr`]): a slot no
//! process of the DC uses. By default the lowest task slot, `-nr_tasks` (`HARDWARE` is -1 and
//! `SYSTEM` -2, the lowest is the one least likely used).
//!
//! Every mistake is refused with a message that names the key (and the file, from
//! [`NodeConfig::load`]); unknown keys are mistakes too.
//!
//! A program that runs the daemon inside itself for its one DC (MUK2) reads the same keys from a
//! section of its own file: [`NodeSection`].

use crate::peers::PeerSpec;
use crate::wire::MAX_NODES;
use serde::Deserialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// A node daemon's configuration, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// This node's id.
    pub node: u32,
    /// Where the peers reach this node.
    pub listen: SocketAddr,
    /// The DCs this node serves.
    pub dcs: Vec<String>,
    /// The other nodes (a static list; empty with etcd).
    pub peers: Vec<PeerSpec>,
    /// The etcd endpoints the membership is kept in (empty: the static list).
    pub etcd: Vec<String>,
    /// The proxy slot's nr per DC, where the file gives one.
    pub proxy_nrs: Vec<(String, i32)>,
}

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not valid TOML or has a key of the wrong type or an unknown key.
    #[error("{where_}{message}")]
    Syntax {
        /// `FILE: ` or nothing.
        where_: String,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range or inconsistent (the text names the key).
    #[error("{where_}{message}")]
    Invalid {
        /// `FILE: ` or nothing.
        where_: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    node: u32,
    listen: String,
    dcs: Vec<String>,
    #[serde(default)]
    peer: Vec<RawPeer>,
    #[serde(default)]
    etcd: Vec<String>,
    #[serde(default)]
    proxy_nr: std::collections::BTreeMap<String, i32>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    node: u32,
    address: String,
}

impl NodeConfig {
    /// Read and check the configuration in `path`.
    ///
    /// Errors: [`ConfigError`], naming the file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        NodeConfig::parse_in(&text, &format!("{}: ", path.display()))
    }

    /// Check the configuration in `text`.
    ///
    /// Errors: [`ConfigError`].
    pub fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        NodeConfig::parse_in(text, "")
    }

    fn parse_in(text: &str, where_: &str) -> Result<NodeConfig, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            where_: where_.to_string(),
            message: e.message().to_string(),
        })?;
        let keys = Keys {
            node: raw.node,
            listen: &raw.listen,
            peers: &raw.peer,
            peer_table: "[[peer]]",
            etcd: &raw.etcd,
            etcd_key: "etcd",
        };
        let bad = |message: String| ConfigError::Invalid {
            where_: where_.to_string(),
            message,
        };
        let (listen, peers) = keys.check().map_err(bad)?;
        if raw.dcs.is_empty() {
            return Err(bad("dcs = []: a node serves at least one DC".into()));
        }
        for (i, name) in raw.dcs.iter().enumerate() {
            if name.is_empty() || name.len() > m3ipc::MAX_NAME || name.contains(['/', '\0']) {
                return Err(bad(format!(
                    "dcs: {name:?} is not a DC name (1 to {} bytes, no '/')",
                    m3ipc::MAX_NAME
                )));
            }
            if raw.dcs[..i].contains(name) {
                return Err(bad(format!("dcs: {name:?} is listed twice")));
            }
        }
        if let Some(name) = raw.proxy_nr.keys().find(|n| !raw.dcs.contains(n)) {
            return Err(bad(format!(
                "[proxy_nr] {name:?}: not one of the DCs in dcs"
            )));
        }
        Ok(NodeConfig {
            node: raw.node,
            listen,
            dcs: raw.dcs,
            peers,
            etcd: raw.etcd,
            proxy_nrs: raw.proxy_nr.into_iter().collect(),
        })
    }

    /// Keep the membership in etcd at `endpoints` (from the command line, named `option` in
    /// messages), in place of the file's `etcd`.
    ///
    /// Errors: the file lists `[[peer]]`s, or an endpoint is not one (the message names both
    /// keys, or the endpoint).
    pub fn use_etcd(&mut self, endpoints: &[String], option: &str) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::Invalid {
            where_: String::new(),
            message,
        };
        if !self.peers.is_empty() {
            return Err(bad(format!(
                "{option} and [[peer]] both given: with etcd the peers come from etcd; remove \
                 the [[peer]] entries or leave out {option}"
            )));
        }
        check_etcd(endpoints, option).map_err(bad)?;
        self.etcd = endpoints.to_vec();
        Ok(())
    }

    /// The proxy slot's nr in DC `name`, which has `nr_tasks` task slots: the configured one,
    /// else `-nr_tasks` (see the module docs).
    pub fn proxy_nr(&self, name: &str, nr_tasks: u32) -> i32 {
        self.proxy_nrs
            .iter()
            .find(|(n, _)| n == name)
            .map_or(-i32::try_from(nr_tasks).unwrap_or(i32::MAX), |(_, nr)| *nr)
    }
}

/// This node's keys as a section of another program's file: `node`, `listen` and the static
/// peers (`[[peer]]` entries of `node` and `address`) or `etcd`, as in `node.toml`; the one DC
/// comes from that file. MUK2's `[cluster]` section is one:
///
/// ```toml
/// [cluster]
/// node = 1
/// listen = "127.0.0.1:7001"
///
/// [[cluster.peer]]
/// node = 0
/// address = "127.0.0.1:7000"
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    node: u32,
    listen: String,
    #[serde(default)]
    peer: Vec<RawPeer>,
    #[serde(default)]
    etcd: Vec<String>,
}

impl NodeSection {
    /// This node's id as written (checked by [`NodeSection::for_dc`]).
    pub fn node(&self) -> u32 {
        self.node
    }

    /// The configuration of a daemon that serves DC `dc` alone, its proxy slot at the default
    /// nr. `section` names the section's table in messages (`"cluster"`: `[[cluster.peer]]`).
    ///
    /// Errors: [`ConfigError::Invalid`], naming the key (no file: the caller has it).
    pub fn for_dc(&self, section: &str, dc: &str) -> Result<NodeConfig, ConfigError> {
        let peer_table = format!("[[{section}.peer]]");
        let etcd_key = format!("[{section}] etcd");
        let keys = Keys {
            node: self.node,
            listen: &self.listen,
            peers: &self.peer,
            peer_table: &peer_table,
            etcd: &self.etcd,
            etcd_key: &etcd_key,
        };
        let (listen, peers) = keys.check().map_err(|message| ConfigError::Invalid {
            where_: String::new(),
            message,
        })?;
        Ok(NodeConfig {
            node: self.node,
            listen,
            dcs: vec![dc.to_string()],
            peers,
            etcd: self.etcd.clone(),
            proxy_nrs: Vec::new(),
        })
    }
}

/// The keys `node.toml` and a [`NodeSection`] share, checked the same way.
struct Keys<'a> {
    node: u32,
    listen: &'a str,
    peers: &'a [RawPeer],
    /// How messages name a peer's table.
    peer_table: &'a str,
    etcd: &'a [String],
    /// How messages name the etcd key.
    etcd_key: &'a str,
}

impl Keys<'_> {
    /// The listen address and the peers; else what is wrong, naming the key.
    fn check(&self) -> Result<(SocketAddr, Vec<PeerSpec>), String> {
        let table = self.peer_table;
        if self.node >= MAX_NODES {
            return Err(format!("node = {}: a node id is 0..{MAX_NODES}", self.node));
        }
        let listen =
            address(self.listen).map_err(|e| format!("listen = {:?}: {e}", self.listen))?;
        let mut peers: Vec<PeerSpec> = Vec::new();
        for p in self.peers {
            if p.node >= MAX_NODES {
                return Err(format!(
                    "{table} node = {}: a node id is 0..{MAX_NODES}",
                    p.node
                ));
            }
            if p.node == self.node {
                return Err(format!(
                    "{table} node = {}: that is this node's own id",
                    p.node
                ));
            }
            if peers.iter().any(|q| q.node == p.node) {
                return Err(format!("{table} node = {} is listed twice", p.node));
            }
            let address = address(&p.address).map_err(|e| {
                format!("{table} node = {}: address = {:?}: {e}", p.node, p.address)
            })?;
            peers.push(PeerSpec {
                node: p.node,
                address,
            });
        }
        if !self.etcd.is_empty() && !peers.is_empty() {
            return Err(format!(
                "{} and {table} both given: with etcd the peers come from etcd; keep one of them",
                self.etcd_key
            ));
        }
        check_etcd(self.etcd, self.etcd_key)?;
        Ok((listen, peers))
    }
}

/// Each etcd endpoint is `http://HOST:PORT` (or `HOST:PORT`); else what is wrong, naming `key`.
fn check_etcd(endpoints: &[String], key: &str) -> Result<(), String> {
    for e in endpoints {
        let rest = e.strip_prefix("http://").unwrap_or(e);
        if e.starts_with("https://") {
            return Err(format!(
                "{key}: {e:?}: TLS is not supported, use an http:// endpoint"
            ));
        }
        if rest.is_empty() || rest.contains(char::is_whitespace) || !rest.contains(':') {
            return Err(format!(
                "{key}: {e:?} is not an etcd endpoint (http://HOST:PORT)"
            ));
        }
    }
    Ok(())
}

/// `HOST:PORT` resolved to its first address.
fn address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = text.parse() {
        return Ok(a);
    }
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("not HOST:PORT ({e})"))?;
    addrs
        .next()
        .ok_or_else(|| "resolves to no address".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
node = 0
listen = "127.0.0.1:7000"
dcs = ["DC0", "web"]

[[peer]]
node = 1
address = "127.0.0.1:7001"

[[peer]]
node = 2
address = "localhost:7002"
"#;

    #[test]
    fn a_good_config_parses() {
        let c = NodeConfig::parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.node, 0);
        assert_eq!(
            c.listen,
            "127.0.0.1:7000".parse().unwrap_or_else(|e| panic!("{e}"))
        );
        assert_eq!(c.dcs, ["DC0", "web"]);
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peers[1].address.port(), 7002);
    }

    fn err(text: &str) -> String {
        match NodeConfig::parse(text) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn each_mistake_names_its_key() {
        let cases = [
            (
                GOOD.replace("node = 0", "node = 32"),
                "node = 32: a node id is 0..32",
            ),
            (GOOD.replace("7000\"", "x\""), "listen = \"127.0.0.1:x\""),
            (
                GOOD.replace("[\"DC0\", \"web\"]", "[]"),
                "a node serves at least one DC",
            ),
            (
                GOOD.replace("\"web\"", "\"DC0\""),
                "\"DC0\" is listed twice",
            ),
            (
                GOOD.replace("\"web\"", "\"a/b\""),
                "\"a/b\" is not a DC name",
            ),
            (
                GOOD.replace("node = 2", "node = 0"),
                "that is this node's own id",
            ),
            (
                GOOD.replace("node = 2", "node = 1"),
                "node = 1 is listed twice",
            ),
            (GOOD.replace("node = 2", "node = 40"), "[[peer]] node = 40"),
            (
                GOOD.replace("localhost:7002", "nohost"),
                "address = \"nohost\"",
            ),
            (format!("{GOOD}\nextra = 1\n"), "unknown field `extra`"),
            (GOOD.replace("listen", "listne"), "listne"),
            (
                format!("{GOOD}\n[proxy_nr]\nnope = 3\n"),
                "[proxy_nr] \"nope\": not one of the DCs",
            ),
            (
                GOOD.replace("dcs =", "etcd = [\"http://127.0.0.1:2379\"]\ndcs ="),
                "etcd and [[peer]] both given",
            ),
        ];
        for (text, want) in cases {
            let e = err(&text);
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }

    #[test]
    fn proxy_nr_defaults_to_the_lowest_task_slot() {
        let c = NodeConfig::parse(&format!("{GOOD}\n[proxy_nr]\nweb = 20\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.proxy_nr("web", 34), 20);
        assert_eq!(c.proxy_nr("DC0", 34), -34);
    }

    const SECTION: &str = r#"
node = 1
listen = "127.0.0.1:7001"

[[peer]]
node = 0
address = "127.0.0.1:7000"
"#;

    fn section(text: &str) -> Result<NodeConfig, String> {
        let s: NodeSection = toml::from_str(text).map_err(|e| e.message().to_string())?;
        s.for_dc("cluster", "DC0").map_err(|e| e.to_string())
    }

    #[test]
    fn a_section_serves_its_one_dc_with_the_same_checks() {
        let c = section(SECTION).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.node, c.listen.port()), (1, 7001));
        assert_eq!(c.dcs, ["DC0"]);
        assert_eq!(c.peers.len(), 1);
        assert_eq!(c.proxy_nr("DC0", 34), -34);
        let cases = [
            (
                SECTION.replace("node = 0", "node = 1"),
                "[[cluster.peer]] node = 1: that is this node's own id",
            ),
            (SECTION.replace("7001\"", "x\""), "listen = \"127.0.0.1:x\""),
            (
                SECTION.replace("node = 1", "node = 99"),
                "node = 99: a node id is 0..32",
            ),
            (format!("dcs = [\"x\"]\n{SECTION}"), "unknown field `dcs`"),
            (
                SECTION.replace("listen = \"127.0.0.1:7001\"", ""),
                "missing field `listen`",
            ),
        ];
        for (text, want) in cases {
            match section(&text) {
                Ok(c) => panic!("accepted: {c:?}"),
                Err(e) => assert!(e.contains(want), "{want:?} not in {e:?}"),
            }
        }
    }

    #[test]
    fn etcd_replaces_the_peer_list() {
        let text = "node = 2\nlisten = \"127.0.0.1:7002\"\ndcs = [\"DC0\"]\n\
                    etcd = [\"http://127.0.0.1:2379\", \"127.0.0.1:2381\"]\n";
        let c = NodeConfig::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.etcd.len(), 2);
        assert!(c.peers.is_empty());
        for (bad, want) in [
            ("https://a:1", "TLS is not supported"),
            ("http://", "is not an etcd endpoint"),
            ("nohost", "is not an etcd endpoint"),
        ] {
            let e = err(&text.replace("127.0.0.1:2381", bad));
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
        // From the command line: refused next to a peer list, naming both.
        let mut c = NodeConfig::parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
        let e = c
            .use_etcd(&["http://127.0.0.1:2379".into()], "--etcd")
            .map_err(|e| e.to_string());
        assert!(
            matches!(&e, Err(m) if m.contains("--etcd and [[peer]] both given")),
            "{e:?}"
        );
        let mut c = NodeConfig::parse(text).unwrap_or_else(|e| panic!("{e}"));
        c.use_etcd(&["http://10.0.0.1:2379".into()], "--etcd")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.etcd, ["http://10.0.0.1:2379"]);
        // In a section, the message names the section's keys.
        let e = section(&format!("etcd = [\"http://127.0.0.1:2379\"]\n{SECTION}"));
        assert!(
            matches!(&e, Err(m) if m.contains("[cluster] etcd and [[cluster.peer]] both given")),
            "{e:?}"
        );
    }

    #[test]
    fn load_names_the_file() {
        let e = NodeConfig::load(Path::new("/nonexistent/node.toml"))
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(matches!(e, Err(s) if s.starts_with("/nonexistent/node.toml: ")));
    }
}
