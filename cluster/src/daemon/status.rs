//! The running daemon's status, for `dvs node status`: a small text file the daemon rewrites
//! every [`super::STATUS_EVERY`] in the region directory ([`path`]), replaced atomically
//! (written aside, then renamed), and removed when the daemon stops. A reader tells a dead
//! daemon's file by its age ([`NodeStatus::updated`]) and its PID.
//!
//! One line per item, fields separated by spaces, `-` for none, times in milliseconds since the
//! Unix epoch; a peer's last error is the rest of its line:
//!
//! ```text
//! m3node 1
//! node ID LISTEN PID UPDATED_MS
//! dc NAME PROXY_EP LOCAL REMOTE
//! peer NODE ADDRESS DIALS SINCE_MS FRAMES_OUT BYTES_OUT FRAMES_IN BYTES_IN RTT_US LAST_ERROR
//! etcd ENDPOINT[,ENDPOINT...]
//! membership REGISTERED LEASE_HEX LAST_ERROR
//! ```
//!
//! The last two lines are there when the membership is kept in etcd.

use crate::membership::MembershipStatus;
use crate::peers::PeerStatus;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The file's name in the region directory.
pub const FILE_NAME: &str = "m3node.status";
const MAGIC: &str = "m3node 1";

/// One DC as the daemon serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcStatus {
    /// The DC's name.
    pub name: String,
    /// The proxy slot's endpoint.
    pub proxy: i32,
    /// Local endpoints announced to the peers.
    pub local: usize,
    /// Remote slots mirrored here.
    pub remote: usize,
}

/// What the daemon reports about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// This node's id.
    pub node: u32,
    /// Where it listens.
    pub listen: SocketAddr,
    /// The daemon's PID.
    pub pid: u32,
    /// When this was written.
    pub updated: SystemTime,
    /// The DCs it serves.
    pub dcs: Vec<DcStatus>,
    /// Its links.
    pub peers: Vec<PeerStatus>,
    /// Its membership in etcd (None: a static peer list).
    pub membership: Option<MembershipStatus>,
}

/// The status file of the daemon serving the region directory ([`m3ipc::region_dir`]).
pub fn path() -> PathBuf {
    m3ipc::region_dir().join(FILE_NAME)
}

fn ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The file's text for `st`.
pub fn render(st: &NodeStatus) -> String {
    let mut out = format!(
        "{MAGIC}\nnode {} {} {} {}\n",
        st.node,
        st.listen,
        st.pid,
        ms(st.updated)
    );
    for d in &st.dcs {
        out += &format!("dc {} {} {} {}\n", d.name, d.proxy, d.local, d.remote);
    }
    for p in &st.peers {
        let error = p
            .last_error
            .as_deref()
            .unwrap_or("-")
            .replace(['\n', '\r'], " ");
        out += &format!(
            "peer {} {} {} {} {} {} {} {} {} {}\n",
            p.node,
            opt(p.address),
            u8::from(p.dials),
            opt(p.since.map(ms)),
            p.frames_out,
            p.bytes_out,
            p.frames_in,
            p.bytes_in,
            opt(p.rtt.map(|d| d.as_micros())),
            error
        );
    }
    if let Some(m) = &st.membership {
        out += &format!("etcd {}\n", m.endpoints.join(","));
        let error = m
            .last_error
            .as_deref()
            .unwrap_or("-")
            .replace(['\n', '\r'], " ");
        out += &format!(
            "membership {} {} {}\n",
            u8::from(m.registered),
            opt(m.lease.map(|l| format!("{l:x}"))),
            error
        );
    }
    out
}

/// Write `st` to `path` atomically.
///
/// Errors: those of writing and renaming the file.
pub fn write(path: &Path, st: &NodeStatus) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, render(st))?;
    std::fs::rename(&tmp, path)
}

/// Read the status file at `path`.
///
/// Errors: the file cannot be read (`NotFound`: no daemon runs here), or it is malformed
/// (`InvalidData`, naming the line).
pub fn read(path: &Path) -> io::Result<NodeStatus> {
    parse(&std::fs::read_to_string(path)?)
}

