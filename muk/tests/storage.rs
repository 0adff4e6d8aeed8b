#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The storage servers end to end: RDISK, FS and FTP hosted under both runners (and RDISK or FS
//! as its own process), driven by the real `m3ftp` binary from separate processes, on images
//! made by util-linux `mkfs.minix -3` and checked by `fsck.minix -f` afterwards; malformed
//! requests; a client SIGKILLed mid-put; the client's error messages.

mod support;

use m3ipc::{Access, Dc, Errno, GrantId, Message, Proc, Timeout};
use muk::ftp_client::{ConnectOptions, FtpClient};
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use muk::server::{ServerKind, ServerOptions};
use muk::storage::fs::{DataRequest, FS_LOOKUP, FS_READ, FS_READDIR, FS_STAT, Grantor};
use muk::storage::ftp::{FTP_GET, FTP_PUT, FtpRequest};
use muk::storage::path::PathRef;
use muk::storage::rdisk::{BlockRequest, RD_READ, RD_WRITE};
use muk::storage::reply_result;
use muk::{Host, Hosted, Runner};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use support::{Rng, TestDc};

const M3FTP: &str = env!("CARGO_BIN_EXE_m3ftp");
const MUK2: &str = env!("CARGO_BIN_EXE_muk2");
const T: Timeout = Timeout::Millis(10_000);

