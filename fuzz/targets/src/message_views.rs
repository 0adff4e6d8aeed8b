//! `message_views`: every payload view, the notify view and every request decoder, on
//! arbitrary bytes.
//!
//! The input is cut into 64-byte messages (the last one zero-padded). Each is read through every
//! view of the fabric (`m1` .. `m7`, `notify`) and through every decoder the servers and clients
//! apply to a message they receive: SYSTASK's, PM's, RDISK's, FS's and FTP's requests, the
//! replies clients decode, names, PIDs, endpoints, grantor words and directory listings (the
//! whole input as a listing). A decoder must return a value or an error, never panic; where a
//! decoder has an encoder, a decoded value must encode to a message that decodes to it again.

use m3ipc::message::{MESSAGE_SIZE, is_notify, notify_from};
use m3ipc::pool::{CopyRef, Handle};
use m3ipc::{Message, endpoint};
use muk::protocol::{SlotInfo, VcopyRequest, decode_endpoint, decode_name, decode_pid};
use muk::storage::fs::{DataRequest, FS_READ, decode_stat, encode_stat};
use muk::storage::ftp::{FTP_GET, FtpRequest};
use muk::storage::path::{PathRef, check, split_parent};
use muk::storage::rdisk::{BlockRequest, RD_READ};
use muk::storage::{Grantor, dirent, reply_result, unpack, word_len};

/// Run one input.
pub fn run(data: &[u8]) {
    for chunk in data.chunks(MESSAGE_SIZE) {
        let mut bytes = [0u8; MESSAGE_SIZE];
        bytes[..chunk.len()].copy_from_slice(chunk);
        let mut words = [0u64; 8];
        for (w, b) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(b);
            *w = u64::from_le_bytes(le);
        }
        let m = Message::from_words(words);
        views(&m);
        decoders(&m);
    }
    let count = data.first().map_or(0, |&b| usize::from(b));
    let _ = dirent::decode(data.get(1..).unwrap_or_default(), count);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = check(s);
        let _ = split_parent(s);
    }
}

/// Every view, and that the views alias the same bytes.
fn views(m: &Message) {
    assert_eq!(Message::from_words(m.to_words()), *m);
    let mut copy = *m;
    assert_eq!(m.m1().m1i1, m.m2().m2i1);
    assert_eq!(m.m1().m1p3 as i64, m.m4().m4l5);
    assert_eq!(&m.m3().m3ca1[..8], &m.m7().m7p1.to_le_bytes()[..]);
    let n = *m.notify();
    let _ = (n.flags, n.arg, n.tv_sec, n.tv_nsec);
    // Writing through one view and reading through another moves the same bytes.
    copy.m7_mut().m7i4 = copy.m3().m3i1;
    copy.notify_mut().arg = copy.m2().m2l1;
    assert_eq!(copy.payload[1], m.payload[2]);
    let _ = (is_notify(m.m_type), notify_from(m.m_source));
    for ep in [m.m_source, m.m_type] {
        let _ = (
            endpoint::nr(ep),
            endpoint::generation(ep),
            endpoint::is_special(ep),
        );
    }
}

/// Every decoder a receiver applies, with the round trips.
fn decoders(m: &Message) {
    let _ = reply_result(m);
    let _ = decode_name(&m.m3().m3ca1);
    let _ = decode_pid(m.m1().m1i1);
    if let Ok(nr) = decode_endpoint(m.m_source) {
        assert_eq!(nr, endpoint::nr(m.m_source));
    }
    if let Ok(info) = SlotInfo::decode(m) {
        assert_eq!(SlotInfo::decode(&info.encode()), Ok(info));
    }
    if let Ok(req) = VcopyRequest::decode(m) {
        assert_eq!(VcopyRequest::decode(&req.encode()), Ok(req));
        let _ = (
            CopyRef::from_raw(m.payload[1]).raw(),
            Handle(m.payload[2]).capacity(),
        );
    }
    if let Ok(req) = BlockRequest::decode(m) {
        assert_eq!(BlockRequest::decode(&req.encode(RD_READ)), Ok(req));
        let _ = req.bytes();
    }
    if let Ok(req) = DataRequest::decode(m) {
        assert_eq!(DataRequest::decode(&req.encode(FS_READ)), Ok(req));
    }
    if let Ok(req) = FtpRequest::decode(m) {
        assert_eq!(FtpRequest::decode(&req.encode(FTP_GET)), Ok(req));
    }
    for pair in [false, true] {
        if let Ok(p) = PathRef::from_words(m.payload[0], m.payload[1], pair) {
            let [g, l] = p.words();
            assert_eq!(PathRef::from_words(g, l, pair), Ok(p));
        }
    }
    for &w in &m.payload {
        if let Ok(g) = Grantor::from_word(w) {
            assert_eq!(Grantor::from_word(g.word()), Ok(g));
        }
        let _ = word_len(w, usize::MAX);
        let _ = unpack(w);
    }
    let stat = decode_stat(m);
    assert_eq!(decode_stat(&encode_stat(&stat)), stat);
}
