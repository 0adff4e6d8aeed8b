//! `dvs bench --zero-copy`: moving 4 KiB, 64 KiB and 1 MiB payloads between two processes by
//! pool-buffer handle, next to the same payloads over a Unix socket, in one run.
//!
//! - By handle: the client holds the payload in a pool buffer. Each transfer gives the buffer
//!   to the server and sends its handle with `sendrec`; the server views the buffer, touches it
//!   in place, gives it back and replies. Two ways of touching: `m3ipc-handle` reads the first
//!   and the last word (the handoff alone), `m3ipc-handle-pages` reads one word per 4 KiB page
//!   (so its cost grows with the size, as any reader's does).
//! - Unix socket: each transfer writes the payload into a stream socket; the server reads all of
//!   it and replies one byte.
//!
//! Per size, the table shows the p50 and p99 of one transfer (request to reply) and the
//! throughput in MB/s (10^6 bytes per second over the timed loop), with the ratio of the
//! handle's throughput to the socket's, and finally how the handle's p50 grows from 4 KiB to
//! 1 MiB (zero-copy: it should not).

use crate::child;
use crate::error::{CliError, Result};
use crate::interrupt;
use crate::measure::{self, Plan, warmup_for};
use crate::percentiles::Nanos;
use crate::pingpong::{self, REPLY_OK, STOP};
use crate::placement::{CpuSet, Placement, allowed_cpus, current_cpu};
use crate::report::RunReport;
use crate::role::{self, ClientArgs, STALL_LIMIT, ServerArgs};
use crate::scratch_dc::ScratchDc;
use crate::table::{Align, Table, print_text};
use clap::Args;
use m3ipc::{Message, Timeout};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Hidden subcommand: the by-handle server.
pub const HANDLE_SERVER_CMD: &str = "__zc-handle-server";
/// Hidden subcommand: the by-handle client.
pub const HANDLE_CLIENT_CMD: &str = "__zc-handle-client";
/// Hidden subcommand: the Unix-socket server.
pub const SOCKET_SERVER_CMD: &str = "__zc-socket-server";
/// Hidden subcommand: the Unix-socket client.
pub const SOCKET_CLIENT_CMD: &str = "__zc-socket-client";

/// Payload sizes measured.
pub const SIZES: [usize; 3] = [4 << 10, 64 << 10, 1 << 20];
/// At most this many timed transfers per case.
const MAX_COUNT: u64 = 20_000;
/// Each case stops after this long.
const BUDGET: Duration = Duration::from_secs(3);
/// `m_type` of a transfer.
const XFER: i32 = 10;

/// Arguments of the server roles.
#[derive(Debug, Args)]
pub struct ZcServerArgs {
    /// DC (by handle) or socket path, and CPU.
    #[command(flatten)]
    pub common: ServerArgs,
    /// Payload bytes.
    #[arg(long)]
    pub size: usize,
    /// How the by-handle server touches each buffer.
    #[arg(long, value_enum, default_value_t = Touch::Ends)]
    pub touch: Touch,
}

/// How the by-handle server touches a buffer it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Touch {
    /// Read its first and last word.
    Ends,
    /// Read one word per 4 KiB page.
    Pages,
}

/// Arguments of the client roles.
#[derive(Debug, Args)]
pub struct ZcClientArgs {
    /// DC (by handle) or socket path, counts and CPU.
    #[command(flatten)]
    pub common: ClientArgs,
    /// Payload bytes.
    #[arg(long)]
    pub size: usize,
}

/// How a payload moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    Handle(Touch),
    Socket,
}

impl Way {
    fn label(self) -> &'static str {
        match self {
            Way::Handle(Touch::Ends) => "m3ipc-handle",
            Way::Handle(Touch::Pages) => "m3ipc-handle-pages",
            Way::Socket => "unix-socket",
        }
    }
}

/// One measured case.
struct Row {
    size: usize,
    way: Way,
    report: RunReport,
}

impl Row {
    fn mb_per_s(&self) -> f64 {
        self.report.throughput() * self.size as f64 / 1e6
    }
}

