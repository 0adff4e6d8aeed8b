#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The storage servers end to end: RDISK, FS and FTP hosted under both runners (and RDISK or FS
//! as its own process), driven by the real `m3ftp` binary from separate processes, on images
//! made by util-linux `mkfs.minix -3` and checked by `fsck.minix -f` afterwards; malformed
//! requests; a client SIGKILLed mid-put; the client's error messages.

mod support;

use m3ipc::{Access, Dc, Errno, GrantId, Message, Proc, Timeout};
use muk::Runner;
use muk::ftp_client::{ConnectOptions, FtpClient};
use muk::server::ServerKind;
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use muk::storage::Grantor as BlockGrantor;
use muk::storage::fs::{DataRequest, FS_LOOKUP, FS_READ, FS_READDIR, FS_STAT, Grantor};
use muk::storage::ftp::{FTP_GET, FTP_PUT, FtpRequest};
use muk::storage::path::PathRef;
use muk::storage::rdisk::{BlockRequest, RD_READ, RD_WRITE};
use muk::storage::reply_result;
use std::io::Read;

use std::process::{Command, Stdio};

use std::time::{Duration, Instant};
use support::disk::{Muk2Process, Scratch, fsck_clean, host_storage, m3ftp, m3ftp_ok as ok};
use support::{Rng, TestDc};

use support::disk::{M3FTP, MUK2};
const T: Timeout = Timeout::Millis(10_000);

