//! The catalogue: every scenario of every group, its name, its placement, the baseline its row
//! is compared with, and how to start it. `dvs bench` and the criterion benches both take their
//! scenarios from here, so a scenario is defined once.

use crate::error::{BenchError, Result};
use crate::fabric::{self, FabricSession, ServerKind};
use crate::fan_in::{self, FanInSession};
use crate::ftp_get::{self, Deployment, FtpGetSession};
use crate::hosted::HostedSession;
use crate::netns::{self, Link};
use crate::notify::{self, Mode, NotifySession};
use crate::placement::Placement;
use crate::raw::{self, RawSession, Waiter};
use crate::remote::{self, Op, RemoteSession};
use crate::session::Session;
use crate::stream::{self, StreamSession};
use crate::tcp::{self, TcpSession};
use crate::web::{self, WebLoad, WebServer, WebSession};
use crate::zero_copy::{self, Way, ZeroCopySession};
use m3ipc::WaitPolicy;
use muk::Runner;

/// A group of scenarios (one criterion bench each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// Round trips of a request and a reply.
    Sendrec,
    /// `notify` latency and floods.
    Notify,
    /// Payloads by handle, by vcopy, over a socket.
    ZeroCopy,
    /// Many clients, one server.
    FanIn,
    /// A 64 MiB m3ftp GET through FTP, FS and RDISK.
    FtpGet,
    /// Across two nodes, over loopback and over a veth pair between two network namespaces,
    /// against TCP on the same link.
    Remote,
    /// The MUK2 web server against nginx over loopback.
    Web,
}

impl Group {
    /// Every group, in order.
    pub const ALL: [Group; 7] = [
        Group::Sendrec,
        Group::Notify,
        Group::ZeroCopy,
        Group::FanIn,
        Group::FtpGet,
        Group::Remote,
        Group::Web,
    ];

    /// Its name (the criterion bench's name).
    pub fn label(self) -> &'static str {
        match self {
            Group::Sendrec => "sendrec",
            Group::Notify => "notify",
            Group::ZeroCopy => "zero_copy",
            Group::FanIn => "fan_in",
            Group::FtpGet => "ftp_get",
            Group::Remote => "remote",
            Group::Web => "web",
        }
    }
}

/// Payload sizes of the zero-copy group.
pub const ZC_SIZES: [usize; 3] = [4 << 10, 64 << 10, 1 << 20];
/// Client counts of the fan-in group.
pub const FAN_IN_CLIENTS: [usize; 4] = [1, 4, 16, 64];
/// Bytes of a sendrec request over a byte stream: a message's size.
pub const MESSAGE_BYTES: usize = 64;

/// What a scenario measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// MUK2: two server coroutines of one unikernel.
    Muk2,
    /// MUK: two server threads of one process, with this fabric wait policy (`Block` is the
    /// original MUK, whose threads blocked in the kernel).
    MukThreads(WaitPolicy),
    /// Two processes through the fabric with this wait policy.
    Fabric(WaitPolicy),
    /// An outside process calling a server coroutine of a MUK2 unikernel process.
    OutsideToMuk2,
    /// A client calling this server after a pause ([`fabric::ASLEEP_PAUSE`], not timed) that
    /// lets the server side fall asleep: the cost of waking it.
    Asleep(ServerKind),
    /// Raw shared-memory spin ping-pong.
    RawSpin,
    /// Raw futex ping-pong.
    RawFutex,
    /// A message-sized request and reply over two pipes.
    Pipe,
    /// A message-sized request and reply over a Unix stream socket.
    UnixSocket,
    /// notify → receive, as a round trip of two notifies.
    NotifyRoundTrip,
    /// A flood of notifies at a receiver.
    NotifyFlood,
    /// A payload of this many bytes by pool-buffer handle.
    ZcHandle(usize),
    /// A payload of this many bytes by vcopy.
    ZcVcopy(usize),
    /// A payload of this many bytes over a Unix socket.
    ZcSocket(usize),
    /// This many client processes to one server.
    FanIn(usize),
    /// A whole m3ftp GET of [`ftp_get::FILE_BYTES`] with the servers deployed so.
    FtpGet(Deployment),
    /// `sendrec` of a message from a client on node 1 to a server on node 0 (two region
    /// directories and two node daemons on this machine, over this link).
    RemoteSendrec(Link),
    /// A message-sized request and reply over TCP on this link (the remote sendrec's
    /// baseline).
    TcpPingPong(Link),
    /// A whole m3ftp GET of [`ftp_get::FILE_BYTES`] by a client on node 1 from MUK2 storage on
    /// node 0, over this link.
    RemoteFtpGet(Link),
    /// The same bytes streamed over TCP on this link (the remote GET's baseline).
    TcpStream(Link),
    /// HTTP GETs of this load from this server (the MUK2 web server, or nginx as its
    /// baseline).
    Web(WebServer, WebLoad),
}

