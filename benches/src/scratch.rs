//! A private DC for one session, removed when dropped (on success and on error alike).

use crate::error::Result;
use m3ipc::{Dc, DcConfig};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A DC named `bPID-SEQ` with the first free DC id; removed on drop.
#[derive(Debug)]
pub struct ScratchDc {
    dc: Dc,
}

impl ScratchDc {
    /// Create a fresh DC with the default limits (and pool).
    pub fn create() -> Result<ScratchDc> {
        let name = format!(
            "b{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        Ok(ScratchDc {
            dc: Dc::create_with_free_id(&name, &DcConfig::default())?,
        })
    }

    /// The DC.
    pub fn dc(&self) -> &Dc {
        &self.dc
    }

    /// Its name, for the peers' command lines.
    pub fn name(&self) -> &str {
        self.dc.name()
    }
}

impl Drop for ScratchDc {
    fn drop(&mut self) {
        let _ = Dc::remove(self.dc.name());
    }
}
