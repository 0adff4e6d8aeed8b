//! `region_open`: arbitrary bytes as a region file, opened and then used.
//!
//! The input is written as the region file of a DC, which is then opened: a bad header must be
//! a [`m3ipc::DcError`], and a region that opens must survive every call made on it (its slot
//! table is as the fuzzer wrote it) with results or errors, never a panic, a hang or a stray
//! memory access.
//!
//! One change to the input: a header whose state word says "being created" (0) is given state
//! "removed" (2). `Dc::open` waits up to a second for a creator to finish, which is right for a
//! real region and would only slow the fuzzer down; that wait is covered by m3ipc's own tests.

use crate::shm;
use m3ipc::{ANY, Dc, Message, Timeout};
use std::sync::Mutex;

/// The DC name the input is written as.
const NAME: &str = "fz-open";
/// Byte offset of the header's state word (after the 8-byte magic and the 4-byte version).
const STATE_OFFSET: usize = 12;
/// Largest region file a run writes: the largest valid region (1024 slots) fits.
const MAX_FILE: usize = 8 << 20;

static LOCK: Mutex<()> = Mutex::new(());

/// Run one input.
pub fn run(data: &[u8]) {
    let dir = shm::private_dir();
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut file = data[..data.len().min(MAX_FILE)].to_vec();
    if let Some(state) = file.get_mut(STATE_OFFSET..STATE_OFFSET + 4)
        && state == [0, 0, 0, 0]
    {
        state.copy_from_slice(&2u32.to_le_bytes());
    }
    let path = dir.join(format!("{}{NAME}", m3ipc::FILE_PREFIX));
    if std::fs::write(&path, &file).is_err() {
        return;
    }
    if let Ok(dc) = Dc::open(NAME) {
        use_region(&dc);
    }
    shm::remove_dc(NAME);
}

/// Every read-only query, then a binding and the calls that never wait.
fn use_region(dc: &Dc) {
    let info = dc.info();
    let _ = dc.procs();
    let _ = dc.pool_info();
    let c = info.config.clone();
    let first = -(c.nr_tasks as i32);
    let last = c.nr_procs as i32 - 1;
    for nr in [first, 0, last, last + 1, i32::MIN] {
        let _ = dc.getprocinfo(nr);
    }
    let _ = dc.getep(std::process::id());
    let _ = dc.getep(1);
    // A system slot and a user slot (the last one), as a server and a client would.
    let server = dc.bind(c.nr_sysprocs as i32 - c.nr_tasks as i32 - 1);
    let client = dc.bind(last);
    for p in [&server, &client].into_iter().flatten() {
        let me = p.endpoint();
        let mut m = Message::new(1);
        let _ = p.senda(me, &m);
        let _ = p.notify(me);
        let _ = p.receive(ANY, &mut m, Timeout::NoWait);
        let _ = p.getpriv(me);
        let _ = p.send(first, &m, Timeout::NoWait);
        let _ = p.alloc_buffer(4096);
    }
    if let (Ok(s), Ok(c)) = (&server, &client) {
        let mut m = Message::new(2);
        let _ = c.senda(s.endpoint(), &m);
        let _ = s.receive(ANY, &mut m, Timeout::NoWait);
        let _ = s.reply(c.endpoint(), &m);
    }
    let _ = dc.reap_dead();
    let _ = dc.wait4bind(0, Timeout::NoWait);
    drop(server);
    drop(client);
    let _ = dc.info();
}