/// One row: a kind at a placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// What is measured.
    pub kind: Kind,
    /// Where the two sides run (for MUK2, the one scheduler thread runs on the client CPU).
    pub placement: Placement,
}

fn size_label(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{}M", bytes >> 20)
    } else {
        format!("{}K", bytes >> 10)
    }
}

impl Scenario {
    /// The scenario of `kind` at `placement`.
    pub const fn new(kind: Kind, placement: Placement) -> Scenario {
        Scenario { kind, placement }
    }

    /// Its group.
    pub fn group(&self) -> Group {
        match self.kind {
            Kind::NotifyRoundTrip | Kind::NotifyFlood => Group::Notify,
            Kind::ZcHandle(_) | Kind::ZcVcopy(_) | Kind::ZcSocket(_) => Group::ZeroCopy,
            Kind::FanIn(_) => Group::FanIn,
            Kind::FtpGet(_) => Group::FtpGet,
            Kind::RemoteSendrec(_)
            | Kind::TcpPingPong(_)
            | Kind::RemoteFtpGet(_)
            | Kind::TcpStream(_) => Group::Remote,
            Kind::Web(..) => Group::Web,
            _ => Group::Sendrec,
        }
    }

    /// Its name within the group, without the placement.
    pub fn name(&self) -> String {
        match self.kind {
            Kind::Muk2 => "muk2-coroutines".into(),
            Kind::MukThreads(p) => format!("muk-threads-{}", fabric::policy_label(p)),
            Kind::Fabric(p) => format!("fabric-{}", fabric::policy_label(p)),
            Kind::OutsideToMuk2 => "outside-to-muk2".into(),
            Kind::Asleep(ServerKind::Process(p)) => {
                format!("asleep-fabric-{}", fabric::policy_label(p))
            }
            Kind::Asleep(ServerKind::Muk2) => "asleep-outside-to-muk2".into(),
            Kind::RawSpin => "raw-spin".into(),
            Kind::RawFutex => "raw-futex".into(),
            Kind::Pipe => "pipe".into(),
            Kind::UnixSocket => "unix-socket".into(),
            Kind::NotifyRoundTrip => "notify-round-trip".into(),
            Kind::NotifyFlood => "notify-flood".into(),
            Kind::ZcHandle(s) => format!("handle-{}", size_label(s)),
            Kind::ZcVcopy(s) => format!("vcopy-{}", size_label(s)),
            Kind::ZcSocket(s) => format!("unix-socket-{}", size_label(s)),
            Kind::FanIn(n) => format!("clients-{n}"),
            Kind::FtpGet(d) => format!("{}-{}", d.label(), size_label(ftp_get::FILE_BYTES)),
            Kind::RemoteSendrec(_) => format!("m3-sendrec-{MESSAGE_BYTES}B"),
            Kind::TcpPingPong(_) => format!("tcp-ping-pong-{MESSAGE_BYTES}B"),
            Kind::RemoteFtpGet(_) => format!("m3ftp-get-{}", size_label(ftp_get::FILE_BYTES)),
            Kind::TcpStream(_) => format!("tcp-stream-{}", size_label(ftp_get::FILE_BYTES)),
            Kind::Web(server, load) => format!("{}-{}", server.label(), load.label()),
        }
    }

