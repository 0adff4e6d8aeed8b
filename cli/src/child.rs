//! Child processes: `dvs` re-executed in a hidden role, and the server–client pair of one
//! measurement.
//!
//! A child that is still running when its handle is dropped (an error, a timeout, Ctrl-C) is
//! killed and reaped, so no error path leaves a process behind. The children also die with the
//! parent (`role::start` sets their parent-death signal).

use crate::error::{CliError, Result};
use crate::interrupt;
use crate::report::RunReport;
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to exit after its client finished.
const SERVER_EXIT: Duration = Duration::from_secs(5);

/// A running `dvs` child process.
#[derive(Debug)]
pub struct ChildProc {
    child: std::process::Child,
    what: &'static str,
    output: Option<mpsc::Receiver<String>>,
}

impl ChildProc {
    /// Start `dvs ARGS...` (this very executable) as the `what` side. With `capture`, its
    /// standard output is collected for [`ChildProc::output`]; else it is discarded. Its standard
    /// error is this process's, so its error messages reach the operator.
    pub fn spawn(what: &'static str, args: &[String], capture: bool) -> Result<ChildProc> {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::new(format!("cannot find the dvs executable: {e}")))?;
        let mut child = Command::new(&exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(if capture {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| CliError::new(format!("cannot start {}: {e}", exe.display())))?;
        // Read the output on a thread, so that waiting for it can time out without polling (a
        // polling parent would disturb the measurement it waits for).
        let output = child.stdout.take().map(|mut stdout| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stdout.read_to_string(&mut text);
                let _ = tx.send(text);
            });
            rx
        });
        Ok(ChildProc {
            child,
            what,
            output,
        })
    }

    /// Wait for the child to close its output and exit successfully, at most `timeout`; return
    /// what it printed (empty unless captured).
    pub fn output(mut self, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let text = match self.output.take() {
            Some(rx) => rx
                .recv_timeout(timeout)
                .map_err(|_| self.timed_out(timeout))?,
            None => String::new(),
        };
        let status = self.wait_until(deadline, timeout)?;
        self.check(status)?;
        Ok(text)
    }

    /// Wait for the child to exit successfully, at most `timeout`.
    pub fn finish(self, timeout: Duration) -> Result<()> {
        self.output(timeout).map(drop)
    }

    fn wait_until(&mut self, deadline: Instant, timeout: Duration) -> Result<ExitStatus> {
        // The child has closed its output (or has none): it is about to exit, so polling is
        // short and no longer disturbs anything.
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Ok(None) => return Err(self.timed_out(timeout)),
                Err(e) => {
                    return Err(CliError::new(format!("waiting for the {}: {e}", self.what)));
                }
            }
        }
    }

    fn check(&self, status: ExitStatus) -> Result<()> {
        if interrupt::requested() {
            return Err(CliError::interrupted());
        }
        if status.success() {
            Ok(())
        } else {
            Err(CliError::new(format!(
                "the {} failed ({status})",
                self.what
            )))
        }
    }

    fn timed_out(&self, timeout: Duration) -> CliError {
        if interrupt::requested() {
            return CliError::interrupted();
        }
        CliError::new(format!(
            "the {} did not finish within {} s",
            self.what,
            timeout.as_secs()
        ))
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run one measurement: start the server `dvs SERVER_ARGS...`, then the client
/// `dvs CLIENT_ARGS...`, wait for the client's report (at most `timeout`), then for the server
/// to exit. Whatever fails, both are gone when this returns.
pub fn run_pair(
    server_args: &[String],
    client_args: &[String],
    timeout: Duration,
) -> Result<RunReport> {
    let server = ChildProc::spawn("server", server_args, false)?;
    let client = ChildProc::spawn("client", client_args, true)?;
    let out = client.output(timeout)?;
    let report = RunReport::parse(&out)?;
    server.finish(SERVER_EXIT)?;
    Ok(report)
}

/// A generous limit for a client making `count` round trips (plus warm-up): only a hang hits it.
pub fn client_timeout(count: u64) -> Duration {
    Duration::from_secs(30) + Duration::from_micros(count.saturating_mul(1_000))
}
