//! Remote slots and the DC proxy (the region's side of a DC over several nodes): a fake node
//! daemon that uses only the proxy API (`bind_proxy`, `bind_remote`, `take_held`, `Held`, and
//! the ordinary calls as a remote slot) against local processes. The daemon runs on the test's
//! thread (or in a child process where its death matters); local callers run on threads.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::message::notify_from;
use m3ipc::privilege::level;
use m3ipc::{
    ANY, Dc, Errno, FLAG_SENDING, HELD_GRACE, Message, Proc, Taken, Timeout, endpoint, wait,
};
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::{TestDc, child_entry, eventually, say};

/// The proxy's slot, and the remote endpoints' (all system processes in the default DC).
const PROXY: i32 = 20;
const R: i32 = 5;
const R_GEN: u32 = 7;
const R_NODE: u32 = 1;
/// Local processes.
const P: i32 = 10;
const P2: i32 = 11;
const X: i32 = 12;
const T: Timeout = Timeout::Millis(10_000);
const LONG: Duration = Duration::from_secs(10);

fn run_role(role: &str, dc: &str, _args: &[String]) {
    match role {
        // A daemon that takes one `send` (held) and one `sendrec` request for R, answers
        // neither, and waits to be killed.
        "daemon" => {
            let dc = Dc::open(dc).unwrap();
            let proxy = dc.bind_proxy(PROXY, "proxy").unwrap();
            let r = proxy.bind_remote(R, R_GEN, R_NODE, "rsrv").unwrap();
            say("READY");
            let mut kept = Vec::new();
            while kept.len() < 2 {
                kept.push(r.take_held(ANY, T).unwrap());
            }
            say("HELD");
            std::thread::sleep(Duration::from_secs(60));
            drop(kept);
        }
        _ => panic!("unknown role {role}"),
    }
}

#[test]
fn child_main() {
    child_entry(run_role);
}

/// Run `f` on a thread as local slot `nr`; its result comes through the receiver. The slot is
/// bound before this returns.
fn caller<R: Send + 'static>(
    dc: &Dc,
    nr: i32,
    f: impl FnOnce(&Proc) -> R + Send + 'static,
) -> (Receiver<R>, JoinHandle<()>) {
    let dc = dc.clone();
    let (tx, rx) = channel();
    let (bound_tx, bound_rx) = channel();
    let h = std::thread::spawn(move || {
        let p = dc.bind(nr).unwrap();
        bound_tx.send(()).unwrap();
        let _ = tx.send(f(&p));
    });
    bound_rx.recv_timeout(LONG).unwrap();
    (rx, h)
}

fn msg(m_type: i32) -> Message {
    Message::new(m_type)
}

/// The daemon's side: the proxy and remote slot R.
fn daemon(dc: &Dc) -> (Proc, Proc) {
    let proxy = dc.bind_proxy(PROXY, "proxy").unwrap();
    assert!(proxy.is_proxy());
    let r = proxy.bind_remote(R, R_GEN, R_NODE, "rsrv").unwrap();
    assert!(r.is_remote());
    assert_eq!(r.endpoint(), endpoint::make(R_GEN, R));
    assert_eq!(r.remote_node(), Some(R_NODE));
    (proxy, r)
}

fn r_ep() -> i32 {
    endpoint::make(R_GEN, R)
}

fn sending_to(dc: &Dc, nr: i32, to: i32) {
    eventually(LONG, "the caller blocks sending", || {
        let i = dc.getprocinfo(nr).unwrap();
        i.flags & FLAG_SENDING != 0 && i.sendto == to
    });
}

#[test]
fn sendrec_to_remote_gets_the_reply_the_daemon_sends_as_r() {
    let t = TestDc::new('r');
    let (_proxy, r) = daemon(&t.dc);
    let (rx, h) = caller(&t.dc, P, |p| {
        let mut m = msg(41);
        m.payload[6] = 9 << 32;
        p.sendrec(r_ep(), &mut m, T)
            .map(|()| (m.m_source, m.m_type))
    });
    // An ordinary receive as R takes the request.
    let mut m = Message::default();
    r.receive(ANY, &mut m, T).unwrap();
    assert_eq!((m.m_source, m.m_type, m.payload[6]), (P, 41, 9 << 32));
    assert_eq!(rx.recv_timeout(Duration::from_millis(100)).ok(), None);
    r.reply(P, &msg(42)).unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Ok((r_ep(), 42)));
    h.join().unwrap();
    // Through take_held as well.
    let (rx, h) = caller(&t.dc, P, |p| {
        let mut m = msg(43);
        p.sendrec(r_ep(), &mut m, T).map(|()| m.m_type)
    });
    match r.take_held(ANY, T).unwrap() {
        Taken::Request(m) => r.reply(m.m_source, &msg(m.m_type + 1)).unwrap(),
        other => panic!("expected a request, got {other:?}"),
    }
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Ok(44));
    h.join().unwrap();
}

