#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Nothing lost on the way down and back up: a stop (of a `Host`, of `muk2 run` by SIGTERM, of
//! `muk2 serve fs` by SIGTERM) writes FS's unsynced changes back to RDISK and flushes the image
//! file, under both runners; a server stuck at its stop does not hang it; FS mounts again when
//! an RDISK run as its own process is killed and restarted on the same image.
//!
//! Each test leaves changes FS has not synced (a file written through FS's own protocol, no
//! `FS_SYNC`; `m3ftp put` syncs by itself) and stops at once, well inside FS's idle sync, so a
//! stop that drops FS's cache loses them. Afterwards `fsck.minix -f` must find the image clean
//! and a fresh host must serve every file byte for byte.

mod support;

use m3ipc::{Access, Dc, Errno, Message, Proc, Timeout};
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use muk::server::{Server, ServerKind};
use muk::storage::fs::{DataRequest, FS_CREATE, FS_WRITE, Grantor, decode_stat};
use muk::storage::reply_result;
use muk::{Host, Hosted, Ipc, Runner};
use std::path::Path;

use std::time::{Duration, Instant};
use support::disk::{Muk2Process, Scratch, fsck_clean, host_storage, m3ftp, m3ftp_ok as ok};
use support::{Rng, TestDc};

const T: Timeout = Timeout::Millis(10_000);
const STORAGE: [ServerKind; 3] = [ServerKind::Rdisk, ServerKind::Fs, ServerKind::Ftp];

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// `m3ftp get REMOTE` must give exactly `want`.
fn get_is(dc: &str, s: &Scratch, remote: &str, want: &[u8]) {
    let local = s.path("back");
    ok(dc, &["get", remote, local.to_str().unwrap()]);
    assert!(std::fs::read(&local).unwrap() == want, "{remote} differs");
}

/// The storage servers `kinds` on the image, hosted under `runner`.
fn host(dc: &Dc, kinds: &[ServerKind], image: &Path, runner: Runner) -> Host {
    host_storage(
        dc,
        kinds,
        &DiskSpec::Image(image.to_path_buf()),
        FormatPolicy::Never,
        runner,
    )
}

/// Put a file through `m3ftp` (which syncs), then create `unsynced` through FS's own protocol
/// without a sync. Returns both files' names and contents.
fn leave_changes(dc_name: &str, s: &Scratch, seed: u64) -> Vec<(String, Vec<u8>)> {
    let synced = random(700_000, seed);
    let local = s.path("put");
    std::fs::write(&local, &synced).unwrap();
    ok(dc_name, &["put", local.to_str().unwrap(), "/synced.bin"]);
    let unsynced = random(300_001, seed + 1);
    let dc = Dc::open(dc_name).unwrap();
    write_without_sync(&dc, "/unsynced.bin", &unsynced);
    vec![
        ("/synced.bin".into(), synced),
        ("/unsynced.bin".into(), unsynced),
    ]
}

/// Create `path` holding `data` (at most 1 MiB) by FS requests, and send no `FS_SYNC`.
fn write_without_sync(dc: &Dc, path: &str, data: &[u8]) {
    let p: Proc = muk::ftp_client::bind_user(dc, "raw").unwrap();
    let fs = dc.wait4bind(ServerKind::Fs.default_nr(), T).unwrap();
    let path_buf = p.alloc_buffer(4096).unwrap();
    let data_buf = p.alloc_buffer(1 << 20).unwrap();
    p.buffer(path_buf)
        .unwrap()
        .write_at(0, path.as_bytes())
        .unwrap();
    p.buffer(data_buf).unwrap().write_at(0, data).unwrap();
    let path_grant = p.grant(path_buf, fs, 0, 4096, Access::READ).unwrap();
    let data_grant = p.grant(data_buf, fs, 0, 1 << 20, Access::READ).unwrap();
    let ask = |mut m: Message| -> Result<Message, Errno> {
        p.sendrec(fs, &mut m, T)?;
        reply_result(&m).map(|()| m)
    };
    let mut m = Message::new(FS_CREATE);
    m.payload[0] = path_grant.0;
    m.payload[1] = path.len() as u64;
    // FS may still be mounting.
    let mut created = None;
    support::eventually(Duration::from_secs(10), "FS mounted", || {
        created = ask(m).ok();
        created.is_some()
    });
    let created = created.unwrap();
    let req = DataRequest {
        ino: decode_stat(&created).ino,
        offset: 0,
        len: data.len(),
        grant: data_grant,
        grant_offset: 0,
        grantor: Grantor::Requester,
        disk_grant: None,
    };
    let wrote = ask(req.encode(FS_WRITE)).unwrap();
    assert_eq!(wrote.payload[0], data.len() as u64);
}

