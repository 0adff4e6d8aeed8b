//! The request/reply protocol of SYSTASK, PM and echo, and one-line client calls for them.
//!
//! MINIX style: a client `sendrec`s a request whose `m_type` is one of the codes below, with its
//! arguments in the payload views named by each code's documentation; the server answers with
//! `m_type` = [`OK`] and the results in the payload, or `m_type` = a negative EDVS code (an
//! [`Errno`]) and an all-zero payload. Every server answers every request, malformed ones
//! included:
//!
//! - an unknown `m_type`: `EDVSBADREQUEST`;
//! - a field out of its documented range: `EDVSBADVALUE` (a slot number outside the DC's table:
//!   `EDVSRANGE`, as the fabric says);
//! - a special or malformed endpoint: `EDVSENDPOINT`; a bad PID: `EDVSBADPID`;
//! - a name longer than [`NAME_MAX`] bytes: `EDVSNAMESIZE`; not UTF-8: `EDVSBADVALUE`.
//!
//! Codes are grouped per server (SYSTASK `0x01xx`, PM `0x02xx`, echo `0x03xx`); none is 0 (the
//! reply code) or in the notification range `0x1000..0x2000`.
//!
//! The client functions ([`echo_ping`], [`pm_register`], [`systask_procinfo`], ...) are for a
//! process *outside* the unikernel (tests, the `muk2` self-check, tools): they take a bound
//! [`Proc`], the server's current endpoint (see [`server_endpoint`]) and a timeout, do one
//! `sendrec`, and turn an error reply into `Err`. Everything read from a reply is checked too.

use m3ipc::{
    CopyRef, Dc, Endpoint, Errno, Message, Proc, ProcInfo, Result, SlotState, Timeout, endpoint,
};
use std::time::Duration;

/// `m_type` of a successful reply.
pub const OK: i32 = 0;

/// Longest name (in bytes) a request may carry: what the fabric keeps at bind.
pub const NAME_MAX: usize = 15;
/// Longest wait, in milliseconds, that [`ECHO_TIMEOUT_PROBE`] and [`ECHO_SLOW`] accept.
pub const MAX_WAIT_MS: i32 = 10_000;

/// SYSTASK: process information about one slot.
///
/// Request: `m1i1` = slot number `nr`. Reply: a [`SlotInfo`] (see its layout);
/// `EDVSRANGE` when `nr` is outside the table.
pub const SYS_PROCINFO: i32 = 0x0101;
/// SYSTASK: bind a slot on behalf of a process (the original's bind by SYSTASK for PM).
///
/// Request (`m3` view): `m3i1` = slot number `nr`, `m3i2` = PID of the process the slot is for,
/// `m3ca1` = its name (NUL-padded, at most [`NAME_MAX`] bytes). Reply: `m1i1` = the new endpoint.
/// The process then takes the slot with [`Dc::attach`]. A system process may ask for any PID and
/// slot; a user process only for its own PID and a user slot (else `EDVSPRIVILEGES`), so binding
/// through SYSTASK never widens anyone's privileges. Errors: `EDVSBADPID` (PID not positive or no
/// such live process), `EDVSNAMESIZE`, `EDVSBADVALUE`, `EDVSPRIVILEGES`, and those of
/// [`Dc::bind_for`] (`EDVSRANGE`, `EDVSBADPROC`, `EDVSSLOTUSED`, ...).
pub const SYS_BIND: i32 = 0x0102;
/// SYSTASK: copy bytes between two endpoints' pool buffers on the caller's behalf (the
/// original's `sys_vcopy`), with SYSTASK as the requester of [`m3ipc::Proc::vcopy`].
///
/// Request: a [`VcopyRequest`] (its own layout over the payload words). Each side is a grant
/// that side's endpoint issued *to SYSTASK* (READ for the source, WRITE for the destination);
/// both parties must be blocked in a receive, as the caller is while it waits in `sendrec`. A
/// user process may only ask for copies it is a party to (`EDVSPRIVILEGES`). Reply: empty.
/// Errors: those of `vcopy`.
pub const SYS_VCOPY: i32 = 0x0103;

