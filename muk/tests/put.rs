#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Atomic puts and the `m3ftp` command's edges, under both runners, on `mkfs.minix -3` images
//! checked by `fsck.minix -f` afterwards.
//!
//! A put that runs out of space over an existing file leaves it byte-identical, lists nothing
//! new and gives every block and inode back, by the direct path (RDISK copies from the
//! client's buffer) and through FS; a failed put of a new file leaves none; temporaries left
//! on the disk by an FS that stopped mid-put are gone after the next mount. Then the client's
//! rough edges: relative paths, `--progress` after the subcommand, `-` for standard output and
//! input, a target ending in `/` or naming a directory, names with control characters.

mod support;

use m3ipc::Errno;
use muk::Runner;
use muk::ftp_client::{ConnectOptions, FtpClient};
use muk::server::ServerKind;
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use muk::storage::path::PUT_TEMP_PREFIX;
use std::path::Path;
use std::time::Duration;
use support::TestDc;
use support::disk::{
    Scratch, fs_free, fsck_clean, host_storage, image_paths, is_temp_path, m3ftp, m3ftp_ok as ok,
    m3ftp_stdin,
};

const STORAGE: [ServerKind; 3] = [ServerKind::Rdisk, ServerKind::Fs, ServerKind::Ftp];

#[test]
fn child_main() {
    support::child_entry(|_, _, _| {});
}

/// `m3ftp` that must fail; its stderr.
fn fails(dc: &str, args: &[&str]) -> String {
    let out = m3ftp(dc, args);
    assert_eq!(out.status.code(), Some(1), "m3ftp {args:?}: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

/// What `m3ftp ls DIR` prints, sorted.
fn listing(dc: &str, dir: &str) -> Vec<String> {
    let mut l: Vec<String> = ok(dc, &["ls", dir]).lines().map(String::from).collect();
    l.sort();
    l
}

/// The file at `remote`, fetched by the library.
fn fetch(c: &mut FtpClient, remote: &str) -> Vec<u8> {
    let mut back = Vec::new();
    c.get(remote, &mut back, "mem", &mut |_, _| {}).unwrap();
    back
}

/// The storage servers on `image` under `runner`.
fn host(dc: &m3ipc::Dc, image: &Path, runner: Runner) -> muk::Host {
    host_storage(
        dc,
        &STORAGE,
        &DiskSpec::Image(image.to_path_buf()),
        FormatPolicy::Never,
        runner,
    )
}

/// A put larger than the free space over an existing file, by `m3ftp` (direct) and by the
/// library through FS (`set_direct(false)`), then of a new file: each fails saying nothing
/// was changed, and nothing was.
fn overwrite_out_of_space(runner: Runner) {
    let s = Scratch::new("muk-put-nospc");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('n');
    let h = host(&t.dc, &image, runner);
    let (old, old_data) = s.random_file("old", 5 << 20, 21);
    let (big, big_data) = s.random_file("big", 20 << 20, 22);
    ok(&t.name, &["mkdir", "/d"]);
    ok(&t.name, &["put", old.to_str().unwrap(), "/precious"]);
    ok(&t.name, &["put", old.to_str().unwrap(), "/d/other"]);
    let root = listing(&t.name, "/");
    let free = fs_free(&t.dc);

    let e = fails(&t.name, &["put", big.to_str().unwrap(), "/precious"]);
    assert!(
        e.contains("put /precious: no space left on the server's disk; nothing was changed"),
        "{e}"
    );
    let mut c = FtpClient::connect(&t.name, &ConnectOptions::default()).unwrap();
    assert!(fetch(&mut c, "/precious") == old_data, "/precious changed");
    assert_eq!(listing(&t.name, "/"), root);
    assert_eq!(fs_free(&t.dc), free, "blocks or inodes not given back");

    // Through FS: FS copies every byte from the client's buffer.
    c.set_direct(false);
    let e = c
        .put(
            &mut &big_data[..],
            big_data.len() as u64,
            "big",
            "/d/other",
            &mut |_, _| {},
        )
        .unwrap_err();
    assert_eq!(e.errno(), Some(Errno::EDVSNOSPC));
    assert!(e.to_string().ends_with("; nothing was changed"), "{e}");
    assert!(fetch(&mut c, "/d/other") == old_data, "/d/other changed");
    assert_eq!(fs_free(&t.dc), free);

    // A new file: none is left behind, either way.
    for direct in [true, false] {
        c.set_direct(direct);
        let e = c
            .put(
                &mut &big_data[..],
                big_data.len() as u64,
                "big",
                "/d/new",
                &mut |_, _| {},
            )
            .unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EDVSNOSPC), "direct {direct}");
        assert_eq!(
            c.stat("/d/new").unwrap_err().errno(),
            Some(Errno::EDVSNOENT),
            "direct {direct}"
        );
        assert_eq!(fs_free(&t.dc), free, "direct {direct}");
    }
    let e = fails(&t.name, &["put", big.to_str().unwrap(), "/new"]);
    assert!(e.contains("nothing was changed"), "{e}");
    assert_eq!(listing(&t.name, "/"), root);
    // A put that fits still replaces the file, by both paths.
    let (fits, fits_data) = s.random_file("fits", (3 << 20) + 1, 23);
    ok(&t.name, &["put", fits.to_str().unwrap(), "/precious"]);
    assert!(fetch(&mut c, "/precious") == fits_data);
    c.put(
        &mut &fits_data[..],
        fits_data.len() as u64,
        "fits",
        "/d/other",
        &mut |_, _| {},
    )
    .unwrap();
    assert!(fetch(&mut c, "/d/other") == fits_data);
    drop(c);
    support::stop(h, 3);
    fsck_clean(&image);
    assert_eq!(image_paths(&image), ["/d", "/d/other", "/precious"]);
}

