//! `muk2 run --isolate`: the unikernel in namespaces of its own (`muk::isolate`), and this
//! process outside as its supervisor.
//!
//! The process started by the operator creates the DC (so it is the DC's creator, alive as long
//! as the unikernel is) and clones the unikernel into new user, mount, PID, IPC, UTS and network
//! namespaces, whose root holds only the DC's region and pool files and the disk images, and
//! moves the config's `[isolate] interface`, if any, into its network namespace. It then
//! stays outside, in the namespaces of the DC's other processes, and:
//! - forwards SIGINT, SIGTERM and SIGHUP to the unikernel (which stops in order);
//! - every [`REAP_EVERY`] releases the slots of processes that died: the unikernel cannot see
//!   outside PIDs and counts every outside owner as alive (`m3ipc`'s `owner` module), so this is
//!   who notices a dead outside client;
//! - removes the DC once the unikernel has stopped in order (it says so through a pipe, as it
//!   tells the sandbox's helper otherwise); a unikernel that died leaves its DC, as always;
//! - exits with the unikernel's code.
//!
//! `MUK2_TEST_ISOLATION_PROBE=PATH` (for tests only) adds a server `probe` at nr [`PROBE_NR`]
//! that reports what the unikernel could see of the host (see [`probe_server`]).

use crate::hosting::CreatedDc;
use crate::run::print_flush;
use crate::signals::{Event, Signals};
use crate::{Error, Result, run};
use m3ipc::{ANY, Dc, Errno, Message, Timeout};
use muk::config::Config;
use muk::server::rdisk::DiskSpec;
use muk::{Hosted, Ipc, Runner, Server};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

/// How often the supervisor releases the slots of dead outside processes.
pub const REAP_EVERY: Duration = Duration::from_millis(200);

/// `muk2 run --isolate` with `config` loaded.
pub fn run(mut config: Config, runner: Runner) -> Result<()> {
    if config.cluster.is_some() {
        return Err(Error(
            "--isolate with [cluster]: the node daemon needs the host's network, which the \
             isolated unikernel does not have"
                .into(),
        ));
    }
    // Before the clone: the child inherits the mask and takes its signals by waiting too.
    let signals = Signals::block()?;
    let created = CreatedDc::create(&config.dc)?;
    let dc_name = created.dc().name().to_string();
    let region = std::fs::canonicalize(created.dc().path())
        .map_err(|e| Error(format!("{}: {e}", created.dc().path().display())))?;
    let region_dir = region
        .parent()
        .map(PathBuf::from)
        .ok_or_else(|| Error(format!("{}: no directory", region.display())))?;
    let mut files = vec![region.clone()];
    if created.dc().has_pool() {
        files.push(region_dir.join(format!("{}{dc_name}", m3ipc::pool::POOL_FILE_PREFIX)));
    }
    for server in &mut config.servers {
        if let DiskSpec::Image(image) = &mut server.options.disk {
            *image = std::fs::canonicalize(&*image)
                .map_err(|e| Error(format!("disk image {}: {e}", image.display())))?;
            files.push(image.clone());
        }
    }
    let (told_r, told_w) = pipe()?;
    let told_r_fd = told_r.as_raw_fd();
    let plan = muk::isolate::Plan {
        files,
        interface: config.isolate.clone(),
    };
    let config = &config;
    let signals_ref = &signals;
    let name = dc_name.as_str();
    let child = muk::isolate::spawn(&plan, move |setup| {
        // The child: close the parent's end (the child's copy of it), then host.
        // SAFETY: a descriptor of this process's copy that nothing else in it uses.
        unsafe { libc::close(told_r_fd) };
        let mut told = File::from(told_w);
        let opened = setup.map_err(Error).and_then(|outer| {
            // SAFETY: the child is single-threaded here (spawn checked the parent was); the
            // region directory is bound at its canonical path in the new root.
            unsafe { std::env::set_var("M3IPC_SHM_DIR", &region_dir) };
            Ok((outer, Dc::open(name)?))
        });
        let hosted = match opened {
            Ok(it) => Ok(it),
            Err(e) => {
                // Nothing was bound: the DC is of no use to anyone, let the parent remove it.
                use std::io::Write;
                let _ = told.write_all(crate::sandbox::REMOVE);
                Err(e)
            }
        };
        match hosted.and_then(|(outer, dc)| {
            let created = CreatedDc::created_by_parent(dc, told);
            print_flush(&format!(
                "muk2: isolated in its own namespaces (pid {} outside)\n",
                outer.pid
            ));
            run::host(config, runner, signals_ref, created)
        }) {
            Ok(()) => 0,
            Err(e) => {
                muk::diag!("muk2: --isolate: {e}");
                1
            }
        }
    })
    .map_err(|e| Error(e.to_string()))?;
    let status = supervise(&signals, child, created.dc());
    let mut said = Vec::new();
    let _ = File::from(told_r).take(64).read_to_end(&mut said);
    if said == crate::sandbox::REMOVE {
        drop(created);
    } else {
        muk::diag!(
            "muk2: the isolated unikernel of DC {dc_name} died; the DC is left (`dvs dc rm {dc_name}`)"
        );
        std::mem::forget(created);
    }
    match status? {
        0 => Ok(()),
        // The child said why; exit with its code, as a plain `muk2 run` would have.
        code if code > 0 => std::process::exit(code),
        sig => Err(Error(format!(
            "the isolated unikernel was killed by signal {}",
            -sig
        ))),
    }
}