/// Run every case and print the table.
pub fn run(count: u64) -> Result<()> {
    interrupt::install();
    let placement = if allowed_cpus()?.len() >= 2 {
        Placement::Different
    } else {
        Placement::Same
    };
    let count = count.min(MAX_COUNT);
    let plan = Plan {
        count,
        warmup: warmup_for(count).min(1_000),
        budget: Some(BUDGET),
    };
    let scratch = ScratchDc::create("zc")?;
    let (server_cpu, client_cpu) = placement.cpus()?;
    let mut rows = Vec::new();
    for size in SIZES {
        for way in [
            Way::Handle(Touch::Ends),
            Way::Handle(Touch::Pages),
            Way::Socket,
        ] {
            if interrupt::requested() {
                return Err(CliError::interrupted());
            }
            let what = format!("{} {} B {}", way.label(), size, placement.label());
            eprintln!("dvs bench --zero-copy: {what} ...");
            let socket =
                std::env::temp_dir().join(format!("dvs-zc-{}-{size}.sock", std::process::id()));
            let target = match way {
                Way::Handle(_) => scratch.name().to_string(),
                Way::Socket => socket.display().to_string(),
            };
            let (scmd, ccmd) = match way {
                Way::Handle(_) => (HANDLE_SERVER_CMD, HANDLE_CLIENT_CMD),
                Way::Socket => (SOCKET_SERVER_CMD, SOCKET_CLIENT_CMD),
            };
            let size_arg = ["--size".to_string(), size.to_string()];
            let mut server = ServerArgs {
                target: target.clone(),
                cpu: server_cpu,
            }
            .to_args(scmd);
            server.extend(size_arg.clone());
            if let Way::Handle(Touch::Pages) = way {
                server.extend(["--touch".to_string(), "pages".to_string()]);
            }
            let mut client = ClientArgs::new(&target, &plan, client_cpu).to_args(ccmd);
            client.extend(size_arg);
            let report = child::run_pair(&server, &client, child::client_timeout(plan.count));
            let _ = std::fs::remove_file(&socket);
            rows.push(Row {
                size,
                way,
                report: report.map_err(|e| e.context(&what))?,
            });
        }
    }
    print_text(&render(&rows, placement))
}

fn render(rows: &[Row], placement: Placement) -> String {
    let mut table = Table::new(&[
        ("SIZE", Align::Right),
        ("WAY", Align::Left),
        ("N", Align::Right),
        ("P50", Align::Right),
        ("P99", Align::Right),
        ("MB/S", Align::Right),
        ("HANDLE/SOCKET", Align::Right),
        ("CPU C/S", Align::Left),
    ]);
    let find = |size, way| rows.iter().find(|r| r.size == size && r.way == way);
    for r in rows {
        let ratio = match (r.way, find(r.size, Way::Socket)) {
            (Way::Handle(_), Some(s)) if s.mb_per_s() > 0.0 => {
                format!("{:.1}x", r.mb_per_s() / s.mb_per_s())
            }
            _ => "-".into(),
        };
        table.push(vec![
            crate::dc_cmd::human_bytes(r.size as u64),
            r.way.label().into(),
            r.report.latency.n.to_string(),
            Nanos(r.report.latency.p50 as f64).to_string(),
            Nanos(r.report.latency.p99 as f64).to_string(),
            format!("{:.0}", r.mb_per_s()),
            ratio,
            format!("{}/{}", r.report.client_cpus, r.report.server_cpus),
        ]);
    }
    let mut out = table.render();
    let _ = writeln!(
        out,
        "Placement {}. P50/P99: one transfer, request to reply. MB/S: 10^6 bytes per second. \
         HANDLE/SOCKET: throughput ratio at the same size, same run.",
        placement.label()
    );
    for touch in [Touch::Ends, Touch::Pages] {
        let way = Way::Handle(touch);
        if let (Some(small), Some(big)) = (find(SIZES[0], way), find(SIZES[SIZES.len() - 1], way))
            && small.report.latency.p50 > 0
        {
            let _ = writeln!(
                out,
                "{}: p50 at 1M over p50 at 4K: {:.2}x.",
                way.label(),
                big.report.latency.p50 as f64 / small.report.latency.p50 as f64
            );
        }
    }
    out
}

