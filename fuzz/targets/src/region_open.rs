//! `region_open`: arbitrary bytes as a region file, opened and then used.
//!
//! The input is written as the region file of a DC, which is then opened: a bad header must be
//! a [`m3ipc::DcError`], and a region that opens must survive every call made on it (its slot
//! table is as the fuzzer wrote it) with results or errors, never a panic, a hang or a stray
//! memory access.
//!
//! A region whose header asks for a pool of 1 MiB gets one: a fresh pool file (the same for
//! every input, made once), so that the buffer and grant calls run against the fuzzed slot
//! table too. Other pool sizes find no pool file and fail to open, as they should.
//!
//! One change to the input: a header whose state word says "being created" (0) is given state
//! "removed" (2). `Dc::open` waits up to a second for a creator to finish, which is right for a
//! real region and would only slow the fuzzer down; that wait is covered by m3ipc's own tests.

use crate::shm;
use m3ipc::pool::Access;
use m3ipc::{ANY, Dc, DcConfig, Message, Timeout};
use std::sync::{Mutex, OnceLock};

/// The DC name the input is written as.
const NAME: &str = "fz-open";
/// Byte offset of the header's state word (after the 8-byte magic and the 4-byte version).
const STATE_OFFSET: usize = 12;
/// Largest region file a run writes: the largest valid region (1024 slots) fits.
const MAX_FILE: usize = 8 << 20;

/// Byte offset of the header's `pool_bytes` word (see `Header` in ipc/src/region.rs; the test
/// `pool_bytes_offset` checks it against a real region).
pub const POOL_BYTES_OFFSET: usize = 72;
/// The pool size that gets a pool file.
const POOL: u64 = 1 << 20;

static LOCK: Mutex<()> = Mutex::new(());
/// A fresh 1 MiB pool file: its bytes up to the last non-zero one, and its length.
static POOL_FILE: OnceLock<Option<(Vec<u8>, u64)>> = OnceLock::new();

/// Make a DC with a 1 MiB pool and keep a copy of its fresh pool file.
fn fresh_pool() -> Option<(Vec<u8>, u64)> {
    let name = "fz-open-tmpl";
    shm::remove_dc(name);
    let config = DcConfig {
        dcid: 8,
        node: 0,
        nr_procs: 8,
        nr_tasks: 2,
        nr_sysprocs: 4,
        mode: 0o600,
        pool_bytes: POOL,
    };
    let made = Dc::create(name, &config).ok().and_then(|_dc| {
        let path = shm::private_dir().join(format!("{}{name}", m3ipc::pool::POOL_FILE_PREFIX));
        let mut bytes = std::fs::read(path).ok()?;
        let len = bytes.len() as u64;
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        bytes.truncate(end);
        Some((bytes, len))
    });
    shm::remove_dc(name);
    made
}

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
    let pool_bytes = file
        .get(POOL_BYTES_OFFSET..POOL_BYTES_OFFSET + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes);
    if pool_bytes == Some(POOL)
        && let Some((bytes, len)) = POOL_FILE.get_or_init(fresh_pool)
    {
        let pool = dir.join(format!("{}{NAME}", m3ipc::pool::POOL_FILE_PREFIX));
        let written = std::fs::File::create(&pool).and_then(|f| {
            std::io::Write::write_all(&mut &f, bytes)?;
            f.set_len(*len)
        });
        if written.is_err() {
            shm::remove_dc(NAME);
            return;
        }
    }
    let opened = Dc::open(NAME);
    if crate::trace() {
        eprintln!(
            "open: {:?}",
            opened
                .as_ref()
                .map(|dc| dc.pool_info())
                .map_err(|e| e.to_string())
        );
    }
    if let Ok(dc) = opened {
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
        // The pool, if it has one: a buffer granted, used by the grantee, given, released.
        if let Ok(h) = c.alloc_buffer(8192) {
            if let Ok(g) = c.grant(h, s.endpoint(), 100, 1000, Access::READ_WRITE)
                && let Ok(view) = s.granted(c.endpoint(), g)
            {
                let _ = view.write_at(0, b"hostile region");
                let _ = view.checksum(0, view.len());
                let _ = c.revoke(g);
            }
            if c.give(h, s.endpoint()).is_ok() {
                let _ = s.release_buffer(h);
            } else {
                let _ = c.release_buffer(h);
            }
        }
    }
    let _ = dc.reap_dead();
    let _ = dc.wait4bind(0, Timeout::NoWait);
    drop(server);
    drop(client);
    let _ = dc.info();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_bytes_offset() {
        shm::private_dir();
        let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let (bytes, len) = fresh_pool().unwrap_or_default();
        assert!(len > POOL && !bytes.is_empty(), "no pool file made");
        let name = "fz-open-test";
        shm::remove_dc(name);
        let config = DcConfig {
            dcid: 7,
            node: 0,
            nr_procs: 8,
            nr_tasks: 2,
            nr_sysprocs: 4,
            mode: 0o600,
            pool_bytes: 3 << 20,
        };
        let region = Dc::create(name, &config).map(|dc| std::fs::read(dc.path()));
        shm::remove_dc(name);
        let Ok(Ok(region)) = region else {
            panic!("cannot make a region")
        };
        assert_eq!(
            region[POOL_BYTES_OFFSET..POOL_BYTES_OFFSET + 8],
            (3u64 << 20).to_le_bytes()
        );
    }
}
