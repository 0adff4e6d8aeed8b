//! Waiting: timeouts, wait policies, and the one loop every blocking call waits in.
//!
//! Measured on these machines (docs/ARCHITECTURE.md section 5): two processes spinning on one cache line on
//! different cores complete a round trip in about 120 ns, a futex wake across cores costs about
//! 30 µs, and spinning while the peer shares our core is catastrophic. So the default
//! [`WaitPolicy::Adaptive`] spins only while the peer has published that it runs on another CPU,
//! and only for [`ADAPTIVE_SPIN`]; then it sleeps on the slot's doorbell.
//!
//! A sleeping waiter wakes at least every [`LIVENESS_TICK`] to check that its peer still lives, so
//! a peer killed by SIGKILL is noticed within that tick plus one `/proc` read.
//!
//! The doorbell is a word of the region, which any process can scribble on: **every futex wait on
//! a region word is bounded by the liveness tick; a wake may be lost to a scribble, never a
//! message.** The bound is the doorbell's own (`Doorbell::sleep` never sleeps longer than the
//! tick, whatever it is asked), and after every sleep the waiter looks at its whole condition
//! again (`Blocked::rescan`: the mailbox, the inbox, the envelope), not only at what the ring
//! count says changed, so a message whose ring lost its wake is found one tick late at worst.
//! The cost is one wakeup per tick of an idle waiter: never a system call on the hot path.

use crate::doorbell::Doorbell;
use crate::errno::{Errno, Result};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How long an adaptive waiter spins before it sleeps.
pub const ADAPTIVE_SPIN: Duration = Duration::from_micros(50);
/// How often a waiter checks that its peer lives.
pub const LIVENESS_TICK: Duration = Duration::from_millis(10);
/// How often a waiter with no peer to watch runs its tick's checks (stale endpoints); it still
/// wakes every [`LIVENESS_TICK`] to look for what a lost wake did not tell it.
const IDLE_TICK: Duration = Duration::from_millis(500);

/// How long a blocking call may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Wait as long as it takes (`TIMEOUT_FOREVER`, -1).
    Forever,
    /// Never wait: a call that would block fails with `EDVSAGAIN` (`TIMEOUT_NOWAIT`, 0).
    NoWait,
    /// Wait at most this many milliseconds, then fail with `EDVSTIMEDOUT`.
    Millis(u32),
}

impl Timeout {
    /// The original's `TIMEOUT_FOREVER`.
    pub const FOREVER_MS: i64 = -1;
    /// The original's `TIMEOUT_NOWAIT`.
    pub const NOWAIT_MS: i64 = 0;

    /// The timeout of the original's millisecond argument: -1 forever, 0 no wait, more a limit.
    /// Other negative values are `EDVSINVAL`.
    pub fn from_ms(ms: i64) -> Result<Timeout> {
        match ms {
            -1 => Ok(Timeout::Forever),
            0 => Ok(Timeout::NoWait),
            1.. => Ok(Timeout::Millis(ms.min(u32::MAX as i64) as u32)),
            _ => Err(Errno::EDVSINVAL),
        }
    }

    fn deadline(self, start: Instant) -> Option<Instant> {
        match self {
            Timeout::Forever => None,
            Timeout::NoWait => Some(start),
            Timeout::Millis(ms) => Some(start + Duration::from_millis(ms as u64)),
        }
    }
}

/// How a blocked call waits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaitPolicy {
    /// Sleep on the doorbell at once.
    Block,
    /// Spin until the call completes or times out (for benchmarks on idle cores).
    Spin,
    /// Spin for a bounded time while the peer runs on another CPU, then sleep.
    #[default]
    Adaptive,
}

/// What a blocked call tells a park hook when it would sleep (see [`set_park_hook`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Park {
    /// The ring count of the caller's doorbell when it last checked its condition: once the
    /// count differs ([`crate::Proc::doorbell_rings`]), something may have finished the call.
    pub rings: u32,
    /// Resume the call at the latest after this long (its deadline or its next liveness tick).
    pub timeout: Duration,
}