/// The by-handle server: view each buffer, touch one word per page, give it back, reply.
pub fn handle_serve(args: &ZcServerArgs) -> Result<()> {
    let server = pingpong::bind_server(&args.common, "zc-server")?;
    pingpong::serve_until_stop(&server, |m| {
        let mut reply = Message::new(REPLY_OK);
        if m.m_type == XFER {
            let h = m.handle();
            let view = server
                .buffer(h)
                .map_err(|e| CliError::from(e).context("view the buffer"))?;
            let len = args.size.min(view.len()) & !7;
            let mut acc = 0u64;
            match args.touch {
                Touch::Ends => {
                    acc ^= view.read_u64(0)?;
                    acc ^= view.read_u64(len.saturating_sub(8))?;
                }
                Touch::Pages => {
                    for off in (0..len).step_by(4096) {
                        acc ^= view.read_u64(off)?;
                    }
                }
            }
            server.give(h, m.m_source)?;
            reply.m1_mut().m1p3 = acc;
            reply.m1_mut().m1i1 = current_cpu().map_or(-1, |c| c as i32);
        }
        Ok(reply)
    })
}

/// The by-handle client: one pool buffer holding the payload, handed over and back each time.
pub fn handle_client(args: &ZcClientArgs) -> Result<()> {
    let (me, server) = pingpong::bind_client(&args.common, "zc-client")?;
    let stall = Timeout::Millis(STALL_LIMIT.as_millis() as u32);
    let h = me
        .alloc_buffer(args.size)
        .map_err(|e| CliError::from(e).context("allocate the payload buffer"))?;
    me.buffer(h)?.fill(0, args.size, 0x5a)?;
    let mut server_cpus = CpuSet::default();
    let measured = measure::run(&args.common.plan(), || {
        me.give(h, server)?;
        let mut m = Message::new(XFER);
        m.put_handle(h);
        me.sendrec(server, &mut m, stall)
            .map_err(|e| CliError::from(e).context(format!("sendrec to {server}")))?;
        if m.m_type != REPLY_OK {
            return Err(CliError::new(format!("the server answered {}", m.m_type)));
        }
        if let Ok(cpu) = usize::try_from(m.m1().m1i1) {
            server_cpus.insert(cpu);
        }
        Ok(())
    })?;
    let mut stop = Message::new(STOP);
    me.sendrec(server, &mut stop, stall)?;
    me.release_buffer(h)?;
    println!("{}", RunReport::new(measured, server_cpus).to_line());
    Ok(())
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |e| CliError::new(format!("{what}: {e}"))
}

/// The socket server: read each payload whole, reply one byte, until the client hangs up.
pub fn socket_serve(args: &ZcServerArgs) -> Result<()> {
    role::start(args.common.cpu)?;
    let path = PathBuf::from(&args.common.target);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(io("bind the socket"))?;
    let (mut conn, _) = listener.accept().map_err(io("accept"))?;
    let mut buf = vec![0u8; args.size];
    loop {
        match conn.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(io("read")(e)),
        }
        // The reply byte is the CPU the server runs on (255: unknown).
        let cpu = current_cpu().map_or(255, |c| c.min(254) as u8);
        conn.write_all(&[cpu]).map_err(io("write"))?;
    }
}

/// The socket client: write the payload, wait for the one-byte reply.
pub fn socket_client(args: &ZcClientArgs) -> Result<()> {
    role::start(args.common.cpu)?;
    let deadline = Instant::now() + STALL_LIMIT;
    let mut conn = loop {
        match UnixStream::connect(&args.common.target) {
            Ok(c) => break c,
            Err(e) if Instant::now() >= deadline => return Err(io("connect")(e)),
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    let payload = vec![0x5au8; args.size];
    let mut ack = [0u8; 1];
    let mut server_cpus = CpuSet::default();
    let measured = measure::run(&args.common.plan(), || {
        conn.write_all(&payload).map_err(io("write"))?;
        conn.read_exact(&mut ack).map_err(io("read"))?;
        if ack[0] != 255 {
            server_cpus.insert(ack[0] as usize);
        }
        Ok(())
    })?;
    drop(conn);
    println!("{}", RunReport::new(measured, server_cpus).to_line());
    Ok(())
}
