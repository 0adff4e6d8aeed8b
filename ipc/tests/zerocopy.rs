//! Zero-copy data (docs/ARCHITECTURE.md section 7, issue 3): the shared buffer pool, grants and `vcopy`.
//!
//! - Transfers of 4 KiB, 64 KiB and 1 MiB payloads by handle between two processes: the
//!   receiver checks the bytes against the sender's checksum, sees the very pool offset the
//!   sender wrote at, and the pool's copy counter stays 0.
//! - Every refusal: stale and forged handles, double release, another owner's buffer, revoked
//!   grants, grants for another endpoint or without the right, ranges outside a buffer or a
//!   grant, `vcopy` of a party not blocked in a receive, an exhausted pool, a DC without pool.
//! - `vcopy` across processes with a third-party requester (a server copying from a client's
//!   buffer into a disk process's buffer), 1 MiB in one call.
//! - A kill test: a process holding buffers and grants is SIGKILLed; its buffers come back and
//!   its grants are refused afterwards.
// Child roles run outside `#[test]` functions, where a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::pool::checksum_words;
use m3ipc::{
    ANY, Access, Dc, DcConfig, Endpoint, Errno, GrantId, Handle, Message, Proc, SELF, Timeout,
};
use std::time::Duration;
use support::{Rng, TestDc, child_entry, eventually, say, spawn};

const LONG: Timeout = Timeout::Millis(20_000);
/// Slots: tasks -4..-1, processes 0..15; system processes are nr -4..5, users 6..15.
const SERVER: i32 = 1;
const DISK: i32 = 2;
const CLIENT: i32 = 8;
const SIZES: [usize; 3] = [4 << 10, 64 << 10, 1 << 20];
const T_DATA: i32 = 1;
const T_STOP: i32 = 2;
const T_COPY: i32 = 3;

fn config(pool_mib: u64) -> DcConfig {
    DcConfig {
        nr_tasks: 4,
        nr_procs: 16,
        nr_sysprocs: 10,
        pool_bytes: pool_mib << 20,
        ..DcConfig::default()
    }
}

/// A payload of `len` pseudo-random bytes.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

#[test]
fn child_main() {
    child_entry(run_role)
}