/// What a park hook answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unpark {
    /// Check the call's condition again (and park again if it still blocks).
    Check,
    /// Give the call up as if its timeout had expired, with `EDVSSHUTDOWN`.
    Cancel,
}

/// A function that parks a blocked call instead of sleeping on its doorbell.
pub type ParkHook = fn(Park) -> Unpark;

std::thread_local! {
    static PARK_HOOK: core::cell::Cell<Option<ParkHook>> = const { core::cell::Cell::new(None) };
}

/// Install (or with `None` remove) this thread's park hook; returns the previous one.
///
/// A thread that runs many endpoints as coroutines (MUK2) cannot let one of them sleep in the
/// kernel: with a hook installed, a call that would sleep calls the hook instead (which switches
/// to another coroutine) and never spins, since its peer may be waiting for this very thread.
/// The hook's caller decides when to resume it: when [`Park::rings`] no longer matches the
/// doorbell's count, or when [`Park::timeout`] has passed.
pub fn set_park_hook(hook: Option<ParkHook>) -> Option<ParkHook> {
    PARK_HOOK.with(|h| h.replace(hook))
}

/// A function that tells a thread's blocked calls to give up (see [`set_give_up_hook`]).
pub type GiveUpHook = fn() -> bool;

std::thread_local! {
    static GIVE_UP_HOOK: core::cell::Cell<Option<GiveUpHook>> =
        const { core::cell::Cell::new(None) };
}

/// Install (or with `None` remove) this thread's give-up hook; returns the previous one.
///
/// A blocked call asks the hook after every sleep (never on the hot path) and, when it answers
/// `true`, gives up with `EDVSSHUTDOWN`. It lets a runtime stop its threads through private
/// memory: a stop that only rang the doorbell could be lost with the region (a scribbled owner
/// word makes a [`crate::Waker`] refuse to ring), while the hook is reached within one
/// [`LIVENESS_TICK`] whatever the region holds.
pub fn set_give_up_hook(hook: Option<GiveUpHook>) -> Option<GiveUpHook> {
    GIVE_UP_HOOK.with(|h| h.replace(hook))
}

/// What a blocked call supplies to [`wait`].
pub(crate) struct Wait<'a> {
    /// The caller's doorbell.
    pub(crate) bell: &'a Doorbell,
    /// The caller's "running on CPU" word.
    pub(crate) my_cpu: &'a AtomicI32,
    /// The peer's "running on CPU" word, if there is one peer to spin for.
    pub(crate) peer_cpu: Option<&'a AtomicI32>,
    /// Whether there is a peer whose liveness the ticks check (ticks come faster then).
    pub(crate) watching: bool,
    /// The policy.
    pub(crate) policy: WaitPolicy,
    /// The timeout.
    pub(crate) timeout: Timeout,
    /// Spin (adaptively) for at most this long and never sleep or park: `EDVSAGAIN` after it
    /// (see `Proc::receive_spinning`).
    pub(crate) spin_only: Option<Duration>,
}

/// One step of a blocked call's own logic.
pub(crate) trait Blocked<T> {
    /// Has the call finished? Called often (while spinning, after every wakeup): keep it cheap.
    fn check(&mut self) -> Option<Result<T>>;
    /// Called once when the call really blocks (before its first sleep, or after one adaptive
    /// spin budget: a deadlock check, then publishing `FLAG_WAITING`) and on every liveness tick
    /// (peer liveness, stale endpoints). May finish the call.
    fn tick(&mut self, first: bool) -> Option<Result<T>>;
    /// About to sleep (the doorbell is prepared): undo anything a sleeper must not leave behind.
    /// `false` means "do not sleep now, check again".
    fn may_sleep(&mut self) -> bool {
        true
    }
    /// A sleep ended (rung, timed out, or its wake lost to a scribble): forget any shortcut
    /// that trusts the ring count, so that the next `check` looks at everything.
    fn rescan(&mut self) {}
    /// The timeout expired (`EDVSAGAIN` for NOWAIT, `EDVSTIMEDOUT` otherwise): withdraw. `None`
    /// means the call completed meanwhile and `check` will say how.
    fn expire(&mut self, why: Errno) -> Option<Result<T>>;
}