/// Host the storage servers `kinds` on `disk` under `runner`.
const STORAGE: [ServerKind; 3] = [ServerKind::Rdisk, ServerKind::Fs, ServerKind::Ftp];

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
    let s = Scratch::new("muk-storage-rt");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('s');
    let h = host_storage(
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
    let s = Scratch::new("muk-storage-fmt");
    let image = s.path("blank.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    let t = TestDc::new('f');
    let h = host_storage(
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
/// `muk2 serve ARGS --dc DC`, once it serves.
fn serve_outside(dc: &str, args: &[&str]) -> Muk2Process {
    let mut a = vec!["serve"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--dc", dc]);
    Muk2Process::start(&a, "serving")
}

/// SIGTERM to an outside server, which must exit 0.
fn stop_outside(p: Muk2Process) {
    assert_eq!(
        p.signal(libc::SIGTERM),
        Some(0),
        "muk2 serve did not exit 0"
    );
}

#[test]
fn split_rdisk_outside() {
    let s = Scratch::new("muk-storage-srd");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('r');
    let rdisk = serve_outside(&t.name, &["rdisk", "--image", image.to_str().unwrap()]);
    let h = host_storage(
        &t.dc,
        &[ServerKind::Fs, ServerKind::Ftp],
        &DiskSpec::default(),
        FormatPolicy::Never,
        Runner::Coroutines,
    );
    round_trip(&t.name, &s);
    support::stop(h, 2);
    stop_outside(rdisk);
    fsck_clean(&image);
}

#[test]
fn split_fs_outside() {
    let s = Scratch::new("muk-storage-sfs");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('o');
    let h = host_storage(
        &t.dc,
        &[ServerKind::Rdisk, ServerKind::Ftp],
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        Runner::Coroutines,
    );
    let fs = serve_outside(&t.name, &["fs", "--format", "never"]);
    round_trip(&t.name, &s);
    stop_outside(fs);
    support::stop(h, 2);
    fsck_clean(&image);
}

#[test]
fn split_ftp_outside() {
    let s = Scratch::new("muk-storage-sftp");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('p');
    let h = host_storage(
        &t.dc,
        &[ServerKind::Rdisk, ServerKind::Fs],
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        Runner::Threads,
    );
    let ftp = serve_outside(&t.name, &["ftp"]);
    round_trip(&t.name, &s);
    stop_outside(ftp);
    support::stop(h, 2);
    fsck_clean(&image);
}

/// FS run as its own process on a disk whose superblock is garbage: it says why it cannot
/// mount, answers every request with an error, and stops cleanly.
#[test]
fn corrupt_superblock_mount_error_names_the_problem() {
    let s = Scratch::new("muk-storage-badsb");
    let image = s.mkfs("disk.img", 4);
    let mut bytes = std::fs::read(&image).unwrap();
    bytes[1024..1024 + 32].fill(0xff);
    std::fs::write(&image, &bytes).unwrap();
    let t = TestDc::new('g');
    let h = host_storage(
        &t.dc,
        &[ServerKind::Rdisk, ServerKind::Ftp],
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        Runner::Coroutines,
    );
    let fs = Command::new(MUK2)
        .args(["serve", "fs", "--format", "never", "--dc", &t.name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let e = fails(&t.name, &["ls", "/"]);
    assert!(e.contains("I/O error on the server"), "{e}");
    // SAFETY: kill has no memory effects; the child is not reaped, so its pid is ours.
    unsafe { libc::kill(fs.id() as libc::pid_t, libc::SIGTERM) };
    let out = fs.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fs: cannot mount the disk on RDISK") && err.contains("corrupt"),
        "{err}"
    );
    support::stop(h, 2);
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
    let h = host_storage(
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
            grantor: BlockGrantor::Requester,
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
    // Only a system process (FS) may name a client's grant.
    let mut other = block(0, 1, g);
    other.payload[4] = BlockGrantor::Client(ftp).word();
    assert_eq!(c.ask(rdisk, other).err(), Some(Errno::EDVSPERM));
    let wr = BlockRequest {
        first: 4095,
        count: 1,
        grant: ro,
        offset: 0,
        grantor: BlockGrantor::Requester,
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
            disk_grant: None,
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
        disk_grant: None,
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
        handle: 0,
        disk_data: None,
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
    // A put whose data grant is forged fails in the copy and leaves no file.
    assert_eq!(
        c.ask(ftp, req(2, 1, GrantId(1 << 63 | 9)).encode(FTP_PUT))
            .err(),
        Some(Errno::EDVSPERM)
    );
    assert_eq!(
        ftp_ok.stat("/x").unwrap_err().errno(),
        Some(Errno::EDVSNOENT)
    );
    // A chunk naming no put of this client's (no handle, a forged one) is refused.
    assert_eq!(
        c.ask(ftp, req(2, 0, gftp).encode(FTP_PUT)).err(),
        Some(Errno::EDVSBADVALUE)
    );
    let forged = FtpRequest {
        handle: 1,
        ..req(2, 0, gftp)
    };
    assert_eq!(
        c.ask(ftp, forged.encode(FTP_PUT)).err(),
        Some(Errno::EDVSBADVALUE)
    );

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

/// Clients SIGKILLed mid-put (twice, over an existing file) and mid-get: the old file stays
/// byte-identical, and each killed put's temporary disappears within a bounded time while the
/// servers run (FS sees its writer is gone: free blocks and inodes come back), with no remount;
/// the servers still serve; after the stop, the image holds no temporary and fsck is clean.
fn client_killed_mid_transfer(runner: Runner) {
    let s = Scratch::new("muk-storage-kill");
    let image = s.mkfs("disk.img", 64);
    let t = TestDc::new('k');
    let h = host_storage(
        &t.dc,
        &STORAGE,
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        runner,
    );
    let (big, _) = s.random_file("big", 48 << 20, 3);
    let (old, old_data) = s.random_file("old", (1 << 20) + 333, 4);
    ok(&t.name, &["put", old.to_str().unwrap(), "/victim"]);
    let got = s.path("got");
    let mut before = support::disk::fs_free(&t.dc);
    // Two puts killed mid-file, then a get killed mid-file (RDISK and FS then write into the
    // grant of a client that is gone).
    for round in 0..3 {
        let mut cmd = Command::new(M3FTP);
        cmd.args(["--dc", &t.name, "--wait-ms", "10000", "--progress"]);
        if round < 2 {
            cmd.arg("put").arg(&big).arg("/victim");
        } else {
            ok(&t.name, &["put", big.to_str().unwrap(), "/whole"]);
            before = support::disk::fs_free(&t.dc);
            cmd.arg("get").arg("/whole").arg(&got);
        }
        let mut child = cmd
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
        if round < 2 {
            // The temporary held megabytes and an inode; FS gives them back by itself.
            let mut now = (0, 0);
            support::eventually(Duration::from_secs(10), "the temporary removed", || {
                now = support::disk::fs_free(&t.dc);
                now == before
            });
        }
    }
    // The servers answer, the old file is whole, and a new client works.
    let mut c = FtpClient::connect(&t.name, &ConnectOptions::default()).unwrap();
    let mut back = Vec::new();
    c.get("/victim", &mut back, "mem", &mut |_, _| {}).unwrap();
    assert!(back == old_data, "the killed puts changed /victim");
    assert_eq!(c.stat("/whole").unwrap().size, 48 << 20);
    let mut names: Vec<String> = c.ls("/").unwrap().into_iter().map(|e| e.name).collect();
    names.sort();
    assert_eq!(names, [".", "..", "victim", "whole"], "no temporary listed");
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
    let on_disk = support::disk::image_paths(&image);
    assert_eq!(on_disk, ["/after", "/victim", "/whole"], "{on_disk:?}");
}

#[test]
fn client_killed_mid_transfer_muk2() {
    client_killed_mid_transfer(Runner::Coroutines);
}

#[test]
fn client_killed_mid_transfer_muk_threads() {
    client_killed_mid_transfer(Runner::Threads);
}

#[test]
fn clear_client_errors() {
    let s = Scratch::new("muk-storage-err");
    let t = TestDc::new('e');
    let h = host_storage(
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
        e.contains("put /big: no space left on the server's disk; nothing was changed"),
        "{e}"
    );
    assert!(
        !listing(&t.name, "/").iter().any(|(n, _)| n == "big"),
        "a failed put of a new file leaves none"
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
    // Something bound at FTP's slot that never answers: the request times out.
    let mute =
        t.dc.bind_named(ServerKind::Ftp.default_nr(), "mute")
            .unwrap();
    let started = Instant::now();
    let out = Command::new(M3FTP)
        .args(["--dc", &t.name, "--timeout-s", "1", "ls", "/"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(e.contains("did not answer within 1 s"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(mute);
    // No DC at all.
    let e = fails("no-such-dc", &["ls", "/"]);
    assert!(e.contains("cannot open DC \"no-such-dc\""), "{e}");
}

#[test]
fn corrupt_superblock_is_a_clear_error_not_a_crash() {
    let s = Scratch::new("muk-storage-bad");
    let image = s.mkfs("disk.img", 4);
    // Scribble over the superblock (block 1).
    let mut bytes = std::fs::read(&image).unwrap();
    for b in &mut bytes[1024..1024 + 64] {
        *b = 0xa5;
    }
    std::fs::write(&image, &bytes).unwrap();
    let t = TestDc::new('c');
    let h = host_storage(
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

/// A client speaking FS's protocol directly, with a path buffer and a data buffer granted to FS.
struct FsClient {
    c: Raw,
    fs: m3ipc::Endpoint,
    path_buf: m3ipc::Handle,
    path_grant: GrantId,
    data_grant: GrantId,
}

impl FsClient {
    fn new(dc: &Dc) -> FsClient {
        let c = Raw::new(dc);
        let fs = dc.wait4bind(ServerKind::Fs.default_nr(), T).unwrap();
        let path_buf = c.p.alloc_buffer(8192).unwrap();
        let path_grant = c.p.grant(path_buf, fs, 0, 8192, Access::READ).unwrap();
        let data_grant = c.grant(fs, Access::READ_WRITE);
        FsClient {
            c,
            fs,
            path_buf,
            path_grant,
            data_grant,
        }
    }

    fn path(&self, m_type: i32, path: &str) -> Result<Message, Errno> {
        self.c
            .p
            .buffer(self.path_buf)
            .unwrap()
            .write_at(0, path.as_bytes())
            .unwrap();
        let mut m = Message::new(m_type);
        m.payload[0] = self.path_grant.0;
        m.payload[1] = path.len() as u64;
        self.c.ask(self.fs, m)
    }

    fn ino(&self, path: &str) -> Result<u32, Errno> {
        self.path(FS_LOOKUP, path)
            .map(|m| muk::storage::fs::decode_stat(&m).ino)
    }

    fn write(&self, path: &str, off: u64, data: &[u8]) -> Result<(), Errno> {
        let ino = self.ino(path)?;
        self.c
            .p
            .buffer(self.c.buf)
            .unwrap()
            .write_at(0, data)
            .unwrap();
        let req = DataRequest {
            ino,
            offset: off,
            len: data.len(),
            grant: self.data_grant,
            grant_offset: 0,
            grantor: Grantor::Requester,
            disk_grant: None,
        };
        let m = self
            .c
            .ask(self.fs, req.encode(muk::storage::fs::FS_WRITE))?;
        assert_eq!(m.payload[0], data.len() as u64);
        Ok(())
    }

    fn read_all(&self, path: &str) -> Result<Vec<u8>, Errno> {
        let m = self.path(FS_LOOKUP, path)?;
        let st = muk::storage::fs::decode_stat(&m);
        let mut out = vec![0u8; st.size as usize];
        let mut at = 0usize;
        while at < out.len() {
            let len = (out.len() - at).min(1 << 20);
            let req = DataRequest {
                ino: st.ino,
                offset: at as u64,
                len,
                grant: self.data_grant,
                grant_offset: 0,
                grantor: Grantor::Requester,
                disk_grant: None,
            };
            let m = self.c.ask(self.fs, req.encode(FS_READ))?;
            let n = m.payload[0] as usize;
            assert!(n > 0 && n <= len);
            self.c
                .p
                .buffer(self.c.buf)
                .unwrap()
                .read_at(0, &mut out[at..at + n])
                .unwrap();
            at += n;
        }
        Ok(out)
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), Errno> {
        let pair = format!("{from}\0{to}");
        self.path(muk::storage::fs::FS_RENAME, &pair).map(drop)
    }
}

/// What the model says a path is.
#[derive(Clone, Debug)]
enum Node {
    Dir,
    File(Vec<u8>),
}

/// Acceptance 1 through the servers: at least 2 000 random operations (creates, writes at random
/// offsets, truncates, renames, unlinks, mkdir/rmdir) sent to FS as requests, checked against
/// an in-memory model as they go and at the end; then `fsck.minix -f` finds no error.
#[test]
fn randomized_workload_through_fs_matches_a_model_and_fsck() {
    use muk::storage::fs::{FS_CREATE, FS_MKDIR, FS_RMDIR, FS_SYNC, FS_TRUNCATE, FS_UNLINK};
    use std::collections::BTreeMap;
    let s = Scratch::new("muk-storage-model");
    let image = s.mkfs("disk.img", 32);
    let t = TestDc::new('w');
    let h = host_storage(
        &t.dc,
        &STORAGE,
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        Runner::Coroutines,
    );
    let fs = FsClient::new(&t.dc);
    let mut model: BTreeMap<String, Node> = BTreeMap::new();
    model.insert("/".into(), Node::Dir);
    let mut rng = Rng(0x5eed_1234_9876_0001);
    let names = ["a", "b", "c", "d", "e", "f"];
    let parent = |p: &str| -> String {
        let (d, _) = muk::storage::path::split_parent(p);
        d.to_string()
    };
    let children = |model: &BTreeMap<String, Node>, dir: &str| {
        model
            .keys()
            .filter(|k| *k != "/" && parent(k) == dir)
            .count()
    };
    let mut done = [0usize; 8];
    for step in 0..4000u32 {
        let dirs: Vec<String> = model
            .iter()
            .filter(|(_, n)| matches!(n, Node::Dir))
            .map(|(k, _)| k.clone())
            .collect();
        let dir = &dirs[rng.below(dirs.len() as u64) as usize];
        let name = names[rng.below(names.len() as u64) as usize];
        let path = if dir == "/" {
            format!("/{name}")
        } else {
            format!("{dir}/{name}")
        };
        let existing = model.get(&path).cloned();
        let op = rng.below(8) as usize;
        let ctx = format!("step {step} op {op} {path} (model: {existing:?})");
        let ctx = &ctx[..ctx.len().min(200)];
        match op {
            0 => {
                let r = fs.path(FS_CREATE, &path);
                match existing {
                    Some(_) => assert_eq!(r.err(), Some(Errno::EDVSEXIST), "{ctx}"),
                    None => {
                        r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        model.insert(path, Node::File(Vec::new()));
                    }
                }
            }
            1 | 2 => {
                if let Some(Node::File(mut data)) = existing {
                    let off = rng.below(300 * 1024) as usize;
                    let len = 1 + rng.below(40 * 1024) as usize;
                    let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    fs.write(&path, off as u64, &bytes)
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    if data.len() < off + len {
                        data.resize(off + len, 0);
                    }
                    data[off..off + len].copy_from_slice(&bytes);
                    model.insert(path, Node::File(data));
                } else {
                    continue;
                }
            }
            3 => {
                if let Some(Node::File(mut data)) = existing {
                    let len = rng.below(350 * 1024) as usize;
                    let ino = fs.ino(&path).unwrap();
                    let mut m = Message::new(FS_TRUNCATE);
                    m.payload[0] = u64::from(ino);
                    m.payload[1] = len as u64;
                    fs.c.ask(fs.fs, m).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    data.resize(len, 0);
                    model.insert(path, Node::File(data));
                } else {
                    continue;
                }
            }
            4 => {
                // Rename a file to a free name in some directory.
                let to_dir = &dirs[rng.below(dirs.len() as u64) as usize];
                let to_name = names[rng.below(names.len() as u64) as usize];
                let to = if to_dir == "/" {
                    format!("/{to_name}")
                } else {
                    format!("{to_dir}/{to_name}")
                };
                match existing {
                    Some(Node::File(data)) if !model.contains_key(&to) => {
                        fs.rename(&path, &to)
                            .unwrap_or_else(|e| panic!("{ctx} -> {to}: {e}"));
                        model.remove(&path);
                        model.insert(to, Node::File(data));
                    }
                    None => {
                        assert_eq!(fs.rename(&path, &to).err(), Some(Errno::EDVSNOENT), "{ctx}")
                    }
                    _ => continue,
                }
            }
            5 => {
                let r = fs.path(FS_UNLINK, &path);
                match existing {
                    Some(Node::File(_)) => {
                        r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        model.remove(&path);
                    }
                    Some(Node::Dir) => assert_eq!(r.err(), Some(Errno::EDVSISDIR), "{ctx}"),
                    None => assert_eq!(r.err(), Some(Errno::EDVSNOENT), "{ctx}"),
                }
            }
            6 => {
                let r = fs.path(FS_MKDIR, &path);
                match existing {
                    Some(_) => assert_eq!(r.err(), Some(Errno::EDVSEXIST), "{ctx}"),
                    None => {
                        r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        model.insert(path, Node::Dir);
                    }
                }
            }
            _ => {
                let r = fs.path(FS_RMDIR, &path);
                match existing {
                    Some(Node::Dir) if children(&model, &path) == 0 => {
                        r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        model.remove(&path);
                    }
                    Some(Node::Dir) => assert_eq!(r.err(), Some(Errno::EDVSNOTEMPTY), "{ctx}"),
                    Some(Node::File(_)) => assert_eq!(r.err(), Some(Errno::EDVSNOTDIR), "{ctx}"),
                    None => assert_eq!(r.err(), Some(Errno::EDVSNOENT), "{ctx}"),
                }
            }
        }
        done[op] += 1;
        // Now and then, read a file back.
        if step % 50 == 0 {
            for (p, n) in &model {
                if let Node::File(data) = n {
                    assert!(fs.read_all(p).unwrap() == *data, "step {step}: {p} differs");
                    break;
                }
            }
        }
    }
    assert!(done.iter().sum::<usize>() >= 2000, "{done:?}");
    for (p, n) in &model {
        match n {
            Node::File(data) => assert!(fs.read_all(p).unwrap() == *data, "{p} differs"),
            Node::Dir => {
                let st = fs.path(FS_LOOKUP, p).unwrap();
                assert!(muk::storage::fs::decode_stat(&st).is_dir(), "{p}");
            }
        }
    }
    // The same files through FTP, whose GETs have RDISK copy whole blocks straight into the
    // client's buffer: holes and partial last blocks included.
    let mut ftp = FtpClient::connect(&t.name, &ConnectOptions::default()).unwrap();
    let mut checked = 0;
    for (p, n) in &model {
        if let Node::File(data) = n {
            let mut back = Vec::new();
            ftp.get(p, &mut back, "mem", &mut |_, _| {}).unwrap();
            assert!(back == *data, "{p} differs through FTP");
            checked += 1;
        }
    }
    assert!(checked > 0);
    drop(ftp);
    fs.c.ask(fs.fs, Message::new(FS_SYNC)).unwrap();
    drop(fs);
    support::stop(h, 3);
    fsck_clean(&image);
}

/// Acceptance 3 through the servers: a 64 MiB file (direct, indirect and double-indirect zones)
/// put and got back byte-identical by `m3ftp`, then `fsck.minix -f` clean.
#[test]
fn sixty_four_mib_file_round_trip() {
    let s = Scratch::new("muk-storage-64m");
    let image = s.mkfs("disk.img", 80);
    let t = TestDc::new('b');
    let h = host_storage(
        &t.dc,
        &STORAGE,
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        Runner::Coroutines,
    );
    let (big, data) = s.random_file("big", 64 << 20, 11);
    ok(&t.name, &["put", big.to_str().unwrap(), "/big"]);
    assert!(listing(&t.name, "/").contains(&("big".into(), 64 << 20)));
    let back = s.path("back");
    ok(&t.name, &["get", "/big", back.to_str().unwrap()]);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the 64 MiB file differs"
    );
    support::stop(h, 3);
    fsck_clean(&image);
}

/// FTP keeps the path of the last client it served, so a GET's later chunks need not read the
/// client's path buffer again (`SAME_PATH`). Another client's request in between must not
/// hand the first client the other's file: here a whole GET of `/b` by a second client runs
/// between two chunks of the first client's GET of `/a`.
#[test]
fn a_get_interleaved_with_another_clients_get_keeps_its_own_path() {
    let s = Scratch::new("muk-storage-same-path");
    let image = s.mkfs("disk.img", 32);
    let t = TestDc::new('i');
    let h = host_storage(
        &t.dc,
        &STORAGE,
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        Runner::Coroutines,
    );
    let (a, a_data) = s.random_file("a", (3 << 20) + 5, 21);
    let (b, b_data) = s.random_file("b", (2 << 20) + 9, 22);
    ok(&t.name, &["put", a.to_str().unwrap(), "/a"]);
    ok(&t.name, &["put", b.to_str().unwrap(), "/b"]);
    let mut first = FtpClient::connect(&t.name, &ConnectOptions::default()).unwrap();
    let mut second = FtpClient::connect(&t.name, &ConnectOptions::default()).unwrap();
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    let mut chunks = 0;
    first
        .get_with(
            "/a",
            &mut |chunk| {
                got_a.extend_from_slice(chunk);
                chunks += 1;
                if chunks == 1 {
                    second.get("/b", &mut got_b, "mem", &mut |_, _| {}).unwrap();
                }
                Ok(())
            },
            &mut |_, _| {},
        )
        .unwrap();
    assert!(chunks > 2, "{chunks} chunks");
    assert!(got_b == b_data, "the second client got other bytes");
    assert!(got_a == a_data, "the first client got other bytes");
    drop((first, second));
    support::stop(h, 3);
    fsck_clean(&image);
}

/// A file replaced by a shorter one while a GET of it (over several lanes: it is 8 MiB) is under
/// way: the GET fails and says the file changed, instead of handing over a mix of the two.
#[test]
fn a_file_replaced_during_a_get_fails_the_get() {
    let s = Scratch::new("muk-storage-replaced");
    let image = s.mkfs("disk.img", 32);
    let t = TestDc::new('j');
    let h = host_storage(
        &t.dc,
        &STORAGE,
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        Runner::Coroutines,
    );
    let (a, _) = s.random_file("a", 8 << 20, 23);
    ok(&t.name, &["put", a.to_str().unwrap(), "/a"]);
    let mut reader = FtpClient::connect(&t.name, &ConnectOptions::default()).unwrap();
    let mut writer = FtpClient::connect(&t.name, &ConnectOptions::default()).unwrap();
    let short = vec![7u8; 100];
    let mut chunks = 0;
    let got = reader.get_with(
        "/a",
        &mut |_| {
            chunks += 1;
            if chunks == 1 {
                writer
                    .put(&mut &short[..], 100, "mem", "/a", &mut |_, _| {})
                    .unwrap();
            }
            Ok(())
        },
        &mut |_, _| {},
    );
    match got {
        Err(muk::ftp_client::FtpError::Protocol(why)) => {
            assert!(why.contains("changed") || why.contains("ended"), "{why}")
        }
        other => panic!("the GET of a replaced file gave {other:?}"),
    }
    // Both clients go on working.
    let mut back = Vec::new();
    reader.get("/a", &mut back, "mem", &mut |_, _| {}).unwrap();
    assert!(back == short);
    drop((reader, writer));
    support::stop(h, 3);
    fsck_clean(&image);
}
