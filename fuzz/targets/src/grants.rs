//! `grants`: arbitrary handle, grant and `vcopy` arguments.
//!
//! One DC per process with a 2 MiB pool and four endpoints: R, a system process (only those
//! may `vcopy`), and U, a user, both driven by the fuzzing thread; A and B, system processes
//! (users may not `receive`) served by threads of their own that sit blocked in `receive` (as
//! `vcopy` requires of the other parties) and carry out the commands R sends them. The input is a script of buffer, grant, view and `vcopy` calls by any
//! of the three, whose arguments are either handles and grant ids seen earlier in the script or
//! arbitrary words, and endpoints either the three, the special ones, or arbitrary numbers.
//!
//! Every call must return a value or an error. After the script every party releases every
//! handle and revokes every grant seen, and the pool must then be empty again: a call that lost
//! a buffer or a grant is a finding, as is a panic or a command that gets no answer.

use crate::shm;
use arbitrary::{Arbitrary, Unstructured};
use m3ipc::pool::{Access, CopyRef, GrantId, Handle};
use m3ipc::{ANY, Dc, DcConfig, Endpoint, Errno, Message, NONE, Proc, SELF, Timeout};
use std::sync::Mutex;

const NAME: &str = "fz-grants";
/// How long R waits for A or B: far beyond any answer; a command still unanswered is a hang.
const ANSWER: Timeout = Timeout::Millis(10_000);
/// Most handles and grant ids a script remembers.
const KNOWN: usize = 64;
/// Most calls a script makes.
const MAX_OPS: usize = 64;

/// One of the three endpoints.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Party {
    /// The system process on the fuzzing thread.
    R,
    /// A system process on a thread of its own.
    A,
    /// Another one.
    B,
    /// A user, driven by the fuzzing thread too.
    U,
}

/// An endpoint argument.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum EpArg {
    /// One of the three.
    Party(Party),
    /// `ANY`.
    Any,
    /// `NONE`.
    None,
    /// `SELF`.
    SelfEp,
    /// Any number.
    Raw(i32),
}

/// A handle or grant id argument.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Pick {
    /// The n-th (modulo their number) seen so far.
    Known(u8),
    /// Any word.
    Raw(u64),
}

/// One call.
#[allow(missing_docs)] // The fields are the calls' arguments, named as there.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Op {
    /// `alloc_buffer(len)`.
    Alloc { who: Party, len: u32 },
    /// `release_buffer`.
    Release { who: Party, h: Pick },
    /// `give`.
    Give { who: Party, h: Pick, to: EpArg },
    /// `grant`.
    Grant {
        who: Party,
        h: Pick,
        to: EpArg,
        off: u32,
        len: u32,
        access: u8,
    },
    /// `revoke`.
    Revoke { who: Party, g: Pick },
    /// `granted`, then a read or a write through the view.
    Granted {
        who: Party,
        grantor: EpArg,
        g: Pick,
        write: bool,
        off: u32,
        len: u16,
    },
    /// `buffer`, then a read or a write through the view.
    View {
        who: Party,
        h: Pick,
        write: bool,
        off: u32,
        len: u16,
    },
    /// `vcopy`; `*_grant` picks a grant id rather than a handle.
    Vcopy {
        who: Party,
        src_ep: EpArg,
        src_grant: bool,
        src: Pick,
        src_off: u32,
        dst_ep: EpArg,
        dst_grant: bool,
        dst: Pick,
        dst_off: u32,
        len: u32,
    },
}

/// A call with every argument resolved, as it crosses to A or B in a message.
#[derive(Clone, Copy, Debug)]
struct Cmd {
    code: i32,
    args: [u64; 7],
}

const C_ALLOC: i32 = 1;
const C_RELEASE: i32 = 2;
const C_GIVE: i32 = 3;
const C_GRANT: i32 = 4;
const C_REVOKE: i32 = 5;
const C_GRANTED: i32 = 6;
const C_VIEW: i32 = 7;
const C_VCOPY: i32 = 8;

struct World {
    dc: Dc,
    r: Proc,
    user: Proc,
    a: Endpoint,
    b: Endpoint,
}

static WORLD: Mutex<Option<World>> = Mutex::new(None);

