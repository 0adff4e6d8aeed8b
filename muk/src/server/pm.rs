//! PM (slot 0): the process manager's bookkeeping of user endpoints.
//!
//! A process registers its endpoint with its PID and a short name ([`PM_REGISTER`]), deregisters
//! ([`PM_EXIT`]), and anyone may ask endpoint → PID ([`PM_GETPID`]), PID → endpoint
//! ([`PM_GETEP`]) and how many are registered ([`PM_COUNT`]). Request layouts:
//! [`crate::protocol`].
//!
//! Dead clients: every [`SWEEP`], busy or idle, PM drops each entry whose endpoint is no longer
//! bound, releasing first the slot of an owner that died without unbinding (SIGKILL), so such a
//! client leaves the table within about one sweep period.

use crate::ipc::Ipc;
use crate::protocol::{self, OK, PM_COUNT, PM_EXIT, PM_GETEP, PM_GETPID, PM_REGISTER};
use crate::server::{Handler, Server, serve_requests};
use m3ipc::{Endpoint, Errno, Message, Result, SlotState, Timeout};
use std::collections::BTreeMap;
use std::time::Duration;

/// How often PM looks for registered clients that are gone.
pub const SWEEP: Duration = Duration::from_millis(100);

/// One registered endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The PID it registered with (that of its slot's owner).
    pub pid: u32,
    /// The name it registered with.
    pub name: String,
}

/// The PM server. Its table has at most one entry per slot of the DC, so it is bounded by the
/// DC's size whatever clients send.
#[derive(Debug, Default)]
pub struct Pm {
    /// Entries by slot number.
    table: BTreeMap<i32, Entry>,
}

impl Pm {
    /// A new PM with an empty table.
    pub fn new() -> Pm {
        Pm::default()
    }

    fn register(&mut self, ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        let req = m.m3();
        let name = protocol::decode_name(&req.m3ca1)?;
        let nr = protocol::decode_endpoint(m.m_source)?;
        let info = ipc.dc().getprocinfo(nr)?;
        if info.state != SlotState::Bound || info.endpoint != m.m_source {
            return Err(Errno::EDVSENDPOINT);
        }
        // The PID must be the one the fabric knows for the caller's slot: no registering in
        // another process's name.
        let pid = match req.m3i1 {
            0 => info.pid,
            v => protocol::decode_pid(v)?,
        };
        if pid != info.pid {
            return Err(Errno::EDVSBADPID);
        }
        self.table.insert(
            nr,
            Entry {
                endpoint: m.m_source,
                pid,
                name,
            },
        );
        Ok(Message::new(OK))
    }

    fn exit(&mut self, m: &Message) -> Result<Message> {
        let nr = protocol::decode_endpoint(m.m_source)?;
        match self.table.get(&nr) {
            Some(e) if e.endpoint == m.m_source => {
                self.table.remove(&nr);
                Ok(Message::new(OK))
            }
            _ => Err(Errno::EDVSSRCH),
        }
    }

    fn getpid(&self, ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        let ep = m.m1().m1i1;
        let nr = protocol::decode_endpoint(ep)?;
        // Outside the table is the fabric's EDVSRANGE, not "unknown".
        ipc.dc().getprocinfo(nr)?;
        let e = self
            .table
            .get(&nr)
            .filter(|e| e.endpoint == ep)
            .ok_or(Errno::EDVSSRCH)?;
        let mut r = Message::new(OK);
        r.m1_mut().m1i1 = i32::try_from(e.pid).map_err(|_| Errno::EDVSBADPID)?;
        Ok(r)
    }

    fn getep(&self, m: &Message) -> Result<Message> {
        let pid = protocol::decode_pid(m.m1().m1i1)?;
        let e = self
            .table
            .values()
            .find(|e| e.pid == pid)
            .ok_or(Errno::EDVSSRCH)?;
        let mut r = Message::new(OK);
        r.m1_mut().m1i1 = e.endpoint;
        Ok(r)
    }

    fn count(&self) -> Result<Message> {
        let mut r = Message::new(OK);
        r.m1_mut().m1i1 = i32::try_from(self.table.len()).unwrap_or(i32::MAX);
        Ok(r)
    }

    /// Drop the entries whose endpoint is gone.
    fn sweep(&mut self, ipc: &mut dyn Ipc) {
        let dc = ipc.dc();
        self.table.retain(|&nr, e| {
            let bound = |dc: &m3ipc::Dc| {
                dc.getprocinfo(nr)
                    .is_ok_and(|i| i.state == SlotState::Bound && i.endpoint == e.endpoint)
            };
            if !bound(dc) {
                return false;
            }
            // Still bound: a no-wait wait4unbind releases the slot if its owner died (it never
            // sleeps, so it is safe on a coroutine). Then look again.
            let _ = dc.wait4unbind(e.endpoint, Timeout::NoWait);
            bound(dc)
        });
    }

    /// The table, by slot number (for introspection and tests).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.table.values()
    }
}

impl Handler for Pm {
    fn handle(&mut self, ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        match m.m_type {
            PM_REGISTER => self.register(ipc, m),
            PM_EXIT => self.exit(m),
            PM_GETPID => self.getpid(ipc, m),
            PM_GETEP => self.getep(m),
            PM_COUNT => self.count(),
            _ => Err(Errno::EDVSBADREQUEST),
        }
    }

    fn tick_every(&self) -> Option<Duration> {
        Some(SWEEP)
    }

    fn tick(&mut self, ipc: &mut dyn Ipc) {
        self.sweep(ipc);
    }
}

impl Server for Pm {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> Result<()> {
        serve_requests(self, ipc)
    }
}