/// Forward stop signals to `child` and release dead owners' slots until it exits; its exit code
/// (minus the signal number when a signal killed it).
fn supervise(signals: &Signals, child: u32, dc: &Dc) -> Result<i32> {
    let pid = child as libc::pid_t;
    loop {
        match signals.wait(Some(REAP_EVERY)) {
            Ok(Event::Stop(sig)) => {
                // SAFETY: kill has no memory effects; `pid` is our unreaped child.
                unsafe { libc::kill(pid, sig) };
            }
            Ok(Event::Wake | Event::Timeout) => {}
            Err(e) => muk::diag!("muk2: waiting for signals: {e}"),
        }
        let mut status = 0;
        // SAFETY: `status` is a live int; WNOHANG never blocks.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Ok(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                -libc::WTERMSIG(status)
            });
        }
        if r < 0 {
            return Err(Error(format!(
                "waiting for the isolated unikernel: {}",
                std::io::Error::last_os_error()
            )));
        }
        dc.reap_dead();
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error(format!("pipe: {}", std::io::Error::last_os_error())));
    }
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The slot of the test-only server `probe`.
pub const PROBE_NR: i32 = 23;

/// The test-only server, when `MUK2_TEST_ISOLATION_PROBE` names a host file. It looks at boot,
/// before the sandbox closes in (which would end the process at the first attempt): it tries to
/// open that file and lists the PIDs in `/proc`. Each request (`m1i1`: a PID) is answered with
/// `m1i1` = 0 when the file opened, else the errno; `m1i2` = how many PIDs `/proc` showed;
/// `m1i3` = 1 when the request's PID was among them.
pub fn probe_server() -> Result<Option<Hosted>> {
    let Some(path) = std::env::var_os("MUK2_TEST_ISOLATION_PROBE") else {
        return Ok(None);
    };
    let opened = match File::open(&path) {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    };
    let pids = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Hosted {
        name: "probe".into(),
        nr: PROBE_NR,
        stack_size: muk::host::DEFAULT_STACK,
        server: Box::new(Probe { opened, pids }),
    }))
}

/// What the probe saw at boot.
struct Probe {
    opened: i32,
    pids: Vec<i32>,
}

impl Server for Probe {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        let mut m = Message::default();
        loop {
            match ipc.receive(ANY, &mut m, Timeout::Forever) {
                Ok(()) => {
                    let asked = m.m1().m1i1;
                    let mut r = Message::new(0);
                    r.m1_mut().m1i1 = self.opened;
                    r.m1_mut().m1i2 = i32::try_from(self.pids.len()).unwrap_or(i32::MAX);
                    r.m1_mut().m1i3 = i32::from(self.pids.contains(&asked));
                    let _ = ipc.reply(m.m_source, &r);
                }
                Err(Errno::EDVSSHUTDOWN) => return Ok(()),
                Err(Errno::EDVSTIMEDOUT | Errno::EDVSWOKENUP | Errno::EDVSSRCDIED) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
