//! The doorbell: a futex word that lets a waiter sleep until someone has news for it.
//!
//! Bit 0 says "a waiter sleeps (or is about to)"; the other bits count rings. A ringer always bumps
//! the count and makes the `FUTEX_WAKE` system call only when bit 0 was set, so a ring costs one
//! atomic add when nobody sleeps. A waiter sets bit 0, checks its condition once more, and sleeps
//! only while the word still holds the value it saw: a ring between the check and the sleep
//! changes the word, and the kernel then refuses to sleep. That is the whole lost-wakeup argument,
//! and it needs no ordering beyond AcqRel because every step is a read-modify-write of one word.
//!
//! The futex is not private (`FUTEX_PRIVATE_FLAG` is not set): the word lives in a shared file
//! mapping and the waker is usually another process.
//!
//! The word lives in the region, where any process may scribble on it. A scribble can clear the
//! sleeping bit under a sleeper (its ringers then skip the wake) or set the count anywhere. So
//! no sleep here is longer than [`LIVENESS_TICK`], whatever the caller asks: **every futex wait
//! on a region word is bounded by the liveness tick; a wake may be lost to a scribble, never a
//! message**. A waiter re-checks its condition after every sleep (not only after a ring), and a
//! word that reads as impossible is repaired, not trusted:
//!
//! - the sleeping bit gone while the doorbell's one sleeper sleeps ([`Slept::Tampered`]): the
//!   sleeper looks at everything again rather than at what the count says changed;
//! - the sleeping bit set while that sleeper is awake: every ring would pay a useless
//!   `FUTEX_WAKE`; [`Doorbell::repair_awake`] clears it.
//!
//! The count itself has no impossible value (it wraps); a caller that remembers counts can tell
//! one that moved backwards (`layout::rings_moved_back`).

use crate::wait::LIVENESS_TICK;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Bit 0 of the word: a waiter sleeps (or is about to).
pub(crate) const SLEEPING: u32 = 1;
const ONE_RING: u32 = 2;

/// How a [`Doorbell::sleep`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slept {
    /// The count differs from the one the sleeper saw: something rang.
    Rang,
    /// The count is unchanged: the timeout (at most the liveness tick) passed, or a spurious
    /// wakeup.
    Quiet,
    /// The sleeping bit vanished while we slept: someone wrote over the word (only the
    /// sleeper clears it). A ring may have skipped its wake, and the count says nothing sure.
    Tampered,
}

/// A futex doorbell living in shared memory.
#[repr(transparent)]
pub(crate) struct Doorbell(AtomicU32);

/// The value a waiter saw when it announced that it will sleep.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SleepToken(u32);

impl SleepToken {
    /// The ring count the waiter saw (as [`Doorbell::rings`] reports it).
    pub(crate) fn rings(self) -> u32 {
        self.0 & !SLEEPING
    }
}

impl Doorbell {
    /// Ring: wake the waiter if it sleeps. Returns whether it made the wake system call.
    pub(crate) fn ring(&self) -> bool {
        // AcqRel: Release publishes everything the ringer wrote before (the message, the bit)
        // to a waiter whose later RMW on this word reads this value.
        let old = self.0.fetch_add(ONE_RING, Ordering::AcqRel);
        if old & SLEEPING != 0 {
            futex_wake(&self.0, 1);
            return true;
        }
        false
    }

    /// Ring and wake every waiter, for doorbells with several waiters (bind events). The
    /// sleeping bit cannot be trusted there (one waiter clears it while another still sleeps),
    /// so this always makes the system call; binds are rare.
    pub(crate) fn ring_all(&self) {
        self.0.fetch_add(ONE_RING, Ordering::AcqRel);
        futex_wake(&self.0, i32::MAX);
    }

    /// Announce a sleep. The caller must check its condition again before [`Doorbell::sleep`].
    pub(crate) fn prepare(&self) -> SleepToken {
        // AcqRel: Acquire makes the writes of every ringer ordered before this RMW visible to the
        // re-check that follows.
        SleepToken(self.0.fetch_or(SLEEPING, Ordering::AcqRel) | SLEEPING)
    }

    /// Sleep until a ring, `timeout` or [`LIVENESS_TICK`] (whichever comes first), or a
    /// spurious wakeup; then clear the sleeping bit. The caller re-checks its condition in full
    /// whatever this returns: a scribble may have eaten the wake.
    pub(crate) fn sleep(&self, token: SleepToken, timeout: Duration) -> Slept {
        self.sleep_by(token, timeout, futex_wait)
    }

    /// [`Doorbell::sleep`], with the wait itself made by `wait(word, expected, timeout)`: a
    /// futex wait on `word` while it holds `expected`, bounded by `timeout` (at most the
    /// liveness tick), that may also end for reasons of the caller's own (MUK2's scheduler
    /// waits on the word and on its sockets in one io_uring call).
    pub(crate) fn sleep_by(
        &self,
        token: SleepToken,
        timeout: Duration,
        wait: impl FnOnce(&AtomicU32, u32, Duration),
    ) -> Slept {
        wait(&self.0, token.0, timeout.min(LIVENESS_TICK));
        // Relaxed: as `done`; the caller's re-check reads the count with Acquire.
        let word = self.0.fetch_and(!SLEEPING, Ordering::Relaxed);
        if word & SLEEPING == 0 {
            Slept::Tampered
        } else if word != token.0 {
            Slept::Rang
        } else {
            Slept::Quiet
        }
    }