#[test]
fn overwrite_out_of_space_changes_nothing_muk2() {
    overwrite_out_of_space(Runner::Coroutines);
}

#[test]
fn overwrite_out_of_space_changes_nothing_muk_threads() {
    overwrite_out_of_space(Runner::Threads);
}

/// Put temporaries on the disk as an FS that stopped mid-put leaves them (written here
/// with `minixfs`, in the root and in a subdirectory): the next mount removes them, under
/// either runner, and gives their space back; the files next to them are untouched.
fn orphans_removed_at_mount(runner: Runner) {
    let s = Scratch::new("muk-put-orphan");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('o');
    let h = host(&t.dc, &image, runner);
    let (old, old_data) = s.random_file("old", 300_000, 31);
    ok(&t.name, &["mkdir", "/d"]);
    ok(&t.name, &["put", old.to_str().unwrap(), "/d/precious"]);
    let free = fs_free(&t.dc);
    support::stop(h, 3);
    {
        let dev = minixfs::FileDevice::open(&image).unwrap();
        let mut fs = minixfs::FileSystem::mount(dev).unwrap();
        let d = fs.lookup("/d").unwrap();
        for (dir, n) in [(minixfs::ROOT, 1), (d, 2), (d, 3)] {
            let ino = fs
                .create(dir, &format!("{PUT_TEMP_PREFIX}{n}"), 0o644)
                .unwrap();
            fs.write(ino, 0, &vec![n as u8; 200_000]).unwrap();
        }
        fs.sync().unwrap();
    }
    fsck_clean(&image);
    assert_eq!(
        image_paths(&image)
            .iter()
            .filter(|p| is_temp_path(p))
            .count(),
        3
    );

    let t = TestDc::new('p');
    let h = host(&t.dc, &image, runner);
    assert_eq!(listing(&t.name, "/d").len(), 3, "., .. and precious");
    assert_eq!(fs_free(&t.dc), free, "the temporaries' space is back");
    let mut c = FtpClient::connect(&t.name, &ConnectOptions::default()).unwrap();
    assert!(fetch(&mut c, "/d/precious") == old_data);
    drop(c);
    support::stop(h, 3);
    fsck_clean(&image);
    assert_eq!(image_paths(&image), ["/d", "/d/precious"]);
}

#[test]
fn orphaned_temporaries_removed_at_mount_muk2() {
    orphans_removed_at_mount(Runner::Coroutines);
}

#[test]
fn orphaned_temporaries_removed_at_mount_muk_threads() {
    orphans_removed_at_mount(Runner::Threads);
}

