//! Copies against remote grants ([`m3ipc::remote_copy`]): both ends.
//!
//! **Requester's node** (the server's): a server asks the proxy with a `sendrec` carrying a
//! [`RemoteCopy`]. The pump takes it from the proxy's mailbox ([`Served::take_copy_requests`])
//! and queues it for a copy worker (threads kept while copies come), which cuts the range into chunks of [`COPY_CHUNK`] and
//! sends them all at once (several in flight): a `CopyRequest` per chunk to read, a `CopyData`
//! per chunk to write. A read's chunks wait in [`Served`]'s copy table by sequence number for
//! their answers, `CopyData` (the bytes, written into the server's local grant to the proxy) or
//! `CopyAck` (a failure); the proxy then replies to the server with `OK` or the first error. A
//! write waits for its `CopyAck`s too, unless it can be *written behind* (op `WriteBehind`):
//! when the grantor waits for the reply of a server on this node (its remote slot here is in a
//! `sendrec` to a local server), that reply will follow the chunks on the same link, so the
//! proxy replies `OK` once the chunks are on the link and the server's next write goes out
//! while this one travels; nothing answers those chunks. A chunk that fails on the grantor's node fails the grantor's next reply from this
//! node instead: the grantor waits for one (its grant is in use by a request it made), and the
//! reply travels behind the chunks on the same link, so it cannot get there first. The server
//! learns nothing of it; the client gets the error instead of a reply whose data is missing. A link that goes down fails its chunks with `EDVSNOTCONN`; a chunk with no
//! answer within [`COPY_TIMEOUT`] fails the copy with `EDVSTIMEDOUT`. Nothing is resent.
//!
//! **Grantor's node**: a `CopyRequest` or a `CopyData` (op write, or write behind) arrives for a grant that the
//! local endpoint `dst` issued to the server `src`, a remote slot here. The link's reader thread
//! serves it ([`serve`]): as the server's remote slot it opens the grant
//! ([`m3ipc::Proc::granted`], so the grant must name that server as grantee, with the rights the
//! direction needs, and be live now), reads or writes the chunk, and answers. Every field of
//! the descriptor is checked before use; a malformed one is answered `EDVSBADVALUE`.

use super::node::{Node, lock};
use super::served::{Served, errno};
use crate::peers::Tail;
use crate::wire::{COPY_DESC_SIZE, Command, CopyDesc, CopyOp, Frame};
use m3ipc::remote_copy::{CopyDir, PROXY_OK, RemoteCopy};
use m3ipc::{Endpoint, Errno, Message, Proc};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes of one chunk on the wire: a 1 MiB copy travels as four chunks in flight at once, so
/// the far side reads the next while the link carries the first.
pub(crate) const COPY_CHUNK: usize = 256 * 1024;
/// How long a copy waits for the answers to its chunks.
pub(crate) const COPY_TIMEOUT: Duration = Duration::from_secs(10);

/// A chunk's answer: where it starts in the copy, and its bytes (a read) or nothing (a write),
/// or why it failed.
pub(crate) type Answer = (usize, Result<Vec<u8>, Errno>);

/// A chunk sent, waiting for its answer.
pub(crate) struct Waiting {
    pub(crate) peer: u32,
    /// Where the chunk starts in the copy.
    pub(crate) at: usize,
    /// Its length (a read's answer must carry exactly that).
    pub(crate) len: usize,
    pub(crate) tx: Sender<Answer>,
}

impl Served {
    /// Take the copy requests waiting in the proxy's mailbox and start a thread for each.
    /// Anything else sent to the proxy is refused (`EDVSBADREQUEST`).
    pub(crate) fn take_copy_requests(&self, node: &Node) {
        let mut inline = Vec::new();
        let proxy_guard = self.proxy_lock();
        let Some(p) = proxy_guard.as_ref() else {
            return;
        };
        for _ in 0..64 {
            let mut m = Message::default();
            match p.receive(m3ipc::ANY, &mut m, m3ipc::Timeout::NoWait) {
                Ok(()) => {}
                // A copy thread's wake-up (or anyone's): nothing to take.
                Err(Errno::EDVSWOKENUP) => continue,
                Err(_) => break,
            }
            let client = m.m_source;
            let req = match RemoteCopy::decode(&m) {
                Ok(r) => r,
                Err(e) => {
                    // Not a sendrec (a notification, a send): the reply fails, nothing to do.
                    let _ = p.reply(client, &Message::new(e.code()));
                    continue;
                }
            };
            let Some(route) = self.dc.remote_route(req.grantor) else {
                // Not (or no longer) a remote endpoint of this DC.
                let _ = p.reply(client, &Message::new(Errno::EDVSENDPOINT.code()));
                continue;
            };
            let job = CopyJob {
                client,
                req,
                peer: route.node,
            };
            // A write behind never waits: the pump does it at once (no hop to a worker).
            if req.dir == CopyDir::Out && self.awaits_local_reply(req.grantor) {
                inline.push(job);
            } else if let Err(code) = self.copy_workers.start(node, self, job) {
                let _ = p.reply(client, &Message::new(code.code()));
            }
        }
        drop(proxy_guard);
        for job in inline {
            write_behind(node, self, &job);
        }
    }

