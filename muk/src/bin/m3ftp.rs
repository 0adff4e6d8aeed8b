//! `m3ftp`: the file-transfer client of MUK2's FTP server (`m3ftpd`, slot 14), run from outside
//! the unikernel.
//!
//! ```text
//! m3ftp [--dc DC] get REMOTE LOCAL      fetch a file (LOCAL `-`: standard output)
//! m3ftp [--dc DC] put LOCAL REMOTE      store a file, atomically replacing REMOTE
//!                                       (LOCAL `-`: standard input; REMOTE a directory,
//!                                       or ending in `/`: into it under LOCAL's name)
//! m3ftp [--dc DC] ls DIR                list a directory
//! m3ftp [--dc DC] rm PATH               remove a file or an empty directory
//! m3ftp [--dc DC] mkdir DIR             make a directory
//! ```
//!
//! Options go before or after the subcommand. Remote paths are absolute and hold no control
//! character. The DC defaults to `$M3FTP_DC`, else `muk2` (the name in `muk2 default-config`).
//! Transfers over 4 MiB show a progress bar on stderr when it is a terminal (or with
//! `--progress`). Errors are printed as `m3ftp: MESSAGE`, exit code 1; a failed put says
//! that nothing was changed.

#[path = "m3ftp/progress.rs"]
mod progress;