/// Serve the image in a fresh host and check every file reads back identical.
fn check_files(image: &Path, files: &[(String, Vec<u8>)], s: &Scratch) {
    fsck_clean(image);
    let t = TestDc::new('v');
    let h = host(&t.dc, &STORAGE, image, Runner::Coroutines);
    for (name, data) in files {
        get_is(&t.name, s, name, data);
    }
    support::stop(h, 3);
}

fn host_stop_writes_back(runner: Runner) {
    let s = Scratch::new("muk-durable-host");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('d');
    let h = host(&t.dc, &STORAGE, &image, runner);
    let files = leave_changes(&t.name, &s, 3);
    support::stop(h, 3);
    check_files(&image, &files, &s);
}

#[test]
fn host_stop_writes_back_muk2() {
    host_stop_writes_back(Runner::Coroutines);
}

#[test]
fn host_stop_writes_back_muk_threads() {
    host_stop_writes_back(Runner::Threads);
}

/// A child process that prints a line once it serves; killed on drop.

#[test]
fn muk2_run_sigterm_writes_back_under_both_runners() {
    let s = Scratch::new("muk-durable-run");
    for threads in [false, true] {
        let image = s.mkfs("disk.img", 16);
        let dc = format!("t5d{}{}", std::process::id(), u8::from(threads));
        let config = s.path("muk.toml");
        std::fs::write(
            &config,
            format!(
                "[dc]\nname = \"{dc}\"\n[[server]]\nname = \"rdisk\"\nimage = \"{}\"\n\
                 [[server]]\nname = \"fs\"\nformat = \"never\"\n[[server]]\nname = \"ftp\"\n",
                image.display()
            ),
        )
        .unwrap();
        let mut args = vec!["run", "--config", config.to_str().unwrap()];
        if threads {
            args.push("--threads");
        }
        let run = Muk2Process::start(&args, "running; stop with");
        let files = leave_changes(&dc, &s, 11);
        assert_eq!(run.signal(libc::SIGTERM), Some(0), "threads: {threads}");
        check_files(&image, &files, &s);
    }
}

/// Write `config`'s text for `muk2 run` of RDISK on `image`, FS and FTP (and echo when asked)
/// in DC `dc`.
fn storage_config(s: &Scratch, dc: &str, image: &Path, echo: bool) -> std::path::PathBuf {
    let config = s.path("muk.toml");
    let mut text = format!(
        "[dc]\nname = \"{dc}\"\n[[server]]\nname = \"rdisk\"\nimage = \"{}\"\n\
         [[server]]\nname = \"fs\"\nformat = \"never\"\n[[server]]\nname = \"ftp\"\n",
        image.display()
    );
    if echo {
        text.push_str("[[server]]\nname = \"echo\"\n");
    }
    std::fs::write(&config, text).unwrap();
    config
}

/// SIGHUP (the terminal of `muk2 run ... &` closed) stops it as SIGTERM does: in order, exit 0,
/// unsynced writes on the image, the DC removed.
#[test]
fn muk2_run_sighup_stops_in_order() {
    let s = Scratch::new("muk-durable-hup");
    let image = s.mkfs("disk.img", 16);
    let dc = format!("t5h{}", std::process::id());
    let config = storage_config(&s, &dc, &image, false);
    let run = Muk2Process::start(
        &["run", "--config", config.to_str().unwrap()],
        "running; stop with",
    );
    let files = leave_changes(&dc, &s, 31);
    assert_eq!(run.signal(libc::SIGHUP), Some(0));
    assert!(Dc::open(&dc).is_err(), "DC {dc} was not removed");
    check_files(&image, &files, &s);
}

