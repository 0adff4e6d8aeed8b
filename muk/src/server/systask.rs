//! SYSTASK (`-2` on node 0): the kernel-call server.
//!
//! Here it answers process information ([`SYS_PROCINFO`]), binds slots on behalf of processes
//! ([`SYS_BIND`], through [`m3ipc::Dc::bind_for`]) and copies between granted pool buffers on a
//! caller's behalf ([`SYS_VCOPY`], through `vcopy`). Request layouts: [`crate::protocol`].

use crate::ipc::Ipc;
use crate::protocol::{self, SYS_BIND, SYS_PROCINFO, SYS_VCOPY, SlotInfo, VcopyRequest};
use crate::server::{Handler, Server, serve_requests};
use m3ipc::{Errno, Message, Result};

/// The SYSTASK server. It keeps no state: every answer comes from the DC's slot table.
#[derive(Debug, Default)]
pub struct Systask {}

impl Systask {
    /// A new SYSTASK.
    pub fn new() -> Systask {
        Systask {}
    }

    fn procinfo(ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        let info = ipc.dc().getprocinfo(m.m1().m1i1)?;
        Ok(SlotInfo::from_proc_info(&info).encode())
    }

    fn bind(ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        let req = m.m3();
        let nr = req.m3i1;
        let pid = protocol::decode_pid(req.m3i2)?;
        let name = protocol::decode_name(&req.m3ca1)?;
        let dc = ipc.dc();
        // The requester, as the fabric stamped it: its slot says whose it is and what it may do.
        let asker = dc.getprocinfo(protocol::decode_endpoint(m.m_source)?)?;
        if !asker.system {
            // A user may only bind user slots for itself: SYSTASK must not hand out privileges
            // (system slots may make every call) nor claim slots in other processes' names.
            let target = dc.getprocinfo(nr)?;
            if pid != asker.pid || target.system {
                return Err(Errno::EDVSPRIVILEGES);
            }
        }
        let ep = dc.bind_for(pid, nr, &name)?;
        let mut r = Message::new(protocol::OK);
        r.m1_mut().m1i1 = ep;
        Ok(r)
    }

    fn vcopy(ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        let r = VcopyRequest::decode(m)?;
        let asker = ipc
            .dc()
            .getprocinfo(protocol::decode_endpoint(m.m_source)?)?;
        // A user may only move its own bytes: it must be one of the two parties.
        if !asker.system && m.m_source != r.src_ep && m.m_source != r.dst_ep {
            return Err(Errno::EDVSPRIVILEGES);
        }
        ipc.vcopy(
            r.src_ep, r.src, r.src_off, r.dst_ep, r.dst, r.dst_off, r.len,
        )?;
        Ok(Message::new(protocol::OK))
    }
}

impl Handler for Systask {
    fn handle(&mut self, ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        match m.m_type {
            SYS_PROCINFO => Systask::procinfo(ipc, m),
            SYS_BIND => Systask::bind(ipc, m),
            SYS_VCOPY => Systask::vcopy(ipc, m),
            _ => Err(Errno::EDVSBADREQUEST),
        }
    }
}

impl Server for Systask {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> Result<()> {
        serve_requests(self, ipc)
    }
}
