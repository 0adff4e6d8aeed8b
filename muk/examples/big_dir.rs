//! Create rate of many files in one directory through m3ftp, per 10 000 entries, then a
//! listing of the directory and `fsck.minix -f` of the image.
//!
//! ```text
//! cargo run --release -p muk --example big_dir [-- FILES [threads]]
//! ```
//!
//! An image made by `mkfs.minix -3 -i FILES*1.2` in the temporary directory is served by
//! RDISK, FS and FTP under MUK2 (coroutines; `threads`: under MUK) in this process; the client
//! (this binary re-executed in a role, through the m3ftp client library) puts FILES small
//! files `/big/file-NNNNNN` and prints, for each 10 000, the create rate and RDISK's requests
//! per create; then it lists `/big` and checks the count. The image is checked by
//! `fsck.minix -f` after the servers stop, then removed. The load average is printed at the
//! start and the end: the machine may be shared, so compare rates within one run.

use m3ipc::{Dc, DcConfig};
use muk::ftp_client::{ConnectOptions, FtpClient};
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use muk::server::{ServerKind, ServerOptions};
use muk::{Host, Hosted, Runner};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const STEP: usize = 10_000;

fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--client") {
        return client(&args[1..]);
    }
    let files: usize = args.first().map_or(Ok(100_000), |a| a.parse())?;
    let runner = match args.get(1).map(String::as_str) {
        None => Runner::Coroutines,
        Some("threads") => Runner::Threads,
        Some(other) => return Err(format!("the second argument is threads, not {other}").into()),
    };
    let inodes = files + files / 5 + 100;
    // Inodes, the directory (64 bytes an entry), one zone per file, and room to spare.
    let mib = ((inodes * 64 + files * 64 + files * 1024) >> 20) + 32;
    let image = std::env::temp_dir().join(format!("big_dir-{}.img", std::process::id()));
    std::fs::File::create(&image)?.set_len((mib as u64) << 20)?;
    let made = Command::new(tool("mkfs.minix"))
        .args(["-3", "-i", &inodes.to_string()])
        .arg(&image)
        .output()?;
    if !made.status.success() {
        let _ = std::fs::remove_file(&image);
        return Err(format!("mkfs.minix: {}", String::from_utf8_lossy(&made.stderr)).into());
    }
    println!(
        "{files} files in one directory through m3ftp, {runner:?}, a {mib} MiB image with \
         {inodes} inodes; load average {}",
        load()
    );
    let result = serve_and_run(&image, files, runner);
    let fsck = Command::new(tool("fsck.minix"))
        .arg("-f")
        .arg(&image)
        .output();
    let _ = std::fs::remove_file(&image);
    result?;
    let fsck = fsck?;
    println!(
        "fsck.minix -f: {}{}",
        if fsck.status.success() {
            "clean"
        } else {
            "ERRORS\n"
        },
        if fsck.status.success() {
            String::new()
        } else {
            String::from_utf8_lossy(&fsck.stdout).into_owned()
        }
    );
    println!("load average at the end {}", load());
    if !fsck.status.success() {
        return Err("fsck.minix found errors".into());
    }
    Ok(())
}

/// Host RDISK, FS and FTP on `image` and run the client to the end.
fn serve_and_run(
    image: &Path,
    files: usize,
    runner: Runner,
) -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("bigdir{}", std::process::id() % 100_000);
    let dc = Dc::create_with_free_id(&name, &DcConfig::default())?;
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let servers = [ServerKind::Rdisk, ServerKind::Fs, ServerKind::Ftp]
            .iter()
            .map(|&k| {
                let opts = ServerOptions {
                    disk: DiskSpec::Image(image.to_path_buf()),
                    format: FormatPolicy::Never,
                    below_nr: None,
                    ..Default::default()
                };
                Ok(Hosted {
                    name: k.name().to_string(),
                    nr: k.default_nr(),
                    stack_size: muk::host::DEFAULT_STACK,
                    server: k.build_with(&opts)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let host = Host::start(&dc, servers, runner)?;
        let status = Command::new(std::env::current_exe()?)
            .args(["--client", &name, &files.to_string()])
            .status();
        let exits = host.stop();
        let status = status?;
        if !status.success() {
            return Err(format!("the client failed: {status}").into());
        }
        if let Some(e) = exits.iter().find(|e| e.result.is_err()) {
            return Err(format!("server {} ended with {:?}", e.name, e.result).into());
        }
        Ok(())
    })();
    drop(dc);
    let _ = Dc::remove(&name);
    result
}

/// `--client DC FILES`: create the files, printing a line per 10 000, then list them.
fn client(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let dc_name = args.first().ok_or("no DC")?;
    let files: usize = args.get(1).ok_or("no file count")?.parse()?;
    let opts = ConnectOptions {
        wait: Duration::from_secs(10),
        ..ConnectOptions::default()
    };
    let mut ftp = FtpClient::connect(dc_name, &opts)?;
    let dc = Dc::open(dc_name)?;
    let rdisk_requests = || {
        dc.getprocinfo(ServerKind::Rdisk.default_nr())
            .map(|p| p.received)
            .unwrap_or(0)
    };
    let until = Instant::now() + Duration::from_secs(10);
    while ftp.stat("/").is_err() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(2));
    }
    ftp.mkdir("/big")?;
    println!(
        "{:>8} {:>10} {:>22} {:>14}",
        "entries", "creates/s", "RDISK requests/create", "load average"
    );
    let started = Instant::now();
    let mut window = Instant::now();
    let mut requests = rdisk_requests();
    for k in 0..files {
        let name = format!("file-{k:06}");
        let path = format!("/big/{name}");
        ftp.put(
            &mut name.as_bytes(),
            name.len() as u64,
            "memory",
            &path,
            &mut |_, _| {},
        )?;
        if (k + 1) % STEP == 0 || k + 1 == files {
            let n = (k % STEP + 1) as f64;
            let now = rdisk_requests();
            println!(
                "{:>8} {:>10.0} {:>22.1} {:>14}",
                k + 1,
                n / window.elapsed().as_secs_f64(),
                (now - requests) as f64 / n,
                load()
            );
            window = Instant::now();
            requests = now;
        }
    }
    println!(
        "created {files} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let listed = ftp.ls("/big")?;
    let count = listed
        .iter()
        .filter(|e| e.name.starts_with("file-"))
        .count();
    println!(
        "ls /big: {} entries ({count} files) in {:.2} s",
        listed.len(),
        t.elapsed().as_secs_f64()
    );
    if count != files {
        return Err(format!("ls /big lists {count} files, not {files}").into());
    }
    Ok(())
}
