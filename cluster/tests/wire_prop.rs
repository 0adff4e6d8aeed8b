//! Property: any sequence of valid frames, cut into pieces anywhere, decodes to itself.

use m3cluster::wire::{
    Command, DcEntry, Frame, FrameDecoder, Hello, Incoming, MAX_PAYLOAD, PayloadRule,
};
use proptest::prelude::*;

fn payload_for(cmd: Command, seed: u64, want: usize) -> Vec<u8> {
    let len = match cmd.payload_rule() {
        PayloadRule::Empty => 0,
        PayloadRule::Text(max) => want % (max + 1),
        PayloadRule::Bytes { min, max } => min + want % (max.min(min + 4096) - min + 1),
    };
    let text = matches!(cmd.payload_rule(), PayloadRule::Text(_));
    (0..len)
        .map(|i| {
            let b = (seed.wrapping_mul(31).wrapping_add(i as u64) % 251) as u8;
            if text { b'a' + b % 26 } else { b }
        })
        .collect()
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        0..Command::ALL.len(),
        any::<(u32, i32, i32, u64, i32)>(),
        any::<[u64; 8]>(),
        0usize..5000,
    )
        .prop_map(|(c, (dc, src, dst, seq, rcode), words, want)| {
            let cmd = Command::ALL[c];
            let mut f = Frame::new(cmd, dc, src, dst, seq);
            f.rcode = rcode;
            f.msg = m3ipc::Message::from_words(words);
            f.payload = payload_for(cmd, seq, want);
            f
        })
}

proptest! {
    #[test]
    fn frames_survive_any_cutting(frames in prop::collection::vec(frame(), 0..20),
                                   cuts in prop::collection::vec(1usize..700, 1..50)) {
        let hello = Hello::new(2, Some(0), vec![DcEntry {
            name: "p".into(), id: 1, nr_tasks: 2, nr_procs: 8, nr_sysprocs: 6,
        }]);
        let mut bytes = Vec::new();
        hello.encode(&mut bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for f in &frames {
            prop_assert!(f.payload.len() <= MAX_PAYLOAD);
            f.encode(&mut bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < bytes.len() {
            let n = cuts[i % cuts.len()].min(bytes.len() - at);
            d.feed(&bytes[at..at + n]);
            at += n;
            i += 1;
            while let Some(item) = d.next_item().map_err(|e| TestCaseError::fail(e.to_string()))? {
                got.push(item);
            }
        }
        prop_assert_eq!(d.buffered(), 0);
        let mut want = vec![Incoming::Hello(hello)];
        want.extend(frames.into_iter().map(Incoming::Frame));
        prop_assert_eq!(got, want);
    }
}