#[test]
fn send_to_remote_completes_only_when_the_daemon_says_delivered() {
    let t = TestDc::new('r');
    let (_proxy, r) = daemon(&t.dc);
    let (rx, h) = caller(&t.dc, P, |p| {
        let first = p.send(r_ep(), &msg(1), T);
        let second = p.send(r_ep(), &msg(2), T);
        (first, second)
    });
    // An ordinary receive as R leaves the send to take_held.
    let mut m = Message::default();
    sending_to(&t.dc, P, r_ep());
    assert_eq!(
        r.receive(ANY, &mut m, Timeout::NoWait),
        Err(Errno::EDVSAGAIN)
    );
    let Taken::Send(held) = r.take_held(ANY, T).unwrap() else {
        panic!("expected a send")
    };
    assert_eq!((held.message().m_source, held.message().m_type), (P, 1));
    // Taken but not delivered: the sender still blocks, shown as sending to R.
    assert_eq!(rx.recv_timeout(Duration::from_millis(300)).ok(), None);
    let info = t.dc.getprocinfo(P).unwrap();
    assert!(info.flags & FLAG_SENDING != 0 && info.sendto == r_ep());
    held.complete().unwrap();
    // The second send fails with the error the far side gave.
    let Taken::Send(held) = r.take_held(P, T).unwrap() else {
        panic!("expected a send")
    };
    assert_eq!(held.message().m_type, 2);
    assert_eq!(rx.recv_timeout(Duration::from_millis(300)).ok(), None);
    held.fail(Errno::EDVSDSTDIED).unwrap();
    assert_eq!(
        rx.recv_timeout(LONG).unwrap(),
        (Ok(()), Err(Errno::EDVSDSTDIED))
    );
    h.join().unwrap();
}

#[test]
fn dropped_held_send_fails_with_notconn() {
    let t = TestDc::new('r');
    let (_proxy, r) = daemon(&t.dc);
    let (rx, h) = caller(&t.dc, P, |p| p.send(r_ep(), &msg(1), T));
    let taken = r.take_held(ANY, T).unwrap();
    assert!(matches!(taken, Taken::Send(_)));
    drop(taken);
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Err(Errno::EDVSNOTCONN));
    h.join().unwrap();
}

#[test]
fn held_send_past_its_timeout_gives_up_and_a_late_outcome_is_refused() {
    let t = TestDc::new('r');
    let (_proxy, r) = daemon(&t.dc);
    let (rx, h) = caller(&t.dc, P, |p| {
        let start = Instant::now();
        (
            p.send(r_ep(), &msg(1), Timeout::Millis(200)),
            start.elapsed(),
        )
    });
    let Taken::Send(held) = r.take_held(ANY, T).unwrap() else {
        panic!("expected a send")
    };
    let (result, took) = rx.recv_timeout(LONG).unwrap();
    assert_eq!(result, Err(Errno::EDVSTIMEDOUT));
    assert!(
        took >= Duration::from_millis(200) + HELD_GRACE && took < Duration::from_secs(5),
        "gave up after {took:?}"
    );
    assert_eq!(held.complete(), Err(Errno::EDVSPROCSTS));
    h.join().unwrap();
}

#[test]
fn notify_and_senda_are_taken_by_the_daemon() {
    let t = TestDc::new('r');
    let (_proxy, r) = daemon(&t.dc);
    let p = t.dc.bind(P).unwrap();
    p.notify(r_ep()).unwrap();
    match r.take_held(ANY, T).unwrap() {
        Taken::Notify(m) => assert_eq!((m.m_source, m.m_type), (P, notify_from(P))),
        other => panic!("expected a notification, got {other:?}"),
    }
    p.senda(r_ep(), &msg(77)).unwrap();
    match r.take_held(ANY, T).unwrap() {
        Taken::Async(m) => assert_eq!((m.m_source, m.m_type), (P, 77)),
        other => panic!("expected a senda message, got {other:?}"),
    }
    // An ordinary receive as R takes them too.
    p.notify(r_ep()).unwrap();
    p.senda(r_ep(), &msg(78)).unwrap();
    let mut m = Message::default();
    r.receive(ANY, &mut m, T).unwrap();
    assert_eq!(m.m_type, notify_from(P));
    r.receive(ANY, &mut m, T).unwrap();
    assert_eq!((m.m_source, m.m_type), (P, 78));
    assert_eq!(
        r.take_held(ANY, Timeout::NoWait).unwrap_err(),
        Errno::EDVSAGAIN
    );
}