fn run_role(role: &str, dc: &str, args: &[String]) {
    let dc = Dc::open(dc).unwrap();
    match role {
        // Sends each payload size by handle to the server, then stops it.
        "sender" => {
            let me = dc.bind_named(CLIENT, "sender").unwrap();
            let server = dc.wait4bind(SERVER, LONG).unwrap();
            for (k, &len) in SIZES.iter().enumerate() {
                let h = me.alloc_buffer(len).unwrap();
                let view = me.buffer(h).unwrap();
                view.write_at(0, &payload(len, k as u64 + 7)).unwrap();
                let sum = view.checksum(0, len).unwrap();
                let offset = view.pool_offset();
                me.give(h, server).unwrap();
                // Given away: the sender may no longer touch it.
                assert_eq!(me.buffer(h).unwrap_err(), Errno::EDVSBADOWNER);
                let mut m = Message::new(T_DATA);
                m.put_handle(h);
                m.m1_mut().m1i1 = len as i32;
                m.m1_mut().m1p2 = offset;
                m.m1_mut().m1p3 = sum;
                me.sendrec(server, &mut m, LONG).unwrap();
                assert_eq!(m.m_type, 0, "server refused the {len}-byte transfer");
                // The receiver released it: the handle is stale now.
                assert_eq!(me.buffer(h).unwrap_err(), Errno::EDVSBADF);
            }
            let mut m = Message::new(T_STOP);
            me.sendrec(server, &mut m, LONG).unwrap();
        }
        // Holds a buffer and a READ grant to the server of part of it, then blocks in sendrec
        // asking the server to copy it into the disk process's buffer.
        "client" => {
            let me = dc.bind_named(CLIENT, "client").unwrap();
            let server = dc.wait4bind(SERVER, LONG).unwrap();
            let len = 1 << 20;
            let h = me.alloc_buffer(len).unwrap();
            let data = payload(len, 99);
            me.buffer(h).unwrap().write_at(0, &data).unwrap();
            let g = me.grant(h, server, 0, len, Access::READ).unwrap();
            let mut m = Message::new(T_COPY);
            m.put_grant(g);
            m.m1_mut().m1p3 = checksum_words(&data);
            me.sendrec(server, &mut m, LONG).unwrap();
            assert_eq!(m.m_type, 0);
        }
        // Holds a buffer with a WRITE grant to the server, blocks in sendrec, then checks what
        // the server copied in against the checksum in the reply.
        "disk" => {
            let me = dc.bind_named(DISK, "disk").unwrap();
            let server = dc.wait4bind(SERVER, LONG).unwrap();
            let len = 1 << 20;
            let h = me.alloc_buffer(len).unwrap();
            me.buffer(h).unwrap().fill(0, len, 0).unwrap();
            let g = me.grant(h, server, 0, len, Access::WRITE).unwrap();
            let mut m = Message::new(T_COPY);
            m.put_grant(g);
            me.sendrec(server, &mut m, LONG).unwrap();
            assert_eq!(m.m_type, 0);
            let sum = me.buffer(h).unwrap().checksum(0, len).unwrap();
            assert_eq!(
                sum,
                m.m1().m1p3,
                "the copied bytes differ from the client's"
            );
            say("DISK-OK");
            me.release_buffer(h).unwrap();
        }
        // Holds three buffers and a READ grant to the server on one, then waits to be killed.
        "holder" => {
            let me = dc.bind_named(CLIENT, "holder").unwrap();
            let server = dc.wait4bind(SERVER, LONG).unwrap();
            let hs: Vec<Handle> = SIZES.iter().map(|&l| me.alloc_buffer(l).unwrap()).collect();
            me.buffer(hs[1]).unwrap().fill(0, SIZES[1], 0x5a).unwrap();
            let g = me.grant(hs[1], server, 0, SIZES[1], Access::READ).unwrap();
            say(&format!("READY {} {} {}", me.endpoint(), g.0, hs[1].0));
            std::thread::sleep(Duration::from_secs(60));
            let _ = args;
        }
        // Pinned to CPU `args[0]`, makes `args[1]` sendrecs with the default Adaptive policy,
        // each asking the server to vcopy 4 KiB out of its buffer and 4 KiB into it; checks
        // what the server copied in before each next request.
        "spinner" => {
            pin(args[0].parse().unwrap());
            let rounds: u64 = args[1].parse().unwrap();
            let me = dc.bind_named(CLIENT, "spinner").unwrap();
            let server = dc.wait4bind(SERVER, LONG).unwrap();
            let h = me.alloc_buffer(2 * SPIN_LEN).unwrap();
            let g = me
                .grant(h, server, 0, 2 * SPIN_LEN, Access::READ_WRITE)
                .unwrap();
            for r in 0..rounds {
                let view = me.buffer(h).unwrap();
                view.write_at(0, &payload(SPIN_LEN, r)).unwrap();
                let mut m = Message::new(T_COPY);
                m.put_grant(g);
                me.sendrec(server, &mut m, LONG).unwrap();
                assert_eq!(m.m_type, 0, "round {r}: the server's vcopy failed");
                let mut back = vec![0u8; SPIN_LEN];
                view.read_at(SPIN_LEN, &mut back).unwrap();
                assert!(
                    back == payload(SPIN_LEN, r + 1000),
                    "round {r}: bytes copied in"
                );
            }
            say("SPINNER-OK");
        }
        _ => panic!("unknown role {role}"),
    }
}

/// Bytes per direction in `vcopy_into_a_spinning_client_always_succeeds`.
const SPIN_LEN: usize = 4 << 10;

/// Pin the calling thread to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it; the call reads
    // `size_of_val(&set)` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, core::mem::size_of_val(&set), &set),
            0
        );
    }
}