/// Another process zero-fills the whole slot table while MUK2 idles: every server's binding is
/// gone. Outside calls are refused at once (an error, not a hang). MUK2 notices within a tick
/// that its slots were taken and stops in order by itself; a SIGINT then, or at any point, ends
/// it within a second. It exits 1: it did not stop because it was asked, and FS could not
/// finish: its write-back stages blocks in the DC's buffer pool, whose calls need FS's binding,
/// which is gone. So the unsynced changes are lost, while the image stays clean with every
/// synced file intact (RDISK is not handed half a sync), and the DC is removed.
#[test]
fn muk2_stops_in_order_when_its_slot_table_is_zeroed() {
    use m3ipc::layout::{DOORBELL_SLEEPING, doorbell_offset, slot_table};
    use std::os::unix::fs::FileExt;
    let s = Scratch::new("muk-durable-zero");
    let image = s.mkfs("disk.img", 16);
    let dc_name = format!("t5z{}", std::process::id());
    let config = storage_config(&s, &dc_name, &image, true);
    let run = Muk2Process::start(
        &["run", "--config", config.to_str().unwrap()],
        "running; stop with",
    );
    let files = leave_changes(&dc_name, &s, 41);
    let dc = Dc::open(&dc_name).unwrap();
    let echo = dc.wait4bind(ServerKind::Echo.default_nr(), T).unwrap();
    let before = muk::ftp_client::bind_user(&dc, "before").unwrap();
    let region = std::fs::File::options()
        .read(true)
        .write(true)
        .open(dc.path())
        .unwrap();
    // While MUK2 sleeps (its doorbell's sleeping bit set), one write of zeros over the table.
    let bell = doorbell_offset(&dc, ServerKind::Echo.default_nr()).unwrap();
    support::eventually(Duration::from_secs(10), "MUK2 asleep", || {
        let mut w = [0u8; 4];
        region.read_exact_at(&mut w, bell as u64).unwrap();
        u32::from_ne_bytes(w) & DOORBELL_SLEEPING != 0
    });
    let table = slot_table(&dc);
    region
        .write_all_at(&vec![0u8; table.len()], table.start as u64)
        .unwrap();
    // Refused, not hung: the caller lost its own binding; a new caller finds no server.
    let refused = |p: &Proc, what: &str| {
        let began = Instant::now();
        let mut m = Message::new(muk::protocol::ECHO_ECHO);
        let r = p.sendrec(echo, &mut m, Timeout::Millis(5_000));
        assert!(r.is_err() && r != Err(Errno::EDVSTIMEDOUT), "{what}: {r:?}");
        assert!(began.elapsed() < Duration::from_secs(1), "{what}");
    };
    refused(&before, "a caller bound before");
    let after = muk::ftp_client::bind_user(&dc, "after").unwrap();
    refused(&after, "a caller bound after");
    let began = Instant::now();
    assert_eq!(run.signal(libc::SIGINT), Some(1));
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    drop((before, after));
    assert!(Dc::open(&dc_name).is_err(), "DC {dc_name} was not removed");
    let synced: Vec<_> = files
        .into_iter()
        .filter(|(name, _)| name == "/synced.bin")
        .collect();
    assert_eq!(synced.len(), 1);
    check_files(&image, &synced, &s);
}

#[test]
fn muk2_serve_fs_sigterm_writes_back() {
    let s = Scratch::new("muk-durable-serve");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('e');
    let h = host(
        &t.dc,
        &[ServerKind::Rdisk, ServerKind::Ftp],
        &image,
        Runner::Coroutines,
    );
    let fs = Muk2Process::start(
        &["serve", "fs", "--format", "never", "--dc", &t.name],
        "serving",
    );
    let files = leave_changes(&t.name, &s, 21);
    assert_eq!(fs.signal(libc::SIGTERM), Some(0));
    support::stop(h, 2);
    check_files(&image, &files, &s);
}

