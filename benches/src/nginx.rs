//! The baseline of the `web` group: Debian's `nginx`, started by the bench with a config of its
//! own in a temporary directory on tmpfs (under `/dev/shm`), which also holds the files it
//! serves. One worker process, `sendfile on`, keep-alive, no access log, listening on a free
//! loopback port; its pid file, error log and temporary paths all in that directory, so that it
//! runs as a normal user as well as root. The directory is removed when the server is dropped.
//!
//! nginx is pinned (its master, and so its worker, which inherits the mask) to the server CPU,
//! and gets `SIGTERM` if the thread that started it dies.

use crate::error::{BenchError, Result, io};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where nginx may be, besides `PATH` (a normal user's `PATH` often lacks `/usr/sbin`).
const PLACES: [&str; 3] = [
    "/usr/sbin/nginx",
    "/usr/local/sbin/nginx",
    "/usr/local/nginx/sbin/nginx",
];
/// Longest nginx may take to listen.
const START_WAIT: Duration = Duration::from_secs(10);
/// Longest nginx may take to stop after `SIGTERM` before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(5);

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The nginx executable, or why there is none.
pub fn find() -> std::result::Result<PathBuf, String> {
    let in_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    in_path
        .into_iter()
        .chain(PLACES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "nginx is not installed (Debian: apt-get install nginx); the nginx rows skip".into()
        })
}

/// A directory on tmpfs for the files (world-readable: nginx's worker drops to `nobody` when
/// started as root), removed on drop.
#[derive(Debug)]
pub struct TmpDir(PathBuf);

impl TmpDir {
    /// A fresh `/dev/shm/m3bench-web-PID-SEQ` (mode 0755).
    pub fn create() -> Result<TmpDir> {
        let base = Path::new("/dev/shm");
        let dir = base.join(format!(
            "m3bench-web-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).map_err(io(format!("{}", dir.display())))?;
        let t = TmpDir(dir);
        t.open_up(&t.0, 0o755)?;
        Ok(t)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    fn open_up(&self, p: &Path, mode: u32) -> Result<()> {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .map_err(io(format!("chmod {}", p.display())))
    }

    /// Write the file `rel` (its parent directories made), world-readable.
    pub fn put(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let path = self.0.join(rel.trim_start_matches('/'));
        if let Some(parent) = path.parent()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent).map_err(io(format!("{}", parent.display())))?;
            self.open_up(parent, 0o755)?;
        }
        std::fs::write(&path, bytes).map_err(io(format!("{}", path.display())))?;
        self.open_up(&path, 0o644)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The config: one worker, `sendfile on`, keep-alive without a request limit, no access log,
/// `root` served on 127.0.0.1:`port`, every path nginx writes in `dir`.
pub fn config(dir: &Path, root: &Path, port: u16, as_root: bool) -> String {
    let d = dir.display();
    // As root, nginx's worker runs as `nobody`; a group every system has keeps that portable.
    let user = if as_root {
        "user nobody nogroup;\n"
    } else {
        ""
    };
    format!(
        "{user}worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000000;
    default_type application/octet-stream;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
",
        root = root.display()
    )
}

/// A running nginx, stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    port: u16,
    dir: TmpDir,
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("bind a loopback port"))?;
    Ok(l.local_addr().map_err(io("local address"))?.port())
}

impl Nginx {
    /// Start nginx on the files of `dir` (the directory `www` in it), pinned to `cpu`, and
    /// wait until it accepts connections.
    pub fn start(mut dir: TmpDir, cpu: Option<usize>) -> Result<Nginx> {
        let exe = find().map_err(BenchError::new)?;
        // SAFETY: geteuid has no preconditions.
        let as_root = unsafe { libc::geteuid() } == 0;
        let mut last = String::new();
        // The port may be taken between the probe and nginx's bind: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let conf = dir.path().join("nginx.conf");
            std::fs::write(
                &conf,
                config(dir.path(), &dir.path().join("www"), port, as_root),
            )
            .map_err(io(format!("{}", conf.display())))?;
            let mut cmd = Command::new(&exe);
            cmd.arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: the closure runs in the child between fork and exec and makes only
            // async-signal-safe system calls (prctl, sched_setaffinity) on plain stack data.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    if let Some(cpu) = cpu {
                        let mut set: libc::cpu_set_t = core::mem::zeroed();
                        libc::CPU_SET(cpu, &mut set);
                        if libc::sched_setaffinity(0, core::mem::size_of_val(&set), &set) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
            let child = cmd
                .spawn()
                .map_err(io(format!("cannot start {}", exe.display())))?;
            let mut n = Nginx { child, port, dir };
            match n.wait_listening() {
                Ok(()) => return Ok(n),
                Err(e) => {
                    last = e.0;
                    dir = n.stop_and_keep_dir();
                }
            }
        }
        Err(BenchError::new(format!("nginx did not start: {last}")))
    }

    fn wait_listening(&mut self) -> Result<()> {
        let until = Instant::now() + START_WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
                return Err(BenchError::new(format!(
                    "nginx ended ({status}): {}",
                    log.trim()
                )));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(BenchError::new(format!(
                    "nginx is not listening on port {} after {} s",
                    self.port,
                    START_WAIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The master's pid (its one worker is its child).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                // SAFETY: kill with a pid of our own child, not yet reaped, and a signal number.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let until = Instant::now() + STOP_WAIT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }

    fn stop_and_keep_dir(mut self) -> TmpDir {
        self.stop();
        // Dropping `self` then finds nginx stopped and an empty path to remove.
        TmpDir(std::mem::take(&mut self.dir.0))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_keeps_every_path_in_its_directory() {
        let c = config(
            Path::new("/dev/shm/x"),
            Path::new("/dev/shm/x/www"),
            8123,
            false,
        );
        for want in [
            "worker_processes 1;",
            "sendfile on;",
            "access_log off;",
            "listen 127.0.0.1:8123;",
            "root /dev/shm/x/www;",
            "pid /dev/shm/x/nginx.pid;",
        ] {
            assert!(c.contains(want), "{want} missing in {c}");
        }
        assert!(!c.contains("user "));
        assert!(config(Path::new("/d"), Path::new("/d/w"), 1, true).starts_with("user nobody"));
        for line in c
            .lines()
            .filter(|l| l.contains("_path") || l.contains("log "))
        {
            assert!(
                line.contains("/dev/shm/x/") || line.contains("off"),
                "{line}"
            );
        }
    }

    #[test]
    fn a_tmp_dir_goes_away() {
        let t = TmpDir::create().unwrap_or_else(|e| panic!("{e}"));
        t.put("/www/s/1", b"x").unwrap_or_else(|e| panic!("{e}"));
        let p = t.path().to_path_buf();
        assert!(p.join("www/s/1").is_file());
        drop(t);
        assert!(!p.exists());
    }
}