    /// `group/name/placement`: unique, and the criterion benchmark id.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.group().label(),
            self.name(),
            self.placement_label()
        )
    }

    /// The placement's name (MUK2 runs on one thread whatever the placement; a remote row's
    /// placement is its link, the CPUs are in [`Scenario::cpus_text`]).
    pub fn placement_label(&self) -> &'static str {
        match self.kind {
            Kind::Muk2 => "one-thread",
            Kind::RemoteSendrec(l)
            | Kind::TcpPingPong(l)
            | Kind::RemoteFtpGet(l)
            | Kind::TcpStream(l) => l.label(),
            _ => self.placement.label(),
        }
    }

    /// Where each side is pinned, for the table: `client CPU/server CPU`.
    pub fn cpus_text(&self) -> String {
        let show = |c: Option<usize>| c.map_or_else(|| "*".to_string(), |c| c.to_string());
        match (self.kind, self.placement.cpus()) {
            (Kind::Muk2, Ok((_, c))) => format!("{} (both)", show(c)),
            (Kind::FanIn(_), Ok((s, c))) => format!("clients {} / server {}", show(c), show(s)),
            (Kind::FtpGet(_), Ok((s, c))) => format!("client {} / servers {}", show(c), show(s)),
            (Kind::RemoteSendrec(_) | Kind::RemoteFtpGet(_), Ok((s, c))) => {
                format!("node 1: {} / node 0: {}", show(c), show(s))
            }
            (_, Ok((s, c))) => format!("{}/{}", show(c), show(s)),
            (_, Err(_)) => "?".into(),
        }
    }

    /// Bytes moved per operation, for a throughput in bytes (zero-copy and ftp_get groups).
    pub fn payload_bytes(&self) -> Option<usize> {
        match self.kind {
            Kind::ZcHandle(s) | Kind::ZcVcopy(s) | Kind::ZcSocket(s) => Some(s),
            Kind::FtpGet(_) | Kind::RemoteFtpGet(_) | Kind::TcpStream(_) => {
                Some(ftp_get::FILE_BYTES)
            }
            Kind::Web(_, WebLoad::Big) => Some(web::BIG_BYTES),
            _ => None,
        }
    }

    /// Whether each operation follows an untimed pause: criterion, which sizes its batches by
    /// the time a batch returns, would run far too many; `dvs bench` measures these.
    pub fn paused(&self) -> bool {
        matches!(self.kind, Kind::Asleep(_))
    }

    /// Whether starting it already ran a whole operation, checked (an m3ftp GET of the file
    /// just put): no separate warm-up is needed, and a GET is long enough to cost a --quick run
    /// seconds on a loaded machine.
    pub fn warmed_by_start(&self) -> bool {
        matches!(
            self.kind,
            Kind::FtpGet(_)
                | Kind::RemoteFtpGet(_)
                | Kind::TcpStream(_)
                | Kind::Web(_, WebLoad::Big)
        )
    }

    /// Why it cannot run on this machine, if it cannot (nginx not installed; network
    /// namespaces not allowed): such a row is skipped, saying so, and the rows measured
    /// against it have no ratio.
    pub fn unavailable(&self) -> Option<String> {
        match self.kind {
            Kind::Web(WebServer::Nginx, _) => crate::nginx::find().err(),
            Kind::RemoteSendrec(Link::Veth)
            | Kind::TcpPingPong(Link::Veth)
            | Kind::RemoteFtpGet(Link::Veth)
            | Kind::TcpStream(Link::Veth) => netns::available()
                .err()
                .map(|why| format!("no veth placement: {why}")),
            _ => None,
        }
    }

    /// Whether one operation may take a scheduler time slice (spinning on one core).
    pub fn slow(&self) -> bool {
        self.placement == Placement::Same
            && matches!(self.kind, Kind::RawSpin | Kind::Fabric(WaitPolicy::Spin))
    }

    /// The scenario this row's ratio is taken against, measured in the same run: raw spin
    /// across cores, raw futex on one core (the floors with and without a system call); MUK
    /// threads (adaptive, different cores: the fastest MUK) for MUK2; a fabric server process
    /// for an outside call to MUK2 and for notify; the Unix socket of the same size for
    /// zero-copy; one client for fan-in; everything in MUK2 for the other ftp_get deployments;
    /// TCP on the same link (loopback, or the same veth pair's namespaces) for the remote rows; nginx (one worker, same placement) for
    /// the MUK2 web server. `None` for the baselines themselves.
    pub fn baseline(&self) -> Option<Scenario> {
        let p = self.placement;
        let floor = Scenario::new(
            match p {
                Placement::Same => Kind::RawFutex,
                _ => Kind::RawSpin,
            },
            p,
        );
        match self.kind {
            Kind::Muk2 => Some(Scenario::new(
                Kind::MukThreads(WaitPolicy::Adaptive),
                Placement::Different,
            )),
            Kind::MukThreads(_) | Kind::Fabric(_) => Some(floor),
            Kind::Pipe | Kind::UnixSocket => Some(Scenario::new(Kind::RawFutex, p)),
            Kind::OutsideToMuk2 | Kind::NotifyRoundTrip => {
                Some(Scenario::new(Kind::Fabric(WaitPolicy::Adaptive), p))
            }
            Kind::Asleep(ServerKind::Muk2) => Some(Scenario::new(
                Kind::Asleep(ServerKind::Process(WaitPolicy::Adaptive)),
                p,
            )),
            Kind::ZcHandle(s) | Kind::ZcVcopy(s) => Some(Scenario::new(Kind::ZcSocket(s), p)),
            Kind::FanIn(n) if n > 1 => Some(Scenario::new(Kind::FanIn(1), p)),
            Kind::FtpGet(Deployment::Muk | Deployment::RdiskOutside) => {
                Some(Scenario::new(Kind::FtpGet(Deployment::Muk2), p))
            }
            Kind::RemoteSendrec(l) => Some(Scenario::new(Kind::TcpPingPong(l), p)),
            Kind::RemoteFtpGet(l) => Some(Scenario::new(Kind::TcpStream(l), p)),
            Kind::Web(WebServer::Muk2, load) => {
                Some(Scenario::new(Kind::Web(WebServer::Nginx, load), p))
            }
            _ => None,
        }
    }

    /// Start it: peers up and pinned, the caller pinned.
    pub fn start(&self) -> Result<Box<dyn Session>> {
        let p = self.placement;
        let started: Box<dyn Session> = match self.kind {
            Kind::Muk2 => Box::new(HostedSession::start(
                Runner::Coroutines,
                WaitPolicy::Adaptive,
                p,
            )?),
            Kind::MukThreads(policy) => Box::new(HostedSession::start(Runner::Threads, policy, p)?),
            Kind::Fabric(policy) => Box::new(FabricSession::start(ServerKind::Process(policy), p)?),
            Kind::OutsideToMuk2 => Box::new(FabricSession::start(ServerKind::Muk2, p)?),
            Kind::Asleep(server) => Box::new(FabricSession::start_paused(
                server,
                p,
                fabric::ASLEEP_PAUSE,
            )?),
            Kind::RawSpin => Box::new(RawSession::start(Waiter::Spin, p)?),
            Kind::RawFutex => Box::new(RawSession::start(Waiter::Futex, p)?),
            Kind::Pipe => Box::new(StreamSession::start(stream::Kind::Pipe, MESSAGE_BYTES, p)?),
            Kind::UnixSocket => Box::new(StreamSession::start(
                stream::Kind::UnixSocket,
                MESSAGE_BYTES,
                p,
            )?),
            Kind::NotifyRoundTrip => Box::new(NotifySession::start(Mode::RoundTrip, p)?),
            Kind::NotifyFlood => Box::new(NotifySession::start(Mode::Flood, p)?),
            Kind::ZcHandle(s) => Box::new(ZeroCopySession::start(Way::Handle, s, p)?),
            Kind::ZcVcopy(s) => Box::new(ZeroCopySession::start(Way::Vcopy, s, p)?),
            Kind::ZcSocket(s) => Box::new(StreamSession::start(stream::Kind::UnixSocket, s, p)?),
            Kind::FanIn(n) => Box::new(FanInSession::start(n, p)?),
            Kind::FtpGet(d) => Box::new(FtpGetSession::start(d, p)?),
            Kind::RemoteSendrec(l) => Box::new(RemoteSession::start(Op::Sendrec, l, p)?),
            Kind::TcpPingPong(l) => Box::new(TcpSession::start(tcp::Mode::PingPong, l, p)?),
            Kind::RemoteFtpGet(l) => Box::new(RemoteSession::start(Op::Get, l, p)?),
            Kind::TcpStream(l) => Box::new(TcpSession::start(tcp::Mode::Stream, l, p)?),
            Kind::Web(server, load) => Box::new(WebSession::start(server, load, p)?),
        };
        Ok(started)
    }
}