/// PM: register the caller's endpoint with its PID and a short name.
///
/// Request (`m3` view): `m3i1` = PID (0: the PID that owns the caller's slot), `m3ca1` = name.
/// A PID other than the owner of the caller's slot is `EDVSBADPID`. Registering again replaces
/// the caller's entry. Reply: empty.
pub const PM_REGISTER: i32 = 0x0201;
/// PM: deregister the caller. Request: empty. Reply: empty; `EDVSSRCH` when not registered.
pub const PM_EXIT: i32 = 0x0202;
/// PM: the PID registered for an endpoint.
///
/// Request: `m1i1` = endpoint. Reply: `m1i1` = PID. Errors: `EDVSENDPOINT` (a special or
/// malformed endpoint), `EDVSRANGE` (its slot is outside the table), `EDVSSRCH` (not
/// registered).
pub const PM_GETPID: i32 = 0x0203;
/// PM: the endpoint registered for a PID (the lowest slot when it registered several).
///
/// Request: `m1i1` = PID. Reply: `m1i1` = endpoint. Errors: `EDVSBADPID` (not positive),
/// `EDVSSRCH` (not registered).
pub const PM_GETEP: i32 = 0x0204;
/// PM: how many endpoints are registered. Request: empty. Reply: `m1i1` = count.
pub const PM_COUNT: i32 = 0x0205;

/// echo: reply with the request's payload unchanged (`m_type` = [`OK`]).
pub const ECHO_ECHO: i32 = 0x0301;
/// echo: reply with an empty payload.
pub const ECHO_SINK: i32 = 0x0302;
/// echo: time a receive that must time out (tests the runner's timers).
///
/// Request: `m1i1` = `ms` in `1..=MAX_WAIT_MS`, `m1i2` = `src`, a bound endpoint that will not
/// send to echo meanwhile (the client binds a spare slot, or names an idle server). The server
/// does `receive(src)` with a timeout of `ms`, then replies `m1i1` = the code that receive
/// returned (0 if it got a message; `EDVSTIMEDOUT` expected) and `m1p1` = the microseconds it
/// took. A special or malformed `src` is `EDVSENDPOINT`. Should `src` send after all, its message
/// is answered with `EDVSBUSY`. (The client itself cannot be `src`: it
/// waits for echo's reply, and receiving from it would close a cycle, `EDVSLOCKED`.)
pub const ECHO_TIMEOUT_PROBE: i32 = 0x0303;
/// echo: sleep, then reply empty (lets a test kill a client mid-request).
///
/// Request: `m1i1` = `ms` in `0..=MAX_WAIT_MS`.
pub const ECHO_SLOW: i32 = 0x0304;

/// An error reply: `m_type` = the error's code, empty payload.
pub fn error_reply(e: Errno) -> Message {
    Message::new(e.code())
}

