//! `dvs ps NAME`: the bound slots of a DC, like the original's `/proc/dvs/DCNAME/procs`.
//!
//! `ps` only reads the region: it does not release the slots of dead owners (`bind` and blocked
//! peers do that). It marks them instead. DIRECT counts the received messages that were handed
//! straight into the slot's inbox while it waited (the rest were queued in its mailbox first).
//! BUFFERS and BUFBYTES are the pool buffers the endpoint owns (bytes at size class), GRANTS the
//! live grants it issued. NODE is, for a remote slot (an endpoint bound on another node, served
//! here by the node daemon), that node; `proxy` for the node daemon's proxy slot; `-` for a
//! local slot.

use crate::error::Result;
use crate::table::{Align, Table};
use m3ipc::{ANY, Dc, Endpoint, HARDWARE, NONE, ProcInfo, SELF};

/// Letters of the FLAGS column, in the order they are shown.
///
/// `S` sending (waits until its message is received), `R` receiving, `W` waiting in `wait4bind`,
/// `B` binding (being filled in), `C` closing (being unbound), `D` the owner process no longer
/// exists, judged by PID and start time (its slot and buffers are released at the next bind of
/// that `nr`, by a blocked peer, or by `dvs dc ls`). `-`: none.
pub const LEGEND: &str = "S sending, R receiving, W wait4bind, B binding, C closing, D owner gone";

/// Print one row per slot that is not free.
pub fn run(name: &str) -> Result<()> {
    let dc = Dc::open(name)?;
    let mut table = Table::new(&[
        ("NR", Align::Right),
        ("ENDPOINT", Align::Right),
        ("PID", Align::Right),
        ("NAME", Align::Left),
        ("FLAGS", Align::Left),
        ("GETFROM", Align::Right),
        ("SENDTO", Align::Right),
        ("SENT", Align::Right),
        ("RECEIVED", Align::Right),
        ("DIRECT", Align::Right),
        ("NOTIFIED", Align::Right),
        ("OVERRUNS", Align::Right),
        ("BUFFERS", Align::Right),
        ("BUFBYTES", Align::Right),
        ("GRANTS", Align::Right),
        ("NODE", Align::Right),
    ]);
    let procs = dc.procs();
    for p in &procs {
        table.push(vec![
            p.nr.to_string(),
            endpoint_name(p.endpoint),
            p.pid.to_string(),
            if p.name.is_empty() {
                "-".into()
            } else {
                p.name.clone()
            },
            flags(p, !p.owner_alive),
            endpoint_name(p.getfrom),
            endpoint_name(p.sendto),
            p.sent.to_string(),
            p.received.to_string(),
            p.received_direct.to_string(),
            p.notified.to_string(),
            p.notify_overruns.to_string(),
            p.holdings.buffers.to_string(),
            crate::dc_cmd::human_bytes(p.holdings.bytes),
            p.holdings.grants.to_string(),
            node_name(p),
        ]);
    }
    if procs.is_empty() {
        return crate::table::print_text(&format!("DC {name}: no bound slots\n"));
    }
    table.print()
}

/// An endpoint as a number, or the name of a special value (`ANY`, `NONE`, `SELF`, `HARDWARE`).
pub fn endpoint_name(ep: Endpoint) -> String {
    match ep {
        ANY => "ANY".into(),
        NONE => "NONE".into(),
        SELF => "SELF".into(),
        HARDWARE => "HARDWARE".into(),
        _ => ep.to_string(),
    }
}

/// The NODE column of a slot: the node of a remote slot, `proxy` for the proxy slot, `-` for a
/// local slot.
pub fn node_name(p: &ProcInfo) -> String {
    match (p.node, p.proxy) {
        (Some(node), _) => node.to_string(),
        (None, true) => "proxy".into(),
        (None, false) => "-".into(),
    }
}

/// The FLAGS column of a slot (see [`LEGEND`]).
pub fn flags(p: &ProcInfo, owner_gone: bool) -> String {
    let mut letters = p.flag_letters();
    if owner_gone {
        letters.push('D');
    }
    if letters.is_empty() {
        "-".into()
    } else {
        letters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_endpoints_by_name() {
        assert_eq!(endpoint_name(ANY), "ANY");
        assert_eq!(endpoint_name(NONE), "NONE");
        assert_eq!(endpoint_name(-2), "-2");
        assert_eq!(endpoint_name(7), "7");
    }
}
