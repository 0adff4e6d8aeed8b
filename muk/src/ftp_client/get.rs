//! GET: a file fetched chunk by chunk, with several requests in flight when it is large.
//!
//! One endpoint has at most one request in flight (a `sendrec`), so between two chunks the
//! servers wait for the reply to travel, the client to copy the chunk out of its buffer and
//! the next request to travel; for a client on another node that is most of a round trip
//! over the link per MiB. A file of [`PIPELINE_FROM`] bytes or more is therefore fetched over
//! [`LANES`] *lanes*: this client's endpoint and more of its own (each bound like the first,
//! with its own buffers and grants, made on the first such GET and kept). Lane `i` fetches the
//! chunks `k` with `k % LANES == i` on a thread of its own, so FTP has the next requests
//! waiting while it answers one; the chunks reach `sink` in order. Lanes that cannot be made
//! (no free slot, a full pool) are done without; with none beside this one, the GET runs one
//! request at a time. Three lanes measured best for a remote GET (two left the link idle
//! between chunks, four gained nothing more).

use super::{Args, FtpClient, FtpError};
use crate::storage::MAX_CHUNK;
use crate::storage::ftp::FTP_GET;
use std::sync::mpsc::{SyncSender, sync_channel};

/// Files at least this long are fetched over several lanes: three chunks, so that two lanes at
/// least have work after the first.
pub(super) const PIPELINE_FROM: u64 = 3 * MAX_CHUNK as u64;

/// Lanes of a large GET, this client's endpoint included: requests in flight at once.
pub(super) const LANES: usize = 3;

impl FtpClient {
    /// Fetch the file at `remote`, handing each chunk to `sink` in order; `progress` sees the
    /// bytes so far and the file's size after each chunk. Returns the bytes fetched. A file
    /// that changes size during the GET is an error ([`FtpError::Protocol`]) once its chunks
    /// no longer add up.
    pub fn get_with(
        &mut self,
        remote: &str,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), FtpError>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, FtpError> {
        let mut chunk = std::mem::take(&mut self.chunk);
        let first = self.fetch(remote, 0, &mut chunk);
        let result = match first {
            Ok(size) if size >= PIPELINE_FROM && chunk.len() == MAX_CHUNK && self.lane() => {
                self.get_over_lanes(remote, size, &chunk, sink, progress)
            }
            Ok(size) => self.get_one_lane(remote, size, &mut chunk, sink, progress),
            Err(e) => Err(e),
        };
        chunk.resize(MAX_CHUNK, 0);
        self.chunk = chunk;
        result
    }

    /// One request for the chunk at `offset` into `out` (its length becomes the chunk's);
    /// returns the file's size.
    fn fetch(&mut self, remote: &str, offset: u64, out: &mut Vec<u8>) -> Result<u64, FtpError> {
        let args = Args {
            offset,
            len: MAX_CHUNK,
            ..Args::default()
        };
        let m = self.call("get", FTP_GET, remote, args)?;
        let (n, size) = (m.payload[0], m.payload[1]);
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_CHUNK)
            .ok_or_else(|| FtpError::Protocol(format!("a chunk of {n} bytes")))?;
        out.clear();
        self.proc
            .buffer(self.data_buf)
            .and_then(|v| v.append_to(0, n, out))
            .map_err(|e| FtpError::Setup(format!("reading the data buffer: {e}")))?;
        Ok(size)
    }

    /// Whether the other lanes are there (made now if not; at least one must be).
    fn lane(&mut self) -> bool {
        while self.lanes.len() < LANES - 1 {
            match FtpClient::connect(&self.dc, &self.opts) {
                Ok(lane) => self.lanes.push(lane),
                Err(_) => break,
            }
        }
        let direct = self.direct;
        for lane in &mut self.lanes {
            lane.direct = direct;
        }
        !self.lanes.is_empty()
    }

    /// The rest of a GET whose first chunk is in `chunk`, one request at a time.
    fn get_one_lane(
        &mut self,
        remote: &str,
        size: u64,
        chunk: &mut Vec<u8>,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), FtpError>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, FtpError> {
        let mut offset = 0u64;
        loop {
            if chunk.is_empty() {
                if offset < size {
                    return Err(FtpError::Protocol(format!(
                        "the file ended at {offset} of {size} bytes"
                    )));
                }
                return Ok(offset);
            }
            sink(chunk)?;
            offset += chunk.len() as u64;
            progress(offset, size);
            if offset >= size {
                return Ok(offset);
            }
            // The size is the one of the first reply: a file that grows meanwhile is fetched
            // as long as it was then.
            self.fetch(remote, offset, chunk)?;
        }
    }

    /// The rest of a GET of `size` bytes whose first (whole) chunk is `first`, over every
    /// lane: lane `i` of `n` (this endpoint last) fetches chunks `k` with `k % n == i`.
    fn get_over_lanes(
        &mut self,
        remote: &str,
        size: u64,
        first: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), FtpError>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, FtpError> {
        let mut others = std::mem::take(&mut self.lanes);
        let n = others.len() as u64 + 1;
        let chunks = size.div_ceil(MAX_CHUNK as u64);
        let result = std::thread::scope(|scope| {
            // One chunk waits per lane while its next is fetched: `n` requests in flight, at
            // most `2 n` chunks in memory.
            let mut from = Vec::new();
            let lanes = others.iter_mut().chain(std::iter::once(&mut *self));
            for (i, lane) in lanes.enumerate() {
                let (tx, rx) = sync_channel(1);
                from.push(rx);
                // Lane 0 starts at chunk n (chunk 0 is in), lane i > 0 at chunk i.
                let start = if i == 0 { n } else { i as u64 };
                scope.spawn(move || lane_loop(lane, remote, start, n, chunks, tx));
            }
            sink(first)?;
            let mut offset = first.len() as u64;
            progress(offset, size);
            for k in 1..chunks {
                let chunk: Vec<u8> = from[(k % n) as usize]
                    .recv()
                    .map_err(|_| FtpError::Protocol("a lane of the GET ended early".into()))??;
                let want = (size - offset).min(MAX_CHUNK as u64);
                if chunk.len() as u64 != want {
                    return Err(FtpError::Protocol(format!(
                        "the file changed during the get: {} bytes at {offset} of {size}, \
                         {want} expected",
                        chunk.len()
                    )));
                }
                sink(&chunk)?;
                offset += want;
                progress(offset, size);
            }
            Ok(offset)
            // Leaving drops the receivers: a lane still fetching stops after its request.
        });
        self.lanes = others;
        result
    }
}

/// One lane's part of a GET over `step` lanes: chunks `first`, `first + step`, ... of
/// `chunks`, each sent to the collector in order; the first error ends it.
fn lane_loop(
    lane: &mut FtpClient,
    remote: &str,
    first: u64,
    step: u64,
    chunks: u64,
    to: SyncSender<Result<Vec<u8>, FtpError>>,
) {
    for k in (first..chunks).step_by(step as usize) {
        let mut chunk = Vec::with_capacity(MAX_CHUNK);
        let got = lane
            .fetch(remote, k * MAX_CHUNK as u64, &mut chunk)
            .map(|_| chunk);
        let failed = got.is_err();
        if to.send(got).is_err() || failed {
            return;
        }
    }
}
