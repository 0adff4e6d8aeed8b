//! A started scenario: its peers are up and pinned, the caller plays the timed side.

use crate::clock::Record;
use crate::error::Result;
use std::time::Duration;

/// What a session tells once it is over, beyond its timed batches.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency samples (ns) measured by the peers rather than by the caller (fan-in: each
    /// client's round trips); when present, they are the scenario's latency.
    pub peer_samples: Option<Vec<u64>>,
    /// A fact to print beside the row (coalescing of a notify flood, ...).
    pub note: Option<String>,
}

/// A running scenario. Dropping it stops its peers (killed and reaped) and removes its DC.
pub trait Session {
    /// Run `n` operations (round trips, transfers, notifies, served requests); with `record`,
    /// pass each one's time in nanoseconds to it. Returns the batch's wall time.
    fn run(&mut self, n: u64, record: Record<'_>) -> Result<Duration>;

    /// End the session: collect what the peers measured.
    fn finish(self: Box<Self>) -> Result<Outcome> {
        Ok(Outcome::default())
    }
}