/// Issue 9 (b), without timing: the client is stopped (SIGSTOP) the moment its request is
/// received, while it still spins on another core and has not published WAITING. Before the fix,
/// such a client was never a valid party (EDVSPROCSTS after the settle time); now every vcopy
/// succeeds. The rounds where the client had already published WAITING prove nothing and are
/// not counted; at least a quarter must be of the kind that matters.
#[test]
fn vcopy_into_a_client_stopped_while_spinning_succeeds() {
    const ROUNDS: u64 = 100;
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("one CPU: a client never spins; nothing to show");
        return;
    }
    let t = TestDc::with('z', &config(8));
    let server = t.dc.bind_named(SERVER, "server").unwrap();
    let mut client = spawn("spinner", &t.name, &["1", &ROUNDS.to_string()]);
    pin(0);
    let pid = client.child.id() as i32;
    let sh = server.alloc_buffer(2 * SPIN_LEN).unwrap();
    let view = server.buffer(sh).unwrap();
    let mut spinning = 0;
    for r in 0..ROUNDS {
        let mut m = Message::default();
        server.receive(ANY, &mut m, LONG).unwrap();
        // SAFETY: kill(2) on our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        let flags = t.dc.getprocinfo(CLIENT).unwrap().flags;
        if flags & m3ipc::FLAG_WAITING == 0 {
            spinning += 1;
        }
        let (c, g) = (m.m_source, m.grant());
        assert_eq!(
            server.vcopy(c, g, 0, SELF, sh, 0, SPIN_LEN),
            Ok(()),
            "round {r}"
        );
        view.write_at(SPIN_LEN, &payload(SPIN_LEN, r + 1000))
            .unwrap();
        let back = server.vcopy(SELF, sh, SPIN_LEN, c, g, SPIN_LEN, SPIN_LEN);
        assert_eq!(back, Ok(()), "round {r}");
        server.reply(c, &Message::new(0)).unwrap();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    }
    unpin(2);
    server.release_buffer(sh).unwrap();
    client.expect("SPINNER-OK");
    client.finish();
    assert!(
        spinning >= ROUNDS / 4,
        "only {spinning} of {ROUNDS} rounds caught the client spinning"
    );
}

/// Let the calling thread run on any of the first `cpus` CPUs again.
fn unpin(cpus: usize) {
    // SAFETY: as in `pin`.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        for cpu in 0..cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, core::mem::size_of_val(&set), &set);
    }
}

/// Issue 9 (b): a client in the receive half of an Adaptive `sendrec` is a valid `vcopy` party
/// at once, while it still spins (it publishes WAITING only once it stops spinning): every
/// vcopy out of it and into it succeeds at the first call, on different cores (where the
/// client spins) and on one core (where it sleeps), and the client sees the bytes copied in
/// once it has the reply.
#[test]
fn vcopy_into_a_spinning_client_always_succeeds() {
    const ROUNDS: u64 = 1_000;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let placements: &[(usize, usize)] = if cpus >= 2 {
        &[(0, 1), (0, 0)]
    } else {
        &[(0, 0)]
    };
    for &(server_cpu, client_cpu) in placements {
        let t = TestDc::with('z', &config(8));
        let server = t.dc.bind_named(SERVER, "server").unwrap();
        let mut client = spawn(
            "spinner",
            &t.name,
            &[&client_cpu.to_string(), &ROUNDS.to_string()],
        );
        pin(server_cpu);
        let sh = server.alloc_buffer(2 * SPIN_LEN).unwrap();
        let view = server.buffer(sh).unwrap();
        let mut got = vec![0u8; SPIN_LEN];
        for r in 0..ROUNDS {
            let mut m = Message::default();
            server.receive(ANY, &mut m, LONG).unwrap();
            assert_eq!(m.m_type, T_COPY);
            let (c, g) = (m.m_source, m.grant());
            let out = server.vcopy(c, g, 0, SELF, sh, 0, SPIN_LEN);
            assert_eq!(
                out,
                Ok(()),
                "round {r} ({server_cpu}, {client_cpu}): out of it"
            );
            view.read_at(0, &mut got).unwrap();
            assert!(got == payload(SPIN_LEN, r), "round {r}: bytes copied out");
            view.write_at(SPIN_LEN, &payload(SPIN_LEN, r + 1000))
                .unwrap();
            let back = server.vcopy(SELF, sh, SPIN_LEN, c, g, SPIN_LEN, SPIN_LEN);
            assert_eq!(
                back,
                Ok(()),
                "round {r} ({server_cpu}, {client_cpu}): into it"
            );
            server.reply(c, &Message::new(0)).unwrap();
        }
        server.release_buffer(sh).unwrap();
        unpin(cpus);
        client.expect("SPINNER-OK");
        client.finish();
    }
}