/// The `m3ftp` command's edges.
fn client_edges(runner: Runner) {
    let s = Scratch::new("muk-put-edges");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('e');
    let dc = t.name.as_str();
    let h = host(&t.dc, &image, runner);
    let (small, small_data) = s.random_file("small", 1000, 41);
    let (big, big_data) = s.random_file("big", (5 << 20) + 7, 42);
    let small = small.to_str().unwrap();

    // A relative remote path: say it must be absolute, and how.
    let e = fails(dc, &["put", small, "b"]);
    assert!(
        e.contains("put b: remote paths must be absolute") && e.contains("/b"),
        "{e}"
    );
    let e = fails(dc, &["get", "b", s.path("x").to_str().unwrap()]);
    assert!(e.contains("get b: remote paths must be absolute"), "{e}");
    assert!(!s.path("x").exists());

    // Options after the subcommand: --progress draws the bar, --dc names the DC.
    let out = std::process::Command::new(support::disk::M3FTP)
        .args([
            "put",
            big.to_str().unwrap(),
            "/big",
            "--progress",
            "--dc",
            dc,
        ])
        .args(["--wait-ms", "10000"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("100%"),
        "{out:?}"
    );

    // `-`: standard output for get, standard input for put (sizes around the 1 MiB chunk).
    let out = m3ftp(dc, &["get", "/big", "-"]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout == big_data, "get to stdout differs");
    assert!(!Path::new("-").exists(), "no file named -");
    for len in [0usize, 10, 1 << 20, 2 << 20, (2 << 20) + 1] {
        let data: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
        let out = m3ftp_stdin(dc, &["put", "-", "/stdin"], &data);
        assert!(out.status.success(), "{len}: {out:?}");
        assert!(m3ftp(dc, &["get", "/stdin", "-"]).stdout == data, "{len}");
    }

    // A target ending in / (or naming a directory) means the file of LOCAL's name in it.
    ok(dc, &["mkdir", "/d"]);
    ok(dc, &["put", small, "/d/"]);
    assert!(m3ftp(dc, &["get", "/d/small", "-"]).stdout == small_data);
    ok(dc, &["put", big.to_str().unwrap(), "/d"]);
    assert!(m3ftp(dc, &["get", "/d/big", "-"]).stdout == big_data);
    let d = listing(dc, "/d");
    assert_eq!(d.len(), 4, "{d:?}");
    let e = fails(dc, &["put", small, "/nodir/"]);
    assert!(
        e.contains("put /nodir/small: no such file or directory"),
        "{e}"
    );
    let out = m3ftp_stdin(dc, &["put", "-", "/d/"], b"x");
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("names a directory"),
        "{e}"
    );

    // Control characters in a name: refused by the client, and by FS itself.
    let root = listing(dc, "/");
    for bad in ["/a\nb", "/tab\there", "/esc\u{1b}[1m", "/d/del\u{7f}"] {
        let e = fails(dc, &["put", small, bad]);
        assert!(
            e.contains("may not contain control characters"),
            "{bad:?}: {e}"
        );
        assert_eq!(e.lines().count(), 1, "the name is shown escaped: {e}");
    }
    assert_eq!(listing(dc, "/"), root);
    let fs =
        t.dc.wait4bind(ServerKind::Fs.default_nr(), m3ipc::Timeout::Millis(5000))
            .unwrap();
    let p = muk::ftp_client::bind_user(&t.dc, "raw").unwrap();
    let buf = p.alloc_buffer(4096).unwrap();
    let path = format!("/{PUT_TEMP_PREFIX}x\n");
    p.buffer(buf).unwrap().write_at(0, path.as_bytes()).unwrap();
    let g = p.grant(buf, fs, 0, 4096, m3ipc::Access::READ).unwrap();
    for op in [
        muk::storage::fs::FS_CREATE,
        muk::storage::fs::FS_PUT_BEGIN,
        muk::storage::fs::FS_LOOKUP,
    ] {
        let mut m = m3ipc::Message::new(op);
        m.payload[0] = g.0;
        m.payload[1] = path.len() as u64;
        p.sendrec(fs, &mut m, m3ipc::Timeout::Millis(5000)).unwrap();
        assert_eq!(
            muk::storage::reply_result(&m),
            Err(Errno::EDVSINVAL),
            "{op:#x}"
        );
    }
    drop(p);
    support::stop(h, 3);
    fsck_clean(&image);
    let names = image_paths(&image);
    assert_eq!(names, ["/big", "/d", "/d/big", "/d/small", "/stdin"]);
}

#[test]
fn client_edges_muk2() {
    client_edges(Runner::Coroutines);
}

#[test]
fn client_edges_muk_threads() {
    client_edges(Runner::Threads);
}

