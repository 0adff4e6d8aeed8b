//! `dvs dc create|rm|ls`: creating, removing and listing distributed containers.

use crate::error::{CliError, Result};
use crate::table::{Align, Table, print_text};
use clap::{Args, Subcommand};
use core::fmt;
use m3ipc::{Dc, DcConfig, DcError, Errno};

/// The `dvs dc` subcommands.
#[derive(Debug, Subcommand)]
pub enum DcCommand {
    /// Create a DC: its region file in the region directory ($M3IPC_SHM_DIR or /dev/shm). A DC
    /// of that name left by dead processes (creator and every slot owner dead) is taken over;
    /// one a live process uses is refused.
    Create(CreateArgs),
    /// Remove a DC: calls of processes still attached fail with EDVSDCNOTRUN.
    #[command(alias = "remove")]
    Rm {
        /// The DC's name.
        name: String,
    },
    /// List the DCs of the region directory; slots of dead processes are released first.
    #[command(alias = "list")]
    Ls,
}

/// Arguments of `dvs dc create`; every limit defaults to the original's typical DC.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The DC's name: up to 15 letters, digits, '.', '_' or '-'.
    pub name: String,
    /// DC id, 0..32; no two DCs of one region directory share one.
    #[arg(long = "id", value_name = "ID", default_value_t = DcConfig::default().dcid)]
    pub dcid: u32,
    /// This node's id, 0..32.
    #[arg(long, default_value_t = DcConfig::default().node)]
    pub node: u32,
    /// Process slots (servers and users, nr 0..procs).
    #[arg(long, default_value_t = DcConfig::default().nr_procs)]
    pub procs: u32,
    /// Task slots (nr -tasks..-1), at most 35.
    #[arg(long, default_value_t = DcConfig::default().nr_tasks)]
    pub tasks: u32,
    /// Slots, counted from the first task, that are system processes.
    #[arg(long, default_value_t = DcConfig::default().nr_sysprocs)]
    pub sysprocs: u32,
    /// File mode of the region, in octal; must include 600 (660 shares it with the group).
    #[arg(long, default_value_t = Mode(DcConfig::default().mode), value_parser = parse_mode)]
    pub mode: Mode,
    /// Give the region and pool files this group (a name or a number), so that its members
    /// may bind (with a --mode such as 660).
    #[arg(long)]
    pub group: Option<String>,
    /// Bytes of the DC's buffer pool (zero-copy data): a multiple of 1M such as 64M or 1G, at
    /// most 16G; 0 for no pool. The pool file is sparse.
    #[arg(long, value_name = "SIZE", default_value_t = Size(DcConfig::default().pool_bytes), value_parser = parse_size)]
    pub pool_size: Size,
}

/// A size in bytes, written with an optional K, M or G suffix (powers of 1024).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human_bytes(self.0))
    }
}

/// `n` bytes with the largest suffix (K, M, G) that divides it exactly.
pub fn human_bytes(n: u64) -> String {
    for (shift, suffix) in [(30, "G"), (20, "M"), (10, "K")] {
        if n != 0 && n.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", n >> shift);
        }
    }
    n.to_string()
}

/// Parse a size such as `0`, `4096`, `64M`, `64MiB` or `1G`.
fn parse_size(text: &str) -> core::result::Result<Size, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        _ => (t, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .map(Size)
        .ok_or_else(|| format!("{text:?} is not a size such as 64M or 1G"))
}

/// A file mode, written and read in octal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode(pub u32);

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:o}", self.0)
    }
}

/// Parse an octal mode such as `600`, `0660` or `0o660`.
fn parse_mode(text: &str) -> core::result::Result<Mode, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|&m| m <= 0o7777)
        .map(Mode)
        .ok_or_else(|| format!("{text:?} is not an octal file mode such as 600 or 660"))
}

/// Run a `dvs dc` subcommand.
pub fn run(cmd: &DcCommand) -> Result<()> {
    match cmd {
        DcCommand::Create(args) => create(args),
        DcCommand::Rm { name } => {
            Dc::remove(name)?;
            print_text(&format!("removed DC {name}\n"))
        }
        DcCommand::Ls => list(),
    }
}

fn create(args: &CreateArgs) -> Result<()> {
    let config = DcConfig {
        dcid: args.dcid,
        node: args.node,
        nr_procs: args.procs,
        nr_tasks: args.tasks,
        nr_sysprocs: args.sysprocs,
        // With a group, the files stay 0600 until they have it (see `Dc::share`).
        mode: if args.group.is_some() {
            0o600
        } else {
            args.mode.0
        },
        pool_bytes: args.pool_size.0,
    };
    let gid = match &args.group {
        Some(g) => Some(m3ipc::group_id(g).map_err(CliError::new)?),
        None => None,
    };
    let created = Dc::create_or_take_over(&args.name, &config, false)
        .map_err(|e| explain_create(e, &args.name))?;
    if let Some(t) = &created.taken_over {
        eprintln!("dvs: {t}");
    }
    let dc = created.dc;
    if gid.is_some()
        && let Err(e) = dc.share(gid, args.mode.0)
    {
        let _ = Dc::remove(dc.name());
        return Err(explain_create(e, &args.name));
    }
    print_text(&format!(
        "created DC {} (dcid {}, node {}): {}\n",
        dc.name(),
        config.dcid,
        config.node,
        dc.path().display()
    ))
}

