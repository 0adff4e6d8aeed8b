//! `muk2`: boot the unikernel. (Being written.)

fn main() {}