/// Encode `name` as a request's NUL-padded `m3ca1`.
///
/// Errors: `EDVSNAMESIZE` when longer than [`NAME_MAX`] bytes, `EDVSBADVALUE` when it holds a NUL.
pub fn encode_name(name: &str) -> Result<[u8; 40]> {
    let bytes = name.as_bytes();
    if bytes.len() > NAME_MAX {
        return Err(Errno::EDVSNAMESIZE);
    }
    if bytes.contains(&0) {
        return Err(Errno::EDVSBADVALUE);
    }
    let mut out = [0u8; 40];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

/// Decode a request's `m3ca1`: the bytes up to the first NUL (all 40 if none).
///
/// Errors: `EDVSNAMESIZE` when longer than [`NAME_MAX`] bytes, `EDVSBADVALUE` when not UTF-8.
pub fn decode_name(raw: &[u8; 40]) -> Result<String> {
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    if len > NAME_MAX {
        return Err(Errno::EDVSNAMESIZE);
    }
    std::str::from_utf8(&raw[..len])
        .map(str::to_owned)
        .map_err(|_| Errno::EDVSBADVALUE)
}

/// A PID read from a message: positive, else `EDVSBADPID`.
pub fn decode_pid(v: i32) -> Result<u32> {
    u32::try_from(v)
        .ok()
        .filter(|&p| p > 0)
        .ok_or(Errno::EDVSBADPID)
}

/// The slot number named by an endpoint read from a message, checked (the fabric's
/// `endpoint::nr` assumes a well-formed endpoint): special values and values no binding can
/// produce are `EDVSENDPOINT`.
pub fn decode_endpoint(ep: Endpoint) -> Result<i32> {
    if endpoint::is_special(ep) {
        return Err(Errno::EDVSENDPOINT);
    }
    // Endpoints are `generation * GEN_SIZE + nr` with nr >= -MAX_TASKS: anything below that, or
    // so large that the decoding would overflow, was never an endpoint.
    match ep.checked_add(endpoint::MAX_TASKS) {
        Some(v) if v >= 0 => Ok(endpoint::nr(ep)),
        _ => Err(Errno::EDVSENDPOINT),
    }
}

/// What [`SYS_PROCINFO`] reports about a slot: the part of `getprocinfo` that fits a message.
///
/// Reply layout, in the payload's 64-bit words: word 0 = `endpoint` (low 32 bits) and `state`
/// (high 32: 0 free, 1 binding, 2 bound, 3 closing); word 1 = `pid` (low) and `flags` (high);
/// word 2 = `getfrom` (low) and `sendto` (high); words 3..=6 = `sent`, `received`, `notified`,
/// `notify_overruns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    /// Endpoint of the current (or, when free, the next) binding.
    pub endpoint: Endpoint,
    /// Binding state.
    pub state: SlotState,
    /// Owner PID (0 when free).
    pub pid: u32,
    /// `FLAG_*` bits as the owner blocks now.
    pub flags: u32,
    /// Whom it receives from (`NONE` unless receiving).
    pub getfrom: Endpoint,
    /// Whom it sends to (`NONE` unless sending).
    pub sendto: Endpoint,
    /// Messages it sent that were received.
    pub sent: u64,
    /// Messages it received.
    pub received: u64,
    /// Notifications it received.
    pub notified: u64,
    /// Notifications to it that coalesced with a pending one.
    pub notify_overruns: u64,
}

fn state_code(s: SlotState) -> u32 {
    match s {
        SlotState::Free => 0,
        SlotState::Binding => 1,
        SlotState::Bound => 2,
        SlotState::Closing => 3,
    }
}

fn pack(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | u64::from(hi) << 32
}

fn unpack(w: u64) -> (u32, u32) {
    (w as u32, (w >> 32) as u32)
}

impl SlotInfo {
    /// The reply's view of a `getprocinfo` result.
    pub fn from_proc_info(p: &ProcInfo) -> SlotInfo {
        SlotInfo {
            endpoint: p.endpoint,
            state: p.state,
            pid: p.pid,
            flags: p.flags,
            getfrom: p.getfrom,
            sendto: p.sendto,
            sent: p.sent,
            received: p.received,
            notified: p.notified,
            notify_overruns: p.notify_overruns,
        }
    }

    /// The [`OK`] reply carrying this.
    pub fn encode(&self) -> Message {
        let mut m = Message::new(OK);
        m.payload = [
            pack(self.endpoint as u32, state_code(self.state)),
            pack(self.pid, self.flags),
            pack(self.getfrom as u32, self.sendto as u32),
            self.sent,
            self.received,
            self.notified,
            self.notify_overruns,
        ];
        m
    }

