#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `Dc::open_by_id`: the original's calls name a DC by its id (`dvk_bind(dcid, nr)`), so a DC
//! is found by scanning the region directory for the region whose header carries that id.

mod support;

use m3ipc::{Dc, DcConfig};
use support::TestDc;

#[test]
fn a_dc_is_found_by_its_id() {
    let t = TestDc::with('i', &DcConfig::default());
    let id = t.dc.config().dcid;
    let found = Dc::open_by_id(id).unwrap();
    assert_eq!(found.name(), t.name);
    assert_eq!(found.path(), t.dc.path());
    // It is the same region: a bind through one shows in the other.
    let p = found.bind(3).unwrap();
    assert_eq!(t.dc.getprocinfo(3).unwrap().endpoint, p.endpoint());
    drop(p);

    assert!(Dc::open_by_id(m3ipc::MAX_DCS + 5).is_err());

    let name = t.name.clone();
    drop(t);
    // Gone with its region (another test may have taken the id since, under another name).
    match Dc::open_by_id(id) {
        Err(e) => assert_eq!(e.errno(), m3ipc::Errno::EDVSDCNOTRUN),
        Ok(other) => assert_ne!(other.name(), name),
    }
}