/// Acceptance 1: 4 KiB, 64 KiB and 1 MiB by handle between two processes, with no copy.
#[test]
fn transfer_by_handle_between_processes() {
    let t = TestDc::with('z', &config(8));
    let server = t.dc.bind_named(SERVER, "receiver").unwrap();
    let baseline = t.dc.pool_info().unwrap();
    assert_eq!(baseline.used_bytes, 0);
    let sender = spawn("sender", &t.name, &[]);
    let mut seen = Vec::new();
    loop {
        let mut m = Message::default();
        server.receive(ANY, &mut m, LONG).unwrap();
        if m.m_type == T_STOP {
            server.reply(m.m_source, &Message::new(0)).unwrap();
            break;
        }
        let len = m.m1().m1i1 as usize;
        let h = m.handle();
        let view = server.buffer(h).unwrap();
        // Pointer identity inside the pool: the very bytes the sender wrote.
        assert_eq!(
            view.pool_offset(),
            m.m1().m1p2,
            "{len} bytes: not the same block"
        );
        assert!(view.len() >= len);
        assert_eq!(view.access(), Access::READ_WRITE);
        let sum = view.checksum(0, len).unwrap();
        let ok = sum == m.m1().m1p3;
        // While the server holds it, `ps` shows it.
        let info = t.dc.getprocinfo(SERVER).unwrap();
        assert_eq!(info.holdings.buffers, 1);
        assert_eq!(info.holdings.bytes, len as u64);
        server.release_buffer(h).unwrap();
        seen.push((len, ok));
        server
            .reply(m.m_source, &Message::new(if ok { 0 } else { -1 }))
            .unwrap();
    }
    sender.finish();
    assert_eq!(
        seen,
        SIZES.iter().map(|&l| (l, true)).collect::<Vec<_>>(),
        "every payload arrives intact"
    );
    let after = t.dc.pool_info().unwrap();
    assert_eq!(after.copied_bytes, 0, "no byte was copied by the pool");
    assert_eq!(after.used_bytes, 0, "every buffer went back");
}

/// Acceptance 2 (buffers): stale, forged and another owner's handles, double release,
/// out-of-range accesses, exhaustion, no pool.
#[test]
fn buffer_refusals() {
    let t = TestDc::with('z', &config(2));
    let a = t.dc.bind_named(SERVER, "a").unwrap();
    let b = t.dc.bind_named(CLIENT, "b").unwrap();

    assert_eq!(a.alloc_buffer(0).unwrap_err(), Errno::EDVSRANGE);
    assert_eq!(a.alloc_buffer((1 << 20) + 1).unwrap_err(), Errno::EDVSRANGE);

    // Exhaustion: two chunks of 1 MiB, so two 1 MiB buffers and nothing more of that size.
    let big1 = a.alloc_buffer(1 << 20).unwrap();
    let big2 = a.alloc_buffer(1 << 20).unwrap();
    assert_eq!(a.alloc_buffer(1 << 20).unwrap_err(), Errno::EDVSNOMEM);
    assert_eq!(a.alloc_buffer(4096).unwrap_err(), Errno::EDVSNOMEM);
    assert_eq!(t.dc.pool_info().unwrap().used_bytes, 2 << 20);
    a.release_buffer(big2).unwrap();

    // Double release, then the stale handle everywhere.
    a.release_buffer(big1).unwrap();
    assert_eq!(a.release_buffer(big1).unwrap_err(), Errno::EDVSBADF);
    assert_eq!(a.buffer(big1).unwrap_err(), Errno::EDVSBADF);
    assert_eq!(a.give(big1, b.endpoint()).unwrap_err(), Errno::EDVSBADF);
    assert_eq!(
        a.grant(big1, b.endpoint(), 0, 1, Access::READ).unwrap_err(),
        Errno::EDVSBADF
    );
    // The block is reused at a new generation: the old handle stays refused.
    let again = a.alloc_buffer(1 << 20).unwrap();
    assert_ne!(again, big1);
    assert_eq!(a.buffer(big1).unwrap_err(), Errno::EDVSBADF);
    a.release_buffer(again).unwrap();

    // Forged handles: out of range, misaligned, wrong class, zero, a grant id.
    for forged in [
        Handle(0),
        Handle(u64::MAX),
        Handle((1 << 36) | 1_000_000),
        Handle((1 << 36) | (8 << 32) | 1),
        Handle((1 << 36) | (3 << 32)),
        Handle(1 << 63),
    ] {
        assert_eq!(a.buffer(forged).unwrap_err(), Errno::EDVSBADF, "{forged:?}");
        assert_eq!(a.release_buffer(forged).unwrap_err(), Errno::EDVSBADF);
    }

    // Another owner's buffer.
    let h = a.alloc_buffer(10_000).unwrap();
    assert_eq!(h.capacity(), 16 << 10);
    assert_eq!(b.buffer(h).unwrap_err(), Errno::EDVSBADOWNER);
    assert_eq!(b.release_buffer(h).unwrap_err(), Errno::EDVSBADOWNER);
    assert_eq!(b.give(h, a.endpoint()).unwrap_err(), Errno::EDVSBADOWNER);
    assert_eq!(a.give(h, SELF).unwrap_err(), Errno::EDVSENDPOINT);

    // Out-of-range accesses through the owner's view.
    let v = a.buffer(h).unwrap();
    assert_eq!(v.len(), 16 << 10);
    assert_eq!(
        v.write_at(v.len() - 1, &[1, 2]).unwrap_err(),
        Errno::EDVSRANGE
    );
    assert_eq!(v.write_at(usize::MAX, &[1]).unwrap_err(), Errno::EDVSRANGE);
    let mut out = [0u8; 4];
    assert_eq!(v.read_at(v.len(), &mut out).unwrap_err(), Errno::EDVSRANGE);
    assert_eq!(v.checksum(0, v.len() + 8).unwrap_err(), Errno::EDVSRANGE);
    assert_eq!(v.checksum(4, 8).unwrap_err(), Errno::EDVSALIGN);
    v.write_at(v.len() - 4, &[9, 8, 7, 6]).unwrap();
    v.read_at(v.len() - 4, &mut out).unwrap();
    assert_eq!(out, [9, 8, 7, 6]);

    // After a give the old view's owner is refused and the new owner reads the same bytes.
    let v = a.buffer(h).unwrap();
    a.give(h, b.endpoint()).unwrap();
    assert_eq!(v.read_at(0, &mut out).unwrap_err(), Errno::EDVSBADOWNER);
    let vb = b.buffer(h).unwrap();
    assert_eq!(vb.pool_offset(), v.pool_offset());
    vb.read_at(vb.len() - 4, &mut out).unwrap();
    assert_eq!(out, [9, 8, 7, 6]);

    // Unbinding returns what an endpoint holds.
    let _extra = b.alloc_buffer(4096).unwrap();
    assert!(t.dc.pool_info().unwrap().used_bytes > 0);
    drop(b);
    assert_eq!(t.dc.pool_info().unwrap().used_bytes, 0);
    assert_eq!(a.buffer(h).unwrap_err(), Errno::EDVSBADF);

    // A DC without a pool.
    let none = TestDc::with('z', &config(0));
    let p = none.dc.bind(SERVER).unwrap();
    assert_eq!(p.alloc_buffer(4096).unwrap_err(), Errno::EDVSNODEV);
    assert_eq!(none.dc.pool_info(), None);
}

