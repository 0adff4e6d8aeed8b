//! iceoryx2 publish-subscribe ping-pong between two processes: its fastest documented path, as
//! an outside baseline beside its request-response row.
//!
//! Two services, `ping` and `pong`: the bench process publishes each 64-byte message on `ping`
//! and polls its `pong` subscriber for the echo; the peer polls its `ping` subscriber and
//! publishes what it takes on `pong`. Both sides busy-poll (no event service, no sleep), on
//! different CPUs; one message in flight, so each service holds one publisher, one subscriber
//! and a buffer of one sample. A round trip is one ping and its pong: twice iceoryx2's one-way
//! latency.

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use m3_benches::clock::{Record, timed_loop};
use m3_benches::peer::{self, Peer};
use m3_benches::placement::{Placement, pin};
use m3_benches::{BenchError, Result, Session};
use std::time::{Duration, Instant};

use crate::iox2_domain::{self, Iox2Domain};

/// Peer role of the pong side.
pub const ROLE: &str = "iox2-pong";
/// A ping or a pong: a message's 64 bytes.
type Payload = [u64; 8];
/// The ping that tells the peer to leave (cleanly, so that it removes its ports).
const LEAVE: Payload = [u64::MAX; 8];
/// Longest the bench waits for one pong.
const STALL: Duration = Duration::from_secs(10);

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::new(format!("iceoryx2 publish-subscribe: {e}"))
}

/// The names of the two services of a session named `base`.
fn names(base: &str) -> Result<(ServiceName, ServiceName)> {
    let ping = format!("{base}/ping").as_str().try_into().map_err(err)?;
    let pong = format!("{base}/pong").as_str().try_into().map_err(err)?;
    Ok((ping, pong))
}

/// One direction's service, sized for one publisher, one subscriber and one sample in flight
/// (no history; a newer sample overwrites an unread one, which only the connection handshake
/// can leave behind).
fn open_service(
    node: &Node<ipc::Service>,
    name: &ServiceName,
) -> Result<PortFactory<ipc::Service, Payload, ()>> {
    node.service_builder(name)
        .publish_subscribe::<Payload>()
        .max_publishers(1)
        .max_subscribers(1)
        .history_size(0)
        .subscriber_max_buffer_size(1)
        .enable_safe_overflow(true)
        .open_or_create()
        .map_err(err)
}

/// One side's ports (the ports first: fields drop in order).
struct Ports {
    publisher: Publisher<ipc::Service, Payload, ()>,
    subscriber: Subscriber<ipc::Service, Payload, ()>,
    _out: PortFactory<ipc::Service, Payload, ()>,
    _in: PortFactory<ipc::Service, Payload, ()>,
    _node: Node<ipc::Service>,
}

impl Ports {
    /// A node with `config`, publishing on `out` and subscribed to `into`.
    fn open(config: &Config, out: &ServiceName, into: &ServiceName) -> Result<Ports> {
        let node = NodeBuilder::new()
            .config(config)
            .create::<ipc::Service>()
            .map_err(err)?;
        let out_service = open_service(&node, out)?;
        let in_service = open_service(&node, into)?;
        let publisher = out_service.publisher_builder().create().map_err(err)?;
        let subscriber = in_service.subscriber_builder().create().map_err(err)?;
        Ok(Ports {
            publisher,
            subscriber,
            _out: out_service,
            _in: in_service,
            _node: node,
        })
    }

    /// The next sample, if one came.
    fn take(&self) -> Result<Option<Payload>> {
        Ok(self
            .subscriber
            .receive()
            .map_err(err)?
            .map(|s| *s.payload()))
    }
}

/// The pong peer: publish every ping back, polling, until [`LEAVE`]. Its node lives in the
/// bench's domain (`root`, `prefix`).
pub fn serve(base: &str, cpu: &str, root: &str, prefix: &str) -> Result<()> {
    peer::start(cpu)?;
    let config = iox2_domain::config(root, prefix)?;
    let (ping, pong) = names(base)?;
    let ports = Ports::open(&config, &pong, &ping)?;
    peer::ready()?;
    loop {
        match ports.take()? {
            Some(value) => {
                ports.publisher.send_copy(value).map_err(err)?;
                if value == LEAVE {
                    return Ok(());
                }
            }
            None => core::hint::spin_loop(),
        }
    }
}

/// The ping side, in the bench process. Dropping it ends the peer, then its own ports, then
/// reaps the peer, then removes the domain's files.
pub struct PingPong {
    ports: Option<Ports>,
    peer: Option<Peer>,
    domain: Iox2Domain,
}

impl PingPong {
    /// Start the pong peer and connect to it: the server on one CPU, this process on another.
    pub fn start(placement: Placement) -> Result<PingPong> {
        let (server_cpu, client_cpu) = placement.cpus()?;
        let domain = Iox2Domain::create()?;
        let base = format!("m3-bench/iox2-pubsub/{}", std::process::id());
        let [root, prefix] = domain.args();
        let peer = Peer::spawn(
            ROLE,
            &[base.clone(), peer::cpu_arg(server_cpu), root, prefix],
        )?;
        let mut s = PingPong {
            ports: None,
            peer: Some(peer),
            domain,
        };
        let (ping, pong) = names(&base)?;
        s.ports = Some(Ports::open(s.domain.config(), &ping, &pong)?);
        if let Some(cpu) = client_cpu {
            pin(cpu)?;
        }
        // Each publisher sees the other side's subscriber when it next sends: the first ping
        // whose pong comes back is the sign that both directions are connected. Pongs of
        // earlier pings come first (the peer answers in order), so they are skipped.
        let deadline = Instant::now() + STALL;
        let mut hello: u64 = 0;
        loop {
            hello += 1;
            if s.ask([hello; 8], Duration::from_millis(100), true).is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(err("the pong side never answered"));
            }
        }
        Ok(s)
    }

    /// One ping and its pong, polling at most `limit` for the pong; `skip_stale`: pongs of
    /// other pings are skipped (else they are an error).
    fn ask(&mut self, value: Payload, limit: Duration, skip_stale: bool) -> Result<Payload> {
        let ports = self.ports.as_ref().ok_or_else(|| err("not connected"))?;
        ports.publisher.send_copy(value).map_err(err)?;
        let mut spins: u32 = 0;
        let mut since: Option<Instant> = None;
        loop {
            match ports.take()? {
                Some(reply) if reply == value || !skip_stale => return Ok(reply),
                Some(_) => {}
                None => core::hint::spin_loop(),
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1 << 12) {
                let now = Instant::now();
                if now - *since.get_or_insert(now) > limit {
                    return Err(err("no pong"));
                }
            }
        }
    }
}

impl Session for PingPong {
    fn run(&mut self, n: u64, record: Record<'_>) -> Result<Duration> {
        let mut value: Payload = [0; 8];
        timed_loop(n, record, || {
            // Never LEAVE (u64::MAX), never a handshake value (all lanes equal).
            value[0] = value[0].wrapping_add(1) % (u64::MAX - 1);
            let reply = self.ask(value, STALL, false)?;
            if reply != value {
                return Err(err("wrong pong"));
            }
            Ok(())
        })
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        if self.ports.is_some() {
            let _ = self.ask(LEAVE, Duration::from_secs(1), true);
        }
        // Our node goes, then the peer (reaped; killed if it did not leave), then the files.
        self.ports = None;
        if let Some(mut peer) = self.peer.take() {
            peer.wait_exit(Duration::from_secs(1));
        }
    }
}
