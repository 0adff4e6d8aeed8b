//! `wire_decode`: the node daemons' one decoder of what a peer sends (`m3cluster::wire`).
//!
//! The first input byte picks how the rest is read: bit 0 set, the rest follows a valid hello
//! the target writes itself (so the fuzzer spends its time on frames); clear, the rest is the
//! whole stream, hello included. The other bits pick the size of the pieces the stream is fed
//! in (1 to 128 bytes), as a socket may cut it anywhere. The decoder must return items or an
//! error, never panic; it must never hold more than one largest frame plus one read; and every
//! item it returns must encode to exactly the bytes it consumed (so nothing is dropped, invented
//! or reordered).

use m3cluster::wire::{
    DcEntry, FRAME_SIZE, FrameDecoder, Hello, Incoming, MAX_HELLO, MAX_PAYLOAD, WireError,
};

/// A valid hello, as a peer daemon sends it.
pub fn hello() -> Hello {
    Hello::new(
        1,
        None,
        vec![DcEntry {
            name: "fuzz".into(),
            id: 3,
            nr_tasks: 4,
            nr_procs: 16,
            nr_sysprocs: 8,
        }],
    )
}

/// Run one input.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut stream = Vec::new();
    if mode & 1 == 1
        && let Err(e) = hello().encode(&mut stream)
    {
        panic!("the target's own hello does not encode: {e}");
    }
    stream.extend_from_slice(rest);
    let piece = usize::from(mode >> 1) + 1;

    let mut d = FrameDecoder::new();
    let mut consumed = 0usize;
    let mut fed = 0usize;
    let mut reencoded = Vec::new();
    let mut failed: Option<WireError> = None;
    'feed: for chunk in stream.chunks(piece) {
        d.feed(chunk);
        fed += chunk.len();
        loop {
            match d.next_item() {
                Ok(Some(item)) => {
                    let before = reencoded.len();
                    let r = match &item {
                        Incoming::Hello(h) => h.encode(&mut reencoded),
                        Incoming::Frame(f) => f.encode(&mut reencoded),
                    };
                    if let Err(e) = r {
                        panic!("a decoded item does not encode again: {e}: {item:?}");
                    }
                    consumed += reencoded.len() - before;
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break 'feed;
                }
            }
        }
        assert!(
            d.buffered() <= FRAME_SIZE + MAX_PAYLOAD.max(MAX_HELLO) + piece,
            "the decoder holds {} bytes",
            d.buffered()
        );
    }
    assert_eq!(
        reencoded[..],
        stream[..consumed],
        "decoded items do not encode to the bytes they came from"
    );
    match failed {
        Some(_) => assert_eq!(d.next_item(), Err(WireError::Poisoned)),
        None => assert_eq!(consumed + d.buffered(), fed),
    }
}