/// Run `f` while `proc` (a user) waits in `sendrec` to `waker` on another thread, as a client
/// waits for its server; then let `waker` take the request and reply, and give `proc` back.
fn while_receiving<T>(proc: Proc, waker: &Proc, f: impl FnOnce() -> T) -> (T, Proc) {
    let ep = proc.endpoint();
    let to = waker.endpoint();
    let dc = waker.dc().clone();
    let th = std::thread::spawn(move || {
        let mut m = Message::new(T_DATA);
        proc.sendrec(to, &mut m, LONG).unwrap();
        proc
    });
    eventually(
        Duration::from_secs(10),
        "the party blocks receiving",
        || {
            let f = dc.getprocinfo(m3ipc::endpoint::nr(ep)).unwrap().flags;
            f & m3ipc::FLAG_RECEIVING != 0
        },
    );
    let r = f();
    let mut m = Message::default();
    waker.receive(ep, &mut m, LONG).unwrap();
    waker.reply(ep, &Message::new(0)).unwrap();
    (r, th.join().unwrap())
}

/// Acceptance 2 (grants and vcopy): revoked grants, grants for another endpoint or without the
/// right, ranges outside a grant, vcopy of a party not blocked in a receive.
#[test]
fn grant_and_vcopy_refusals() {
    let t = TestDc::with('z', &config(4));
    let server = t.dc.bind_named(SERVER, "server").unwrap();
    let other = t.dc.bind_named(SERVER + 2, "other").unwrap();
    let client = t.dc.bind_named(CLIENT, "client").unwrap();
    let (s_ep, c_ep, o_ep) = (server.endpoint(), client.endpoint(), other.endpoint());

    let ch = client.alloc_buffer(64 << 10).unwrap();
    client.buffer(ch).unwrap().fill(0, 64 << 10, 0xab).unwrap();
    let sh = server.alloc_buffer(64 << 10).unwrap();

    // Issuing: ranges and rights.
    assert_eq!(
        client.grant(ch, s_ep, 0, 0, Access::READ).unwrap_err(),
        Errno::EDVSRANGE
    );
    assert_eq!(
        client
            .grant(ch, s_ep, 60 << 10, 8 << 10, Access::READ)
            .unwrap_err(),
        Errno::EDVSRANGE
    );
    assert_eq!(
        client.grant(ch, s_ep, 0, 10, Access::NONE).unwrap_err(),
        Errno::EDVSINVAL
    );
    assert_eq!(
        server.grant(ch, c_ep, 0, 10, Access::READ).unwrap_err(),
        Errno::EDVSBADOWNER
    );
    let g = client.grant(ch, s_ep, 4096, 8192, Access::READ).unwrap();
    let g_other = client.grant(ch, o_ep, 0, 8192, Access::READ).unwrap();
    assert_eq!(t.dc.getprocinfo(CLIENT).unwrap().holdings.grants, 2);

    // Views through grants: read-only, the granted range only, for the grantee only.
    let v = server.granted(c_ep, g).unwrap();
    assert_eq!((v.len(), v.access()), (8192, Access::READ));
    assert_eq!(v.read_u64(0).unwrap(), u64::from_le_bytes([0xab; 8]));
    assert_eq!(v.write_at(0, &[1]).unwrap_err(), Errno::EDVSACCES);
    assert_eq!(v.read_u64(8192).unwrap_err(), Errno::EDVSRANGE);
    assert_eq!(
        server.granted(c_ep, g_other).unwrap_err(),
        Errno::EDVSACCES,
        "a grant for another endpoint"
    );
    assert_eq!(
        server.granted(o_ep, g).unwrap_err(),
        Errno::EDVSPERM,
        "not issued by that endpoint"
    );
    assert_eq!(
        server.granted(c_ep, GrantId(g.0 ^ (1 << 32))).unwrap_err(),
        Errno::EDVSPERM,
        "forged generation"
    );

    // A grant may start at any byte; word reads then need an aligned pool offset.
    let odd = client.grant(ch, s_ep, 3, 64, Access::READ).unwrap();
    let vo = server.granted(c_ep, odd).unwrap();
    assert_eq!(vo.read_u64(0).unwrap_err(), Errno::EDVSALIGN);
    assert_eq!(vo.read_u64(5).unwrap(), u64::from_le_bytes([0xab; 8]));
    let mut four = [0u8; 4];
    vo.read_at(0, &mut four).unwrap();
    assert_eq!(four, [0xab; 4]);
    client.revoke(odd).unwrap();

    // vcopy while the client is not blocked in a receive.
    assert_eq!(
        server.vcopy(c_ep, g, 0, SELF, sh, 0, 4096).unwrap_err(),
        Errno::EDVSPROCSTS
    );
    // A user may not vcopy.
    assert_eq!(
        client.vcopy(SELF, ch, 0, s_ep, sh, 0, 1).unwrap_err(),
        Errno::EDVSBADCALL
    );

    // With the client blocked in a receive: each refusal, then a copy that works.
    let (results, client) = while_receiving(client, &other, || {
        vec![
            server.vcopy(c_ep, g, 0, SELF, sh, 0, (1 << 20) + 1),
            server.vcopy(c_ep, g, 0, c_ep, sh, 0, 8),
            server.vcopy(c_ep, g_other, 0, SELF, sh, 0, 8),
            server.vcopy(c_ep, g, 4096, SELF, sh, 0, 8192),
            server.vcopy(c_ep, g, 0, SELF, sh, 60 << 10, 8192),
            server.vcopy(c_ep, ch, 0, SELF, sh, 0, 8),
            server.vcopy(SELF, sh, 0, c_ep, g, 0, 8),
            server.vcopy(c_ep, g, 0, SELF, sh, 0, 8192),
        ]
    });
    assert_eq!(
        results,
        vec![
            Err(Errno::EDVSRANGE),
            Err(Errno::EDVSENDPOINT),
            Err(Errno::EDVSACCES),
            Err(Errno::EDVSRANGE),
            Err(Errno::EDVSRANGE),
            Err(Errno::EDVSPERM),
            Err(Errno::EDVSACCES),
            Ok(()),
        ]
    );
    assert_eq!(
        server.buffer(sh).unwrap().read_u64(8184).unwrap(),
        u64::from_le_bytes([0xab; 8])
    );
    assert_eq!(t.dc.pool_info().unwrap().copied_bytes, 8192);

    // Revoked: refused for views and vcopy alike; a second revoke too.
    client.revoke(g).unwrap();
    assert_eq!(client.revoke(g).unwrap_err(), Errno::EDVSPERM);
    assert_eq!(v.read_u64(0).unwrap_err(), Errno::EDVSPERM);
    assert_eq!(server.granted(c_ep, g).unwrap_err(), Errno::EDVSPERM);
    let (r, client) = while_receiving(client, &other, || server.vcopy(c_ep, g, 0, SELF, sh, 0, 8));
    assert_eq!(r, Err(Errno::EDVSPERM));

    // A grant lapses when its buffer is given away or released.
    let g2 = client.grant(ch, s_ep, 0, 4096, Access::READ).unwrap();
    client.release_buffer(ch).unwrap();
    assert_eq!(server.granted(c_ep, g2).unwrap_err(), Errno::EDVSPERM);
    assert_eq!(other.revoke(g_other).unwrap_err(), Errno::EDVSPERM);
    drop(client);
}

