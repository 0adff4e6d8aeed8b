//! The one way a storage server reaches a client's granted range: [`read_granted`] and
//! [`write_granted`].
//!
//! A client bound on this node: the bytes move in place, through a view of the grant (zero
//! copies beyond the one the request asks for). A client bound on another node of the DC (a
//! remote slot here): its grant lives in its own node's pool, so the server asks this node's
//! daemon, through the DC's proxy, to move the bytes ([`m3ipc::remote_copy`]): the bytes pass
//! through a staging buffer of the server's, granted to the proxy for the one request, at most
//! 1 MiB a round trip. The caller never learns which path was taken; RDISK, FS and FTP serve a
//! client on another node unchanged.
//!
//! Errors: the grant's own (`EDVSPERM`, `EDVSACCES`, `EDVSRANGE`), from whichever node holds
//! it; on the remote path also the pool's (`EDVSNOMEM` for the staging buffer), `EDVSNOTCONN`
//! (the link to the client's node went), `EDVSTIMEDOUT` (no answer within
//! [`REMOTE_TIMEOUT`]).

use crate::ipc::Ipc;
use m3ipc::remote_copy::{CopyDir, PROXY_OK, RemoteCopy, RemoteRoute};
use m3ipc::{Access, Endpoint, Errno, GrantId, Handle, Result, Timeout};

/// How long a server waits for the daemon to finish one remote copy of at most 1 MiB.
pub const REMOTE_TIMEOUT: Timeout = Timeout::Millis(30_000);

/// Whether `grantor` is bound on another node (its grant is reached through the daemon).
pub fn is_remote(ipc: &dyn Ipc, grantor: Endpoint) -> bool {
    ipc.dc().remote_route(grantor).is_some()
}

/// Read `out.len()` bytes at `off` of the range `grantor` granted this server with `grant`.
pub fn read_granted(
    ipc: &mut dyn Ipc,
    grantor: Endpoint,
    grant: GrantId,
    off: usize,
    out: &mut [u8],
) -> Result<()> {
    match ipc.dc().remote_route(grantor) {
        None => ipc.granted(grantor, grant)?.read_at(off, out),
        Some(route) => {
            let mut done = 0;
            while done < out.len() {
                let n = (out.len() - done).min(super::MAX_CHUNK);
                let at = off.checked_add(done).ok_or(Errno::EDVSRANGE)?;
                let piece = &mut out[done..done + n];
                remote(ipc, route, grantor, grant, at, Piece::In(piece))?;
                done += n;
            }
            Ok(())
        }
    }
}

/// Write `data` at `off` of the range `grantor` granted this server with `grant`.
pub fn write_granted(
    ipc: &mut dyn Ipc,
    grantor: Endpoint,
    grant: GrantId,
    off: usize,
    data: &[u8],
) -> Result<()> {
    match ipc.dc().remote_route(grantor) {
        None => ipc.granted(grantor, grant)?.write_at(off, data),
        Some(route) => {
            let mut done = 0;
            while done < data.len() {
                let n = (data.len() - done).min(super::MAX_CHUNK);
                let at = off.checked_add(done).ok_or(Errno::EDVSRANGE)?;
                remote(
                    ipc,
                    route,
                    grantor,
                    grant,
                    at,
                    Piece::Out(&data[done..done + n]),
                )?;
                done += n;
            }
            Ok(())
        }
    }
}

/// One piece of a remote copy, at most 1 MiB: where its bytes go or come from.
enum Piece<'a> {
    In(&'a mut [u8]),
    Out(&'a [u8]),
}

/// One remote copy of at most 1 MiB through a staging buffer granted to the proxy for it.
fn remote(
    ipc: &mut dyn Ipc,
    route: RemoteRoute,
    grantor: Endpoint,
    grant: GrantId,
    off: usize,
    piece: Piece<'_>,
) -> Result<()> {
    let len = match &piece {
        Piece::In(b) => b.len(),
        Piece::Out(b) => b.len(),
    };
    if len == 0 {
        return Ok(());
    }
    let h = ipc.alloc_buffer(len)?;
    let r = staged(ipc, route, grantor, grant, off, piece, h, len);
    // The grant lapses with the buffer.
    let _ = ipc.release_buffer(h);
    r
}

#[allow(clippy::too_many_arguments)] // One remote copy's parts, each needed once.
fn staged(
    ipc: &mut dyn Ipc,
    route: RemoteRoute,
    grantor: Endpoint,
    grant: GrantId,
    off: usize,
    piece: Piece<'_>,
    h: Handle,
    len: usize,
) -> Result<()> {
    let (dir, access) = match &piece {
        Piece::In(_) => (CopyDir::In, Access::WRITE),
        Piece::Out(data) => {
            ipc.buffer(h)?.write_at(0, data)?;
            (CopyDir::Out, Access::READ)
        }
    };
    let local = ipc.grant(h, route.proxy, 0, len, access)?;
    let req = RemoteCopy {
        dir,
        grantor,
        grant,
        offset: off,
        len,
        local,
        local_offset: 0,
    };
    let mut m = req.encode();
    ipc.sendrec(route.proxy, &mut m, REMOTE_TIMEOUT)?;
    match m.m_type {
        PROXY_OK => {}
        code if code < 0 => return Err(Errno::from_code(code).unwrap_or(Errno::EDVSGENERIC)),
        _ => return Err(Errno::EDVSBADVALUE),
    }
    if let Piece::In(out) = piece {
        ipc.buffer(h)?.read_at(0, out)?;
    }
    Ok(())
}
