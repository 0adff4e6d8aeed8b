//! What `muk2`, `muk2 run` and `muk2 serve` share: the DC they create (and remove), the host
//! they start, and a watch on it.

use crate::signals;
use crate::{Error, Result};
use m3ipc::{Dc, DcError};
use muk::config::{DcSpec, ServerSpec};
use muk::{Host, Hosted, Runner, ServerExit, ServerKind, Stopper};
use std::sync::mpsc;

/// A DC this process created: removed when dropped, whatever path the program leaves by (under
/// the sandbox by its helper process, see `sandbox`).
pub struct CreatedDc {
    dc: Dc,
    removal: Removal,
}

/// Who removes the DC when the [`CreatedDc`] is dropped.
enum Removal {
    /// This process.
    Here,
    /// The sandbox's helper process.
    Janitor(crate::sandbox::Janitor),
    /// The parent outside the namespaces of `--isolate`, told through this pipe.
    Parent(std::fs::File),
}

impl CreatedDc {
    /// Create the DC of `spec`, exclusively, taking over a DC of that name left by dead
    /// processes (said on stderr). Without a `dcid` in the config, take the lowest id no other
    /// DC in the region directory uses. With a `group`, the files get it and then the config's
    /// mode.
    pub fn create(spec: &DcSpec) -> Result<CreatedDc> {
        let gid = match &spec.group {
            Some(g) => Some(m3ipc::group_id(g).map_err(|e| Error(format!("[dc] group: {e}")))?),
            None => None,
        };
        let taken = match spec.dcid {
            Some(dcid) => Dc::create_or_take_over(&spec.name, &spec.dc_config(dcid), false),
            None => Dc::create_or_take_over(&spec.name, &spec.dc_config(0), true),
        }
        .map_err(|e| exists_hint(e, &spec.name))?;
        if let Some(t) = &taken.taken_over {
            muk::diag!("muk2: {t}");
        }
        // From here on a failure removes the DC (drop).
        let created = CreatedDc {
            dc: taken.dc,
            removal: Removal::Here,
        };
        if gid.is_some() {
            created.dc.share(gid, spec.mode).map_err(|e| {
                Error(format!(
                    "cannot give DC {} group {:?} and mode {:#o}: {e}",
                    spec.name,
                    spec.group.as_deref().unwrap_or_default(),
                    spec.mode
                ))
            })?;
        }
        Ok(created)
    }

    /// The DC.
    pub fn dc(&self) -> &Dc {
        &self.dc
    }

    /// The DC created by the parent of `muk2 run --isolate`, which removes it when told through
    /// `pipe` (written when this is dropped: the stop was orderly).
    pub fn created_by_parent(dc: Dc, pipe: std::fs::File) -> CreatedDc {
        CreatedDc {
            dc,
            removal: Removal::Parent(pipe),
        }
    }

    /// Leave the removal to `janitor` (the sandbox forbids it to this process).
    pub fn hand_removal_to(&mut self, janitor: crate::sandbox::Janitor) {
        self.removal = Removal::Janitor(janitor);
    }

    /// The pipe to the parent that removes the DC, if one does (the sandbox lets it be written).
    pub fn parent_pipe(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match &self.removal {
            Removal::Parent(f) => Some(f.as_raw_fd()),
            _ => None,
        }
    }
}

impl Drop for CreatedDc {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.removal, Removal::Here) {
            Removal::Janitor(j) => j.finish(),
            Removal::Parent(mut pipe) => {
                use std::io::Write;
                if let Err(e) = pipe.write_all(crate::sandbox::REMOVE) {
                    muk::diag!(
                        "muk2: telling the parent to remove DC {}: {e}",
                        self.dc.name()
                    );
                }
            }
            Removal::Here => {
                if let Err(e) = Dc::remove(self.dc.name()) {
                    muk::diag!("muk2: removing DC {}: {e}", self.dc.name());
                }
            }
        }
    }
}