use clap::{Parser, Subcommand};
use muk::ftp_client::{ConnectOptions, FtpClient, FtpError};
use progress::Progress;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// File transfer to and from MUK2's FTP server.
#[derive(Debug, Parser)]
#[command(name = "m3ftp", version)]
struct Cli {
    /// The DC of the unikernel (default: $M3FTP_DC, else muk2).
    #[arg(long, global = true)]
    dc: Option<String>,
    /// Show a progress bar for transfers over 4 MiB even when stderr is not a terminal.
    #[arg(long, global = true)]
    progress: bool,
    /// How long to wait for the FTP server to be there, in milliseconds.
    #[arg(long, global = true, default_value_t = 2000)]
    wait_ms: u64,
    /// How long to wait for one reply, in seconds.
    #[arg(long, global = true, default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout_s: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch REMOTE into the local file LOCAL (`-`: standard output).
    Get {
        /// The remote file (absolute path).
        remote: String,
        /// The local file to write (`-`: standard output).
        local: String,
    },
    /// Store the local file LOCAL (`-`: standard input) as REMOTE, atomically: REMOTE is the
    /// old file until the whole new one is in, and a failed put changes nothing.
    Put {
        /// The local file to read (`-`: standard input).
        local: String,
        /// The remote file (absolute path); a directory, or a path ending in `/`, means the
        /// file of LOCAL's name in that directory.
        remote: String,
    },
    /// List a remote directory.
    Ls {
        /// The directory (absolute path).
        #[arg(default_value = "/")]
        dir: String,
    },
    /// Remove a remote file or empty directory.
    Rm {
        /// The path.
        path: String,
    },
    /// Make a remote directory.
    Mkdir {
        /// The path.
        dir: String,
    },
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("m3ftp: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Die quietly of SIGPIPE, as `ls` does, when standard output is a closed pipe (`m3ftp ls / |
/// head -1`), instead of panicking in `println!`. Nothing is lost: the fabric reclaims a dead
/// client's slot, buffers and grants, and FTP survives a client that dies mid-transfer.
fn restore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL touches no memory of ours; the process
    // is still single-threaded here.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

fn run(cli: &Cli) -> Result<(), FtpError> {
    let dc = cli
        .dc
        .clone()
        .or_else(|| std::env::var("M3FTP_DC").ok())
        .unwrap_or_else(|| "muk2".to_string());
    let opts = ConnectOptions {
        wait: Duration::from_millis(cli.wait_ms),
        timeout: Duration::from_secs(cli.timeout_s),
        ..ConnectOptions::default()
    };
    let bar = cli.progress || std::io::stderr().is_terminal();
    let mut ftp = FtpClient::connect(&dc, &opts)?;
    match &cli.command {
        Command::Get { remote, local } => get(&mut ftp, remote, local, bar),
        Command::Put { local, remote } => put(&mut ftp, local, remote, bar),
        Command::Ls { dir } => ls(&mut ftp, dir),
        Command::Rm { path } => ftp.rm(path),
        Command::Mkdir { dir } => ftp.mkdir(dir),
    }
}

fn local_err(path: &str) -> impl Fn(std::io::Error) -> FtpError + '_ {
    move |why| FtpError::Local {
        path: path.to_string(),
        why,
    }
}

/// The local path that means standard input or output.
const STDIO: &str = "-";

fn get(ftp: &mut FtpClient, remote: &str, local: &str, bar: bool) -> Result<(), FtpError> {
    // Ask first, so that a missing remote file leaves no empty local one behind.
    let st = ftp.stat(remote).map_err(|e| e.during("get"))?;
    if st.is_dir() {
        return Err(FtpError::Remote {
            op: "get",
            path: remote.to_string(),
            errno: m3ipc::Errno::EDVSISDIR,
        });
    }
    let to_stdout = local == STDIO;
    let (sink, name): (Box<dyn Write>, &str) = if to_stdout {
        (Box::new(std::io::stdout().lock()), "standard output")
    } else {
        (
            Box::new(File::create(local).map_err(local_err(local))?),
            local,
        )
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let mut p = Progress::new(bar, &format!("get {remote}"));
    let start = Instant::now();
    let got = ftp.get(remote, &mut out, name, &mut |d, t| p.update(d, t));
    p.finish();
    match got {
        Ok(n) => {
            report("got", n, start.elapsed());
            Ok(())
        }
        Err(e) => {
            drop(out);
            if !to_stdout {
                let _ = std::fs::remove_file(local);
            }
            Err(e)
        }
    }
}

/// The remote file a put writes: `remote` itself, or LOCAL's name in it when it ends with `/`
/// or is a directory (as `cp` and `scp` do).
fn put_target(ftp: &mut FtpClient, local: &str, remote: &str) -> Result<String, FtpError> {
    let into_dir = remote.ends_with('/')
        || (muk::storage::path::problem(remote).is_none()
            && ftp.stat(remote).is_ok_and(|st| st.is_dir()));
    if !into_dir {
        return Ok(remote.to_string());
    }
    let name = std::path::Path::new(local)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|_| local != STDIO);
    match name {
        Some(n) => Ok(format!("{}/{n}", remote.trim_end_matches('/'))),
        // Standard input has no name to put it under.
        None => Err(FtpError::DirTarget {
            path: format!("{}/", remote.trim_end_matches('/')),
        }),
    }
}

fn put(ftp: &mut FtpClient, local: &str, remote: &str, bar: bool) -> Result<(), FtpError> {
    let remote = put_target(ftp, local, remote)?;
    let mut p = Progress::new(bar, &format!("put {remote}"));
    let start = Instant::now();
    let n = if local == STDIO {
        let mut stdin = std::io::stdin().lock();
        ftp.put_stream(&mut stdin, "standard input", &remote, &mut |d, t| {
            p.update(d, t)
        })
    } else {
        let mut file = File::open(local).map_err(local_err(local))?;
        let meta = file.metadata().map_err(local_err(local))?;
        if !meta.is_file() {
            return Err(FtpError::Local {
                path: local.to_string(),
                why: std::io::Error::other("not a regular file"),
            });
        }
        ftp.put(&mut file, meta.len(), local, &remote, &mut |d, t| {
            p.update(d, t)
        })
    };
    p.finish();
    report("put", n?, start.elapsed());
    Ok(())
}

fn report(what: &str, bytes: u64, took: Duration) {
    if bytes > progress::THRESHOLD {
        eprintln!(
            "m3ftp: {what} {bytes} bytes in {:.1} ms ({:.0} MB/s)",
            took.as_secs_f64() * 1e3,
            bytes as f64 / took.as_secs_f64().max(1e-9) / 1e6
        );
    }
}

fn ls(ftp: &mut FtpClient, dir: &str) -> Result<(), FtpError> {
    let mut entries = ftp.ls(dir)?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for e in entries {
        println!(
            "{}{} {:>12} {}",
            if e.is_dir() { 'd' } else { '-' },
            mode_letters(e.mode),
            e.size,
            e.name
        );
    }
    Ok(())
}

/// `rwxr-xr-x` of the permission bits.
fn mode_letters(mode: u16) -> String {
    (0..9)
        .map(|i| {
            let bit = 1u16 << (8 - i);
            if mode & bit == 0 {
                '-'
            } else {
                ['r', 'w', 'x'][i % 3]
            }
        })
        .collect()
}