/// Acceptance 2: vcopy across processes with a third-party requester: the server copies 1 MiB
/// from a client's buffer into a disk process's buffer in one call, while both sit in sendrec.
#[test]
fn vcopy_third_party_across_processes() {
    let t = TestDc::with('z', &config(8));
    let server = t.dc.bind_named(SERVER, "fs").unwrap();
    let client = spawn("client", &t.name, &[]);
    let mut disk = spawn("disk", &t.name, &[]);
    let mut reqs = Vec::new();
    while reqs.len() < 2 {
        let mut m = Message::default();
        server.receive(ANY, &mut m, LONG).unwrap();
        assert_eq!(m.m_type, T_COPY);
        reqs.push(m);
    }
    let disk_ep: Endpoint = t.dc.getprocinfo(DISK).unwrap().endpoint;
    let (creq, dreq) = if reqs[0].m_source == disk_ep {
        (reqs[1], reqs[0])
    } else {
        (reqs[0], reqs[1])
    };
    server
        .vcopy(
            creq.m_source,
            creq.grant(),
            0,
            dreq.m_source,
            dreq.grant(),
            0,
            1 << 20,
        )
        .unwrap();
    assert_eq!(t.dc.pool_info().unwrap().copied_bytes, 1 << 20);
    // Source and destination swapped: the client's grant is READ only.
    assert_eq!(
        server
            .vcopy(
                dreq.m_source,
                dreq.grant(),
                0,
                creq.m_source,
                creq.grant(),
                0,
                8
            )
            .unwrap_err(),
        Errno::EDVSACCES
    );
    let mut reply = Message::new(0);
    reply.m1_mut().m1p3 = creq.m1().m1p3;
    server.reply(dreq.m_source, &reply).unwrap();
    server.reply(creq.m_source, &Message::new(0)).unwrap();
    disk.expect("DISK-OK");
    disk.finish();
    client.finish();
    eventually(Duration::from_secs(5), "the pool empties", || {
        t.dc.pool_info().unwrap().used_bytes == 0
    });
}

