//! Criterion bench: the `sendrec` group of the catalogue ([`m3_benches::scenario`]), plus two
//! iceoryx2 rows between two processes as outside baselines (a dependency of this bench only,
//! so `dvs bench` has no such rows): request-response, and publish-subscribe ping-pong over two
//! services ([`iox2_pubsub`], its fastest documented path).
//!
//! iceoryx2 runs with the fabric spin path's placement: client and server on different CPUs,
//! both polling (its ports never sleep unless asked to), a 64-byte request and reply. The fabric
//! row to set beside it is `fabric-spin/different-cores`; compare the means. Its files live in
//! a private domain of this run, removed at the end ([`iox2_domain`]).

mod common;
mod iox2_domain;
mod iox2_pubsub;

use criterion::Throughput;
use iceoryx2::port::client::Client;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::request_response::PortFactory;
use m3_benches::clock::{Record, timed_loop};
use m3_benches::peer::{self, PEER_CMD, Peer};
use m3_benches::placement::{Placement, pin};
use m3_benches::{BenchError, Group, Result, Session, scenario};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use iox2_domain::Iox2Domain;

/// Peer role of the iceoryx2 server.
const IOX2_ROLE: &str = "iox2-server";
/// A request and a reply: a message's 64 bytes.
type Payload = [u64; 8];
/// The request that tells the server to leave (cleanly, so that it removes its port).
const LEAVE: Payload = [u64::MAX; 8];
/// Longest the client waits for one reply.
const STALL: Duration = Duration::from_secs(10);

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::new(format!("iceoryx2: {e}"))
}

/// The request-response service, sized for one client and one server with one request in
/// flight (its defaults provide for many, which its polling then walks through).
fn open_service(
    node: &Node<ipc::Service>,
    name: &ServiceName,
) -> Result<PortFactory<ipc::Service, Payload, (), Payload, ()>> {
    node.service_builder(name)
        .request_response::<Payload, Payload>()
        .max_clients(1)
        .max_servers(1)
        .max_active_requests_per_client(1)
        .max_response_buffer_size(1)
        .open_or_create()
        .map_err(err)
}

/// The server peer: echo every request, polling, until [`LEAVE`]. Its node lives in the
/// client's domain (`root`, `prefix`).
fn iox2_serve(service: &str, cpu: &str, root: &str, prefix: &str) -> Result<()> {
    peer::start(cpu)?;
    let config = iox2_domain::config(root, prefix)?;
    let node = NodeBuilder::new()
        .config(&config)
        .create::<ipc::Service>()
        .map_err(err)?;
    let name: ServiceName = service.try_into().map_err(err)?;
    let service = open_service(&node, &name)?;
    let server = service.server_builder().create().map_err(err)?;
    peer::ready()?;
    loop {
        match server.receive().map_err(err)? {
            Some(request) => {
                let value = *request.payload();
                request.send_copy(value).map_err(err)?;
                if value == LEAVE {
                    return Ok(());
                }
            }
            None => core::hint::spin_loop(),
        }
    }
}

/// The client's iceoryx2 objects (the port first: fields drop in order).
struct Ports {
    client: Client<ipc::Service, Payload, (), Payload, ()>,
    _service: PortFactory<ipc::Service, Payload, (), Payload, ()>,
    _node: Node<ipc::Service>,
}

/// The client side, in the bench process. Dropping it ends the server, then its own ports,
/// then reaps the server, then removes the domain's files.
struct Iox2Session {
    ports: Option<Ports>,
    peer: Option<Peer>,
    domain: Iox2Domain,
}

impl Iox2Session {
    fn start(placement: Placement) -> Result<Iox2Session> {
        let (server_cpu, client_cpu) = placement.cpus()?;
        let domain = Iox2Domain::create()?;
        let service_name = format!("m3-bench/iox2/{}", std::process::id());
        let [root, prefix] = domain.args();
        let peer = Peer::spawn(
            IOX2_ROLE,
            &[
                service_name.clone(),
                peer::cpu_arg(server_cpu),
                root,
                prefix,
            ],
        )?;
        let mut s = Iox2Session {
            ports: None,
            peer: Some(peer),
            domain,
        };
        let node = NodeBuilder::new()
            .config(s.domain.config())
            .create::<ipc::Service>()
            .map_err(err)?;
        let name: ServiceName = service_name.as_str().try_into().map_err(err)?;
        let service = open_service(&node, &name)?;
        let client = service.client_builder().create().map_err(err)?;
        if let Some(cpu) = client_cpu {
            pin(cpu)?;
        }
        s.ports = Some(Ports {
            client,
            _service: service,
            _node: node,
        });
        // The server sees the new client when it next updates its connections: the first
        // request that gets an answer is the sign that both ends are connected.
        let deadline = Instant::now() + STALL;
        while s.ask([1; 8], Duration::from_millis(100)).is_err() {
            if Instant::now() >= deadline {
                return Err(err("the server never answered"));
            }
        }
        Ok(s)
    }

    /// One request and its reply, polling at most `limit` for the reply.
    fn ask(&mut self, value: Payload, limit: Duration) -> Result<Payload> {
        let ports = self.ports.as_ref().ok_or_else(|| err("not connected"))?;
        let pending = ports.client.send_copy(value).map_err(err)?;
        let mut spins: u32 = 0;
        let mut since: Option<Instant> = None;
        loop {
            if let Some(reply) = pending.receive().map_err(err)? {
                return Ok(*reply.payload());
            }
            core::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1 << 12) {
                let now = Instant::now();
                if now - *since.get_or_insert(now) > limit {
                    return Err(err("no reply"));
                }
            }
        }
    }
}

impl Session for Iox2Session {
    fn run(&mut self, n: u64, record: Record<'_>) -> Result<Duration> {
        let mut value: Payload = [0; 8];
        timed_loop(n, record, || {
            value[0] = value[0].wrapping_add(1) % (u64::MAX - 1);
            let reply = self.ask(value, STALL)?;
            if reply != value {
                return Err(err("wrong reply"));
            }
            Ok(())
        })
    }
}

impl Drop for Iox2Session {
    fn drop(&mut self) {
        if self.ports.is_some() {
            let _ = self.ask(LEAVE, Duration::from_secs(1));
        }
        // Our nodes go, then the server (reaped; killed if it did not leave), then the files.
        self.ports = None;
        if let Some(mut peer) = self.peer.take() {
            peer.wait_exit(Duration::from_secs(1));
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let [_, cmd, role, service, cpu, root, prefix, ..] = &args[..]
        && cmd == PEER_CMD
        && (role == IOX2_ROLE || role == iox2_pubsub::ROLE)
    {
        let served = if role == IOX2_ROLE {
            iox2_serve(service, cpu, root, prefix)
        } else {
            iox2_pubsub::serve(service, cpu, root, prefix)
        };
        return match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{role}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(code) = common::peer_role() {
        return code;
    }
    let mut c = common::criterion();
    common::bench_group(&mut c, Group::Sendrec);
    if scenario::two_cpus() {
        let mut group = c.benchmark_group("sendrec");
        common::bench_session(
            &mut group,
            "iceoryx2-request-response/different-cores",
            Throughput::Elements(1),
            || Ok(Box::new(Iox2Session::start(Placement::Different)?)),
        );
        common::bench_session(
            &mut group,
            "iceoryx2-publish-subscribe/different-cores",
            Throughput::Elements(1),
            || {
                Ok(Box::new(iox2_pubsub::PingPong::start(
                    Placement::Different,
                )?))
            },
        );
        group.finish();
    }
    c.final_summary();
    ExitCode::SUCCESS
}
