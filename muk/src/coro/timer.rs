//! Millisecond timers for the coroutines: a binary heap of deadlines.
//!
//! Cancelling is lazy: each task remembers the id of its armed timer, and an entry whose id is no
//! longer its task's is dropped when it reaches the top. A timer is armed and cancelled on
//! every blocking call with a timeout, so both are O(log n) pushes and O(1) cancels.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// The id of an armed timer (never 0).
pub(crate) type TimerId = u64;

/// The pending deadlines of all tasks.
#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerId, usize)>>,
    next_id: TimerId,
}

impl Timers {
    /// Arm a timer for `task` at `at`; returns its id.
    pub(crate) fn arm(&mut self, task: usize, at: Instant) -> TimerId {
        self.next_id += 1;
        self.heap.push(Reverse((at, self.next_id, task)));
        self.next_id
    }

    /// The earliest deadline among timers that are still armed (`armed(task, id)`), dropping
    /// cancelled ones from the top.
    pub(crate) fn next(&mut self, armed: impl Fn(usize, TimerId) -> bool) -> Option<Instant> {
        while let Some(Reverse((at, id, task))) = self.heap.peek().copied() {
            if armed(task, id) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Drop every cancelled timer once they outnumber `limit`: an idle scheduler resumes its
    /// waiting tasks every liveness tick, and each one that blocks again arms a new timer while
    /// its old entry stays in the heap until it comes due.
    pub(crate) fn compact(&mut self, limit: usize, armed: impl Fn(usize, TimerId) -> bool) {
        if self.heap.len() > limit {
            self.heap.retain(|Reverse((_, id, task))| armed(*task, *id));
        }
    }

    /// Pop one timer due at `now` that is still armed: its task.
    pub(crate) fn pop_due(
        &mut self,
        now: Instant,
        armed: impl Fn(usize, TimerId) -> bool,
    ) -> Option<usize> {
        while let Some(Reverse((at, id, task))) = self.heap.peek().copied() {
            if !armed(task, id) {
                self.heap.pop();
                continue;
            }
            if at > now {
                return None;
            }
            self.heap.pop();
            return Some(task);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_in_order_and_cancelled_skipped() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let a = t.arm(0, t0 + Duration::from_millis(5));
        let b = t.arm(1, t0 + Duration::from_millis(1));
        let c = t.arm(2, t0 + Duration::from_millis(3));
        let armed = |task: usize, id: TimerId| match task {
            0 => id == a,
            1 => id == b,
            _ => id != c, // task 2's timer was cancelled
        };
        assert_eq!(t.next(armed), Some(t0 + Duration::from_millis(1)));
        let now = t0 + Duration::from_millis(10);
        assert_eq!(t.pop_due(now, armed), Some(1));
        assert_eq!(t.pop_due(now, armed), Some(0));
        assert_eq!(t.pop_due(now, armed), None);
        assert_eq!(t.next(armed), None);
    }

    #[test]
    fn compact_keeps_only_armed_timers() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let ids: Vec<TimerId> = (0..10)
            .map(|i| t.arm(0, t0 + Duration::from_millis(i)))
            .collect();
        let last = ids[9];
        t.compact(100, |_, id| id == last);
        assert_eq!(t.heap.len(), 10, "under the limit: left alone");
        t.compact(4, |_, id| id == last);
        assert_eq!(t.heap.len(), 1);
        assert_eq!(
            t.next(|_, id| id == last),
            Some(t0 + Duration::from_millis(9))
        );
    }

    #[test]
    fn not_due_stays() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let a = t.arm(0, t0 + Duration::from_millis(5));
        assert_eq!(t.pop_due(t0, |_, id| id == a), None);
        assert_eq!(t.next(|_, id| id == a), Some(t0 + Duration::from_millis(5)));
    }
}
