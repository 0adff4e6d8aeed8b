//! The server the measurement examples measure against.

use m3ipc::{ANY, Errno, Message, Timeout};
use muk::{Ipc, Server};

/// Replies to every message with the message itself: the smallest server, so that what is
/// measured is the IPC.
pub struct Ponger;

impl Server for Ponger {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> m3ipc::Result<()> {
        let mut m = Message::default();
        loop {
            match ipc.receive(ANY, &mut m, Timeout::Forever) {
                Ok(()) => {
                    let _ = ipc.reply(m.m_source, &m);
                }
                Err(Errno::EDVSSHUTDOWN) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}
