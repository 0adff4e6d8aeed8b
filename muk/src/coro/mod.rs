//! MUK2: every server a coroutine on one scheduler thread. (Being written.)

use crate::host::{Hosted, ServerExit, Stopper};
use m3ipc::Proc;
use std::thread::JoinHandle;

pub(crate) fn spawn(
    _servers: Vec<Hosted>,
    _procs: Vec<Proc>,
    _stopper: Stopper,
) -> std::io::Result<JoinHandle<Vec<ServerExit>>> {
    Err(std::io::Error::other("the coroutine runner is not written yet"))
}