/// A scratch directory for images and local files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "muk-storage-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// An image of `mib` MiB made by `mkfs.minix -3`.
    fn mkfs(&self, name: &str, mib: u64) -> PathBuf {
        let p = self.path(name);
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(mib << 20).unwrap();
        drop(f);
        let out = Command::new("mkfs.minix")
            .arg("-3")
            .arg(&p)
            .output()
            .expect("mkfs.minix (util-linux) must be installed");
        assert!(out.status.success(), "mkfs.minix: {out:?}");
        p
    }

    /// A local file of `len` pseudo-random bytes.
    fn random_file(&self, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
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

/// `fsck.minix -f` on `image`: panics with its output unless it reports no error.
fn fsck_clean(image: &Path) {
    let out = Command::new("fsck.minix")
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

/// Host the storage servers `kinds` on `disk` under `runner`.
fn host(
    dc: &Dc,
    kinds: &[ServerKind],
    disk: &DiskSpec,
    format: FormatPolicy,
    runner: Runner,
) -> Host {
    let servers = kinds
        .iter()
        .map(|&k| {
            let opts = ServerOptions {
                disk: disk.clone(),
                format,
                below_nr: None,
            };
            Hosted {
                name: k.name().to_string(),
                nr: k.default_nr(),
                stack_size: muk::host::DEFAULT_STACK,
                server: k.build_with(&opts).unwrap(),
            }
        })
        .collect();
    Host::start(dc, servers, runner).unwrap()
}

const STORAGE: [ServerKind; 3] = [ServerKind::Rdisk, ServerKind::Fs, ServerKind::Ftp];

/// Run the `m3ftp` binary against `dc`.
fn m3ftp(dc: &str, args: &[&str]) -> Output {
    Command::new(M3FTP)
        .args(["--dc", dc, "--wait-ms", "10000"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `m3ftp` that must succeed; its stdout.
fn ok(dc: &str, args: &[&str]) -> String {
    let out = m3ftp(dc, args);
    assert!(
        out.status.success(),
        "m3ftp {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `m3ftp` that must fail; its stderr.
fn fails(dc: &str, args: &[&str]) -> String {
    let out = m3ftp(dc, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "m3ftp {args:?} should fail: {out:?}"
    );
    String::from_utf8(out.stderr).unwrap()
}

/// The names `m3ftp ls` prints, with their sizes.
fn listing(dc: &str, dir: &str) -> Vec<(String, u64)> {
    ok(dc, &["ls", dir])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[2].to_string(), f[1].parse().unwrap())
        })
        .collect()
}

/// The same round trip for every deployment: mkdir, put (a file past the direct and single
/// indirect zones, a small one, an empty one), ls, get (byte-identical), rm, rmdir.
fn round_trip(dc: &str, s: &Scratch) {
    let (big, big_data) = s.random_file("big", 3 * 1024 * 1024 + 17, 7);
    let (small, small_data) = s.random_file("small", 100, 9);
    let (empty, _) = s.random_file("empty", 0, 1);
    ok(dc, &["mkdir", "/d"]);
    ok(dc, &["put", big.to_str().unwrap(), "/d/big.bin"]);
    ok(dc, &["put", small.to_str().unwrap(), "/small.txt"]);
    ok(dc, &["put", empty.to_str().unwrap(), "/empty"]);
    // Replacing a file truncates it first.
    ok(dc, &["put", small.to_str().unwrap(), "/d/big.bin"]);
    ok(dc, &["put", big.to_str().unwrap(), "/d/big.bin"]);
    let root = listing(dc, "/");
    for want in [".", "..", "d", "small.txt", "empty"] {
        assert!(
            root.iter().any(|(n, _)| n == want),
            "{want} not in {root:?}"
        );
    }
    assert!(root.contains(&("small.txt".into(), 100)), "{root:?}");
    assert!(listing(dc, "/d").contains(&("big.bin".into(), big_data.len() as u64)));
    for (remote, want) in [("/d/big.bin", &big_data), ("/small.txt", &small_data)] {
        let local = s.path("back");
        ok(dc, &["get", remote, local.to_str().unwrap()]);
        assert!(std::fs::read(&local).unwrap() == *want, "{remote} differs");
    }
    let local = s.path("back-empty");
    ok(dc, &["get", "/empty", local.to_str().unwrap()]);
    assert_eq!(std::fs::read(&local).unwrap().len(), 0);
    ok(dc, &["rm", "/small.txt"]);
    ok(dc, &["rm", "/d/big.bin"]);
    ok(dc, &["rm", "/d"]);
    let root = listing(dc, "/");
    let names: Vec<&str> = root.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 3, "{root:?}");
    assert!(names.contains(&"empty"));
}

fn served_mkfs_image(runner: Runner) {
    let s = Scratch::new("rt");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('s');
    let h = host(
        &t.dc,
        &STORAGE,
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        runner,
    );
    round_trip(&t.name, &s);
    support::stop(h, 3);
    fsck_clean(&image);
}

#[test]
fn mkfs_image_round_trip_muk2() {
    served_mkfs_image(Runner::Coroutines);
}

#[test]
fn mkfs_image_round_trip_muk_threads() {
    served_mkfs_image(Runner::Threads);
}

#[test]
fn own_formatter_image_passes_fsck() {
    let s = Scratch::new("fmt");
    let image = s.path("blank.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let t = TestDc::new('f');
    let h = host(
        &t.dc,
        &STORAGE,
        &DiskSpec::Image(image.clone()),
        FormatPolicy::IfBlank,
        Runner::Coroutines,
    );
    round_trip(&t.name, &s);
    support::stop(h, 3);
    fsck_clean(&image);
}

/// `muk2 serve NAME` as its own process; killed on drop.
struct Outside(Child);

impl Outside {
    fn start(dc: &str, args: &[&str]) -> Outside {
        let mut child = Command::new(MUK2)
            .arg("serve")
            .args(args)
            .args(["--dc", dc])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // It prints one line once it serves.
        let mut out = child.stdout.take().unwrap();
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while out.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
            line.push(b[0]);
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        assert!(line.contains("serving"), "muk2 serve said {line:?}");
        Outside(child)
    }

    /// SIGTERM, and check it exits 0.
    fn stop(mut self) {
        // SAFETY: kill has no memory effects; the child is not reaped, so its pid is ours.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.0.wait().unwrap();
        assert!(status.success(), "muk2 serve exited {status}");
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn split_rdisk_outside() {
    let s = Scratch::new("srd");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('r');
    let rdisk = Outside::start(&t.name, &["rdisk", "--image", image.to_str().unwrap()]);
    let h = host(
        &t.dc,
        &[ServerKind::Fs, ServerKind::Ftp],
        &DiskSpec::default(),
        FormatPolicy::Never,
        Runner::Coroutines,
    );
    round_trip(&t.name, &s);
    support::stop(h, 2);
    rdisk.stop();
    fsck_clean(&image);
}

#[test]
fn split_fs_outside() {
    let s = Scratch::new("sfs");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('o');
    let h = host(
        &t.dc,
        &[ServerKind::Rdisk, ServerKind::Ftp],
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        Runner::Coroutines,
    );
    let fs = Outside::start(&t.name, &["fs", "--format", "never"]);
    round_trip(&t.name, &s);
    fs.stop();
    support::stop(h, 2);
    fsck_clean(&image);
}

/// A user-slot client with a 1 MiB buffer.
struct Raw {
    p: Proc,
    buf: m3ipc::Handle,
}

impl Raw {
    fn new(dc: &Dc) -> Raw {
        let p = muk::ftp_client::bind_user(dc, "raw").unwrap();
        let buf = p.alloc_buffer(1 << 20).unwrap();
        Raw { p, buf }
    }

    fn grant(&self, to: m3ipc::Endpoint, access: Access) -> GrantId {
        self.p.grant(self.buf, to, 0, 1 << 20, access).unwrap()
    }

    fn ask(&self, to: m3ipc::Endpoint, mut m: Message) -> Result<Message, Errno> {
        self.p.sendrec(to, &mut m, T)?;
        reply_result(&m).map(|()| m)
    }
}

fn malformed_requests(runner: Runner) {
    let t = TestDc::new('m');
    let h = host(
        &t.dc,
        &STORAGE,
        &DiskSpec::Memory(4 << 20),
        FormatPolicy::IfBlank,
        runner,
    );
    let ep = |k: ServerKind| t.dc.wait4bind(k.default_nr(), T).unwrap();
    let (rdisk, fs, ftp) = (
        ep(ServerKind::Rdisk),
        ep(ServerKind::Fs),
        ep(ServerKind::Ftp),
    );
    let c = Raw::new(&t.dc);
    // Wait for FS to mount.
    let mut ftp_ok = FtpClient::connect(&t.name, &ConnectOptions::default()).unwrap();
    support::eventually(Duration::from_secs(10), "FS mounted", || {
        ftp_ok.stat("/").is_ok()
    });

    // RDISK.
    let g = c.grant(rdisk, Access::READ_WRITE);
    let ro = c.grant(rdisk, Access::READ);
    let block = |first, count, grant| {
        BlockRequest {
            first,
            count,
            grant,
            offset: 0,
        }
        .encode(RD_READ)
    };
    assert_eq!(
        c.ask(rdisk, Message::new(0x04ff)).err(),
        Some(Errno::EDVSBADREQUEST)
    );
    let mut m = block(0, 1, g);
    m.payload[1] = 0;
    assert_eq!(c.ask(rdisk, m).err(), Some(Errno::EDVSBADVALUE));
    m.payload[1] = 1025;
    assert_eq!(c.ask(rdisk, m).err(), Some(Errno::EDVSBADVALUE));
    assert_eq!(
        c.ask(rdisk, block(4095, 2, g)).err(),
        Some(Errno::EDVSRANGE)
    );
    assert_eq!(
        c.ask(rdisk, block(u64::MAX, 1, g)).err(),
        Some(Errno::EDVSRANGE)
    );
    assert_eq!(
        c.ask(rdisk, block(0, 1, GrantId(1 << 63 | 4000))).err(),
        Some(Errno::EDVSPERM)
    );
    assert_eq!(c.ask(rdisk, block(0, 1, ro)).err(), Some(Errno::EDVSACCES));
    let mut off = block(0, 1, g);
    off.payload[3] = (1 << 20) - 512;
    assert_eq!(c.ask(rdisk, off).err(), Some(Errno::EDVSRANGE));
    assert!(c.ask(rdisk, block(0, 1024, g)).is_ok());
    let wr = BlockRequest {
        first: 4095,
        count: 1,
        grant: ro,
        offset: 0,
    }
    .encode(RD_WRITE);
    assert!(
        c.ask(rdisk, wr).is_ok(),
        "a write of the last block from a READ grant"
    );

    // FS.
    let gfs = c.grant(fs, Access::READ_WRITE);
    let path_req = |m_type, grant: GrantId, len: u64| {
        let mut m = Message::new(m_type);
        m.payload[0] = grant.0;
        m.payload[1] = len;
        m
    };
    c.p.buffer(c.buf)
        .unwrap()
        .write_at(0, b"/\xff\xfe")
        .unwrap();
    assert_eq!(
        c.ask(fs, path_req(FS_LOOKUP, gfs, 3)).err(),
        Some(Errno::EDVSBADVALUE)
    );
    assert_eq!(
        c.ask(fs, path_req(FS_LOOKUP, GrantId(77), 1)).err(),
        Some(Errno::EDVSPERM)
    );
    assert_eq!(
        c.ask(fs, path_req(FS_LOOKUP, gfs, 5000)).err(),
        Some(Errno::EDVSNAMETOOLONG)
    );
    c.p.buffer(c.buf).unwrap().write_at(0, b"relative").unwrap();
    assert_eq!(
        c.ask(fs, path_req(FS_LOOKUP, gfs, 8)).err(),
        Some(Errno::EDVSINVAL)
    );
    c.p.buffer(c.buf)
        .unwrap()
        .write_at(0, b"/nothing-here")
        .unwrap();
    assert_eq!(
        c.ask(fs, path_req(FS_LOOKUP, gfs, 13)).err(),
        Some(Errno::EDVSNOENT)
    );
    assert_eq!(
        c.ask(fs, Message::new(0x05ff)).err(),
        Some(Errno::EDVSBADREQUEST)
    );
    let mut st = Message::new(FS_STAT);
    st.payload[0] = u64::MAX;
    assert_eq!(c.ask(fs, st).err(), Some(Errno::EDVSBADVALUE));
    for ino in [0u32, 99_999, u32::MAX] {
        let read = DataRequest {
            ino,
            offset: 0,
            len: 10,
            grant: gfs,
            grant_offset: 0,
            grantor: Grantor::Requester,
        };
        assert!(
            c.ask(fs, read.encode(FS_READ)).is_err(),
            "read of inode {ino}"
        );
    }
    let read = DataRequest {
        ino: 1,
        offset: 0,
        len: 10,
        grant: gfs,
        grant_offset: 0,
        grantor: Grantor::Requester,
    };
    let mut big = read.encode(FS_READ);
    big.payload[2] = (1 << 20) + 1;
    assert_eq!(c.ask(fs, big).err(), Some(Errno::EDVSBADVALUE));
    // Only a system process (FTP) may name another endpoint's grant.
    let other = DataRequest {
        grantor: Grantor::Client(ftp),
        ..read
    };
    assert_eq!(
        c.ask(fs, other.encode(FS_READ)).err(),
        Some(Errno::EDVSPERM)
    );
    let mut rd = Message::new(FS_READDIR);
    rd.payload = [1, 0, gfs.0, 3, 0, 0, 0];
    let m = c.ask(fs, rd).unwrap();
    assert_eq!(
        (m.payload[0], m.payload[2]),
        (0, 1),
        "no room for an entry: none, more follow"
    );

    // FTP.
    let gftp = c.grant(ftp, Access::READ_WRITE);
    let req = |len, flags, data| FtpRequest {
        path: PathRef { grant: gftp, len },
        data,
        offset: 0,
        len: 1024,
        flags,
    };
    c.p.buffer(c.buf).unwrap().write_at(0, b"/x").unwrap();
    assert_eq!(
        c.ask(ftp, req(2, 8, gftp).encode(FTP_PUT)).err(),
        Some(Errno::EDVSBADVALUE)
    );
    assert_eq!(
        c.ask(ftp, req(6000, 0, gftp).encode(FTP_GET)).err(),
        Some(Errno::EDVSNAMETOOLONG)
    );
    assert_eq!(
        c.ask(ftp, Message::new(0x06ff)).err(),
        Some(Errno::EDVSBADREQUEST)
    );
    assert_eq!(
        c.ask(ftp, req(2, 0, gftp).encode(FTP_GET)).err(),
        Some(Errno::EDVSNOENT)
    );
    // A put whose data grant is forged fails in the copy; the file exists, empty.
    assert_eq!(
        c.ask(ftp, req(2, 1, GrantId(1 << 63 | 9)).encode(FTP_PUT))
            .err(),
        Some(Errno::EDVSPERM)
    );
    assert_eq!(ftp_ok.stat("/x").unwrap().size, 0);

    // All three still serve.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    ftp_ok
        .put(
            &mut &data[..],
            data.len() as u64,
            "mem",
            "/after",
            &mut |_, _| {},
        )
        .unwrap();
    let mut back = Vec::new();
    ftp_ok
        .get("/after", &mut back, "mem", &mut |_, _| {})
        .unwrap();
    assert!(back == data);
    drop(ftp_ok);
    support::stop(h, 3);
}

#[test]
fn malformed_requests_get_error_replies_muk2() {
    malformed_requests(Runner::Coroutines);
}

#[test]
fn malformed_requests_get_error_replies_muk_threads() {
    malformed_requests(Runner::Threads);
}

#[test]
fn client_killed_mid_put_leaves_servers_healthy_and_image_clean() {
    let s = Scratch::new("kill");
    let image = s.mkfs("disk.img", 64);
    let t = TestDc::new('k');
    let h = host(
        &t.dc,
        &STORAGE,
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        Runner::Coroutines,
    );
    let (big, _) = s.random_file("big", 48 << 20, 3);
    for round in 0..2 {
        let mut child = Command::new(M3FTP)
            .args(["--dc", &t.name, "--wait-ms", "10000", "--progress", "put"])
            .arg(&big)
            .arg("/victim")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The bar's first draw comes after the first chunk: the transfer is under way.
        let mut err = child.stderr.take().unwrap();
        let mut b = [0u8; 1];
        while err.read(&mut b).unwrap_or(0) == 1 && b[0] != b'%' {}
        if round == 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // The servers answer, and a new client works.
    let mut c = FtpClient::connect(&t.name, &ConnectOptions::default()).unwrap();
    let size = c.stat("/victim").unwrap().size;
    assert!(size <= 48 << 20, "{size}");
    let data = vec![0x5au8; 2 << 20];
    c.put(
        &mut &data[..],
        data.len() as u64,
        "mem",
        "/after",
        &mut |_, _| {},
    )
    .unwrap();
    let mut back = Vec::new();
    c.get("/after", &mut back, "mem", &mut |_, _| {}).unwrap();
    assert!(back == data);
    c.sync().unwrap();
    drop(c);
    support::stop(h, 3);
    fsck_clean(&image);
}

#[test]
fn clear_client_errors() {
    let s = Scratch::new("err");
    let t = TestDc::new('e');
    let h = host(
        &t.dc,
        &STORAGE,
        &DiskSpec::Memory(2 << 20),
        FormatPolicy::IfBlank,
        Runner::Coroutines,
    );
    let local = s.path("out");
    let e = fails(&t.name, &["get", "/missing", local.to_str().unwrap()]);
    assert!(e.contains("get /missing: no such file or directory"), "{e}");
    assert!(!local.exists(), "a failed get leaves no local file");
    let e = fails(&t.name, &["get", "/missing", "/nonexistent-dir/x"]);
    assert!(e.contains("no such file or directory"), "{e}");
    let (big, _) = s.random_file("big", 3 << 20, 5);
    let e = fails(&t.name, &["put", big.to_str().unwrap(), "/big"]);
    assert!(
        e.contains("put /big: no space left on the server's disk"),
        "{e}"
    );
    let (small, _) = s.random_file("small", 10, 5);
    let long = format!("/{}", "n".repeat(61));
    let e = fails(&t.name, &["put", small.to_str().unwrap(), &long]);
    assert!(e.contains("name too long"), "{e}");
    let e = fails(&t.name, &["put", s.path("absent").to_str().unwrap(), "/x"]);
    assert!(e.contains("absent") && e.contains("No such file"), "{e}");
    let e = fails(&t.name, &["ls", "/missing"]);
    assert!(e.contains("ls /missing: no such file or directory"), "{e}");
    // The disk was full, not broken: smaller files still fit.
    ok(&t.name, &["rm", "/big"]);
    ok(&t.name, &["put", small.to_str().unwrap(), "/small"]);
    support::stop(h, 3);

    // A DC without FTP: a clear error after the wait, not a hang.
    let started = Instant::now();
    let out = Command::new(M3FTP)
        .args(["--dc", &t.name, "--wait-ms", "200", "ls", "/"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(e.contains("no FTP server") && e.contains("nr 14"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // No DC at all.
    let e = fails("no-such-dc", &["ls", "/"]);
    assert!(e.contains("cannot open DC \"no-such-dc\""), "{e}");
}

#[test]
fn corrupt_superblock_is_a_clear_error_not_a_crash() {
    let s = Scratch::new("bad");
    let image = s.mkfs("disk.img", 4);
    // Scribble over the superblock (block 1).
    let mut bytes = std::fs::read(&image).unwrap();
    for b in &mut bytes[1024..1024 + 64] {
        *b = 0xa5;
    }
    std::fs::write(&image, &bytes).unwrap();
    let t = TestDc::new('c');
    let h = host(
        &t.dc,
        &STORAGE,
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        Runner::Coroutines,
    );
    let e = fails(&t.name, &["ls", "/"]);
    assert!(e.contains("I/O error on the server"), "{e}");
    // Still answering.
    let e = fails(&t.name, &["get", "/x", s.path("o").to_str().unwrap()]);
    assert!(e.contains("I/O error"), "{e}");
    support::stop(h, 3);
}

#[test]
fn child_main() {
    support::child_entry(|_, _, _| {});
}
