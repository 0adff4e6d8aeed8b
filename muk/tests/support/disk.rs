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