fn start() -> Result<World, String> {
    shm::remove_dc(NAME);
    let config = DcConfig {
        dcid: 2,
        node: 0,
        nr_procs: 8,
        nr_tasks: 2,
        nr_sysprocs: 6,
        mode: 0o600,
        pool_bytes: 2 << 20,
    };
    let dc = Dc::create(NAME, &config).map_err(|e| e.to_string())?;
    let r = dc.bind(0).map_err(|e| e.to_string())?;
    let user = dc.bind(5).map_err(|e| e.to_string())?;
    let mut eps = Vec::new();
    for nr in [1, 2] {
        // Each binds its slot on its own thread: a binding's waits belong to that thread.
        let (tx, rx) = std::sync::mpsc::channel();
        let dc2 = dc.clone();
        std::thread::Builder::new()
            .name(format!("grants-{nr}"))
            .spawn(move || match dc2.bind(nr) {
                Ok(p) => {
                    let _ = tx.send(Ok(p.endpoint()));
                    serve(p)
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            })
            .map_err(|e| e.to_string())?;
        eps.push(rx.recv().map_err(|e| e.to_string())??);
    }
    Ok(World {
        dc,
        r,
        user,
        a: eps[0],
        b: eps[1],
    })
}

/// A or B: carry out R's commands until the DC goes away.
fn serve(p: Proc) {
    let mut m = Message::default();
    loop {
        match p.receive(ANY, &mut m, Timeout::Forever) {
            Ok(()) => {
                let cmd = Cmd {
                    code: m.m_type,
                    args: m.payload,
                };
                let mut reply = Message::new(0);
                match exec(&p, cmd) {
                    Ok(v) => reply.payload[0] = v,
                    Err(e) => reply.m_type = e.code(),
                }
                let _ = p.reply(m.m_source, &reply);
            }
            Err(Errno::EDVSDCNOTRUN | Errno::EDVSSHUTDOWN | Errno::EDVSNOTBIND) => return,
            Err(e) => {
                if crate::trace() {
                    eprintln!("grants: {} receive: {e}", p.endpoint());
                }
            }
        }
    }
}

/// Carry out one command as `p`.
fn exec(p: &Proc, c: Cmd) -> Result<u64, Errno> {
    let a = c.args;
    let size = |w: u64| usize::try_from(w).map_err(|_| Errno::EDVSRANGE);
    match c.code {
        C_ALLOC => p.alloc_buffer(size(a[0])?).map(|h| h.0),
        C_RELEASE => p.release_buffer(Handle(a[0])).map(|()| 0),
        C_GIVE => p.give(Handle(a[0]), a[1] as i32).map(|()| 0),
        C_GRANT => p
            .grant(
                Handle(a[0]),
                a[1] as i32,
                size(a[2])?,
                size(a[3])?,
                Access(a[4] as u8),
            )
            .map(|g| g.0),
        C_REVOKE => p.revoke(GrantId(a[0])).map(|()| 0),
        C_GRANTED => {
            let view = p.granted(a[1] as i32, GrantId(a[0]))?;
            touch(&view, a[2] != 0, size(a[3])?, size(a[4])?)
        }
        C_VIEW => {
            let view = p.buffer(Handle(a[0]))?;
            touch(&view, a[1] != 0, size(a[2])?, size(a[3])?)
        }
        C_VCOPY => {
            let (src_ep, dst_ep) = (a[0] as u32 as i32, (a[0] >> 32) as u32 as i32);
            p.vcopy(
                src_ep,
                CopyRef::from_raw(a[1]),
                size(a[3])?,
                dst_ep,
                CopyRef::from_raw(a[2]),
                size(a[4])?,
                size(a[5])?,
            )
            .map(|()| 0)
        }
        _ => Err(Errno::EDVSBADCALL),
    }
}

/// Read or write `len` bytes at `off` of a view; the result is a checksum of what was read.
fn touch(view: &m3ipc::BufView<'_>, write: bool, off: usize, len: usize) -> Result<u64, Errno> {
    let _ = (view.len(), view.access(), view.handle(), view.pool_offset());
    if write {
        view.fill(off, len, 0xa5)?;
        view.write_at(off, &vec![0x5a; len.min(64)])?;
        Ok(0)
    } else {
        let mut buf = vec![0u8; len];
        view.read_at(off, &mut buf)?;
        let _ = view.read_u64(off);
        view.checksum(off, len)
    }
}

/// Run one input.
pub fn run(data: &[u8]) {
    shm::private_dir();
    let mut guard = WORLD.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        match start() {
            Ok(w) => *guard = Some(w),
            Err(e) => panic!("grants: cannot set the DC up: {e}"),
        }
    }
    let Some(w) = guard.as_ref() else { return };
    let mut u = Unstructured::new(data);
    let mut handles: Vec<u64> = Vec::new();
    let mut grants: Vec<u64> = Vec::new();
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        let (who, cmd) = resolve(w, op, &handles, &grants);
        let got = call(w, who, cmd);
        if crate::trace() {
            eprintln!("{op:?} -> {cmd:?} as {who:?}: {got:?}");
        }
        if let Ok(v) = got {
            match cmd.code {
                C_ALLOC if handles.len() < KNOWN => handles.push(v),
                C_GRANT if grants.len() < KNOWN => grants.push(v),
                _ => {}
            }
        }
    }
    // Give everything back, then nothing may be left.
    for who in [Party::R, Party::A, Party::B, Party::U] {
        for &g in &grants {
            let _ = call(
                w,
                who,
                Cmd {
                    code: C_REVOKE,
                    args: [g, 0, 0, 0, 0, 0, 0],
                },
            );
        }
        for &h in &handles {
            let _ = call(
                w,
                who,
                Cmd {
                    code: C_RELEASE,
                    args: [h, 0, 0, 0, 0, 0, 0],
                },
            );
        }
    }
    if let Some(info) = w.dc.pool_info() {
        assert_eq!(
            (info.buffers, info.grants, info.used_bytes),
            (0, 0, 0),
            "the pool is not empty after every handle was released and every grant revoked: {info:?}"
        );
    }
}