/// Acceptance 3: a process holding buffers and a grant is SIGKILLed; its buffers come back and
/// its grant is refused afterwards.
#[test]
fn killed_holder_gives_everything_back() {
    let t = TestDc::with('z', &config(8));
    let server = t.dc.bind_named(SERVER, "server").unwrap();
    let baseline = t.dc.pool_info().unwrap();
    let mut holder = spawn("holder", &t.name, &[]);
    let line = holder.line(Duration::from_secs(20));
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts[0], "READY", "{line}");
    let ep: Endpoint = parts[1].parse().unwrap();
    let g = GrantId(parts[2].parse().unwrap());
    let h = Handle(parts[3].parse().unwrap());

    let during = t.dc.pool_info().unwrap();
    assert_eq!(during.buffers, baseline.buffers + 3);
    assert_eq!(
        during.used_bytes,
        baseline.used_bytes + SIZES.iter().sum::<usize>() as u64
    );
    assert_eq!(during.grants, baseline.grants + 1);
    let held = t.dc.getprocinfo(CLIENT).unwrap().holdings;
    assert_eq!((held.buffers, held.grants), (3, 1));
    let v = server.granted(ep, g).unwrap();
    assert_eq!(v.read_u64(0).unwrap(), u64::from_le_bytes([0x5a; 8]));

    holder.kill();
    eventually(
        Duration::from_secs(5),
        "the dead holder's slot is released",
        || {
            t.dc.reap_dead();
            t.dc.pool_info().unwrap() == baseline
        },
    );
    assert_eq!(server.granted(ep, g).unwrap_err(), Errno::EDVSPERM);
    assert_eq!(server.buffer(h).unwrap_err(), Errno::EDVSBADF);
    // The freed room is usable again.
    let again = server.alloc_buffer(1 << 20).unwrap();
    server.release_buffer(again).unwrap();
}