    /// An answer to one of our chunks (`CopyData` of a read, or `CopyAck`) from `peer`.
    pub(crate) fn copy_answer(&self, peer: u32, f: Frame) {
        let Some(w) = self.take_copy_if(f.seq, peer) else {
            // Late (the copy gave up) or not ours: dropped.
            return;
        };
        let answer = if f.cmd == Command::CopyAck {
            if f.rcode == 0 {
                Ok(Vec::new())
            } else {
                Err(errno(f.rcode))
            }
        } else {
            let data = f.payload.get(COPY_DESC_SIZE..).unwrap_or_default();
            if data.len() == w.len {
                Ok(data.to_vec())
            } else {
                Err(Errno::EDVSBADVALUE)
            }
        };
        let _ = w.tx.send((w.at, answer));
    }
}

/// Do one copy for `client` with the node `peer` where its grantor lives.
pub(crate) fn run(
    node: &Node,
    s: &Served,
    client: Endpoint,
    req: &RemoteCopy,
    peer: u32,
) -> Result<(), Errno> {
    let (tx, rx) = channel();
    let mut seqs = Vec::new();
    let mut result = Ok(());
    // A write behind is the pump's ([`write_behind`]); here a write waits for its acks.
    for at in (0..req.len).step_by(COPY_CHUNK) {
        let len = COPY_CHUNK.min(req.len - at);
        let desc = CopyDesc {
            op: match req.dir {
                CopyDir::In => CopyOp::Read,
                CopyDir::Out => CopyOp::Write,
            },
            grantor: req.grantor,
            grant: req.grant,
            offset: (req.offset + at) as u64,
            // At most COPY_CHUNK.
            len: len as u32,
        };
        let seq = node.next_seq();
        let cmd = match req.dir {
            CopyDir::In => Command::CopyRequest,
            CopyDir::Out => Command::CopyData,
        };
        let mut f = Frame::new(cmd, s.dcid, client, req.grantor, seq);
        f.payload
            .reserve(COPY_DESC_SIZE + if cmd == Command::CopyData { len } else { 0 });
        f.payload.extend_from_slice(&desc.encode());
        if cmd == Command::CopyData {
            // A write sends the server's bytes: straight from its local grant to the proxy
            // into the frame.
            let off = req.local_offset.checked_add(at).ok_or(Errno::EDVSRANGE);
            let read = off.and_then(|off| {
                let g = s.proxy_lock();
                let p = g.as_ref().ok_or(Errno::EDVSNOTCONN)?;
                p.granted(client, req.local)?
                    .append_to(off, len, &mut f.payload)
            });
            if let Err(e) = read {
                result = Err(e);
                break;
            }
        }
        s.add_copy(
            seq,
            Waiting {
                peer,
                at,
                len,
                tx: tx.clone(),
            },
        );
        seqs.push(seq);
        if node.send(peer, &f).is_err() {
            result = Err(Errno::EDVSNOTCONN);
            break;
        }
    }
    drop(tx);
    let deadline = Instant::now() + COPY_TIMEOUT;
    let mut answered = 0;
    while result.is_ok() && answered < seqs.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, Ok(bytes))) => {
                answered += 1;
                if req.dir == CopyDir::In {
                    result = write_local(s, client, req, at, &bytes);
                }
            }
            Ok((_, Err(e))) => result = Err(e),
            Err(_) => result = Err(Errno::EDVSTIMEDOUT),
        }
    }
    // Chunks still unanswered are forgotten: a late answer matches nothing.
    for seq in seqs {
        s.take_copy_if(seq, peer);
    }
    result
}

/// Write a read chunk's bytes into the server's local grant to the proxy.
fn write_local(
    s: &Served,
    client: Endpoint,
    req: &RemoteCopy,
    at: usize,
    bytes: &[u8],
) -> Result<(), Errno> {
    let g = s.proxy_lock();
    let p = g.as_ref().ok_or(Errno::EDVSNOTCONN)?;
    let off = req.local_offset.checked_add(at).ok_or(Errno::EDVSRANGE)?;
    p.granted(client, req.local)?.write_at(off, bytes)
}

