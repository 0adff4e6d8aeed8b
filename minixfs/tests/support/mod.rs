//! Shared by the integration tests: temporary image files, util-linux's `mkfs.minix` and
//! `fsck.minix`, and a small seeded random number generator.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use minixfs::BLOCK_SIZE;

/// An image file in the temporary directory, removed on drop.
pub struct TempImage {
    pub path: PathBuf,
}

impl TempImage {
    /// A fresh, unique path (nothing created yet).
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("minixfs-test-{}-{tag}-{n}.img", std::process::id()));
        TempImage { path }
    }

    /// A zero-filled image of `blocks` blocks.
    pub fn zeroed(tag: &str, blocks: u64) -> Self {
        let img = Self::new(tag);
        let f = std::fs::File::create(&img.path).expect("create image file");
        f.set_len(blocks * BLOCK_SIZE as u64)
            .expect("size image file");
        img
    }

    /// An image of `blocks` blocks made by `mkfs.minix -3`.
    pub fn mkfs(tag: &str, blocks: u64) -> Self {
        Self::mkfs_with(tag, blocks, &[])
    }

    /// An image of `blocks` blocks made by `mkfs.minix -3 ARGS` (e.g. `-i N` inodes).
    pub fn mkfs_with(tag: &str, blocks: u64, args: &[&str]) -> Self {
        let img = Self::zeroed(tag, blocks);
        let out = Command::new(tool("mkfs.minix"))
            .arg("-3")
            .args(args)
            .arg(&img.path)
            .output()
            .expect("run mkfs.minix");
        assert!(
            out.status.success(),
            "mkfs.minix -3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        img
    }

    /// An image file holding `bytes`.
    pub fn with_bytes(tag: &str, bytes: &[u8]) -> Self {
        let img = Self::new(tag);
        std::fs::write(&img.path, bytes).expect("write image file");
        img
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The path of a util-linux tool; the tests need util-linux (`apt-get install util-linux`).
pub fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: these tests need util-linux's mkfs.minix and fsck.minix");
}

/// Runs `fsck.minix -f ARGS IMAGE`; returns (exit code, stdout + stderr).
pub fn fsck(image: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(tool("fsck.minix"))
        .arg("-f")
        .args(args)
        .arg(image)
        .output()
        .expect("run fsck.minix");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Asserts that `fsck.minix -f -m` finds nothing wrong: exit 0 and no line besides its
/// banner (`-m` also warns about freed inodes whose mode was not cleared).
pub fn assert_fsck_clean(image: &Path) {
    let (code, text) = fsck(image, &["-m"]);
    let complaints: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Forcing filesystem check on"))
        .collect();
    assert!(
        code == 0 && complaints.is_empty(),
        "fsck.minix -f -m exit {code}:\n{text}"
    );
}

/// xorshift64*: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Deterministic contents: byte i of a stream tagged `tag`.
pub fn pattern(tag: u64, start: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((start + i).wrapping_mul(31) ^ tag.wrapping_mul(131)) as u8)
        .collect()
}