/// Turn a limits or clash error into a sentence naming the options concerned.
fn explain_create(e: DcError, name: &str) -> CliError {
    let why = match &e {
        DcError::Exists(_) if Dc::list().is_ok_and(|names| names.iter().any(|n| n == name)) => {
            return CliError::new(format!("DC {name:?} already exists"));
        }
        DcError::Exists(other) => {
            return CliError::new(format!(
                "the DC id is taken by DC {other}: choose another with --id"
            ));
        }
        DcError::BadConfig(Errno::EDVSBADDCID) => "--id must be below 32",
        DcError::BadConfig(Errno::EDVSBADNODEID) => "--node must be below 32",
        DcError::BadConfig(Errno::EDVSBADRANGE) => {
            "need --procs >= 1, --tasks <= 35, --tasks + --procs <= 1024 \
             and --tasks < --sysprocs <= --tasks + --procs"
        }
        DcError::BadConfig(Errno::EDVSBADVALUE) => {
            "--mode must be at most 777 and grant the owner read and write (600)"
        }
        DcError::BadConfig(Errno::EDVSALIGN) => "--pool-size must be a multiple of 1M",
        DcError::BadConfig(Errno::EDVSFBIG) => "--pool-size must be at most 16G",
        _ => return e.into(),
    };
    CliError::new(format!("{e}: {why}"))
}

fn list() -> Result<()> {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("DCID", Align::Right),
        ("NODE", Align::Right),
        ("PROCS", Align::Right),
        ("TASKS", Align::Right),
        ("SYSPROCS", Align::Right),
        ("BOUND", Align::Right),
        ("SIZE", Align::Right),
        ("POOL USED/TOTAL", Align::Right),
        ("BUFFERS", Align::Right),
        ("GRANTS", Align::Right),
        ("CREATOR", Align::Right),
    ]);
    for name in Dc::list()? {
        match Dc::open(&name) {
            Ok(dc) => {
                // Slots of dead processes hold nothing any more: release them (and their
                // buffers and grants) before counting, as a bind of their `nr` would.
                let released = dc.reap_dead();
                if released > 0 {
                    eprintln!(
                        "dvs: DC {name}: released {released} slot(s) of dead processes, \
                         with their pool buffers and grants"
                    );
                }
                let info = dc.info();
                let c = &info.config;
                table.push(vec![
                    info.name.clone(),
                    c.dcid.to_string(),
                    c.node.to_string(),
                    c.nr_procs.to_string(),
                    c.nr_tasks.to_string(),
                    c.nr_sysprocs.to_string(),
                    info.bound.to_string(),
                    format!("{}K", info.region_bytes.div_ceil(1024)),
                    info.pool.as_ref().map_or("-".into(), |p| {
                        format!(
                            "{}/{} ({}%)",
                            human_bytes(p.used_bytes),
                            human_bytes(p.total_bytes),
                            p.used_bytes * 100 / p.total_bytes.max(1)
                        )
                    }),
                    info.pool
                        .as_ref()
                        .map_or("-".into(), |p| p.buffers.to_string()),
                    info.pool
                        .as_ref()
                        .map_or("-".into(), |p| p.grants.to_string()),
                    if info.creator_alive {
                        info.creator_pid.to_string()
                    } else {
                        format!("{} (dead)", info.creator_pid)
                    },
                ]);
            }
            // A region being created or removed right now, or one this build cannot read: list
            // it anyway, with the reason in the row.
            Err(e) => table.push(vec![name, format!("({e})")]),
        }
    }
    table.print()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("600"), Ok(Mode(0o600)));
        assert_eq!(parse_mode("0660"), Ok(Mode(0o660)));
        assert_eq!(parse_mode("0o640"), Ok(Mode(0o640)));
        assert!(parse_mode("800").is_err());
        assert!(parse_mode("rw").is_err());
        assert_eq!(Mode(0o600).to_string(), "600");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(Size(0)));
        assert_eq!(parse_size("64M"), Ok(Size(64 << 20)));
        assert_eq!(parse_size("64MiB"), Ok(Size(64 << 20)));
        assert_eq!(parse_size("1g"), Ok(Size(1 << 30)));
        assert_eq!(parse_size("4096"), Ok(Size(4096)));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999G").is_err());
        assert_eq!(Size(64 << 20).to_string(), "64M");
        assert_eq!(human_bytes(0), "0");
        assert_eq!(human_bytes(12_288), "12K");
    }
}