/// On the grantor's node, as the server's remote slot `proc`: serve one `CopyRequest` or
/// `CopyData` frame and return the answer to send.
pub(crate) fn serve(proc: &Proc, dcid: u32, f: &Frame) -> ChunkServed {
    let behind = CopyDesc::decode(&f.payload)
        .ok()
        .filter(|d| d.op == CopyOp::WriteBehind);
    let mut a = Frame::new(Command::CopyAck, dcid, f.dst, f.src, f.seq);
    match (serve_chunk(proc, f), behind) {
        (Ok(_), Some(_)) => return ChunkServed::Done,
        (Err(e), Some(d)) => return ChunkServed::Poison(d.grantor, e),
        (Ok(Some(payload)), None) => {
            a.cmd = Command::CopyData;
            a.payload = payload;
        }
        (Ok(None), None) => {}
        (Err(e), None) => a.rcode = e.code(),
    }
    ChunkServed::Answer(a)
}

/// What serving a chunk asks of the reader thread.
pub(crate) enum ChunkServed {
    /// Send this answer.
    Answer(Frame),
    /// A chunk written behind failed: the grantor's next reply from that node fails with it.
    Poison(Endpoint, Errno),
    /// Nothing (a chunk written behind, done).
    Done,
}

fn serve_chunk(proc: &Proc, f: &Frame) -> Result<Option<Vec<u8>>, Errno> {
    let desc = CopyDesc::decode(&f.payload).map_err(|_| Errno::EDVSBADVALUE)?;
    let data = f.payload.get(COPY_DESC_SIZE..).unwrap_or_default();
    let wants = match desc.op {
        CopyOp::Read => f.cmd == Command::CopyRequest,
        CopyOp::Write | CopyOp::WriteBehind => f.cmd == Command::CopyData,
    };
    if !wants || !desc.fits(f.cmd, data.len()) || desc.grantor != f.dst {
        return Err(Errno::EDVSBADVALUE);
    }
    let off = usize::try_from(desc.offset).map_err(|_| Errno::EDVSRANGE)?;
    let view = proc.granted(desc.grantor, desc.grant)?;
    match desc.op {
        CopyOp::Read => {
            let len = desc.len as usize;
            let mut out = Vec::with_capacity(COPY_DESC_SIZE + len);
            out.extend_from_slice(&desc.encode());
            view.append_to(off, len, &mut out)?;
            Ok(Some(out))
        }
        CopyOp::Write | CopyOp::WriteBehind => {
            view.write_at(off, data)?;
            Ok(None)
        }
    }
}

/// The copy table's side of a link that went down: every chunk waiting on `peer` fails.
pub(crate) fn fail_peer(
    table: &std::sync::Mutex<std::collections::HashMap<u64, Waiting>>,
    peer: u32,
) {
    let gone: Vec<Waiting> = {
        let mut t = lock(table);
        let seqs: Vec<u64> = t
            .iter()
            .filter(|(_, w)| w.peer == peer)
            .map(|(s, _)| *s)
            .collect();
        seqs.iter().filter_map(|s| t.remove(s)).collect()
    };
    for w in gone {
        let _ = w.tx.send((w.at, Err(Errno::EDVSNOTCONN)));
    }
}

/// A copy the pump took from the proxy's mailbox, for a worker.
pub(crate) struct CopyJob {
    client: Endpoint,
    req: RemoteCopy,
    peer: u32,
}

/// Most copy workers per DC: copies of different servers run side by side up to this many.
const MAX_WORKERS: usize = 4;
/// A worker idle this long ends.
const WORKER_IDLE: Duration = Duration::from_secs(30);

/// The threads that run copies: started when a copy finds none idle, kept while work comes.
pub(crate) struct CopyWorkers {
    jobs: Mutex<Option<Sender<CopyJob>>>,
    queue: Arc<Mutex<Receiver<CopyJob>>>,
    /// Workers running, and those of them waiting for a job.
    running: AtomicUsize,
    idle: Arc<AtomicUsize>,
}

