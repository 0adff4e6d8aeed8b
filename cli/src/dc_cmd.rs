//! `dvs dc create|rm|ls`: creating, removing and listing distributed containers.

use crate::error::{CliError, Result};
use crate::table::{Align, Table, print_text};
use clap::{Args, Subcommand};
use core::fmt;
use m3ipc::{Dc, DcConfig, DcError, Errno};

/// The `dvs dc` subcommands.
#[derive(Debug, Subcommand)]
pub enum DcCommand {
    /// Create a DC: its region file in the region directory ($M3IPC_SHM_DIR or /dev/shm).
    Create(CreateArgs),
    /// Remove a DC: calls of processes still attached fail with EDVSDCNOTRUN.
    #[command(alias = "remove")]
    Rm {
        /// The DC's name.
        name: String,
    },
    /// List the DCs of the region directory.
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
            println!("removed DC {name}");
            Ok(())
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
        mode: args.mode.0,
    };
    let dc = Dc::create(&args.name, &config).map_err(|e| explain_create(e, &args.name))?;
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
        ("CREATOR", Align::Right),
    ]);
    for name in Dc::list()? {
        match Dc::open(&name) {
            Ok(dc) => {
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
                    info.creator_pid.to_string(),
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
}