/// Parse a status file's text.
///
/// Errors: `InvalidData`, naming the line.
pub fn parse(text: &str) -> io::Result<NodeStatus> {
    let bad = |line: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed status line {line:?}"),
        )
    };
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(bad("(first line)"));
    }
    let mut st: Option<NodeStatus> = None;
    for line in lines {
        let f: Vec<&str> = line.splitn(11, ' ').collect();
        match f.first().copied() {
            Some("node") if f.len() == 5 => {
                st = Some(NodeStatus {
                    node: f[1].parse().map_err(|_| bad(line))?,
                    listen: f[2].parse().map_err(|_| bad(line))?,
                    pid: f[3].parse().map_err(|_| bad(line))?,
                    updated: time(f[4]).ok_or_else(|| bad(line))?,
                    dcs: Vec::new(),
                    peers: Vec::new(),
                    membership: None,
                });
            }
            Some("dc") if f.len() == 5 => {
                let s = st.as_mut().ok_or_else(|| bad(line))?;
                s.dcs.push(DcStatus {
                    name: f[1].into(),
                    proxy: f[2].parse().map_err(|_| bad(line))?,
                    local: f[3].parse().map_err(|_| bad(line))?,
                    remote: f[4].parse().map_err(|_| bad(line))?,
                });
            }
            Some("peer") if f.len() == 11 => {
                let s = st.as_mut().ok_or_else(|| bad(line))?;
                let num = |i: usize| f[i].parse::<u64>().map_err(|_| bad(line));
                s.peers.push(PeerStatus {
                    node: f[1].parse().map_err(|_| bad(line))?,
                    address: optional(f[2], |v| v.parse().ok()).map_err(|()| bad(line))?,
                    dials: f[3] == "1",
                    since: optional(f[4], time).map_err(|()| bad(line))?,
                    frames_out: num(5)?,
                    bytes_out: num(6)?,
                    frames_in: num(7)?,
                    bytes_in: num(8)?,
                    rtt: optional(f[9], |v| v.parse().ok().map(Duration::from_micros))
                        .map_err(|()| bad(line))?,
                    last_error: (f[10] != "-").then(|| f[10].to_string()),
                });
            }
            Some("etcd") if f.len() == 2 => {
                let s = st.as_mut().ok_or_else(|| bad(line))?;
                let m = s.membership.get_or_insert_with(MembershipStatus::default);
                m.endpoints = f[1].split(',').map(String::from).collect();
            }
            Some("membership") => {
                let f: Vec<&str> = line.splitn(4, ' ').collect();
                let s = st.as_mut().ok_or_else(|| bad(line))?;
                if f.len() != 4 {
                    return Err(bad(line));
                }
                let m = s.membership.get_or_insert_with(MembershipStatus::default);
                m.registered = f[1] == "1";
                m.lease =
                    optional(f[2], |v| i64::from_str_radix(v, 16).ok()).map_err(|()| bad(line))?;
                m.last_error = (f[3] != "-").then(|| f[3].to_string());
            }
            _ => return Err(bad(line)),
        }
    }
    st.ok_or_else(|| bad("(no node line)"))
}

fn optional<T>(v: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, ()> {
    if v == "-" {
        Ok(None)
    } else {
        parse(v).map(Some).ok_or(())
    }
}

fn time(v: &str) -> Option<SystemTime> {
    let ms: u64 = v.parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_text() {
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        let st = NodeStatus {
            node: 3,
            listen: ([127, 0, 0, 1], 7003).into(),
            pid: 42,
            updated: at(1_700_000_000_123),
            dcs: vec![DcStatus {
                name: "DC0".into(),
                proxy: -34,
                local: 2,
                remote: 5,
            }],
            peers: vec![
                PeerStatus {
                    node: 1,
                    address: Some(([127, 0, 0, 1], 7001).into()),
                    dials: false,
                    since: Some(at(1_700_000_000_000)),
                    frames_out: 1,
                    bytes_out: 2,
                    frames_in: 3,
                    bytes_in: 4,
                    rtt: Some(Duration::from_micros(250)),
                    last_error: Some("node 1 closed the connection".into()),
                },
                PeerStatus {
                    node: 4,
                    address: None,
                    dials: true,
                    since: None,
                    frames_out: 0,
                    bytes_out: 0,
                    frames_in: 0,
                    bytes_in: 0,
                    rtt: None,
                    last_error: None,
                },
            ],
            membership: None,
        };
        let back = parse(&render(&st)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, st);
        let mut st = st;
        st.membership = Some(MembershipStatus {
            endpoints: vec!["http://127.0.0.1:2379".into(), "http://[::1]:2379".into()],
            registered: true,
            lease: Some(0x694d_8a1b_22c0_0f01),
            last_error: Some("etcd: deadline exceeded\nagain".into()),
        });
        let back = parse(&render(&st)).unwrap_or_else(|e| panic!("{e}"));
        let m = back.membership.clone().unwrap_or_default();
        assert_eq!(
            m.last_error.as_deref(),
            Some("etcd: deadline exceeded again")
        );
        assert_eq!(
            (m.registered, m.lease, m.endpoints.len()),
            (true, st.membership.as_ref().and_then(|m| m.lease), 2)
        );
        assert!(parse("m3node 1\npeer 1 2\n").is_err());
        assert!(parse("garbage").is_err());
    }
}
