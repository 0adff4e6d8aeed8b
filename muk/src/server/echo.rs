//! echo (slot 20): a small server for tests and benchmarks.
//!
//! [`ECHO_ECHO`] returns the payload, [`ECHO_SINK`] returns nothing, [`ECHO_TIMEOUT_PROBE`] times a
//! receive that must time out (the runners' timers under test), [`ECHO_SLOW`] sleeps before it
//! answers. Request layouts: [`crate::protocol`].

use crate::ipc::Ipc;
use crate::protocol::{self, ECHO_ECHO, ECHO_SINK, ECHO_SLOW, ECHO_TIMEOUT_PROBE, MAX_WAIT_MS, OK};
use crate::server::{Handler, Server, serve_requests};
use m3ipc::{Errno, Message, Result, Timeout};
use std::time::{Duration, Instant};

/// The echo server. Stateless.
#[derive(Debug, Default)]
pub struct Echo {}

impl Echo {
    /// A new echo server.
    pub fn new() -> Echo {
        Echo {}
    }

    /// `ms` from `m1i1`, within `min..=MAX_WAIT_MS`, else `EDVSBADVALUE`.
    fn millis(m: &Message, min: i32) -> Result<u32> {
        let ms = m.m1().m1i1;
        if (min..=MAX_WAIT_MS).contains(&ms) {
            u32::try_from(ms).map_err(|_| Errno::EDVSBADVALUE)
        } else {
            Err(Errno::EDVSBADVALUE)
        }
    }

    fn probe(ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        let ms = Echo::millis(m, 1)?;
        let src = m.m1().m1i2;
        protocol::decode_endpoint(src)?;
        let mut scratch = Message::default();
        let start = Instant::now();
        let got = ipc.receive(src, &mut scratch, Timeout::Millis(ms));
        let elapsed = start.elapsed();
        let code = match got {
            Ok(()) => {
                // `src` did send after all: answer it rather than leave it waiting.
                let _ = ipc.reply(scratch.m_source, &protocol::error_reply(Errno::EDVSBUSY));
                0
            }
            Err(Errno::EDVSSHUTDOWN) => return Err(Errno::EDVSSHUTDOWN),
            Err(e) => e.code(),
        };
        let mut r = Message::new(OK);
        r.m1_mut().m1i1 = code;
        r.m1_mut().m1p1 = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        Ok(r)
    }
}

impl Handler for Echo {
    fn handle(&mut self, ipc: &mut dyn Ipc, m: &Message) -> Result<Message> {
        match m.m_type {
            ECHO_ECHO => Ok(Message { m_type: OK, ..*m }),
            ECHO_SINK => Ok(Message::new(OK)),
            ECHO_TIMEOUT_PROBE => Echo::probe(ipc, m),
            ECHO_SLOW => {
                let ms = Echo::millis(m, 0)?;
                ipc.sleep(Duration::from_millis(u64::from(ms)))?;
                Ok(Message::new(OK))
            }
            _ => Err(Errno::EDVSBADREQUEST),
        }
    }
}

impl Server for Echo {
    fn serve(&mut self, ipc: &mut dyn Ipc) -> Result<()> {
        serve_requests(self, ipc)
    }
}