    /// Read a reply's payload; an unknown state is `EDVSBADVALUE`.
    pub fn decode(m: &Message) -> Result<SlotInfo> {
        let w = m.payload;
        let (ep, st) = unpack(w[0]);
        let state = match st {
            0 => SlotState::Free,
            1 => SlotState::Binding,
            2 => SlotState::Bound,
            3 => SlotState::Closing,
            _ => return Err(Errno::EDVSBADVALUE),
        };
        let (pid, flags) = unpack(w[1]);
        let (getfrom, sendto) = unpack(w[2]);
        Ok(SlotInfo {
            endpoint: ep as i32,
            state,
            pid,
            flags,
            getfrom: getfrom as i32,
            sendto: sendto as i32,
            sent: w[3],
            received: w[4],
            notified: w[5],
            notify_overruns: w[6],
        })
    }
}

/// The endpoint now bound at slot `nr` (a server's well-known number): what the client calls
/// below take. `EDVSNOTBIND` when nobody holds it, `EDVSRANGE` outside the table.
pub fn server_endpoint(dc: &Dc, nr: i32) -> Result<Endpoint> {
    let info = dc.getprocinfo(nr)?;
    if info.state == SlotState::Bound {
        Ok(info.endpoint)
    } else {
        Err(Errno::EDVSNOTBIND)
    }
}

/// One request: `sendrec` `m` to `server` within `timeout`; on return `m` holds the reply.
///
/// Errors: the fabric's (`EDVSTIMEDOUT`, `EDVSDEADSRCDST`, ...), the server's error reply as
/// its [`Errno`] (a code no `Errno` has is `EDVSGENERIC`), and `EDVSBADVALUE` for a reply whose
/// `m_type` is positive (not this protocol).
pub fn call(p: &Proc, server: Endpoint, m: &mut Message, timeout: Timeout) -> Result<()> {
    p.sendrec(server, m, timeout)?;
    match m.m_type {
        OK => Ok(()),
        code if code < 0 => Err(Errno::from_code(code).unwrap_or(Errno::EDVSGENERIC)),
        _ => Err(Errno::EDVSBADVALUE),
    }
}

/// [`SYS_PROCINFO`]: what SYSTASK reports about slot `nr`.
pub fn systask_procinfo(p: &Proc, systask: Endpoint, nr: i32, t: Timeout) -> Result<SlotInfo> {
    let mut m = Message::new(SYS_PROCINFO);
    m.m1_mut().m1i1 = nr;
    call(p, systask, &mut m, t)?;
    SlotInfo::decode(&m)
}

/// The arguments of [`SYS_VCOPY`], over the payload words: `[0]` the source endpoint (low 32
/// bits) and the destination endpoint (high 32 bits), `[1]` and `[2]` the source and
/// destination references ([`CopyRef::raw`] words), `[3]` and `[4]` their offsets, `[5]` the
/// length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcopyRequest {
    /// The endpoint whose buffer is read.
    pub src_ep: Endpoint,
    /// Its grant (to SYSTASK).
    pub src: CopyRef,
    /// The offset in that grant.
    pub src_off: usize,
    /// The endpoint whose buffer is written.
    pub dst_ep: Endpoint,
    /// Its grant (to SYSTASK).
    pub dst: CopyRef,
    /// The offset in that grant.
    pub dst_off: usize,
    /// Bytes to copy.
    pub len: usize,
}

impl VcopyRequest {
    /// The request message.
    pub fn encode(&self) -> Message {
        let mut m = Message::new(SYS_VCOPY);
        m.payload[0] = u64::from(self.src_ep as u32) | u64::from(self.dst_ep as u32) << 32;
        m.payload[1] = self.src.raw();
        m.payload[2] = self.dst.raw();
        m.payload[3] = self.src_off as u64;
        m.payload[4] = self.dst_off as u64;
        m.payload[5] = self.len as u64;
        m
    }

