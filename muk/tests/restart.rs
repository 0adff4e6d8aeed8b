#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Starting again after a crash, and one RDISK per image: `muk2 run` after a SIGKILL of the
//! previous run on the same config takes the dead run's DC over and serves the same image
//! (consistent, with what was synced); a live run's DC is still refused; a second RDISK on an
//! image another RDISK serves is refused with the holder's pid (`muk2 serve rdisk` and `muk2
//! run` alike).
//!
//! The DC names are unique to this test process, in the default region directory (the `m3ftp`
//! helper uses it).

mod support;

use m3ipc::region_dir;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::TestDc;
use support::disk::{MUK2, Scratch, fsck_clean, m3ftp_ok};

/// A `muk2` child whose stderr goes to a file; killed on drop if the test did not end it.
struct Muk2 {
    child: Child,
    stderr: PathBuf,
}

impl Muk2 {
    /// Start `muk2 ARGS` and wait for its line holding `needle` (stderr to `stderr`).
    fn start(args: &[&str], needle: &str, stderr: PathBuf) -> Muk2 {
        let mut child = Command::new(MUK2)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = Vec::new();
        for line in out.lines() {
            let line = line.unwrap();
            let hit = line.contains(needle);
            seen.push(line);
            if hit {
                return Muk2 { child, stderr };
            }
        }
        let _ = child.wait();
        panic!(
            "muk2 {args:?} ended without {needle:?}: {seen:?}\nstderr: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap()
    }

    /// Send `sig` and wait; the exit code (`None`: killed by a signal).
    fn signal(mut self, sig: libc::c_int) -> Option<i32> {
        // SAFETY: kill has no memory effects; the child is not reaped yet, so its pid is ours.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "muk2 did not exit after {sig}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Muk2 {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run `muk2 ARGS` to its end: it must fail; its stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(MUK2)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "muk2 {args:?}: {err}");
    err
}

/// A config running RDISK on `image`, FS and FTP in DC `dc`.
fn storage_config(s: &Scratch, dc: &str, image: &Path) -> PathBuf {
    let config = s.path(&format!("{dc}.toml"));
    std::fs::write(
        &config,
        format!(
            "[dc]\nname = \"{dc}\"\n[[server]]\nname = \"rdisk\"\nimage = \"{}\"\n\
             [[server]]\nname = \"fs\"\nformat = \"never\"\n[[server]]\nname = \"ftp\"\n",
            image.display()
        ),
    )
    .unwrap();
    config
}

fn region_files(dc: &str) -> Vec<bool> {
    ["m3ipc-dc-", "m3ipc-pool-"]
        .iter()
        .map(|p| region_dir().join(format!("{p}{dc}")).exists())
        .collect()
}

#[test]
fn muk2_run_after_a_sigkill_takes_the_dc_over_and_serves_the_same_image() {
    let s = Scratch::new("muk-restart");
    let image = s.mkfs("disk.img", 16);
    let dc = format!("tR{}a", std::process::id());
    let config = storage_config(&s, &dc, &image);
    let args = ["run", "--config", config.to_str().unwrap()];
    let running = "running; stop with";

    let first = Muk2::start(&args, running, s.path("first.err"));
    let first_pid = first.pid();
    let (a, a_bytes) = s.random_file("a.bin", 900_000, 1);
    m3ftp_ok(&dc, &["put", a.to_str().unwrap(), "/a.bin"]);
    assert_eq!(first.signal(libc::SIGKILL), None);
    assert_eq!(region_files(&dc), [true, true], "the killed run's DC stays");

    let second = Muk2::start(&args, running, s.path("second.err"));
    let said = second.stderr();
    assert!(
        said.contains(&format!(
            "DC \"{dc}\": taking over the region left by pid {first_pid} (dead)"
        )),
        "{said}"
    );
    // A live run's DC is not taken over.
    let err = refused(&args);
    assert!(
        err.contains("already exists and is in use")
            && err.contains(&format!("pid {}, is alive", second.pid())),
        "{err}"
    );
    // What the first run acknowledged (m3ftp put syncs) is there; the image serves on.
    let back = s.path("a.back");
    m3ftp_ok(&dc, &["get", "/a.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == a_bytes, "/a.bin differs");
    let (b, b_bytes) = s.random_file("b.bin", 300_001, 2);
    m3ftp_ok(&dc, &["put", b.to_str().unwrap(), "/b.bin"]);
    assert_eq!(second.signal(libc::SIGTERM), Some(0));
    assert_eq!(region_files(&dc), [false, false]);
    fsck_clean(&image);

    // And once more from the orderly stop: both files, byte for byte.
    let third = Muk2::start(&args, running, s.path("third.err"));
    assert!(
        !third.stderr().contains("taking over"),
        "{}",
        third.stderr()
    );
    for (remote, want) in [("/a.bin", &a_bytes), ("/b.bin", &b_bytes)] {
        m3ftp_ok(&dc, &["get", remote, back.to_str().unwrap()]);
        assert!(std::fs::read(&back).unwrap() == *want, "{remote} differs");
    }
    assert_eq!(third.signal(libc::SIGTERM), Some(0));
    fsck_clean(&image);
}

#[test]
fn a_second_rdisk_on_a_served_image_is_refused_with_the_holders_pid() {
    let s = Scratch::new("muk-image-lock");
    let image = s.mkfs("disk.img", 16);
    let t = TestDc::new('L');
    let serve = ["serve", "rdisk", "--image", image.to_str().unwrap(), "--dc"];
    let serve: Vec<&str> = serve.iter().copied().chain([t.name.as_str()]).collect();
    let holder = Muk2::start(&serve, "serving", s.path("holder.err"));
    let needle = format!("pid {} holds the image's lock", holder.pid());

    // Another process serving the image.
    let err = refused(&serve);
    assert!(err.contains(&needle), "{err}");

    // `muk2 run` on the image: refused too, and its DC removed.
    let dc = format!("tR{}b", std::process::id());
    let config = storage_config(&s, &dc, &image);
    let err = refused(&["run", "--config", config.to_str().unwrap()]);
    assert!(err.contains(&needle), "{err}");
    assert_eq!(region_files(&dc), [false, false]);

    // Stopped (or killed), the holder lets go.
    assert_eq!(holder.signal(libc::SIGKILL), None);
    let again = Muk2::start(&serve, "serving", s.path("again.err"));
    assert_eq!(again.signal(libc::SIGTERM), Some(0));
    fsck_clean(&image);
}
