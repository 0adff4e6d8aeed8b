//! The m3ipc ping-pong: a server that answers `sendrec` requests and a client that times them.
//! `dvs demo` shows it; `dvs bench` compares it with the raw baselines.
//!
//! The server binds slot [`SERVER_NR`] (a system process, as PM is); the client binds the first
//! user slot, so it may only `sendrec`, like any user process. Each reply carries the CPU the
//! server answered on. The client ends the run with a [`STOP`] request.

use crate::child;
use crate::error::{CliError, Result};
use crate::measure::{self, Plan};
use crate::placement::{CpuSet, Placement, current_cpu};
use crate::report::RunReport;
use crate::role::{self, ClientArgs, IDLE_LIMIT, STALL_LIMIT, ServerArgs};
use clap::{Args, ValueEnum};
use m3ipc::{ANY, Dc, DcConfig, Endpoint, Errno, Message, Proc, Timeout, WaitPolicy};

/// Slot of the server.
pub const SERVER_NR: i32 = 0;
/// `m_type` of a timed request.
pub const PING: i32 = 1;
/// `m_type` of the request that ends the run.
pub const STOP: i32 = 2;
/// `m_type` of a reply.
pub const REPLY_OK: i32 = 0;

/// Hidden subcommand of the server role.
pub const SERVER_CMD: &str = "__demo-server";
/// Hidden subcommand of the client role.
pub const CLIENT_CMD: &str = "__demo-client";

/// How both sides wait (`Proc::set_wait_policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// Spin briefly while the peer runs on another CPU, then sleep (the library's default).
    #[default]
    Adaptive,
    /// Sleep on the futex doorbell at once.
    Block,
    /// Spin until done: fastest across idle cores, disastrous when both share one.
    Spin,
}

impl Policy {
    /// The library's policy.
    pub fn wait_policy(self) -> WaitPolicy {
        match self {
            Policy::Adaptive => WaitPolicy::Adaptive,
            Policy::Block => WaitPolicy::Block,
            Policy::Spin => WaitPolicy::Spin,
        }
    }

    /// Name used in tables and on command lines.
    pub fn label(self) -> &'static str {
        match self {
            Policy::Adaptive => "adaptive",
            Policy::Block => "block",
            Policy::Spin => "spin",
        }
    }
}

/// Arguments of the hidden server role.
#[derive(Debug, Args)]
pub struct PingServerArgs {
    /// DC and CPU.
    #[command(flatten)]
    pub common: ServerArgs,
    /// Wait policy.
    #[arg(long, value_enum, default_value_t)]
    pub policy: Policy,
}

/// Arguments of the hidden client role.
#[derive(Debug, Args)]
pub struct PingClientArgs {
    /// DC, counts and CPU.
    #[command(flatten)]
    pub common: ClientArgs,
    /// Wait policy.
    #[arg(long, value_enum, default_value_t)]
    pub policy: Policy,
}

/// The first user slot of a DC with `config`: the client's.
pub fn client_nr(config: &DcConfig) -> i32 {
    config.nr_sysprocs as i32 - config.nr_tasks as i32
}

/// Run one ping-pong in DC `dc` (which must have no server bound): start both roles, return the
/// client's report.
pub fn run_pair(dc: &str, plan: &Plan, policy: Policy, placement: Placement) -> Result<RunReport> {
    let (server_cpu, client_cpu) = placement.cpus()?;
    let mut server = ServerArgs {
        target: dc.to_string(),
        cpu: server_cpu,
    }
    .to_args(SERVER_CMD);
    let mut client = ClientArgs::new(dc, plan, client_cpu).to_args(CLIENT_CMD);
    for args in [&mut server, &mut client] {
        args.extend(["--policy".to_string(), policy.label().to_string()]);
    }
    child::run_pair(&server, &client, child::client_timeout(plan.count))
}

/// The start of a server role: pinned, bound at [`SERVER_NR`] as `name`.
pub fn bind_server(common: &ServerArgs, name: &str) -> Result<Proc> {
    role::start(common.cpu)?;
    let dc = Dc::open(&common.target)?;
    dc.bind_named(SERVER_NR, name)
        .map_err(|e| CliError::from(e).context(format!("bind {SERVER_NR}")))
}

/// The start of a client role: pinned, bound as `name`, and the server's endpoint once it is
/// bound.
pub fn bind_client(common: &ClientArgs, name: &str) -> Result<(Proc, Endpoint)> {
    role::start(common.cpu)?;
    let dc = Dc::open(&common.target)?;
    let nr = client_nr(dc.config());
    let me = dc
        .bind_named(nr, name)
        .map_err(|e| CliError::from(e).context(format!("bind {nr}")))?;
    let server = dc
        .wait4bind(SERVER_NR, Timeout::Millis(STALL_LIMIT.as_millis() as u32))
        .map_err(|e| CliError::from(e).context("waiting for the server to bind"))?;
    Ok((me, server))
}

/// A server role's loop: answer each request with `answer`'s reply, until a [`STOP`] request
/// (answered too). A server with no request for [`IDLE_LIMIT`] gives up (its parent vanished).
pub fn serve_until_stop(
    server: &Proc,
    mut answer: impl FnMut(&Message) -> Result<Message>,
) -> Result<()> {
    let idle = Timeout::Millis(IDLE_LIMIT.as_millis() as u32);
    loop {
        let mut m = Message::default();
        match server.receive(ANY, &mut m, idle) {
            Ok(()) => {}
            Err(Errno::EDVSTIMEDOUT) => {
                return Err(CliError::new(format!(
                    "no request for {} s",
                    IDLE_LIMIT.as_secs()
                )));
            }
            Err(e) => return Err(CliError::from(e).context("receive")),
        }
        let reply = answer(&m)?;
        server
            .reply(m.m_source, &reply)
            .map_err(|e| CliError::from(e).context(format!("reply to {}", m.m_source)))?;
        if m.m_type == STOP {
            return Ok(());
        }
    }
}

/// The server role: answer every request with the CPU it runs on, until a [`STOP`] request.
pub fn serve(args: &PingServerArgs) -> Result<()> {
    let server = bind_server(&args.common, "ping-server")?;
    server.set_wait_policy(args.policy.wait_policy());
    serve_until_stop(&server, |_| {
        let mut reply = Message::new(REPLY_OK);
        reply.m1_mut().m1i1 = current_cpu().map_or(-1, |c| c as i32);
        Ok(reply)
    })
}

/// The client role: wait for the server, make the timed `sendrec` round trips, print the report.
pub fn client(args: &PingClientArgs) -> Result<()> {
    let (me, server) = bind_client(&args.common, "ping-client")?;
    me.set_wait_policy(args.policy.wait_policy());
    let stall = Timeout::Millis(STALL_LIMIT.as_millis() as u32);
    let mut server_cpus = CpuSet::default();
    let mut ask = |m_type: i32| -> Result<()> {
        let mut m = Message::new(m_type);
        me.sendrec(server, &mut m, stall)
            .map_err(|e| CliError::from(e).context(format!("sendrec to {server}")))?;
        if m.m_type != REPLY_OK || m.m_source != server {
            return Err(CliError::new(format!(
                "unexpected reply of type {} from {}",
                m.m_type, m.m_source
            )));
        }
        if let Ok(cpu) = usize::try_from(m.m1().m1i1) {
            server_cpus.insert(cpu);
        }
        Ok(())
    };
    let measured = measure::run(&args.common.plan(), || ask(PING))?;
    ask(STOP)?;
    println!("{}", RunReport::new(measured, server_cpus).to_line());
    Ok(())
}
