//! The request/reply protocols of the storage servers: RDISK (slot 3, a block device), FS
//! (slot 1, a MINIX v3 file system) and FTP (slot 14, `m3ftpd`, file transfer for outside
//! clients), and what they share.
//!
//! The conventions are those of [`crate::protocol`]: a request's `m_type` is one of the codes of
//! the modules below, its arguments are 64-bit words of the payload (each code documents which);
//! the reply is `m_type` = `OK` ([`crate::protocol::OK`]) with results in the payload, or a negative
//! EDVS code. Bulk data never travels in a message: the requester grants a range of one of its
//! pool buffers to the server, which reads or writes it in place (or `vcopy`s it), and the
//! message carries the grant's id. Codes: RDISK `0x04xx`, FS `0x05xx`, FTP `0x06xx`.
//!
//! Everything a server reads from a request (numbers, grant ids, paths, lengths) is untrusted: a
//! value out of range is an error reply, never a panic.

pub mod dirent;
pub mod fs;
pub mod ftp;
pub mod granted;
pub mod path;
pub mod rdisk;

pub use granted::{is_remote, read_granted, write_granted};

use crate::protocol::OK;
use m3ipc::{Dc, Endpoint, Errno, Message, Result};

/// Largest data range of one request: 1 MiB, the largest pool buffer and `vcopy`.
pub const MAX_CHUNK: usize = m3ipc::pool::MAX_BUFFER;

/// The result a reply carries: `Ok` for [`OK`], the server's error for a negative code (one no
/// [`Errno`] has is `EDVSGENERIC`), `EDVSBADVALUE` for a positive code (not this protocol).
pub fn reply_result(m: &Message) -> Result<()> {
    match m.m_type {
        OK => Ok(()),
        code if code < 0 => Err(Errno::from_code(code).unwrap_or(Errno::EDVSGENERIC)),
        _ => Err(Errno::EDVSBADVALUE),
    }
}

/// A length or offset from a request word, as a `usize` no larger than `max`, else
/// `EDVSBADVALUE`.
pub fn word_len(w: u64, max: usize) -> Result<usize> {
    usize::try_from(w)
        .ok()
        .filter(|&v| v <= max)
        .ok_or(Errno::EDVSBADVALUE)
}

/// Whose grant a request to FS or RDISK names: the requester's own, or (for a system process
/// acting for a client, as FTP does for FS and FS for RDISK) a grant that the client issued to
/// the server, so that the data moves straight between the client's buffer and the server.
///
/// One payload word: the endpoint in the low half, 1 in the high half when explicit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Grantor {
    /// The requester (`m_source`).
    #[default]
    Requester,
    /// Another endpoint; only a system process may name one (else `EDVSPERM`).
    Client(m3ipc::Endpoint),
}

impl Grantor {
    /// The payload word.
    pub fn word(self) -> u64 {
        match self {
            Grantor::Requester => 0,
            Grantor::Client(ep) => pack(ep as u32, 1),
        }
    }

    /// From a payload word; a high half other than 0 or 1 is `EDVSBADVALUE`.
    pub fn from_word(w: u64) -> Result<Grantor> {
        match unpack(w) {
            (0, 0) => Ok(Grantor::Requester),
            (ep, 1) => Ok(Grantor::Client(ep as i32)),
            _ => Err(Errno::EDVSBADVALUE),
        }
    }
}

/// The endpoint whose grant a request from `source` names. Only a system process may name
/// another endpoint's grant (`EDVSPERM` otherwise): a user could otherwise steer a server into
/// a buffer someone else granted it.
pub fn grantor_endpoint(dc: &Dc, source: Endpoint, g: Grantor) -> Result<Endpoint> {
    match g {
        Grantor::Requester => Ok(source),
        Grantor::Client(ep) => {
            let nr = crate::protocol::decode_endpoint(source)?;
            let c = dc.config();
            let system = -(c.nr_tasks as i32)..c.nr_sysprocs as i32 - c.nr_tasks as i32;
            if system.contains(&nr) {
                Ok(ep)
            } else {
                Err(Errno::EDVSPERM)
            }
        }
    }
}

/// Pack two 32-bit values into one payload word (`lo` in the low half).
pub fn pack(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | u64::from(hi) << 32
}

/// The two 32-bit halves of a payload word, low first.
pub fn unpack(w: u64) -> (u32, u32) {
    (w as u32, (w >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_words() {
        assert_eq!(reply_result(&Message::new(OK)), Ok(()));
        assert_eq!(
            reply_result(&Message::new(Errno::EDVSNOENT.code())),
            Err(Errno::EDVSNOENT)
        );
        assert_eq!(
            reply_result(&Message::new(-99_999)),
            Err(Errno::EDVSGENERIC)
        );
        assert_eq!(reply_result(&Message::new(7)), Err(Errno::EDVSBADVALUE));
        assert_eq!(word_len(5, 5), Ok(5));
        assert_eq!(word_len(6, 5), Err(Errno::EDVSBADVALUE));
        assert_eq!(word_len(u64::MAX, usize::MAX - 1), Err(Errno::EDVSBADVALUE));
        assert_eq!(unpack(pack(7, u32::MAX)), (7, u32::MAX));
    }
}
