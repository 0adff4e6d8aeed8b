//! The link of the remote rows: loopback, or two network namespaces joined by a veth pair.
//!
//! [`Link::Veth`] puts node 0 (its daemon and its server; the TCP baselines' server) in one
//! network namespace and node 1 (its daemon and the client; the TCP baselines' client) in
//! another, joined by one veth pair: the traffic between the nodes crosses a network device
//! instead of `lo`. The namespaces are made with iproute2's `ip` (`ip netns add`, a veth pair
//! with one end moved into the other namespace, an address on each end), as the
//! network-namespace test of `dvs` makes them.
//!
//! A peer enters its namespace first thing, before it opens a socket (`setns` on the path
//! given in [`NETNS_ENV`]); the measuring process enters node 1's namespace only for the time
//! it takes to open its TCP client socket ([`in_namespace`]), which stays in that namespace.
//!
//! The remote rows and their TCP baselines of one run share one pair ([`NsPair::shared`]): the
//! same two namespaces and the same veth link for every veth row.
//!
//! Creating namespaces needs root and `ip`: [`available`] says why not, and the veth rows are
//! then skipped. Each [`NsPair`] has names of its own (this process's id and a sequence
//! number), so two runs can coexist; dropping it deletes both namespaces, and with them the
//! veth pair, on success and on error alike; the shared pair is dropped when the process exits
//! (returning from `main`, an error or a panic included). A run that was killed cannot clean up: the next
//! run deletes the namespaces whose process is gone.

use crate::error::{BenchError, Result, io};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// The environment variable that tells a peer the network namespace (a path under
/// `/run/netns`) to enter before anything else.
pub const NETNS_ENV: &str = "M3_BENCH_NETNS";

/// Where `ip netns add` keeps its namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The veth pair's subnet: node `i` has `10.218.250.(i + 1)/24`. The addresses live only in
/// the pair's own namespaces, so every pair may use the same ones.
const SUBNET: [u8; 3] = [10, 218, 250];

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The run's pair, made on first use ([`NsPair::shared`]).
static SHARED: Mutex<Option<Arc<NsPair>>> = Mutex::new(None);

/// At exit: drop the run's pair (its namespaces are deleted once no session holds it, and at
/// exit none does).
extern "C" fn drop_shared() {
    if let Ok(mut shared) = SHARED.lock() {
        shared.take();
    }
}

/// Which link the two nodes of a remote row (or the two ends of its TCP baseline) use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    /// Both in this process's network namespace, over `lo` (127.0.0.1).
    Loopback,
    /// Each in a namespace of its own, over a veth pair.
    Veth,
}

impl Link {
    /// Both links, in the order the rows are measured.
    pub const ALL: [Link; 2] = [Link::Loopback, Link::Veth];

    /// Its name: the placement column of a remote row.
    pub fn label(self) -> &'static str {
        match self {
            Link::Loopback => "loopback",
            Link::Veth => "veth",
        }
    }
}

fn have(tool: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .any(|d| !d.is_empty() && Path::new(d).join(tool).is_file())
}

/// Whether namespaces and veth pairs can be made here; the reason when not. Asked once per
/// process: root with `ip` is not always enough (a container without `CAP_SYS_ADMIN`), so it
/// makes and deletes a namespace to see.
pub fn available() -> core::result::Result<(), String> {
    static ANSWER: std::sync::OnceLock<core::result::Result<(), String>> =
        std::sync::OnceLock::new();
    ANSWER.get_or_init(probe).clone()
}

fn probe() -> core::result::Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root (network namespaces and veth pairs need it)".into());
    }
    if !have("ip") {
        return Err("`ip` is missing (Debian package iproute2)".into());
    }
    let name = format!("m3bench-{}-probe", std::process::id());
    let made = ip(&["netns", "add", &name]);
    let _ = Command::new("ip").args(["netns", "del", &name]).output();
    made.map_err(|e| format!("cannot make a network namespace: {e}"))
}