    /// Decode a request; `EDVSRANGE` for an offset or length that does not fit this machine.
    pub fn decode(m: &Message) -> Result<VcopyRequest> {
        let size = |w: u64| usize::try_from(w).map_err(|_| Errno::EDVSRANGE);
        Ok(VcopyRequest {
            src_ep: m.payload[0] as u32 as i32,
            dst_ep: (m.payload[0] >> 32) as u32 as i32,
            src: CopyRef::from_raw(m.payload[1]),
            dst: CopyRef::from_raw(m.payload[2]),
            src_off: size(m.payload[3])?,
            dst_off: size(m.payload[4])?,
            len: size(m.payload[5])?,
        })
    }
}

/// [`SYS_VCOPY`]: ask SYSTASK to copy between two granted ranges.
pub fn systask_vcopy(p: &Proc, systask: Endpoint, req: &VcopyRequest, t: Timeout) -> Result<()> {
    let mut m = req.encode();
    call(p, systask, &mut m, t)
}

/// [`SYS_BIND`]: ask SYSTASK to bind slot `nr` for process `pid` under `name`; returns the
/// endpoint, which `pid` then takes with [`Dc::attach`].
pub fn systask_bind(
    p: &Proc,
    systask: Endpoint,
    nr: i32,
    pid: u32,
    name: &str,
    t: Timeout,
) -> Result<Endpoint> {
    let mut m = Message::new(SYS_BIND);
    let v = m.m3_mut();
    v.m3i1 = nr;
    v.m3i2 = i32::try_from(pid).map_err(|_| Errno::EDVSBADPID)?;
    v.m3ca1 = encode_name(name)?;
    call(p, systask, &mut m, t)?;
    Ok(m.m1().m1i1)
}

/// [`PM_REGISTER`]: register the caller's endpoint under `pid` (0: its own) and `name`.
pub fn pm_register(p: &Proc, pm: Endpoint, pid: u32, name: &str, t: Timeout) -> Result<()> {
    let mut m = Message::new(PM_REGISTER);
    let v = m.m3_mut();
    v.m3i1 = i32::try_from(pid).map_err(|_| Errno::EDVSBADPID)?;
    v.m3ca1 = encode_name(name)?;
    call(p, pm, &mut m, t)
}

/// [`PM_EXIT`]: deregister the caller.
pub fn pm_exit(p: &Proc, pm: Endpoint, t: Timeout) -> Result<()> {
    call(p, pm, &mut Message::new(PM_EXIT), t)
}

/// [`PM_GETPID`]: the PID registered for `ep`.
pub fn pm_getpid(p: &Proc, pm: Endpoint, ep: Endpoint, t: Timeout) -> Result<u32> {
    let mut m = Message::new(PM_GETPID);
    m.m1_mut().m1i1 = ep;
    call(p, pm, &mut m, t)?;
    decode_pid(m.m1().m1i1).map_err(|_| Errno::EDVSBADVALUE)
}

/// [`PM_GETEP`]: the endpoint registered for `pid`.
pub fn pm_getep(p: &Proc, pm: Endpoint, pid: u32, t: Timeout) -> Result<Endpoint> {
    let mut m = Message::new(PM_GETEP);
    m.m1_mut().m1i1 = i32::try_from(pid).map_err(|_| Errno::EDVSBADPID)?;
    call(p, pm, &mut m, t)?;
    Ok(m.m1().m1i1)
}

/// [`PM_COUNT`]: how many endpoints PM has registered.
pub fn pm_count(p: &Proc, pm: Endpoint, t: Timeout) -> Result<u32> {
    let mut m = Message::new(PM_COUNT);
    call(p, pm, &mut m, t)?;
    u32::try_from(m.m1().m1i1).map_err(|_| Errno::EDVSBADVALUE)
}

/// [`ECHO_ECHO`]: send `payload`, get it back.
pub fn echo_ping(p: &Proc, echo: Endpoint, payload: [u64; 7], t: Timeout) -> Result<[u64; 7]> {
    let mut m = Message::new(ECHO_ECHO);
    m.payload = payload;
    call(p, echo, &mut m, t)?;
    Ok(m.payload)
}