fn endpoint_of(w: &World, p: Party) -> Endpoint {
    match p {
        Party::R => w.r.endpoint(),
        Party::U => w.user.endpoint(),
        Party::A => w.a,
        Party::B => w.b,
    }
}

fn ep(w: &World, e: EpArg) -> Endpoint {
    match e {
        EpArg::Party(p) => endpoint_of(w, p),
        EpArg::Any => ANY,
        EpArg::None => NONE,
        EpArg::SelfEp => SELF,
        EpArg::Raw(v) => v,
    }
}

fn pick(p: Pick, known: &[u64]) -> u64 {
    match p {
        Pick::Known(i) if !known.is_empty() => known[usize::from(i) % known.len()],
        Pick::Known(i) => u64::from(i),
        Pick::Raw(v) => v,
    }
}

fn resolve(w: &World, op: Op, handles: &[u64], grants: &[u64]) -> (Party, Cmd) {
    let ep64 = |e: EpArg| ep(w, e) as u32 as u64;
    let (who, code, args): (Party, i32, [u64; 6]) = match op {
        Op::Alloc { who, len } => (who, C_ALLOC, [len.into(), 0, 0, 0, 0, 0]),
        Op::Release { who, h } => (who, C_RELEASE, [pick(h, handles), 0, 0, 0, 0, 0]),
        Op::Give { who, h, to } => (who, C_GIVE, [pick(h, handles), ep64(to), 0, 0, 0, 0]),
        Op::Grant {
            who,
            h,
            to,
            off,
            len,
            access,
        } => (
            who,
            C_GRANT,
            [
                pick(h, handles),
                ep64(to),
                off.into(),
                len.into(),
                access.into(),
                0,
            ],
        ),
        Op::Revoke { who, g } => (who, C_REVOKE, [pick(g, grants), 0, 0, 0, 0, 0]),
        Op::Granted {
            who,
            grantor,
            g,
            write,
            off,
            len,
        } => (
            who,
            C_GRANTED,
            [
                pick(g, grants),
                ep64(grantor),
                write.into(),
                off.into(),
                len.into(),
                0,
            ],
        ),
        Op::View {
            who,
            h,
            write,
            off,
            len,
        } => (
            who,
            C_VIEW,
            [pick(h, handles), write.into(), off.into(), len.into(), 0, 0],
        ),
        Op::Vcopy {
            who,
            src_ep,
            src_grant,
            src,
            src_off,
            dst_ep,
            dst_grant,
            dst,
            dst_off,
            len,
        } => {
            let r = |grant: bool, p: Pick| {
                if grant {
                    CopyRef::from(GrantId(pick(p, grants))).raw()
                } else {
                    CopyRef::from(Handle(pick(p, handles))).raw()
                }
            };
            (
                who,
                C_VCOPY,
                [
                    ep64(src_ep) | ep64(dst_ep) << 32,
                    r(src_grant, src),
                    r(dst_grant, dst),
                    src_off.into(),
                    dst_off.into(),
                    len.into(),
                ],
            )
        }
    };
    let mut full = [0u64; 7];
    full[..6].copy_from_slice(&args);
    (who, Cmd { code, args: full })
}

/// Carry out `cmd` as `who`: R itself, or A or B through a message.
fn call(w: &World, who: Party, cmd: Cmd) -> Result<u64, Errno> {
    let to = match who {
        Party::R => return exec(&w.r, cmd),
        Party::U => return exec(&w.user, cmd),
        Party::A => w.a,
        Party::B => w.b,
    };
    let mut m = Message::new(cmd.code);
    m.payload = cmd.args;
    if let Err(e) = w.r.sendrec(to, &mut m, ANSWER) {
        panic!("grants: {who:?} did not answer {cmd:?}: {e}");
    }
    match m.m_type {
        0 => Ok(m.payload[0]),
        code => Err(Errno::from_code(code).unwrap_or(Errno::EDVSGENERIC)),
    }
}
