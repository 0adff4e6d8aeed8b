#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A DC shared with a group of users (`[dc] group` and `mode` in the config; `dvs dc create
//! --group G --mode 0660` does the same, see the dvs tests): a member of the group binds and
//! calls the unikernel's servers; a user outside it gets a clear "permission denied", never a
//! fault. The test makes a group and two users (it needs root, as CI runs; elsewhere it says it
//! skipped), runs `muk2 run` as root and `muk2 check` as each user, and removes them again.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::disk::{MUK2, Scratch};

const TOOLS: [&str; 5] = [
    "/usr/sbin/useradd",
    "/usr/sbin/userdel",
    "/usr/sbin/groupadd",
    "/usr/sbin/groupdel",
    "/usr/sbin/runuser",
];

/// A group and two users made for the test; deleted on drop.
struct Accounts {
    group: String,
    member: String,
    outsider: String,
}

impl Accounts {
    fn make() -> Accounts {
        let id = std::process::id();
        let a = Accounts {
            group: format!("m3g{id}"),
            member: format!("m3m{id}"),
            outsider: format!("m3o{id}"),
        };
        run_ok("/usr/sbin/groupadd", &[&a.group]);
        for (user, extra) in [(&a.member, Some(&a.group)), (&a.outsider, None)] {
            let mut args = vec!["-M", "-N", "-s", "/usr/sbin/nologin"];
            if let Some(g) = extra {
                args.extend(["-G", g.as_str()]);
            }
            args.push(user);
            run_ok("/usr/sbin/useradd", &args);
        }
        a
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for user in [&self.member, &self.outsider] {
            let _ = Command::new("/usr/sbin/userdel").arg(user).output();
        }
        let _ = Command::new("/usr/sbin/groupdel").arg(&self.group).output();
    }
}

fn run_ok(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `muk2 check` of echo in `dc`, run as `user` with the copy of muk2 at `bin`.
fn check_as(user: &str, bin: &Path, regions: &Path, dc: &str) -> Output {
    Command::new("/usr/sbin/runuser")
        .args(["-u", user, "--", "/usr/bin/env"])
        .arg(format!("M3IPC_SHM_DIR={}", regions.display()))
        .arg(bin)
        .args(["check", "--dc", dc, "--expect", "echo", "--rounds", "10"])
        .args(["--wait-ms", "2000"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_group_member_binds_and_calls_an_outsider_is_refused_clearly() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: making users needs root (CI runs as root)");
        return;
    }
    if let Some(t) = TOOLS.iter().find(|t| !Path::new(t).exists()) {
        eprintln!("skipped: {t} is missing");
        return;
    }
    let accounts = Accounts::make();
    // The test's muk2 may sit under a directory the users cannot enter: a copy they can run.
    let bins = Scratch::new("shared-dc-bin");
    std::fs::set_permissions(bins.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bins.path("muk2");
    std::fs::copy(MUK2, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The region directory: the users open files in it, they create none.
    let regions = Scratch::new("shared-dc-regions");
    std::fs::set_permissions(regions.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = regions.path("muk.toml");
    std::fs::write(
        &config,
        format!(
            "[dc]\nname = \"shared\"\nmode = 0o660\ngroup = \"{}\"\n\
             [[server]]\nname = \"systask\"\n[[server]]\nname = \"echo\"\n",
            accounts.group
        ),
    )
    .unwrap();
    let mut run = Command::new(MUK2)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("M3IPC_SHM_DIR", regions.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(run.stdout.take().unwrap());
    let mut seen = Vec::new();
    for line in out.lines() {
        let line = line.unwrap();
        let done = line.contains("running; stop with");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("running; stop with")),
        "{seen:?}"
    );
    // Both files have the group and the mode.
    let group_gid = m3ipc::group_id(&accounts.group).unwrap();
    for f in ["m3ipc-dc-shared", "m3ipc-pool-shared"] {
        let m = std::fs::metadata(regions.path(f)).unwrap();
        assert_eq!((m.gid(), m.mode() & 0o777), (group_gid, 0o660), "{f}");
    }
    let member = check_as(&accounts.member, &bin, regions.dir(), "shared");
    let outsider = check_as(&accounts.outsider, &bin, regions.dir(), "shared");
    // SAFETY: kill has no memory effects; the child is not reaped yet, so its pid is ours.
    let rc = unsafe { libc::kill(run.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = run.wait().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        member.status.success(),
        "member: {}{}",
        text(&member.stdout),
        text(&member.stderr)
    );
    assert!(
        text(&member.stdout).contains("ok"),
        "{}",
        text(&member.stdout)
    );
    // A plain error and exit code 1: not a fault (a signal has no code).
    assert_eq!(
        outsider.status.code(),
        Some(1),
        "{}",
        text(&outsider.stderr)
    );
    let err = text(&outsider.stderr);
    assert!(
        err.contains("DC shared: permission denied")
            && err.contains("Permission denied (os error 13)"),
        "outsider: {err}"
    );
    assert!(status.success(), "muk2 run: {status}");
    assert!(!regions.path("m3ipc-dc-shared").exists());
}