#[test]
fn fs_mounts_again_after_rdisk_restarts() {
    let s = Scratch::new("muk-durable-restart");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('k');
    let rdisk_args = ["serve", "rdisk", "--image", image.to_str().unwrap(), "--dc"];
    let serve_rdisk = || {
        let mut a = rdisk_args.to_vec();
        a.push(&t.name);
        Muk2Process::start(&a, "serving")
    };
    let rdisk = serve_rdisk();
    let h = host(
        &t.dc,
        &[ServerKind::Fs, ServerKind::Ftp],
        &image,
        Runner::Coroutines,
    );
    let before = random(2_500_000, 31);
    let local = s.path("put");
    std::fs::write(&local, &before).unwrap();
    ok(&t.name, &["put", local.to_str().unwrap(), "/before.bin"]);
    get_is(&t.name, &s, "/before.bin", &before);

    // Killed: FS notices at its next call to it and says the disk is gone.
    assert_eq!(rdisk.signal(libc::SIGKILL), None);
    let out = m3ftp(
        &t.name,
        &["get", "/before.bin", s.path("x").to_str().unwrap()],
    );
    assert!(!out.status.success(), "a get without RDISK succeeded");
    let out = m3ftp(&t.name, &["ls", "/"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("file system is not available"), "{e}");

    // Back on the same image: FS mounts it again, with what was synced.
    let rdisk = serve_rdisk();
    get_is(&t.name, &s, "/before.bin", &before);
    let after = random(1_200_000, 32);
    std::fs::write(&local, &after).unwrap();
    ok(&t.name, &["put", local.to_str().unwrap(), "/after.bin"]);
    get_is(&t.name, &s, "/after.bin", &after);

    // Restarted while FS is idle (no failed call in between): FS sees the new generation.
    assert_eq!(rdisk.signal(libc::SIGKILL), None);
    let rdisk = serve_rdisk();
    get_is(&t.name, &s, "/before.bin", &before);
    get_is(&t.name, &s, "/after.bin", &after);

    support::stop(h, 2);
    assert_eq!(rdisk.signal(libc::SIGTERM), Some(0));
    check_files(
        &image,
        &[("/before.bin".into(), before), ("/after.bin".into(), after)],
        &s,
    );
}

/// Serves until asked to stop, then hangs in its final work (a call that never returns).
struct Stuck;

impl Server for Stuck {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        let mut m = Message::default();
        while ipc.receive(m3ipc::ANY, &mut m, Timeout::Forever) != Err(Errno::EDVSSHUTDOWN) {}
        std::thread::sleep(Duration::from_secs(30));
        Ok(())
    }
}

#[test]
fn a_server_stuck_at_its_stop_does_not_hang_the_stop() {
    for runner in [Runner::Coroutines, Runner::Threads] {
        let t = TestDc::new('h');
        let servers = vec![
            Hosted {
                name: "echo".into(),
                nr: 20,
                stack_size: muk::host::DEFAULT_STACK,
                server: ServerKind::Echo.build(),
            },
            Hosted {
                name: "stuck".into(),
                nr: 21,
                stack_size: muk::host::DEFAULT_STACK,
                server: Box::new(Stuck),
            },
        ];
        let h = Host::start(&t.dc, servers, runner).unwrap();
        h.set_stop_grace(Duration::from_millis(300));
        std::thread::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        let exits = h.stop();
        let took = t0.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "{runner:?}: the stop took {took:?}"
        );
        let stuck: Vec<_> = exits.iter().filter(|e| e.result.is_err()).collect();
        assert_eq!(stuck.len(), 1, "{runner:?}: {exits:?}");
        let why = stuck[0].result.as_ref().unwrap_err();
        assert!(why.contains("did not stop"), "{why}");
        if runner == Runner::Threads {
            assert_eq!(stuck[0].name, "stuck");
            // The other one stopped cleanly and let its slot go.
            assert!(exits.iter().any(|e| e.name == "echo" && e.result.is_ok()));
            assert_eq!(t.dc.getprocinfo(20).unwrap().state, m3ipc::SlotState::Free);
        }
    }
}