#[test]
fn incoming_calls_carry_the_remote_endpoint() {
    let t = TestDc::new('r');
    let (proxy, _r) = daemon(&t.dc);
    // Remote P' on node 2, at generation 3.
    let pr = proxy.bind_remote(13, 3, 2, "pclient").unwrap();
    let pr_ep = endpoint::make(3, 13);
    let (rx, h) = caller(&t.dc, X, move |x| {
        let mut m = Message::default();
        x.receive(ANY, &mut m, T).unwrap();
        let first = (m.m_source, m.m_type);
        x.reply(m.m_source, &msg(m.m_type * 10)).unwrap();
        x.receive(ANY, &mut m, T).unwrap();
        let second = (m.m_source, m.m_type);
        x.receive(ANY, &mut m, T).unwrap();
        (first, second, (m.m_source, m.m_type))
    });
    let mut m = msg(5);
    pr.sendrec(X, &mut m, T).unwrap();
    assert_eq!((m.m_source, m.m_type), (X, 50));
    pr.send(X, &msg(6), T).unwrap();
    pr.notify(X).unwrap();
    assert_eq!(
        rx.recv_timeout(LONG).unwrap(),
        ((pr_ep, 5), (pr_ep, 6), (pr_ep, notify_from(13)))
    );
    h.join().unwrap();
}

