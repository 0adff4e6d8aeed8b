//! Where a DC's shared words lie in its region file, and what their values may be: for tools and
//! tests that inspect the region from outside (or damage it on purpose, as the hostile tests
//! do). The offsets are those of this build's layout, read off the live mapping, never
//! hard-coded.

use crate::dc::Dc;
use crate::doorbell;
use std::ops::Range;

/// Bit 0 of a doorbell word: its waiter sleeps (or is about to). The other 31 bits count rings.
pub const DOORBELL_SLEEPING: u32 = doorbell::SLEEPING;

/// The byte range of the slot table in the region file of `dc`.
pub fn slot_table(dc: &Dc) -> Range<usize> {
    let region = &dc.region;
    let n = region.geo.nr_slots;
    match region.slot(0) {
        Some(first) => {
            let start = offset_of(dc, first);
            start..start + n * core::mem::size_of_val(first)
        }
        None => 0..0,
    }
}

/// The byte offset in the region file of the doorbell word that wakes the owner of slot `nr`:
/// its own, or the one it shares (a MUK2 scheduler sleeps on one doorbell for all its servers,
/// so any of its servers' numbers gives the scheduler's doorbell). `None` for a number outside
/// the table.
pub fn doorbell_offset(dc: &Dc, nr: i32) -> Option<usize> {
    let region = &dc.region;
    let slot = region.slot(region.geo.index(nr)?)?;
    Some(offset_of(dc, region.bell(slot)))
}

/// Whether ring count `now` lies behind `before` (both as [`crate::Proc::doorbell_rings`]
/// reports them): rings only add, so a count that moved back by less than half the range was
/// written over. A forward move that large would take 2^31 rings between two looks.
pub fn rings_moved_back(before: u32, now: u32) -> bool {
    now.wrapping_sub(before) > u32::MAX / 2
}

/// The offset of `item` (which lies in `dc`'s mapping) from the start of the mapping.
fn offset_of<T>(dc: &Dc, item: &T) -> usize {
    let base = dc.region.header() as *const _ as usize;
    (item as *const T as usize) - base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_that_move_back_are_told() {
        assert!(!rings_moved_back(10, 10));
        assert!(!rings_moved_back(10, 12));
        assert!(
            !rings_moved_back(u32::MAX - 1, 2),
            "a wrap is a forward move"
        );
        assert!(rings_moved_back(10, 0));
        assert!(rings_moved_back(2, u32::MAX - 1));
    }
}