impl CopyWorkers {
    pub(crate) fn new() -> CopyWorkers {
        let (tx, rx) = channel();
        CopyWorkers {
            jobs: Mutex::new(Some(tx)),
            queue: Arc::new(Mutex::new(rx)),
            running: AtomicUsize::new(0),
            idle: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Queue `job`, starting a worker if none is idle. Errors: no worker could be started
    /// (`EDVSNOMEM`), or the daemon stops (`EDVSNOTCONN`).
    fn start(&self, node: &Node, s: &Served, job: CopyJob) -> Result<(), Errno> {
        let sent = lock(&self.jobs)
            .as_ref()
            .map(|tx| tx.send(job).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(Errno::EDVSNOTCONN);
        }
        // Relaxed: a hint; a worker that goes idle a moment later takes the job anyway, and a
        // worker too many ends when it idles.
        if self.idle.load(Ordering::Relaxed) > 0
            || self.running.load(Ordering::Relaxed) >= MAX_WORKERS
        {
            return Ok(());
        }
        self.running.fetch_add(1, Ordering::Relaxed);
        let (n, w) = (node.weak(), s.weak());
        let (queue, idle) = (self.queue.clone(), self.idle.clone());
        let started = std::thread::Builder::new()
            .name("m3node-copy".into())
            .spawn(move || work(&n, &w, &queue, &idle));
        if started.is_err() {
            self.running.fetch_sub(1, Ordering::Relaxed);
            // A running worker takes the job later; with none, nobody will.
            if self.running.load(Ordering::Relaxed) == 0 {
                return Err(Errno::EDVSNOMEM);
            }
        }
        Ok(())
    }

    /// The daemon stops: workers end once the queue is empty.
    pub(crate) fn close(&self) {
        lock(&self.jobs).take();
    }
}

/// Write `job` behind (the pump, at once): each chunk goes from the server's lent buffer
/// straight to the link (no copy of ours while the socket takes it), then the proxy answers
/// the server `OK`. Written behind only when the grantor waits for the reply of a server on
/// this node: that reply follows the chunks on the same link (this pump forwards it after
/// them, and the link keeps their order), so it cannot overtake them; from a third node it
/// could. Nothing answers the chunks. A chunk the grantor's node refuses fails the grantor's
/// reply there; a chunk the link refuses fails the copy (`EDVSNOTCONN`).
fn write_behind(node: &Node, s: &Served, job: &CopyJob) {
    let code = match send_behind(node, s, job) {
        Ok(()) => PROXY_OK,
        Err(e) => e.code(),
    };
    if let Some(p) = s.proxy_lock().as_ref() {
        // EDVSPROCSTS: the server gave up waiting meanwhile.
        let _ = p.reply(job.client, &Message::new(code));
    }
}

fn send_behind(node: &Node, s: &Served, job: &CopyJob) -> Result<(), Errno> {
    let req = &job.req;
    let g = s.proxy_lock();
    let p = g.as_ref().ok_or(Errno::EDVSNOTCONN)?;
    let view = p.granted(job.client, req.local)?;
    for at in (0..req.len).step_by(COPY_CHUNK) {
        let len = COPY_CHUNK.min(req.len - at);
        let desc = CopyDesc {
            op: CopyOp::WriteBehind,
            grantor: req.grantor,
            grant: req.grant,
            offset: (req.offset + at) as u64,
            // At most COPY_CHUNK.
            len: len as u32,
        };
        let mut f = Frame::new(
            Command::CopyData,
            s.dcid,
            job.client,
            req.grantor,
            node.next_seq(),
        );
        f.payload.extend_from_slice(&desc.encode());
        let off = req.local_offset.checked_add(at).ok_or(Errno::EDVSRANGE)?;
        let sent = view.with_raw(off, len, |bytes| {
            // SAFETY: `with_raw` gives an address valid for reads of `len` bytes until this
            // closure returns, and the tail lives only as long as this call.
            let tail = unsafe { Tail::new(bytes, len) };
            node.send_with_tail(job.peer, &f, tail)
        })?;
        sent.map_err(|_| Errno::EDVSNOTCONN)?;
    }
    Ok(())
}

/// Run copy `job` and reply to its server.
fn finish(node: &Node, s: &Served, job: &CopyJob) {
    let code = match run(node, s, job.client, &job.req, job.peer) {
        Ok(()) => PROXY_OK,
        Err(e) => e.code(),
    };
    if let Some(p) = s.proxy_lock().as_ref() {
        // EDVSPROCSTS: the server gave up waiting meanwhile.
        let _ = p.reply(job.client, &Message::new(code));
    }
}

/// A worker: run copies until none comes for [`WORKER_IDLE`] or the daemon stops.
fn work(
    node: &std::sync::Weak<Node>,
    s: &std::sync::Weak<Served>,
    queue: &Mutex<Receiver<CopyJob>>,
    idle: &AtomicUsize,
) {
    loop {
        idle.fetch_add(1, Ordering::Relaxed);
        let job = lock(queue).recv_timeout(WORKER_IDLE);
        idle.fetch_sub(1, Ordering::Relaxed);
        let Ok(job) = job else {
            break;
        };
        let (Some(node), Some(s)) = (node.upgrade(), s.upgrade()) else {
            break;
        };
        finish(&node, &s, &job);
    }
    if let Some(s) = s.upgrade() {
        s.copy_workers.running.fetch_sub(1, Ordering::Relaxed);
    }
}