    /// Called by the doorbell's one sleeper while it is awake (not between `prepare` and the
    /// end of its sleep): a sleeping bit set now was written by someone else, and would make
    /// every ringer pay a `FUTEX_WAKE` for nobody. Clear it; whether it was set.
    pub(crate) fn repair_awake(&self) -> bool {
        // Relaxed load first: the common case (clear) writes nothing, so the cache line stays
        // shared with the ringers. Relaxed RMW: as `done`.
        self.0.load(Ordering::Relaxed) & SLEEPING != 0
            && self.0.fetch_and(!SLEEPING, Ordering::Relaxed) & SLEEPING != 0
    }

    /// Clear the sleeping bit (after a sleep, or when the re-check found the condition true).
    pub(crate) fn done(&self) {
        // Relaxed: clearing only saves a later ringer a useless FUTEX_WAKE; a ringer that still
        // sees the bit makes one harmless extra system call.
        self.0.fetch_and(!SLEEPING, Ordering::Relaxed);
    }

    /// The current count of rings. Acquire: whatever a ringer wrote before a ring this load
    /// sees is visible afterwards, so "the count did not change" means "nothing new was rung".
    #[inline]
    pub(crate) fn rings(&self) -> u32 {
        self.0.load(Ordering::Acquire) & !SLEEPING
    }
}

/// The one futex wait of the crate: always with a timeout (the module's rule).
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 that outlives the call; FUTEX_WAIT only reads it and
    // compares. `&ts` points to a timespec on this stack frame. Every outcome
    // (woken, EAGAIN because the value changed, ETIMEDOUT, EINTR) is fine for the caller, which
    // re-checks its condition, so the result is deliberately ignored.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key; it never dereferences memory we do not
    // own. A failure can only mean "nobody to wake", which is fine.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    #[test]
    fn ring_wakes_sleeper() {
        let bell = Arc::new(Doorbell(AtomicU32::new(0)));
        let flag = Arc::new(AtomicBool::new(false));
        let (b2, f2) = (bell.clone(), flag.clone());
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            while !f2.load(Ordering::Acquire) {
                let tok = b2.prepare();
                if f2.load(Ordering::Acquire) {
                    b2.done();
                    break;
                }
                b2.sleep(tok, Duration::from_secs(5));
            }
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(20));
        flag.store(true, Ordering::Release);
        bell.ring();
        let waited = t.join().unwrap();
        assert!(waited < Duration::from_secs(5), "sleeper was not woken");
    }

    #[test]
    fn stale_token_does_not_sleep() {
        let bell = Doorbell(AtomicU32::new(0));
        let tok = bell.prepare();
        bell.ring();
        let start = Instant::now();
        assert_eq!(bell.sleep(tok, Duration::from_secs(5)), Slept::Rang);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(bell.rings(), ONE_RING);
    }

    #[test]
    fn a_sleep_is_bounded_by_the_liveness_tick() {
        let bell = Doorbell(AtomicU32::new(0));
        let tok = bell.prepare();
        let start = Instant::now();
        // Nobody rings: the sleep still ends (within a generous bound of one tick).
        assert_eq!(bell.sleep(tok, Duration::from_secs(60)), Slept::Quiet);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(bell.0.load(Ordering::Relaxed) & SLEEPING, 0);
    }

    #[test]
    fn a_cleared_sleeping_bit_loses_the_wake_not_the_ring() {
        let bell = Arc::new(Doorbell(AtomicU32::new(0)));
        let b2 = bell.clone();
        let t = std::thread::spawn(move || {
            let tok = b2.prepare();
            b2.sleep(tok, Duration::from_secs(60))
        });
        // Wait until it sleeps (or is about to), scribble the bit away, then ring: no wake is
        // made, yet the sleeper returns within its tick and reports the scribble.
        while bell.0.load(Ordering::Relaxed) & SLEEPING == 0 {
            std::thread::yield_now();
        }
        bell.0.fetch_and(!SLEEPING, Ordering::Relaxed);
        assert!(!bell.ring(), "a ring with the bit cleared must not wake");
        assert_eq!(t.join().unwrap(), Slept::Tampered);
        assert_eq!(bell.rings(), ONE_RING);
    }

    #[test]
    fn a_stray_sleeping_bit_is_cleared_while_awake() {
        let bell = Doorbell(AtomicU32::new((7 * ONE_RING) | SLEEPING));
        assert!(bell.repair_awake());
        assert_eq!(bell.0.load(Ordering::Relaxed), 7 * ONE_RING);
        assert!(!bell.repair_awake());
        assert!(!bell.ring(), "no wake system call once repaired");
    }
}
