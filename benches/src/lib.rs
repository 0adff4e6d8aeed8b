//! The benchmarks of M3-IPC and MUK2 (docs/ARCHITECTURE.md section 10): every scenario, defined once, for
//! the criterion benches of this crate (`cargo bench -p m3-benches`) and for `dvs bench`
//! (percentile tables, CSV and a plot).
//!
//! A scenario ([`scenario::Scenario`]) is started as a [`session::Session`]: its peer processes
//! are spawned once (this executable re-executed in a role, see [`peer`]) and pinned to stated
//! CPUs; the caller then plays the timed side in batches ([`session::Session::run`]), timing
//! each operation with the time-stamp counter ([`clock`]) when asked. Every row has a baseline
//! measured in the same run ([`scenario::Scenario::baseline`]). The `remote` group runs a DC
//! across two nodes on this machine ([`nodes`]) against TCP on the same link ([`tcp`]), over
//! loopback and over a veth pair between two network namespaces ([`netns`]);
//! the `web` group runs MUK2's web server against nginx ([`web`], [`nginx`]) with a load
//! generator of its own ([`http_load`]).

pub mod clock;
pub mod error;
pub mod fabric;
pub mod fan_in;
pub mod ftp_get;
pub mod hosted;
pub mod http_load;
pub mod netns;
pub mod nginx;
pub mod nodes;
pub mod notify;
pub mod peer;
pub mod percentiles;
pub mod placement;
pub mod raw;
pub mod remote;
pub mod scenario;
pub mod scratch;
pub mod session;
pub mod shm;
pub mod stream;
pub mod tcp;
pub mod wakeups;
pub mod web;
pub mod zero_copy;

pub use error::{BenchError, Result};
pub use scenario::{Group, Kind, Scenario};
pub use session::{Outcome, Session};
