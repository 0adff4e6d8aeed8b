//! Scratch directories, and MINIX images made and checked by util-linux, for the storage tests.

use super::Rng;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A util-linux tool: from /usr/sbin or /sbin (not on every user's `PATH`), else from `PATH`.
pub fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// `fsck.minix -f` on `image`: panics with its output unless it reports no error.
pub fn fsck_clean(image: &Path) {
    let out = Command::new(tool("fsck.minix"))
        .arg("-f")
        .arg(image)
        .output()
        .expect("fsck.minix (util-linux) must be installed");
    assert!(
        out.status.success(),
        "fsck.minix -f {}: {}\n{}{}",
        image.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private directory under the temporary directory (this process's, numbered), removed on
/// drop: for images, local files, or regions (`M3IPC_SHM_DIR`).
pub struct Scratch(PathBuf);

impl Scratch {
    /// A new, empty directory whose name starts with `prefix`.
    pub fn new(prefix: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// An image of `mib` MiB made by `mkfs.minix -3`.
    pub fn mkfs(&self, name: &str, mib: u64) -> PathBuf {
        let p = self.path(name);
        std::fs::File::create(&p)
            .unwrap()
            .set_len(mib << 20)
            .unwrap();
        let out = Command::new(tool("mkfs.minix"))
            .arg("-3")
            .arg(&p)
            .output()
            .expect("mkfs.minix (util-linux) must be installed");
        assert!(out.status.success(), "mkfs.minix: {out:?}");
        p
    }

    /// A local file of `len` pseudo-random bytes, and the bytes.
    pub fn random_file(&self, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
        let mut rng = Rng(seed | 1);
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let p = self.path(name);
        std::fs::write(&p, &data).unwrap();
        (p, data)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `m3ftp` binary of this build.
pub const M3FTP: &str = env!("CARGO_BIN_EXE_m3ftp");
/// The `muk2` binary of this build.
pub const MUK2: &str = env!("CARGO_BIN_EXE_muk2");

/// Host the storage servers `kinds` at their well-known slots on `disk`, under `runner`.
pub fn host_storage(
    dc: &m3ipc::Dc,
    kinds: &[muk::ServerKind],
    disk: &muk::server::rdisk::DiskSpec,
    format: muk::server::fs::FormatPolicy,
    runner: muk::Runner,
) -> muk::Host {
    let servers = kinds
        .iter()
        .map(|&k| {
            let opts = muk::server::ServerOptions {
                disk: disk.clone(),
                format,
                below_nr: None,
                ..Default::default()
            };
            muk::Hosted {
                name: k.name().to_string(),
                nr: k.default_nr(),
                stack_size: muk::host::DEFAULT_STACK,
                server: k.build_with(&opts).unwrap(),
            }
        })
        .collect();
    muk::Host::start(dc, servers, runner).unwrap()
}

/// Run the `m3ftp` binary against the DC named `dc`.
pub fn m3ftp(dc: &str, args: &[&str]) -> std::process::Output {
    Command::new(M3FTP)
        .args(["--dc", dc, "--wait-ms", "10000"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// `m3ftp` that must succeed; its stdout.
pub fn m3ftp_ok(dc: &str, args: &[&str]) -> String {
    let out = m3ftp(dc, args);
    assert!(
        out.status.success(),
        "m3ftp {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A `muk2` process (`run` or `serve`), killed on drop if the test did not end it.
pub struct Muk2Process(std::process::Child);

impl Muk2Process {
    /// Start `muk2 ARGS` and wait for its line holding `needle`.
    pub fn start(args: &[&str], needle: &str) -> Muk2Process {
        use std::io::BufRead;
        let mut run = Muk2Process(
            Command::new(MUK2)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let out = std::io::BufReader::new(run.0.stdout.take().unwrap());
        let mut seen = Vec::new();
        for line in out.lines() {
            let line = line.unwrap();
            let hit = line.contains(needle);
            seen.push(line);
            if hit {
                return run;
            }
        }
        panic!("muk2 {args:?} ended without {needle:?}: {seen:?}");
    }

    /// Send `sig`; the exit code (`None`: killed by a signal).
    pub fn signal(mut self, sig: libc::c_int) -> Option<i32> {
        // SAFETY: kill has no memory effects; the child is not reaped yet, so its pid is ours.
        assert_eq!(unsafe { libc::kill(self.0.id() as libc::pid_t, sig) }, 0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "muk2 did not exit after {sig}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Muk2Process {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// FS's free blocks and free inodes, asked by `FS_INFO` from a user slot of `dc`.
pub fn fs_free(dc: &m3ipc::Dc) -> (u64, u32) {
    let p = muk::ftp_client::bind_user(dc, "usage").unwrap();
    let fs = dc
        .wait4bind(
            muk::ServerKind::Fs.default_nr(),
            m3ipc::Timeout::Millis(10_000),
        )
        .unwrap();
    let mut m = m3ipc::Message::new(muk::storage::fs::FS_INFO);
    p.sendrec(fs, &mut m, m3ipc::Timeout::Millis(10_000))
        .unwrap();
    muk::storage::reply_result(&m).unwrap();
    (m.payload[1], (m.payload[2] >> 32) as u32)
}

/// Every name in the image's directory tree as a path (`.` and `..` left out), read by
/// `minixfs` straight from the image file: what is on the disk, put temporaries included.
pub fn image_paths(image: &Path) -> Vec<String> {
    image_paths_now(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()))
}

/// [`image_paths`] of an image a server may be writing meanwhile: an error when what was
/// read is not consistent (yet).
pub fn image_paths_now(image: &Path) -> Result<Vec<String>, minixfs::FsError> {
    let dev = minixfs::FileDevice::open(image)?;
    let mut fs = minixfs::FileSystem::mount(dev)?;
    let mut out = Vec::new();
    let mut dirs = vec![(minixfs::ROOT, String::new())];
    while let Some((dir, at)) = dirs.pop() {
        for e in fs.readdir(dir, 0, usize::MAX)? {
            if e.name == "." || e.name == ".." {
                continue;
            }
            let path = format!("{at}/{}", e.name);
            if fs.stat(e.ino)?.is_dir() {
                dirs.push((e.ino, path.clone()));
            }
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a path of [`image_paths`] is (or is in) a put temporary.
pub fn is_temp_path(path: &str) -> bool {
    path.split('/').any(muk::storage::path::is_put_temp)
}

/// Run the `m3ftp` binary against `dc` with `input` on its standard input.
pub fn m3ftp_stdin(dc: &str, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(M3FTP)
        .args(["--dc", dc, "--wait-ms", "10000"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}
