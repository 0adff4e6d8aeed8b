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

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const SLEEPING: u32 = 1;
const ONE_RING: u32 = 2;

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

    /// Sleep until a ring, a timeout, or a spurious wakeup; then clear the sleeping bit.
    pub(crate) fn sleep(&self, token: SleepToken, timeout: Option<Duration>) {
        futex_wait(&self.0, token.0, timeout);
        self.done();
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

fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 that outlives the call; FUTEX_WAIT only reads it and
    // compares. `ts_ptr` is null or points to a timespec on this stack frame. Every outcome
    // (woken, EAGAIN because the value changed, ETIMEDOUT, EINTR) is fine for the caller, which
    // re-checks its condition, so the result is deliberately ignored.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
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
                b2.sleep(tok, Some(Duration::from_secs(5)));
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
        bell.sleep(tok, Some(Duration::from_secs(5)));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(bell.rings(), ONE_RING);
    }
}
