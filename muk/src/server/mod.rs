//! The servers a unikernel hosts, with the original's well-known slot numbers.
//!
//! Each server is written once against [`Ipc`] and runs under both runners.

use crate::ipc::Ipc;
use m3ipc::Result;

/// A server: its loop, run on a coroutine (MUK2) or a thread (MUK).
pub trait Server: Send {
    /// Serve until the host stops (`EDVSSHUTDOWN` from a blocking call) or a fatal error.
    fn serve(&mut self, ipc: &mut dyn Ipc) -> Result<()>;
}

/// The servers this crate knows, by the name a config uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// SYSTASK: the kernel-call server.
    Systask,
    /// PM: the process manager.
    Pm,
    /// A small echo/sink server for tests and benchmarks.
    Echo,
}

impl ServerKind {
    /// Every known server, in boot order.
    pub const ALL: [ServerKind; 3] = [ServerKind::Systask, ServerKind::Pm, ServerKind::Echo];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Systask => "systask",
            ServerKind::Pm => "pm",
            ServerKind::Echo => "echo",
        }
    }

    /// The server of that name, if there is one.
    pub fn from_name(name: &str) -> Option<ServerKind> {
        ServerKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The original's well-known slot number (SYSTASK `-2`, PM `0`); echo uses 20.
    pub fn default_nr(self) -> i32 {
        match self {
            ServerKind::Systask => -2,
            ServerKind::Pm => 0,
            ServerKind::Echo => 20,
        }
    }
}