/// Wait until `call` finishes, following the policy; bounded by the timeout.
pub(crate) fn wait<T>(w: &Wait<'_>, call: &mut impl Blocked<T>) -> Result<T> {
    // A call that may not wait needs neither the clock nor the CPU number: one check, then
    // withdraw (a runtime that polls the fabric, as MUK2 does, makes many of these).
    if w.timeout == Timeout::NoWait {
        if let Some(r) = call.check() {
            return r;
        }
        if let Some(r) = call.expire(Errno::EDVSAGAIN) {
            return r;
        }
        // It could not be withdrawn: it is finishing; wait for that below.
    }
    // A spin-only call runs as an adaptive one without a hook (it never parks).
    let hook = match w.spin_only {
        Some(_) => None,
        None => PARK_HOOK.with(|h| h.get()),
    };
    let policy = if w.spin_only.is_some() {
        WaitPolicy::Adaptive
    } else {
        w.policy
    };
    let gives_up_with = if w.timeout == Timeout::NoWait || w.spin_only.is_some() {
        Errno::EDVSAGAIN
    } else {
        Errno::EDVSTIMEDOUT
    };
    let mut me = current_cpu();
    publish_cpu(w.my_cpu, me);
    // The clock is read lazily: a call that completes within its first spins (the fast path of
    // a ping-pong across cores) never pays for it.
    let mut clock: Option<(Instant, Option<Instant>, Instant)> = None;
    let tick_period = if w.watching { LIVENESS_TICK } else { IDLE_TICK };
    let mut ticked = false;
    let mut spins: u32 = 0;
    loop {
        if let Some(r) = call.check() {
            return r;
        }
        spins = spins.wrapping_add(1);
        let spinning = hook.is_none()
            && policy != WaitPolicy::Block
            && w.timeout != Timeout::NoWait
            && (policy == WaitPolicy::Spin
                || w.peer_cpu.is_some_and(|c| {
                    let cpu = c.load(Ordering::Relaxed);
                    cpu >= 0 && cpu != me
                }));
        // Reading the clock costs more than a check: while spinning, do it every 64 spins.
        if spinning && !spins.is_multiple_of(64) {
            core::hint::spin_loop();
            continue;
        }
        let now = Instant::now();
        let (start, deadline, next_tick) = clock.get_or_insert_with(|| {
            let deadline = match w.spin_only {
                Some(d) => Some(now + d),
                None => w.timeout.deadline(now),
            };
            (now, deadline, now + tick_period)
        });
        let (start, deadline) = (*start, *deadline);
        // If the call could not be withdrawn, it is finishing (a server claimed our reply and
        // is writing it). Go on through the liveness ticks and sleep below rather than spin
        // here: a server that dies between its claim and its reply is then noticed (and its
        // cleanup fails the call) instead of leaving us spinning forever past the deadline.
        if deadline.is_some_and(|d| now >= d)
            && let Some(r) = call.expire(gives_up_with)
        {
            return r;
        }
        if now >= *next_tick {
            *next_tick = now + tick_period;
            if let Some(r) = call.tick(false) {
                return r;
            }
        }
        let next_tick = *next_tick;
        let spin_until = match policy {
            WaitPolicy::Block => start,
            WaitPolicy::Spin => now + tick_period,
            WaitPolicy::Adaptive => start + ADAPTIVE_SPIN,
        };
        let keep_spinning = spinning && now < spin_until;
        // The first tick (the deadlock check, then "I block" for introspection) comes when the
        // call is about to sleep, or after one adaptive spin budget for a call that spins on:
        // never on the fast path of a call that completes while spinning.
        if !ticked && (!keep_spinning || now >= start + ADAPTIVE_SPIN) {
            ticked = true;
            if let Some(r) = call.tick(true) {
                return r;
            }
        }
        if keep_spinning {
            continue;
        }
        if w.spin_only.is_some() {
            // Would sleep: give up instead (or, if the call is finishing, look again).
            if let Some(r) = call.expire(Errno::EDVSAGAIN) {
                return r;
            }
            continue;
        }
        let token = w.bell.prepare();
        if !call.may_sleep() {
            w.bell.done();
            continue;
        }
        if let Some(r) = call.check() {
            w.bell.done();
            return r;
        }
        // Past the deadline (a call finishing, see above) the deadline no longer bounds the
        // sleep: wake for the next tick or a ring.
        let wake_at = deadline
            .filter(|&d| d > now)
            .map_or(next_tick, |d| d.min(next_tick));
        if let Some(hook) = hook {
            // The hook's caller, not this call, sleeps on the doorbell (when nothing else runs).
            w.bell.done();
            let park = Park {
                rings: token.rings(),
                timeout: wake_at.saturating_duration_since(now),
            };
            if hook(park) == Unpark::Cancel
                && let Some(r) = call.expire(Errno::EDVSSHUTDOWN)
            {
                return r;
            }
            // Resumed as after a sleep (the hook's caller slept on the same word).
            call.rescan();
            continue;
        }
        w.my_cpu.store(sleeping_on(me), Ordering::Relaxed);
        // Bounded by the liveness tick too (the doorbell's rule). What ended the sleep does not
        // matter: a ring, a timeout or a scribble all lead to a full look.
        let _ = w.bell.sleep(token, wake_at.saturating_duration_since(now));
        call.rescan();
        if GIVE_UP_HOOK
            .with(|h| h.get())
            .is_some_and(|give_up| give_up())
            && let Some(r) = call.expire(Errno::EDVSSHUTDOWN)
        {
            return r;
        }
        me = current_cpu();
        publish_cpu(w.my_cpu, me);
    }
}

