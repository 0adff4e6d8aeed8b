//! The direct hand-off (`inbox.rs`): a receiver that waits spinning takes messages straight
//! from its inbox. These tests drive traffic between two processes with the Spin policy, check
//! every message's bytes, and check through `ProcInfo::received_direct` that the direct path
//! was really taken (it is a counter, so a path never taken cannot pass unnoticed).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::{ANY, Dc, Message, Timeout, WaitPolicy};
use support::{TestDc, child_entry, say, spawn};

const SERVER: i32 = 0;
const SENDER: i32 = 5;
const CLIENT: i32 = 40;
const ROUNDS: i64 = 5_000;
const T: Timeout = Timeout::Millis(20_000);

/// A message whose every payload word, the last four bytes included (they travel apart from
/// the rest when non-zero), depends on `i`.
fn pattern(i: i64) -> Message {
    let mut m = Message::new(1000 + (i % 7) as i32);
    for (k, w) in m.payload.iter_mut().enumerate() {
        *w = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (k as u64) << 56;
    }
    if i % 2 == 0 {
        // Every other message has a zero tail, so both encodings are exercised.
        m.payload[6] &= 0xffff_ffff;
    }
    m
}

fn run_role(role: &str, dc: &str, _args: &[String]) {
    let dc = Dc::open(dc).unwrap();
    match role {
        // Receive ROUNDS messages; answer each request, check each message.
        "server" => {
            let p = dc.bind(SERVER).unwrap();
            p.set_wait_policy(WaitPolicy::Spin);
            say("ready");
            for i in 0..ROUNDS {
                let mut m = Message::default();
                p.receive(ANY, &mut m, T).unwrap();
                let want = pattern(i);
                assert_eq!(
                    (m.m_type, m.payload),
                    (want.m_type, want.payload),
                    "message {i}"
                );
                if m.m_source == CLIENT {
                    let mut r = pattern(-i);
                    r.m_type = m.m_type + 1;
                    p.reply(m.m_source, &r).unwrap();
                } else {
                    assert_eq!(m.m_source, SENDER);
                }
            }
            say("served");
            // Stay bound until the parent has read the counters.
            let mut m = Message::default();
            let _ = p.receive(ANY, &mut m, T);
        }
        // sendrec ROUNDS requests.
        "client" => {
            let p = dc.bind(CLIENT).unwrap();
            p.set_wait_policy(WaitPolicy::Spin);
            for i in 0..ROUNDS {
                let mut m = pattern(i);
                p.sendrec(SERVER, &mut m, T).unwrap();
                let mut want = pattern(-i);
                want.m_type = pattern(i).m_type + 1;
                assert_eq!(m.m_source, SERVER);
                assert_eq!(
                    (m.m_type, m.payload),
                    (want.m_type, want.payload),
                    "reply {i}"
                );
            }
            say("done");
        }
        // send ROUNDS messages.
        "sender" => {
            let p = dc.bind(SENDER).unwrap();
            p.set_wait_policy(WaitPolicy::Spin);
            for i in 0..ROUNDS {
                p.send(SERVER, &pattern(i), T).unwrap();
                // A handed-over send completes at once, before the server has even looked:
                // pause so that it is back in receive (with its inbox open) for the next one.
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
            say("done");
        }
        _ => panic!("unknown role {role}"),
    }
}

#[test]
fn child_main() {
    child_entry(run_role);
}

fn traffic(peer_role: &str) {
    let t = TestDc::new('d');
    let mut server = spawn("server", &t.name, &[]);
    server.expect("ready");
    let mut peer = spawn(peer_role, &t.name, &[]);
    peer.expect("done");
    server.expect("served");
    let info = t.dc.getprocinfo(SERVER).unwrap();
    assert_eq!(info.received, ROUNDS as u64);
    assert!(
        info.received_direct > 0,
        "no message took the direct path: {info:?}"
    );
    eprintln!(
        "[handoff] {peer_role}: {} of {} messages handed over directly",
        info.received_direct, info.received
    );
    // Release the server's last receive.
    let me = t.dc.bind(SENDER + 1).unwrap();
    me.send(SERVER, &Message::new(0), T).unwrap();
    peer.finish();
    server.finish();
}

#[test]
fn sendrec_requests_are_handed_to_a_spinning_server() {
    traffic("client");
}

#[test]
fn sends_are_handed_to_a_spinning_receiver() {
    traffic("sender");
}