/// Several incoming calls in flight at once, one thread each (the first version's model),
/// all remote slots sharing the proxy's doorbell.
#[test]
fn concurrent_incoming_calls_on_threads() {
    let t = TestDc::new('r');
    let (proxy, _r) = daemon(&t.dc);
    let remotes: Vec<Proc> = (0..4)
        .map(|k| proxy.bind_remote(14 + k, 1, 3, "pc").unwrap())
        .collect();
    let (_rx, server) = caller(&t.dc, X, |x| {
        for _ in 0..40 {
            let mut m = Message::default();
            x.receive(ANY, &mut m, T).unwrap();
            x.reply(m.m_source, &msg(m.m_type + 1)).unwrap();
        }
    });
    let workers: Vec<_> = remotes
        .into_iter()
        .map(|pr| {
            std::thread::spawn(move || {
                for i in 0..10 {
                    let mut m = msg(i * 2);
                    pr.sendrec(X, &mut m, T).unwrap();
                    assert_eq!(m.m_type, i * 2 + 1);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    server.join().unwrap();
}

#[test]
fn a_request_the_far_side_could_not_answer_fails_its_client() {
    let t = TestDc::new('r');
    let (_proxy, r) = daemon(&t.dc);
    let (rx, h) = caller(&t.dc, P, |p| {
        let mut m = msg(1);
        p.sendrec(r_ep(), &mut m, T)
    });
    let Taken::Request(m) = r.take_held(ANY, T).unwrap() else {
        panic!("expected a request")
    };
    r.fail_request(m.m_source, Errno::EDVSNODCNODE).unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Err(Errno::EDVSNODCNODE));
    h.join().unwrap();
    // The client is gone (its thread unbound it): refused.
    assert!(r.fail_request(P, Errno::EDVSNOTCONN).is_err());
}

#[test]
fn stale_generations_local_binds_and_non_proxies_are_refused() {
    let t = TestDc::new('r');
    let (proxy, r) = daemon(&t.dc);
    let p = t.dc.bind(P).unwrap();
    // The remote generation is the endpoint's: another one is stale.
    for stale in [
        endpoint::make(R_GEN - 1, R),
        endpoint::make(R_GEN + 1, R),
        R,
    ] {
        assert_eq!(p.send(stale, &msg(1), T), Err(Errno::EDVSENDPOINT));
        assert_eq!(p.notify(stale), Err(Errno::EDVSENDPOINT));
    }
    // A local bind of a remote slot.
    assert_eq!(t.dc.bind(R).unwrap_err(), Errno::EDVSSLOTUSED);
    // Only the proxy binds remote slots.
    assert_eq!(
        p.bind_remote(30, 0, 1, "x").unwrap_err(),
        Errno::EDVSPRIVILEGES
    );
    assert_eq!(
        r.bind_remote(30, 0, 1, "x").unwrap_err(),
        Errno::EDVSPRIVILEGES
    );
    // A second proxy while this one lives.
    assert_eq!(t.dc.bind_proxy(21, "p2").unwrap_err(), Errno::EDVSPROXYRUN);
    assert!(t.dc.getprocinfo(21).unwrap().state == m3ipc::SlotState::Free);
    // Bad arguments.
    assert_eq!(
        proxy.bind_remote(30, 0, 0, "x").unwrap_err(),
        Errno::EDVSBADNODEID,
        "this node"
    );
    assert_eq!(
        proxy.bind_remote(30, 0, 32, "x").unwrap_err(),
        Errno::EDVSBADNODEID
    );
    assert_eq!(
        proxy
            .bind_remote(30, endpoint::MAX_GENERATION, 1, "x")
            .unwrap_err(),
        Errno::EDVSBADVALUE
    );
    assert_eq!(
        proxy.bind_remote(P, 0, 1, "x").unwrap_err(),
        Errno::EDVSSLOTUSED
    );
    // take_held is for remote slots.
    assert_eq!(
        p.take_held(ANY, Timeout::NoWait).unwrap_err(),
        Errno::EDVSLCLPROC
    );
    // The slot table shows what is what.
    let info = t.dc.getprocinfo(R).unwrap();
    assert_eq!(
        (info.node, info.proxy, info.endpoint),
        (Some(R_NODE), false, r_ep())
    );
    let info = t.dc.getprocinfo(PROXY).unwrap();
    assert_eq!(
        (info.node, info.proxy, info.level),
        (None, true, level::PROXY)
    );
    assert_eq!(t.dc.getprocinfo(P).unwrap().node, None);
    assert_eq!(t.dc.procs().iter().filter(|i| i.node.is_some()).count(), 1);
}

#[test]
fn unbinding_the_proxy_fails_waiters_with_notconn_then_calls_with_noproxy() {
    let t = TestDc::new('r');
    let (proxy, r) = daemon(&t.dc);
    // P in sendrec (request taken), P2 in send (held), X in send (queued, not taken).
    let (rx_p, hp) = caller(&t.dc, P, |p| p.sendrec(r_ep(), &mut msg(1), T));
    assert!(matches!(r.take_held(ANY, T).unwrap(), Taken::Request(_)));
    let (rx_p2, hp2) = caller(&t.dc, P2, |p| p.send(r_ep(), &msg(2), T));
    let Taken::Send(held) = r.take_held(P2, T).unwrap() else {
        panic!("expected a send")
    };
    let (rx_x, hx) = caller(&t.dc, X, |p| p.send(r_ep(), &msg(3), T));
    sending_to(&t.dc, X, r_ep());
    // And an incoming call in flight: remote P' in sendrec to local server 14, which took the
    // request and has not answered.
    let pr = proxy.bind_remote(13, 3, 2, "pclient").unwrap();
    let (rx_srv, hsrv) = caller(&t.dc, 14, |s| {
        let mut m = Message::default();
        s.receive(ANY, &mut m, T).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        s.reply(m.m_source, &msg(0))
    });
    let incoming = std::thread::spawn(move || (pr.sendrec(14, &mut msg(4), T), pr));
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    proxy.unbind().unwrap();
    for rx in [&rx_p, &rx_p2, &rx_x] {
        assert_eq!(rx.recv_timeout(LONG).unwrap(), Err(Errno::EDVSNOTCONN));
    }
    let (incoming, _pr) = incoming.join().unwrap();
    assert_eq!(incoming, Err(Errno::EDVSNOTCONN));
    assert!(start.elapsed() < Duration::from_secs(2));
    // The server's late reply: no daemon serves P' any more.
    assert_eq!(rx_srv.recv_timeout(LONG).unwrap(), Err(Errno::EDVSNOPROXY));
    for h in [hp, hp2, hx, hsrv] {
        h.join().unwrap();
    }
    // Too late for the held send.
    assert_eq!(held.complete(), Err(Errno::EDVSPROCSTS));
    // The remote slot stays, unserved: every call to it is EDVSNOPROXY at once.
    let p = t.dc.bind(P).unwrap();
    assert_eq!(p.send(r_ep(), &msg(1), T), Err(Errno::EDVSNOPROXY));
    assert_eq!(p.sendrec(r_ep(), &mut msg(1), T), Err(Errno::EDVSNOPROXY));
    assert_eq!(p.notify(r_ep()), Err(Errno::EDVSNOPROXY));
    assert_eq!(p.senda(r_ep(), &msg(1)), Err(Errno::EDVSNOPROXY));
    assert_eq!(
        r.take_held(ANY, Timeout::NoWait).unwrap_err(),
        Errno::EDVSNOPROXY
    );
    assert_eq!(t.dc.bind(R).unwrap_err(), Errno::EDVSSLOTUSED);
    // A new proxy of the same daemon serves it again.
    let _proxy = t.dc.bind_proxy(PROXY, "proxy").unwrap();
    let (rx, h) = caller(&t.dc, P2, |p| p.send(r_ep(), &msg(4), T));
    let Taken::Send(held) = r.take_held(ANY, T).unwrap() else {
        panic!("expected a send")
    };
    held.complete().unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Ok(()));
    h.join().unwrap();
}

#[test]
fn remote_endpoint_unbinding_is_dstdied_a_dropped_handle_notconn() {
    let t = TestDc::new('r');
    let (proxy, r) = daemon(&t.dc);
    let (rx, h) = caller(&t.dc, P, |p| p.send(r_ep(), &msg(1), T));
    sending_to(&t.dc, P, r_ep());
    r.unbind().unwrap();
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Err(Errno::EDVSDSTDIED));
    h.join().unwrap();
    // Bound again at the endpoint's next generation on its node.
    let r = proxy.bind_remote(R, R_GEN + 1, R_NODE, "rsrv").unwrap();
    let ep = endpoint::make(R_GEN + 1, R);
    let (rx, h) = caller(&t.dc, P, move |p| p.sendrec(ep, &mut msg(1), T));
    sending_to(&t.dc, P, ep);
    drop(r);
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Err(Errno::EDVSNOTCONN));
    h.join().unwrap();
    // The slot is free for a local bind now.
    t.dc.bind(R).unwrap();
}

/// The fabric's park hook works for a remote slot's calls (how a one-thread daemon runs them
/// as coroutines): a call that would sleep calls the hook instead.
#[test]
fn remote_calls_park_through_the_hook() {
    use std::sync::atomic::{AtomicU32, Ordering};
    static PARKED: AtomicU32 = AtomicU32::new(0);
    fn hook(_: wait::Park) -> wait::Unpark {
        PARKED.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1));
        wait::Unpark::Check
    }
    let t = TestDc::new('r');
    let (proxy, r) = daemon(&t.dc);
    let pr = proxy.bind_remote(13, 3, 2, "pclient").unwrap();
    let (rx, h) = caller(&t.dc, X, |x| {
        std::thread::sleep(Duration::from_millis(50));
        let mut m = Message::default();
        x.receive(ANY, &mut m, T).unwrap();
        x.reply(m.m_source, &msg(2)).unwrap();
    });
    let previous = wait::set_park_hook(Some(hook));
    let mut m = msg(1);
    let got = pr.sendrec(X, &mut m, T);
    let taken = r.take_held(ANY, Timeout::Millis(20));
    wait::set_park_hook(previous);
    assert_eq!(got, Ok(()));
    assert_eq!(m.m_type, 2);
    assert_eq!(taken.unwrap_err(), Errno::EDVSTIMEDOUT);
    assert!(PARKED.load(Ordering::Relaxed) > 0);
    rx.recv_timeout(LONG).unwrap();
    h.join().unwrap();
}

