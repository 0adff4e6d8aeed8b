//! # muk: MUK2, the multiserver unikernel on M3-IPC, and MUK, its thread-based baseline
//!
//! One process hosts several servers (SYSTASK, PM, ...). Under **MUK2** each server is a
//! stackful coroutine on one scheduler thread: two servers rendezvous by a direct hand-off (copy
//! the message into the receiver, make it ready, switch) with no system call, and outside
//! processes reach them through the `m3ipc` fabric. Under **MUK** the same servers run one OS
//! thread each and every call goes through the fabric: the baseline MUK2 must beat.
//!
//! Layers: [`ipc`] (the one interface servers are written against), [`server`] (the servers:
//! SYSTASK, PM, echo and the storage servers RDISK, FS, FTP, whose protocols are in [`storage`]),
//! [`host`] (binding and running them), the two runners (`coro` for MUK2, `threads` for MUK),
//! and [`ftp_client`] (the library of the `m3ftp` client). docs/ARCHITECTURE.md section 6
//! describes them.

pub mod config;
pub mod coro;
pub mod diag;
pub mod ftp_client;
pub mod host;
pub mod ipc;
pub mod isolate;
pub mod protocol;
pub mod runner;
pub mod sandbox;
pub mod server;
pub mod sockets;
pub mod storage;
pub mod threads;

pub use coro::{IoSleepStats, io_sleep_stats};
pub use host::{Host, HostError, Hosted, Runner, ServerExit, Stopper};
pub use ipc::Ipc;
pub use server::{Server, ServerKind};
