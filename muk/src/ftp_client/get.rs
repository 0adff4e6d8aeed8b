//! GET: a file fetched chunk by chunk, with two requests in flight when it is large.
//!
//! One endpoint has at most one request in flight (a `sendrec`), so between two chunks the
//! servers wait for the reply to travel, the client to copy the chunk out of its buffer and
//! the next request to travel; for a client on another node that is most of a round trip
//! over the link per MiB. A file of [`PIPELINE_FROM`] bytes or more is therefore fetched over
//! two *lanes*: this client's endpoint and a second one of its own (bound like the first, with
//! its own buffers and grants, made on the first such GET and kept). Each lane fetches every
//! other chunk on a thread of its own, so FTP has the next request waiting while it answers
//! the current one; the chunks reach `sink` in order. If the second lane cannot be made (no
//! free slot, a full pool), the GET goes on with one.

use super::{Args, FtpClient, FtpError};
use crate::storage::MAX_CHUNK;
use crate::storage::ftp::FTP_GET;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Files at least this long are fetched over two lanes: three chunks, so that both lanes have
/// work after the first.
pub(super) const PIPELINE_FROM: u64 = 3 * MAX_CHUNK as u64;

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
                self.get_two_lanes(remote, size, &chunk, sink, progress)
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

    /// Whether the second lane is there (made now if not).
    fn lane(&mut self) -> bool {
        if self.ahead.is_none()
            && let Ok(mut lane) = FtpClient::connect(&self.dc, &self.opts)
        {
            lane.direct = self.direct;
            self.ahead = Some(Box::new(lane));
        }
        if let Some(lane) = &mut self.ahead {
            lane.direct = self.direct;
        }
        self.ahead.is_some()
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

    /// The rest of a GET of `size` bytes whose first (whole) chunk is `first`, over both lanes:
    /// this endpoint fetches the even chunks, the second lane the odd ones.
    fn get_two_lanes(
        &mut self,
        remote: &str,
        size: u64,
        first: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), FtpError>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, FtpError> {
        let Some(mut ahead) = self.ahead.take() else {
            return Err(FtpError::Setup("the second lane is gone".into()));
        };
        let chunks = size.div_ceil(MAX_CHUNK as u64);
        let result = std::thread::scope(|scope| {
            // One chunk waits per lane while the next is fetched: two requests in flight,
            // at most four chunks in memory.
            let (odd_tx, odd) = sync_channel(1);
            let (even_tx, even) = sync_channel(1);
            let lane_b: &mut FtpClient = &mut ahead;
            let lane_a: &mut FtpClient = self;
            scope.spawn(move || lane_loop(lane_b, remote, 1, chunks, odd_tx));
            scope.spawn(move || lane_loop(lane_a, remote, 2, chunks, even_tx));
            sink(first)?;
            let mut offset = first.len() as u64;
            progress(offset, size);
            for k in 1..chunks {
                let from: &Receiver<_> = if k % 2 == 1 { &odd } else { &even };
                let chunk: Vec<u8> = from
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
        self.ahead = Some(ahead);
        result
    }
}

/// One lane's part of a two-lane GET: chunks `first`, `first + 2`, ... of `chunks`, each sent
/// to the collector in order; the first error ends it.
fn lane_loop(
    lane: &mut FtpClient,
    remote: &str,
    first: u64,
    chunks: u64,
    to: SyncSender<Result<Vec<u8>, FtpError>>,
) {
    for k in (first..chunks).step_by(2) {
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