/// Every scenario of `group`, in table order. With `two_cpus` false, only the one-core rows.
pub fn group(group: Group, two_cpus: bool) -> Vec<Scenario> {
    let both: &[Placement] = if two_cpus {
        &[Placement::Different, Placement::Same]
    } else {
        &[Placement::Same]
    };
    let main = both[0];
    let each = |kinds: &[Kind]| -> Vec<Scenario> {
        kinds
            .iter()
            .flat_map(|&k| both.iter().map(move |&p| Scenario::new(k, p)))
            .collect()
    };
    match group {
        Group::Sendrec => {
            let mut v = vec![Scenario::new(Kind::Muk2, main)];
            v.extend(each(&[
                Kind::MukThreads(WaitPolicy::Adaptive),
                Kind::MukThreads(WaitPolicy::Block),
                Kind::Fabric(WaitPolicy::Adaptive),
                Kind::Fabric(WaitPolicy::Block),
                Kind::Fabric(WaitPolicy::Spin),
                Kind::OutsideToMuk2,
                Kind::Asleep(ServerKind::Process(WaitPolicy::Adaptive)),
                Kind::Asleep(ServerKind::Muk2),
                Kind::RawSpin,
                Kind::RawFutex,
                Kind::Pipe,
                Kind::UnixSocket,
            ]));
            v
        }
        Group::Notify => {
            let mut v = each(&[Kind::NotifyRoundTrip]);
            v.push(Scenario::new(Kind::NotifyFlood, main));
            v
        }
        Group::ZeroCopy => ZC_SIZES
            .iter()
            .flat_map(|&s| {
                [Kind::ZcHandle(s), Kind::ZcVcopy(s), Kind::ZcSocket(s)]
                    .map(|k| Scenario::new(k, main))
            })
            .collect(),
        Group::FanIn => FAN_IN_CLIENTS
            .iter()
            .map(|&n| Scenario::new(Kind::FanIn(n), main))
            .collect(),
        Group::FtpGet => [Deployment::Muk2, Deployment::Muk, Deployment::RdiskOutside]
            .map(|d| Scenario::new(Kind::FtpGet(d), main))
            .to_vec(),
        // Loopback first, then the veth pair: each pair of rows beside its TCP baseline.
        Group::Remote => Link::ALL
            .iter()
            .flat_map(|&l| {
                [
                    Kind::RemoteSendrec(l),
                    Kind::TcpPingPong(l),
                    Kind::RemoteFtpGet(l),
                    Kind::TcpStream(l),
                ]
                .map(|k| Scenario::new(k, main))
            })
            .collect(),
        Group::Web => each(&[
            Kind::Web(WebServer::Muk2, WebLoad::Big),
            Kind::Web(WebServer::Nginx, WebLoad::Big),
            Kind::Web(WebServer::Muk2, WebLoad::Small),
            Kind::Web(WebServer::Nginx, WebLoad::Small),
        ]),
    }
}

