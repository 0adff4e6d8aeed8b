//! A first cross-process round trip.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use m3ipc::{ANY, Dc, Message, Timeout};
use support::{TestDc, child_entry, say, spawn};

fn run_role(role: &str, dc: &str, args: &[String]) {
    let dc = Dc::open(dc).unwrap();
    match role {
        "client" => {
            let n: u32 = args[0].parse().unwrap();
            let p = dc.bind(100).unwrap();
            for i in 0..n {
                let mut m = Message::new(i as i32);
                p.sendrec(0, &mut m, Timeout::Forever).unwrap();
                assert_eq!(m.m_type, i as i32 + 1);
                assert_eq!(m.m_source, 0);
            }
            say("ok");
        }
        _ => panic!("unknown role {role}"),
    }
}

#[test]
fn child_main() {
    child_entry(run_role);
}

#[test]
fn sendrec_across_processes() {
    let t = TestDc::new('s');
    let server = t.dc.bind(0).unwrap();
    let mut client = spawn("client", &t.name, &["10000"]);
    for _ in 0..10000 {
        let mut m = Message::default();
        server
            .receive(ANY, &mut m, Timeout::Millis(10_000))
            .unwrap();
        assert_eq!(m.m_source, 100);
        let r = Message::new(m.m_type + 1);
        server.reply(m.m_source, &r).unwrap();
    }
    client.expect("ok");
    client.finish();
}