/// The daemon SIGKILLed while one local process is held in `send` and another waits in
/// `sendrec`: both fail within 2 s, and the slots are reusable.
#[test]
fn killed_daemon_fails_held_send_and_sendrec() {
    let t = TestDc::new('r');
    let mut d = support::spawn("daemon", &t.name, &[]);
    d.expect("READY");
    let (rx_send, hs) = caller(&t.dc, P, |p| p.send(r_ep(), &msg(1), Timeout::Forever));
    let (rx_rec, hr) = caller(&t.dc, P2, |p| {
        p.sendrec(r_ep(), &mut msg(2), Timeout::Forever)
    });
    d.expect("HELD");
    // Both taken, neither finished: still blocked.
    assert_eq!(rx_send.recv_timeout(Duration::from_millis(200)).ok(), None);
    assert_eq!(rx_rec.try_recv().ok(), None);
    let start = Instant::now();
    d.kill();
    let sent = rx_send.recv_timeout(LONG).unwrap();
    let rec = rx_rec.recv_timeout(LONG).unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(sent, Err(Errno::EDVSNOTCONN));
    assert_eq!(rec, Err(Errno::EDVSNOTCONN));
    hs.join().unwrap();
    hr.join().unwrap();
    // Reusable: R locally, and the proxy slot by a new daemon.
    t.dc.bind(R).unwrap();
    let proxy = t.dc.bind_proxy(PROXY, "proxy").unwrap();
    proxy.bind_remote(R + 1, 0, R_NODE, "r2").unwrap();
}