/// A PUT whose data RDISK may not read (the client granted RDISK its buffer write-only): FS
/// has allocated the zones, RDISK refuses the copy; the request fails, leaves no file (the put
/// was of a new file), and the image stays consistent; a normal put of the same file works
/// afterwards.
#[test]
fn a_direct_put_rdisk_cannot_read_fails_and_leaves_the_image_clean() {
    use muk::storage::ftp::{FTP_PUT, FtpRequest, PUT_FIRST, PUT_LAST};
    use muk::storage::path::PathRef;
    let s = Scratch::new("muk-durable-badput");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('b');
    let h = host(&t.dc, &STORAGE, &image, Runner::Coroutines);
    // FS answers once it has mounted.
    ok(&t.name, &["ls", "/"]);
    let ep = |k: ServerKind| t.dc.wait4bind(k.default_nr(), T).unwrap();
    let (rdisk, fs, ftp) = (
        ep(ServerKind::Rdisk),
        ep(ServerKind::Fs),
        ep(ServerKind::Ftp),
    );
    let p = muk::ftp_client::bind_user(&t.dc, "raw").unwrap();
    let path = p.alloc_buffer(4096).unwrap();
    let data = p.alloc_buffer(1 << 20).unwrap();
    p.buffer(path).unwrap().write_at(0, b"/x").unwrap();
    let req = FtpRequest {
        path: PathRef {
            grant: p.grant(path, ftp, 0, 4096, Access::READ).unwrap(),
            len: 2,
        },
        data: p.grant(data, fs, 0, 1 << 20, Access::READ_WRITE).unwrap(),
        offset: 0,
        len: (1 << 20) - 100,
        flags: PUT_FIRST | PUT_LAST,
        handle: 0,
        disk_data: Some(p.grant(data, rdisk, 0, 1 << 20, Access::WRITE).unwrap()),
    };
    let mut m = req.encode(FTP_PUT);
    p.sendrec(ftp, &mut m, T).unwrap();
    assert_eq!(reply_result(&m), Err(Errno::EDVSACCES));
    drop(p);
    let listed = String::from_utf8(m3ftp(&t.name, &["ls", "/"]).stdout).unwrap();
    assert_eq!(listed.lines().count(), 2, "only . and ..: {listed}");
    let mut c = muk::ftp_client::FtpClient::connect(&t.name, &Default::default()).unwrap();
    c.sync().unwrap();
    drop(c);
    fsck_clean(&image);
    let good = random(3 << 20, 41);
    let local = s.path("good");
    std::fs::write(&local, &good).unwrap();
    ok(&t.name, &["put", local.to_str().unwrap(), "/x"]);
    get_is(&t.name, &s, "/x", &good);
    support::stop(h, 3);
    check_files(&image, &[("/x".into(), good)], &s);
}

/// A put under way when FS itself is SIGKILLed: the client is stopped (SIGSTOP) mid-put long
/// enough for FS's idle sync to write the temporary to the image, then FS and the client are
/// killed. The restarted FS (`muk2 serve fs` on the same image) removes the temporary at its
/// mount; the old file is byte-identical, and fsck is clean.
fn fs_killed_mid_put(runner: Runner) {
    use std::io::Read;
    let s = Scratch::new("muk-durable-fskill");
    let image = s.mkfs("disk.img", 64);
    let t = TestDc::new('q');
    let h = host(&t.dc, &[ServerKind::Rdisk, ServerKind::Ftp], &image, runner);
    let serve_fs = || {
        Muk2Process::start(
            &["serve", "fs", "--format", "never", "--dc", &t.name],
            "serving",
        )
    };
    let fs = serve_fs();
    let old = random(2_000_003, 51);
    let local = s.path("old");
    std::fs::write(&local, &old).unwrap();
    ok(&t.name, &["put", local.to_str().unwrap(), "/precious"]);
    let big = s.path("big");
    std::fs::write(&big, random(40 << 20, 52)).unwrap();
    let mut client = std::process::Command::new(support::disk::M3FTP)
        .args(["put", big.to_str().unwrap(), "/precious", "--progress"])
        .args(["--dc", &t.name, "--wait-ms", "10000"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = client.stderr.take().unwrap();
    let mut b = [0u8; 1];
    while err.read(&mut b).unwrap_or(0) == 1 && b[0] != b'%' {}
    let pid = client.id() as libc::pid_t;
    // SAFETY: kill has no memory effects; the child is not reaped, so its pid is ours.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    // FS, idle now, syncs within IDLE_SYNC: the temporary reaches the image.
    support::eventually(
        Duration::from_secs(10),
        "the temporary on the image",
        || {
            support::disk::image_paths_now(&image)
                .is_ok_and(|paths| paths.iter().any(|p| support::disk::is_temp_path(p)))
        },
    );
    assert_eq!(fs.signal(libc::SIGKILL), None);
    client.kill().unwrap();
    client.wait().unwrap();

    let fs = serve_fs();
    let listed = String::from_utf8(m3ftp(&t.name, &["ls", "/"]).stdout).unwrap();
    assert_eq!(listed.lines().count(), 3, "., .. and precious: {listed}");
    get_is(&t.name, &s, "/precious", &old);
    assert_eq!(fs.signal(libc::SIGTERM), Some(0));
    support::stop(h, 2);
    fsck_clean(&image);
    assert_eq!(support::disk::image_paths(&image), ["/precious"]);
}

#[test]
fn fs_killed_mid_put_restarts_without_the_temporary_muk2() {
    fs_killed_mid_put(Runner::Coroutines);
}

#[test]
fn fs_killed_mid_put_restarts_without_the_temporary_muk_threads() {
    fs_killed_mid_put(Runner::Threads);
}