/// [`ECHO_SINK`]: send `payload`, get an empty reply.
pub fn echo_sink(p: &Proc, echo: Endpoint, payload: [u64; 7], t: Timeout) -> Result<()> {
    let mut m = Message::new(ECHO_SINK);
    m.payload = payload;
    call(p, echo, &mut m, t)
}

/// What [`ECHO_TIMEOUT_PROBE`] measured inside the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// What the server's timed receive returned (`Err(EDVSTIMEDOUT)` expected).
    pub result: core::result::Result<(), Errno>,
    /// How long that receive took.
    pub elapsed: Duration,
}

/// [`ECHO_TIMEOUT_PROBE`]: have echo time a receive from `src` with a timeout of `ms`.
pub fn echo_timeout_probe(
    p: &Proc,
    echo: Endpoint,
    ms: i32,
    src: Endpoint,
    t: Timeout,
) -> Result<Probe> {
    let mut m = Message::new(ECHO_TIMEOUT_PROBE);
    m.m1_mut().m1i1 = ms;
    m.m1_mut().m1i2 = src;
    call(p, echo, &mut m, t)?;
    let code = m.m1().m1i1;
    let result = match code {
        0 => Ok(()),
        c => Err(Errno::from_code(c).unwrap_or(Errno::EDVSGENERIC)),
    };
    Ok(Probe {
        result,
        elapsed: Duration::from_micros(m.m1().m1p1),
    })
}

/// [`ECHO_SLOW`]: have echo sleep `ms` before it replies.
pub fn echo_slow(p: &Proc, echo: Endpoint, ms: i32, t: Timeout) -> Result<()> {
    let mut m = Message::new(ECHO_SLOW);
    m.m1_mut().m1i1 = ms;
    call(p, echo, &mut m, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_bounded() {
        let raw = encode_name("pm-client").unwrap_or([1; 40]);
        assert_eq!(decode_name(&raw), Ok("pm-client".to_string()));
        assert_eq!(decode_name(&[0; 40]), Ok(String::new()));
        assert_eq!(encode_name("0123456789abcdef"), Err(Errno::EDVSNAMESIZE));
        assert_eq!(encode_name("a\0b"), Err(Errno::EDVSBADVALUE));
        assert_eq!(decode_name(&[b'a'; 40]), Err(Errno::EDVSNAMESIZE));
        let mut bad = [0u8; 40];
        bad[0] = 0xff;
        assert_eq!(decode_name(&bad), Err(Errno::EDVSBADVALUE));
    }

    #[test]
    fn endpoints_and_pids_are_checked() {
        assert_eq!(decode_endpoint(m3ipc::ANY), Err(Errno::EDVSENDPOINT));
        assert_eq!(decode_endpoint(m3ipc::HARDWARE), Err(Errno::EDVSENDPOINT));
        assert_eq!(decode_endpoint(i32::MAX), Err(Errno::EDVSENDPOINT));
        assert_eq!(decode_endpoint(i32::MIN), Err(Errno::EDVSENDPOINT));
        assert_eq!(decode_endpoint(-2), Ok(-2));
        assert_eq!(decode_endpoint(endpoint::make(3, 40)), Ok(40));
        assert_eq!(decode_pid(0), Err(Errno::EDVSBADPID));
        assert_eq!(decode_pid(-4), Err(Errno::EDVSBADPID));
        assert_eq!(decode_pid(17), Ok(17));
    }

    #[test]
    fn slot_info_round_trips() {
        let s = SlotInfo {
            endpoint: endpoint::make(7, -2),
            state: SlotState::Bound,
            pid: 4242,
            flags: 0x11,
            getfrom: m3ipc::NONE,
            sendto: 33,
            sent: 1,
            received: u64::MAX,
            notified: 3,
            notify_overruns: 4,
        };
        assert_eq!(SlotInfo::decode(&s.encode()), Ok(s));
        let mut m = s.encode();
        m.payload[0] |= 9 << 32;
        assert_eq!(SlotInfo::decode(&m), Err(Errno::EDVSBADVALUE));
    }
}