/// Whether this process may run on two CPUs (else only one-core rows are measured).
pub fn two_cpus() -> bool {
    crate::placement::allowed_cpus().is_ok_and(|c| c.len() >= 2)
}

/// Run the peer role `role` (see [`crate::peer`]).
pub fn run_role(role: &str, target: &str, extra: &[String]) -> Result<()> {
    match role {
        fabric::SERVER_ROLE => fabric::serve(target, extra),
        fabric::MUK2_ROLE => fabric::serve_muk2(target),
        raw::ROLE => raw::serve(target, extra),
        stream::PIPE_ROLE => stream::serve_pipe(extra),
        stream::SOCKET_ROLE => stream::serve_socket(target, extra),
        notify::ROLE => notify::serve(target, extra),
        zero_copy::HANDLE_ROLE => zero_copy::serve_handle(target, extra),
        zero_copy::VCOPY_ROLE => zero_copy::serve_vcopy(target, extra),
        fan_in::ROLE => fan_in::serve(target, extra),
        ftp_get::HOST_ROLE => ftp_get::serve_host(target, extra),
        ftp_get::RDISK_ROLE => ftp_get::serve_rdisk(target, extra),
        crate::nodes::DAEMON_ROLE => crate::nodes::serve_daemon(target, extra),
        remote::CLIENT_ROLE => remote::serve_client(target, extra),
        tcp::ROLE => tcp::serve(target, extra),
        web::HOST_ROLE => web::serve_host(target, extra),
        _ => Err(BenchError::new(format!("unknown peer role {role:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_baselines_exist() {
        let all: Vec<Scenario> = Group::ALL.iter().flat_map(|&g| group(g, true)).collect();
        let ids: std::collections::HashSet<String> = all.iter().map(|s| s.id()).collect();
        assert_eq!(ids.len(), all.len());
        for s in &all {
            assert_eq!(s.id().split('/').next(), Some(s.group().label()));
            if let Some(b) = s.baseline() {
                assert!(
                    all.contains(&b),
                    "{} has baseline {} not measured",
                    s.id(),
                    b.id()
                );
                assert!(b.baseline().is_none() || b.kind != s.kind, "{}", s.id());
            }
        }
        // The GETs move the file's bytes, the MUK and RDISK-outside rows against MUK2's; the
        // asleep rows are left to dvs bench.
        let gets: Vec<&Scenario> = all.iter().filter(|s| s.group() == Group::FtpGet).collect();
        assert_eq!(gets.len(), 3);
        assert!(
            gets.iter()
                .all(|s| s.payload_bytes() == Some(ftp_get::FILE_BYTES))
        );
        assert_eq!(gets.iter().filter(|s| s.baseline().is_none()).count(), 1);
        assert!(
            all.iter()
                .filter(|s| s.paused())
                .all(|s| s.name().starts_with("asleep-"))
        );
        assert_eq!(all.iter().filter(|s| s.paused()).count(), 4);
        // The remote rows run against TCP on the same link, all under one prefix, both links
        // named in the placement column.
        let remote: Vec<&Scenario> = all.iter().filter(|s| s.group() == Group::Remote).collect();
        assert_eq!(remote.len(), 8);
        assert!(remote.iter().all(|s| s.id().starts_with("remote/")));
        assert!(remote.iter().all(|s| s.baseline().is_none_or(|b| {
            b.group() == Group::Remote && b.placement_label() == s.placement_label()
        })));
        assert_eq!(remote.iter().filter(|s| s.baseline().is_none()).count(), 4);
        for link in ["loopback", "veth"] {
            let n = remote
                .iter()
                .filter(|s| s.placement_label() == link)
                .count();
            assert_eq!(n, 4, "{link}");
        }
        assert!(
            all.iter()
                .any(|s| s.id() == format!("remote/m3-sendrec-{MESSAGE_BYTES}B/veth"))
        );
        // The web rows: MUK2 against nginx, both loads, both placements.
        let web: Vec<&Scenario> = all.iter().filter(|s| s.group() == Group::Web).collect();
        assert_eq!(web.len(), 8);
        assert!(web.iter().all(|s| s.id().starts_with("web/")));
        assert!(web.iter().all(|s| s.baseline().is_none_or(|b| {
            b.placement == s.placement && matches!(b.kind, Kind::Web(WebServer::Nginx, _))
        })));
        assert_eq!(web.iter().filter(|s| s.baseline().is_none()).count(), 4);
        // One-CPU machines measure only one-core rows, and their baselines are there too.
        let one: Vec<Scenario> = Group::ALL.iter().flat_map(|&g| group(g, false)).collect();
        assert!(one.iter().all(|s| s.placement == Placement::Same));
        assert!(
            one.iter()
                .filter(|s| s.kind != Kind::Muk2)
                .all(|s| s.baseline().is_none_or(|b| one.contains(&b)))
        );
    }
}