/// Remove the private DCs (`PREFIX<pid>`) of earlier runs whose process is gone: a run killed
/// by SIGKILL cannot remove its own, and each one holds one of the 32 DC ids. Left alone: a DC
/// whose named process is alive, and one that opens but was created by another process.
pub fn remove_stale(prefix: &str) {
    let Ok(names) = Dc::list() else { return };
    for name in names {
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let ours = match Dc::open(&name) {
            Ok(dc) => dc.info().creator_pid == pid,
            // Killed while it filled the header in: never finished, so never used.
            Err(DcError::NotRunning(_)) => true,
            Err(_) => false,
        };
        if ours {
            let _ = Dc::remove(&name);
        }
    }
}

fn exists_hint(e: DcError, name: &str) -> Error {
    match e {
        DcError::Exists(_) => Error(format!(
            "cannot create DC {name:?}: {e} (remove it with `dvs dc rm {name}` if nothing uses it, \
             or choose another name or dcid in the config)"
        )),
        e => Error(format!("cannot create DC {name:?}: {e}")),
    }
}

/// The server `spec` names, ready to host (RDISK's image file is opened here: a missing file
/// is an error before anything starts).
pub fn hosted(spec: &ServerSpec) -> Result<Hosted> {
    let server = spec
        .kind
        .build_with(&spec.options)
        .map_err(|e| Error(format!("server {}: {e}", spec.kind.name())))?;
    Ok(Hosted {
        name: spec.kind.name().to_string(),
        nr: spec.nr,
        stack_size: spec.stack_size,
        server,
    })
}

/// Parse a server name given on the command line.
pub fn server_kind(name: &str) -> Result<ServerKind> {
    ServerKind::from_name(name).ok_or_else(|| {
        Error(format!(
            "unknown server {name:?} (known: {})",
            ServerKind::ALL.map(ServerKind::name).join(", ")
        ))
    })
}

/// The runner's name for messages.
pub fn runner_name(r: Runner) -> &'static str {
    match r {
        Runner::Coroutines => "MUK2 (coroutines)",
        Runner::Threads => "MUK (threads)",
    }
}

/// A running host watched by a thread that joins it: when every server has returned (on a stop,
/// or on their own after a failure) the thread hands their exits over and wakes the main thread
/// (`signals::Event::Wake`).
pub struct Watched {
    stopper: Stopper,
    exits: mpsc::Receiver<Vec<ServerExit>>,
}

impl Watched {
    /// Watch `host`.
    pub fn new(host: Host) -> Result<Watched> {
        let stopper = host.stopper();
        let (tx, exits) = mpsc::channel();
        crate::sandbox::spawn_started("muk2-watch", move || {
            let _ = tx.send(host.join());
            signals::wake_main();
        })?;
        Ok(Watched { stopper, exits })
    }

    /// The servers' exits if they have all returned already.
    pub fn ended(&self) -> Option<Vec<ServerExit>> {
        self.exits.try_recv().ok()
    }

    /// Stop every server and wait for them: their slots are unbound when this returns.
    pub fn stop(self) -> Vec<ServerExit> {
        self.stopper.stop();
        self.exits.recv().unwrap_or_else(|_| {
            vec![ServerExit {
                name: "runner".into(),
                result: Err("the watch thread vanished".into()),
            }]
        })
    }
}

/// `Ok` when every server returned cleanly after a stop; else one error naming each failure.
pub fn check_exits(exits: &[ServerExit]) -> Result<()> {
    let shutdown = m3ipc::Errno::EDVSSHUTDOWN.to_string();
    let failed: Vec<String> = exits
        .iter()
        .filter_map(|e| match &e.result {
            // A server may report the stop itself as its loop's end.
            Err(why) if *why != shutdown => Some(format!("server {} failed: {why}", e.name)),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error(failed.join("; ")))
    }
}
