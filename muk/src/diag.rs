//! Diagnostics on standard error that never take a server down.
//!
//! `eprintln!` panics when standard error is a closed pipe (`muk2 run 2>&1 | head -1`), and a
//! panic inside a server ends that server: FS would stop serving because it could not say that it
//! formatted a disk. A diagnostic is best effort, so [`diag!`](crate::diag!) drops what cannot be
//! written.

use std::fmt;
use std::io::Write;

/// Write one line to standard error; a closed or failing standard error is ignored.
pub fn line(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `eprintln!` that never panics: see [the module](mod@crate::diag).
#[macro_export]
macro_rules! diag {
    ($($arg:tt)*) => {
        $crate::diag::line(format_args!($($arg)*))
    };
}
