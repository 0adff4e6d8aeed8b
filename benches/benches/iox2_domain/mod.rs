//! A private iceoryx2 domain for one bench run: its files under names no other run uses, all
//! removed at the end.
//!
//! iceoryx2 keeps node and service records under a root directory (`/tmp/iceoryx2` by
//! default) and its shared memory as POSIX objects named `PREFIX...` (`/dev/shm/iox2_...` by
//! default), and leaves its global management segment behind on purpose. Our rule is that tests
//! and benches never touch a fixed name in /dev/shm and clean up: the domain's root is a fresh
//! directory in the run's region directory (`M3IPC_SHM_DIR`, else the temporary directory), its
//! prefix carries this process's id, and dropping the domain removes the root and every shared
//! memory object with the prefix.

use iceoryx2::prelude::*;
use m3_benches::{BenchError, Result};
use std::path::PathBuf;

/// Where POSIX shared memory objects live on Linux.
const SHM_DIR: &str = "/dev/shm";

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::new(format!("iceoryx2 config: {e}"))
}

/// The configuration of a domain rooted at `root` with shared memory names `prefix...`: what
/// both sides of a session build their nodes with.
pub fn config(root: &str, prefix: &str) -> Result<Config> {
    let mut config = Config::default();
    config.global.prefix = FileName::new(prefix.as_bytes()).map_err(err)?;
    config
        .global
        .set_root_path(&Path::new(root.as_bytes()).map_err(err)?);
    Ok(config)
}

/// The domain of this run; its files are removed on drop.
#[derive(Debug)]
pub struct Iox2Domain {
    root: PathBuf,
    prefix: String,
    config: Config,
}

impl Iox2Domain {
    /// A fresh root directory and a prefix of this process's own.
    pub fn create() -> Result<Iox2Domain> {
        let base = std::env::var_os("M3IPC_SHM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let tag = format!("m3bench-iox2-{}", std::process::id());
        let root = base.join(&tag);
        std::fs::create_dir(&root)
            .map_err(|e| BenchError::new(format!("{}: {e}", root.display())))?;
        let prefix = format!("{tag}_");
        let text = root
            .to_str()
            .ok_or_else(|| BenchError::new(format!("{}: not UTF-8", root.display())))?
            .to_string();
        let domain = Iox2Domain {
            config: config(&text, &prefix).inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&root);
            })?,
            root,
            prefix,
        };
        Ok(domain)
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The root directory and the prefix, for the server peer's command line.
    pub fn args(&self) -> [String; 2] {
        [
            self.root.to_string_lossy().into_owned(),
            self.prefix.clone(),
        ]
    }
}

impl Drop for Iox2Domain {
    /// Called once no node of the domain is left (the session drops its ports and reaps its
    /// peer first): the names are this run's own, so nothing else can be using them.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        let Ok(entries) = std::fs::read_dir(SHM_DIR) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&self.prefix)
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
