//! Reports on standard output: a closed pipe (`muk2 check --dc D | head -1`) ends the printing,
//! never the program.
//!
//! `muk2` keeps SIGPIPE ignored (Rust's start-up default) instead of restoring the default
//! disposition as `ls` does: this process hosts servers, and a signal that killed it on a
//! write to a closed pipe would stop them mid-sync. So a write fails with `EPIPE`, and that
//! failure means only that nobody reads the report any more: the work goes on and its exit
//! status stays what it would have been.

use crate::{Error, Result};
use std::io::{ErrorKind, Write};

/// Write `text` to standard output and flush it. A closed pipe is not an error; any other
/// failure (a full disk behind `>`) is.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => {
            Err(Error(format!("writing to standard output: {e}")))
        }
        _ => Ok(()),
    }
}