/// FS's put requests directly: a writer may have at most `MAX_PUTS_PER_WRITER` under way, only
/// its own handles are taken (not another writer's, not a plain file's), an abort and a commit
/// end a put, and the temporaries of a writer that unbinds are gone within a bounded time.
fn fs_put_requests(runner: Runner) {
    use m3ipc::{Access, Message, Timeout};
    use muk::storage::fs::{
        DataRequest, FS_CREATE, FS_PUT_ABORT, FS_PUT_BEGIN, FS_PUT_COMMIT, FS_PUT_WRITE, Grantor,
        MAX_PUTS_PER_WRITER, decode_stat,
    };
    const T: Timeout = Timeout::Millis(10_000);
    let t = TestDc::new('r');
    let h = host_storage(
        &t.dc,
        &STORAGE,
        &DiskSpec::Memory(8 << 20),
        FormatPolicy::IfBlank,
        runner,
    );
    // Once FS has mounted.
    ok(&t.name, &["ls", "/"]);
    let fs = t.dc.wait4bind(ServerKind::Fs.default_nr(), T).unwrap();
    let free = fs_free(&t.dc);
    let writer = |name: &str| {
        let p = muk::ftp_client::bind_user(&t.dc, name).unwrap();
        let buf = p.alloc_buffer(1 << 20).unwrap();
        let g = p.grant(buf, fs, 0, 1 << 20, Access::READ_WRITE).unwrap();
        (p, buf, g)
    };
    let ask = |p: &m3ipc::Proc, mut m: Message| -> Result<Message, Errno> {
        p.sendrec(fs, &mut m, T)?;
        muk::storage::reply_result(&m).map(|()| m)
    };
    let with_path = |p: &m3ipc::Proc, buf, g: m3ipc::GrantId, op, path: &str| {
        p.buffer(buf).unwrap().write_at(0, path.as_bytes()).unwrap();
        let mut m = Message::new(op);
        m.payload[0] = g.0;
        m.payload[1] = path.len() as u64;
        ask(p, m)
    };
    let end = |p: &m3ipc::Proc, op, ino: u32| {
        let mut m = Message::new(op);
        m.payload[0] = u64::from(ino);
        ask(p, m).map(drop)
    };
    let (a, abuf, ag) = writer("a");
    let (b, bbuf, bg) = writer("b");
    let mut handles = Vec::new();
    for _ in 0..MAX_PUTS_PER_WRITER {
        handles.push(decode_stat(&with_path(&a, abuf, ag, FS_PUT_BEGIN, "/f").unwrap()).ino);
    }
    assert_eq!(
        with_path(&a, abuf, ag, FS_PUT_BEGIN, "/f").err(),
        Some(Errno::EDVSAGAIN)
    );
    // Another writer still may; it cannot touch a's puts, nor a plain file by put requests.
    let hb = decode_stat(&with_path(&b, bbuf, bg, FS_PUT_BEGIN, "/f").unwrap()).ino;
    assert_eq!(
        end(&b, FS_PUT_COMMIT, handles[0]).err(),
        Some(Errno::EDVSBADVALUE)
    );
    assert_eq!(
        end(&b, FS_PUT_ABORT, handles[0]).err(),
        Some(Errno::EDVSBADVALUE)
    );
    let plain = decode_stat(&with_path(&b, bbuf, bg, FS_CREATE, "/plain").unwrap()).ino;
    let write = |ino| DataRequest {
        ino,
        offset: 0,
        len: 4,
        grant: bg,
        grant_offset: 0,
        grantor: Grantor::Requester,
        disk_grant: None,
    };
    assert_eq!(
        ask(&b, write(plain).encode(FS_PUT_WRITE)).err(),
        Some(Errno::EDVSBADVALUE)
    );
    assert_eq!(
        ask(&b, write(handles[1]).encode(FS_PUT_WRITE)).err(),
        Some(Errno::EDVSBADVALUE)
    );
    assert_eq!(
        ask(&b, write(hb).encode(FS_PUT_WRITE)).unwrap().payload[0],
        4
    );
    assert_eq!(
        end(&b, FS_PUT_COMMIT, plain).err(),
        Some(Errno::EDVSBADVALUE)
    );
    // b's commit makes /f; a commit of the same handle again is refused.
    end(&b, FS_PUT_COMMIT, hb).unwrap();
    assert_eq!(end(&b, FS_PUT_COMMIT, hb).err(), Some(Errno::EDVSBADVALUE));
    end(&a, FS_PUT_ABORT, handles[0]).unwrap();
    let f = listing(&t.name, "/");
    assert_eq!(f.len(), 4, ". .. f plain: {f:?}");
    // a unbinds with seven puts under way: FS removes their temporaries by itself.
    drop(a);
    let mut b_files = fs_free(&t.dc);
    support::eventually(Duration::from_secs(10), "a's temporaries removed", || {
        b_files = fs_free(&t.dc);
        b_files.1 == free.1 - 2
    });
    drop(b);
    support::stop(h, 3);
}

#[test]
fn fs_put_requests_muk2() {
    fs_put_requests(Runner::Coroutines);
}

#[test]
fn fs_put_requests_muk_threads() {
    fs_put_requests(Runner::Threads);
}
