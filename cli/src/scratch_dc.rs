//! A private DC for one `dvs demo` or `dvs bench` run, removed when dropped (on success, on error
//! and after Ctrl-C alike).

use crate::error::{CliError, Result};
use m3ipc::{Dc, DcConfig};

/// A DC named `PREFIX-PID` with the first free DC id; removed on drop.
#[derive(Debug)]
pub struct ScratchDc {
    dc: Dc,
}

impl ScratchDc {
    /// Create `PREFIX-PID` with the default limits and the first DC id no other DC of the region
    /// directory uses. `prefix` must leave room for the PID within 15 bytes.
    pub fn create(prefix: &str) -> Result<ScratchDc> {
        let name = format!("{prefix}-{}", std::process::id());
        if Dc::list()?.contains(&name) {
            return Err(CliError::new(format!(
                "DC {name} already exists (left by an earlier run?): remove it with `dvs dc rm {name}`"
            )));
        }
        Ok(ScratchDc {
            dc: Dc::create_with_free_id(&name, &DcConfig::default())?,
        })
    }

    /// The DC.
    pub fn dc(&self) -> &Dc {
        &self.dc
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.dc.name()
    }
}

impl Drop for ScratchDc {
    fn drop(&mut self) {
        let _ = Dc::remove(self.dc.name());
    }
}
