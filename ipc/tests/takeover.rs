#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `Dc::create_or_take_over`: a DC left by dead processes (creator dead, no live slot owner) is
//! removed and created afresh, once even when several takers race; a live slot owner keeps it;
//! plain `Dc::create` still refuses it.

mod support;

use m3ipc::{Dc, DcConfig, DcError};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use support::{child_entry, spawn, unique_name};

#[test]
fn child_main() {
    child_entry(run_role);
}

fn run_role(role: &str, dc: &str, _args: &[String]) {
    match role {
        // Create the DC and exit without removing it, as a killed creator would.
        "create" => {
            Dc::create_with_free_id(dc, &DcConfig::default()).unwrap();
        }
        "bind" => {
            let _p = Dc::open(dc).unwrap().bind_named(7, "binder").unwrap();
            support::say("BOUND");
            std::thread::sleep(Duration::from_secs(60));
        }
        _ => panic!("unknown role {role}"),
    }
}

/// A DC named `name` whose creator (a child) has exited; the child's PID.
fn abandoned(name: &str) -> u32 {
    let w = spawn("create", name, &[]);
    let pid = w.child.id();
    w.finish();
    pid
}

#[test]
fn a_dead_creators_dc_is_taken_over_once_by_racing_takers() {
    for _ in 0..3 {
        let name = unique_name('T');
        let dead = abandoned(&name);
        // The C ABI's create (plain `Dc::create`) keeps refusing.
        let cfg = DcConfig {
            dcid: Dc::open(&name).unwrap().config().dcid,
            ..DcConfig::default()
        };
        assert!(matches!(Dc::create(&name, &cfg), Err(DcError::Exists(_))));

        let takers = 6;
        let barrier = Arc::new(Barrier::new(takers));
        let results: Vec<_> = (0..takers)
            .map(|_| {
                let (name, barrier) = (name.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Dc::create_or_take_over(&name, &DcConfig::default(), true)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "{results:?}");
        let me = std::process::id();
        for r in &results {
            match r {
                Ok(_) => {}
                // The winner (this process) holds it, or is still writing its header.
                Err(DcError::InUse { holder, .. }) => assert!(
                    holder.contains(&format!("pid {me}")) || holder.contains("creating it now"),
                    "{holder}"
                ),
                Err(e) => panic!("a losing taker got {e}"),
            }
        }
        // Whoever removed the stale region reports it (the winner, unless a loser removed it
        // and the winner created in the gap).
        if let Some(t) = &won[0].taken_over {
            assert_eq!(t.creator_pid, dead);
            assert_eq!(
                t.to_string(),
                format!("DC {name:?}: taking over the region left by pid {dead} (dead)")
            );
        }
        let dc = &won[0].dc;
        assert_eq!(dc.info().creator_pid, me);
        assert!(dc.info().creator_alive);
        drop(dc.bind(3).unwrap());
        Dc::remove(&name).unwrap();
    }
}

#[test]
fn a_live_slot_owner_keeps_a_dead_creators_dc() {
    let name = unique_name('U');
    let dead = abandoned(&name);
    let mut binder = spawn("bind", &name, &[]);
    binder.expect("BOUND");
    let err = Dc::create_or_take_over(&name, &DcConfig::default(), true).unwrap_err();
    let want = format!(
        "DC {name:?} already exists and is in use: pid {} is alive and bound at nr 7 as \"binder\"",
        binder.child.id()
    );
    assert_eq!(err.to_string(), want);
    assert_eq!(err.errno(), m3ipc::Errno::EDVSRSCBUSY);

    binder.kill();
    let made = Dc::create_or_take_over(&name, &DcConfig::default(), true).unwrap();
    assert_eq!(made.taken_over.unwrap().creator_pid, dead);
    // Fresh: nothing of the dead binder is left.
    assert!(made.dc.procs().is_empty());
    Dc::remove(&name).unwrap();
}