/// Everything read from the pool file is untrusted: after random words are scribbled over its
/// chunk states, bitmaps, block words and grant table, every call returns (a value or an
/// error), nothing panics, nothing hangs, and nothing reads or writes outside the pool.
#[test]
fn scribbled_pool_never_panics_or_hangs() {
    use std::os::unix::fs::FileExt;
    let t = TestDc::with('z', &config(8));
    let a = t.dc.bind_named(SERVER, "a").unwrap();
    let b = t.dc.bind_named(CLIENT, "b").unwrap();
    let mut held: Vec<Handle> = (0..6).map(|k| a.alloc_buffer(4096 << k).unwrap()).collect();
    let mut grants: Vec<GrantId> = held
        .iter()
        .map(|&h| {
            a.grant(h, b.endpoint(), 0, 4096, Access::READ_WRITE)
                .unwrap()
        })
        .collect();
    let path = m3ipc::region_dir().join(format!("{}{}", m3ipc::pool::POOL_FILE_PREFIX, t.name));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // Everything before the data: header, chunk states, bitmaps, block words, grants.
    let meta_len = file.metadata().unwrap().len() - (8 << 20);
    // The seed is `$M3_SEED`, else a fixed one.
    let seed: u64 = std::env::var("M3_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5c71_bb1e_d00d);
    let mut rng = Rng(seed | 1);
    let start = std::time::Instant::now();
    for round in 0..40 {
        for _ in 0..64 {
            let off = rng.below(meta_len / 8) * 8;
            let v = match rng.below(4) {
                0 => rng.next(),
                // Plausible chunk states and block words: small classes and counts.
                1 => (rng.below(11) << 32) | rng.below(300),
                2 => rng.below(3) << 32 | (rng.below(2) << 36) | rng.below(8) << 60,
                _ => 0,
            };
            file.write_at(&v.to_le_bytes(), off).unwrap();
        }
        for _ in 0..50 {
            let p = if rng.below(2) == 0 { &a } else { &b };
            match rng.below(8) {
                0 => {
                    if let Ok(h) = p.alloc_buffer(1 + rng.below(1 << 20) as usize) {
                        held.push(h);
                    }
                }
                1 if !held.is_empty() => {
                    let h = held[rng.below(held.len() as u64) as usize];
                    let _ = p.release_buffer(h);
                }
                2 if !held.is_empty() => {
                    let h = held[rng.below(held.len() as u64) as usize];
                    if let Ok(v) = p.buffer(h) {
                        let _ = v.checksum(0, v.len());
                        let _ = v.write_at(rng.below(v.len() as u64) as usize, &[1, 2, 3]);
                    }
                }
                3 if !held.is_empty() => {
                    let h = held[rng.below(held.len() as u64) as usize];
                    if let Ok(g) = p.grant(h, a.endpoint(), 0, 4096, Access::READ) {
                        grants.push(g);
                    }
                    let _ = p.give(h, b.endpoint());
                }
                4 if !grants.is_empty() => {
                    let g = grants[rng.below(grants.len() as u64) as usize];
                    if let Ok(v) = b.granted(a.endpoint(), g) {
                        let _ = v.checksum(0, v.len() & !7);
                        let _ = v.fill(0, v.len(), 7);
                    }
                    let _ = p.revoke(g);
                }
                5 => {
                    let _ = t.dc.pool_info();
                    let _ = t.dc.procs();
                }
                6 => {
                    let _ = p.buffer(Handle(rng.next()));
                    let _ = b.granted(a.endpoint(), GrantId(rng.next() | (1 << 63)));
                }
                _ => {}
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "round {round} (seed {seed}): the calls must not hang"
        );
    }
    // Unbinding scans the scribbled words to return buffers: it must finish too.
    drop((a, b));
    let _ = t.dc.pool_info();
}