/// Delete the namespaces of earlier runs that died without cleaning up (killed): those named
/// `m3bench-PID-...` whose process is gone.
fn sweep_dead_runs() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("m3bench-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(io("cannot run `ip`"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BenchError::new(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Two network namespaces joined by a veth pair (node 0's end `10.218.250.1`, node 1's
/// `10.218.250.2`); both deleted on drop.
#[derive(Debug)]
pub struct NsPair {
    // The namespaces made so far: a half-made pair is deleted too.
    names: Vec<String>,
}

impl NsPair {
    /// Make the two namespaces and the veth pair, addresses on both ends, both ends up.
    pub fn create() -> Result<NsPair> {
        available().map_err(BenchError::new)?;
        sweep_dead_runs();
        let tag = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut pair = NsPair {
            names: Vec::with_capacity(2),
        };
        for i in 0..2 {
            let name = format!("m3bench-{tag}-{i}");
            ip(&["netns", "add", &name])?;
            pair.names.push(name);
        }
        // Interface names are per namespace and at most 15 bytes: the tag is for whoever
        // lists them (`ip -n NS link`), not for uniqueness.
        let dev = |i: usize| format!("m3v{}{i}", std::process::id() % 1_000_000);
        let (ns0, ns1) = (pair.names[0].as_str(), pair.names[1].as_str());
        let (dev0, dev1) = (dev(0), dev(1));
        ip(&[
            "-n", ns0, "link", "add", &dev0, "type", "veth", "peer", "name", &dev1, "netns", ns1,
        ])?;
        for (i, (ns, dev)) in [(ns0, &dev0), (ns1, &dev1)].into_iter().enumerate() {
            let addr = format!("{}/24", NsPair::addr(i));
            ip(&["-n", ns, "addr", "add", &addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(pair)
    }

    /// The run's pair: made on the first call (and deleted when the process exits), the same
    /// pair after that, so every veth row of a run crosses the same link.
    pub fn shared() -> Result<Arc<NsPair>> {
        let mut shared = SHARED
            .lock()
            .map_err(|_| BenchError::new("the namespace pair's lock is poisoned"))?;
        if let Some(pair) = shared.as_ref() {
            return Ok(Arc::clone(pair));
        }
        let pair = Arc::new(NsPair::create()?);
        // Registered once: the pair is kept from here on, so no second one is made.
        // SAFETY: `drop_shared` is an `extern "C" fn()` with no arguments, as atexit takes; it
        // only takes the pair out of its lock and drops it.
        if unsafe { libc::atexit(drop_shared) } != 0 {
            return Err(BenchError::new(
                "atexit: cannot arrange to delete the namespaces",
            ));
        }
        *shared = Some(Arc::clone(&pair));
        Ok(pair)
    }

    /// Node `i`'s address on the veth pair (node 0 or 1).
    pub fn addr(i: usize) -> Ipv4Addr {
        let [a, b, c] = SUBNET;
        Ipv4Addr::new(a, b, c, if i == 0 { 1 } else { 2 })
    }

    /// The path of node `i`'s namespace (for [`NETNS_ENV`] and [`in_namespace`]).
    pub fn path(&self, i: usize) -> Result<PathBuf> {
        self.names
            .get(i)
            .map(|n| Path::new(NETNS_DIR).join(n))
            .ok_or_else(|| BenchError::new(format!("no namespace {i}")))
    }
}

impl Drop for NsPair {
    fn drop(&mut self) {
        // A namespace lives on while a process or a socket is in it; its veth end goes with it,
        // and the other end with that.
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// Move the calling thread into the network namespace at `path`.
fn set_netns(ns: &std::fs::File, what: &Path) -> Result<()> {
    // SAFETY: `ns` is an open namespace file; setns changes only the calling thread's network
    // namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(BenchError::new(format!(
            "setns into {}: {}",
            what.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(io(format!("{}", path.display())))
}

/// A peer's start: enter the namespace [`NETNS_ENV`] names, if it names one. Call it while the
/// process has one thread, before any socket.
pub fn enter_from_env() -> Result<()> {
    match std::env::var_os(NETNS_ENV) {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            set_netns(&open(&path)?, &path)
        }
        _ => Ok(()),
    }
}

/// Run `f` on the calling thread inside the namespace at `path`, then return to the thread's
/// own namespace (also when `f` fails). Sockets `f` makes stay in `path`'s namespace.
pub fn in_namespace<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let home_path = Path::new("/proc/thread-self/ns/net");
    let home = open(home_path)?;
    set_netns(&open(path)?, path)?;
    let result = f();
    // Not returning would leave this thread's later sockets in the wrong namespace.
    set_netns(&home, home_path)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_addresses() {
        assert_eq!(Link::Loopback.label(), "loopback");
        assert_eq!(Link::Veth.label(), "veth");
        assert_ne!(NsPair::addr(0), NsPair::addr(1));
    }

    /// Root only: a pair is made, a socket opened inside node 1's namespace reaches a listener
    /// in node 0's over the veth, and the namespaces are gone
    /// after the drop.
    #[test]
    fn a_pair_links_two_namespaces_and_goes_away() {
        if let Err(why) = available() {
            eprintln!("skipped: {why}");
            return;
        }
        let pair = NsPair::create().unwrap_or_else(|e| panic!("{e}"));
        let paths = [0, 1].map(|i| pair.path(i).unwrap_or_else(|e| panic!("{e}")));
        let listener = in_namespace(&paths[0], || {
            std::net::TcpListener::bind((NsPair::addr(0), 0)).map_err(io("bind"))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let conn = in_namespace(&paths[1], || {
            std::net::TcpStream::connect((NsPair::addr(0), port)).map_err(io("connect"))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let (accepted, from) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from.ip(), std::net::IpAddr::V4(NsPair::addr(1)));
        drop((conn, accepted, listener));
        drop(pair);
        for p in &paths {
            assert!(!p.exists(), "{} left behind", p.display());
        }
    }
}