/// The "running on CPU" word of a waiter that sleeps and last ran on `cpu`: -2 - cpu (-1 when
/// the CPU is unknown). Not a CPU number, so spinning peers take it for "not running".
const fn sleeping_on(cpu: i32) -> i32 {
    if cpu < 0 { -1 } else { -2 - cpu }
}

/// A waker that has just woken `cpu_word`'s owner marks it as running again on the CPU it slept
/// on, where the kernel usually wakes it. Without this, a pair that once fell asleep stays
/// asleep: each side sees the other "not running" and sleeps at once, paying a futex wake per
/// message (~30 µs across cores here) instead of spinning the microseconds the wake takes.
pub(crate) fn mark_woken(cpu_word: &AtomicI32) {
    let v = cpu_word.load(Ordering::Relaxed);
    if v <= -2 {
        // Relaxed, and a CAS so that a value the owner published meanwhile wins: the word is a
        // hint (see `publish_cpu`).
        let _ = cpu_word.compare_exchange(v, -2 - v, Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Publish the CPU we run on. Peers read this word while they spin, so it is written only when
/// it changes: a store would take the cache line away from every spinning reader.
fn publish_cpu(word: &AtomicI32, cpu: i32) {
    // Relaxed: the value is a scheduling hint; a stale read only makes a peer spin or sleep
    // when the other choice would have been better.
    if word.load(Ordering::Relaxed) != cpu {
        word.store(cpu, Ordering::Relaxed);
    }
}

/// The CPU the caller runs on now.
pub(crate) fn current_cpu() -> i32 {
    // SAFETY: sched_getcpu takes no arguments and only reads per-thread state; -1 on failure.
    unsafe { libc::sched_getcpu() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_from_ms() {
        assert_eq!(Timeout::from_ms(-1), Ok(Timeout::Forever));
        assert_eq!(Timeout::from_ms(0), Ok(Timeout::NoWait));
        assert_eq!(Timeout::from_ms(250), Ok(Timeout::Millis(250)));
        assert_eq!(Timeout::from_ms(-2), Err(Errno::EDVSINVAL));
    }
}
