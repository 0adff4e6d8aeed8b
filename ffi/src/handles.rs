//! How a C caller holds DCs and bound endpoints: handle tables, and the current binding.
//!
//! A handle is a positive `int32_t`: a table index (bits 0..12, never 0) and that entry's
//! generation (bits 12..31). Closing a handle empties its entry and moves the generation on, so
//! the old value names nothing (`EDVSBADF`) even after the entry is reused. `M3_CURRENT` (0) is
//! never a handle: for an endpoint argument it names the current binding (the calling thread's,
//! else the process's), for a DC argument the DC of the current binding.
//!
//! An endpoint entry holds its `Proc` in a mutex that a call takes with `try_lock`: a second
//! thread calling on the same endpoint meanwhile gets `EDVSBUSY` rather than waiting behind a
//! receive that may never end. An entry remembers the fork epoch it was made in; in a forked
//! child it answers `EDVSNOTBIND` and its `Proc` is forgotten on close, never dropped (dropping
//! would unbind the parent's slot).

use crate::foreign::fork_epoch;
use ipc::{Dc, Errno, Proc, Result};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

/// Entries per table: 4095 DCs and 4095 endpoints at once per process.
const INDEX_BITS: u32 = 12;
const INDEX_MASK: i32 = (1 << INDEX_BITS) - 1;
const GEN_MASK: u32 = (1 << (31 - INDEX_BITS)) - 1;

/// One table of handles.
pub(crate) struct Table<T> {
    entries: Vec<(u32, Option<Arc<T>>)>,
}

impl<T> Table<T> {
    const fn new() -> Table<T> {
        Table {
            entries: Vec::new(),
        }
    }

    /// Store `item`; its handle, or `EDVSNFILE` when the table is full.
    fn insert(&mut self, item: T) -> Result<i32> {
        let free = self
            .entries
            .iter()
            .skip(1)
            .position(|(_, e)| e.is_none())
            .map(|i| i + 1);
        let index = match free {
            Some(i) => i,
            None => {
                if self.entries.is_empty() {
                    self.entries.push((0, None)); // index 0 is never a handle
                }
                if self.entries.len() > INDEX_MASK as usize {
                    return Err(Errno::EDVSNFILE);
                }
                self.entries.push((0, None));
                self.entries.len() - 1
            }
        };
        let entry = &mut self.entries[index];
        entry.0 = (entry.0 + 1) & GEN_MASK;
        if entry.0 == 0 {
            entry.0 = 1;
        }
        entry.1 = Some(Arc::new(item));
        Ok(((entry.0 as i32) << INDEX_BITS) | index as i32)
    }

    fn slot(&mut self, handle: i32) -> Result<&mut Option<Arc<T>>> {
        if handle <= 0 {
            return Err(Errno::EDVSBADF);
        }
        let index = (handle & INDEX_MASK) as usize;
        let generation = (handle >> INDEX_BITS) as u32;
        match self.entries.get_mut(index) {
            Some((g, item)) if *g == generation && item.is_some() => Ok(item),
            _ => Err(Errno::EDVSBADF),
        }
    }

    fn get(&mut self, handle: i32) -> Result<Arc<T>> {
        self.slot(handle)?.clone().ok_or(Errno::EDVSBADF)
    }

    fn remove(&mut self, handle: i32) -> Result<Arc<T>> {
        self.slot(handle)?.take().ok_or(Errno::EDVSBADF)
    }
}

/// Lock a table; a panic inside a call cannot leave a table half-changed (every change is one
/// assignment), so a poisoned lock is taken as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

static DCS: Mutex<Table<Dc>> = Mutex::new(Table::new());
static PROCS: Mutex<Table<Bound>> = Mutex::new(Table::new());

/// The process's current binding (an endpoint handle, 0: none).
static PROCESS_CURRENT: AtomicI32 = AtomicI32::new(0);
/// The DC handle `M3_CURRENT` names when no binding is current (set by `m3_use_dc`).
static CURRENT_DC: AtomicI32 = AtomicI32::new(0);

std::thread_local! {
    /// The calling thread's own binding (`dvk_tbind`), 0: none.
    static THREAD_CURRENT: Cell<i32> = const { Cell::new(0) };
    /// The endpoint handle this thread called on last, and its entry (kept alive by this
    /// reference even once closed, when its `Proc` is gone and calls see `EDVSBADF`).
    static LAST_USED: RefCell<Option<(i32, Arc<Bound>)>> = const { RefCell::new(None) };
}

/// A bound endpoint held for C.
pub(crate) struct Bound {
    /// The DC handle it was bound through (for `M3_CURRENT` as a DC).
    dc: i32,
    /// Whether `dc` was opened for this binding alone (by `m3_bind_current`) and is closed with
    /// it, so that binding and unbinding in a loop holds no more handles than one binding.
    owns_dc: bool,
    epoch: u32,
    proc_: Mutex<Option<Proc>>,
}

/// Register an open DC; its handle.
pub(crate) fn add_dc(dc: Dc) -> Result<i32> {
    lock(&DCS).insert(dc)
}

/// The DC named by `handle` (`M3_CURRENT`: the current binding's, else the one chosen with
/// `m3_use_dc`; none is `EDVSNOTBIND`).
pub(crate) fn dc(handle: i32) -> Result<Dc> {
    Ok((*lock(&DCS).get(dc_handle(handle)?)?).clone())
}

/// The DC handle `handle` stands for (itself, or the current one for `M3_CURRENT`).
pub(crate) fn dc_handle(handle: i32) -> Result<i32> {
    if handle == crate::M3_CURRENT {
        current_dc_handle()
    } else {
        Ok(handle)
    }
}

fn current_dc_handle() -> Result<i32> {
    if let Ok(b) = resolve(crate::M3_CURRENT).and_then(bound) {
        return Ok(b.dc);
    }
    // Relaxed: a handle value; the table's lock orders what it names.
    match CURRENT_DC.load(Ordering::Relaxed) {
        0 => Err(Errno::EDVSNOTBIND),
        h => Ok(h),
    }
}

/// Make `handle`, opened by `m3_use_dc`, the DC `M3_CURRENT` names when nothing is bound, and
/// close the one the previous `m3_use_dc` opened.
pub(crate) fn use_dc(handle: i32) {
    static CHOSEN: AtomicI32 = AtomicI32::new(0);
    // Relaxed: see CURRENT_DC.
    let old = CHOSEN.swap(handle, Ordering::Relaxed);
    CURRENT_DC.store(handle, Ordering::Relaxed);
    if old != 0 {
        let _ = close_dc(old);
    }
}

/// Close a DC handle. Endpoints bound through it keep working (they hold the DC).
pub(crate) fn close_dc(handle: i32) -> Result<()> {
    lock(&DCS).remove(handle).map(drop)
}

/// Register a bound endpoint of the DC `dc_handle` (closed with it when `owns_dc`); its handle.
pub(crate) fn add_proc(dc_handle: i32, owns_dc: bool, p: Proc) -> Result<i32> {
    lock(&PROCS).insert(Bound {
        dc: dc_handle,
        owns_dc,
        epoch: fork_epoch(),
        proc_: Mutex::new(Some(p)),
    })
}

/// The entry of the (resolved, non-zero) handle `h`. Errors: `EDVSBADF`, `EDVSNOTBIND`
/// (inherited across `fork`).
fn bound(h: i32) -> Result<Arc<Bound>> {
    let b = lock(&PROCS).get(h)?;
    if b.epoch != fork_epoch() {
        return Err(Errno::EDVSNOTBIND);
    }
    Ok(b)
}

/// Run `call` on the endpoint `handle` names. Errors: `EDVSBADF` (no such handle: never issued
/// or closed), `EDVSNOTBIND` (`M3_CURRENT` with no current binding; inherited across `fork`),
/// `EDVSBUSY` (another thread is inside a call on it).
///
/// The hot path of every call: a thread that calls on the same endpoint again finds its entry in
/// [`LAST_USED`] and takes no table lock and no reference count, only the entry's own lock.
pub(crate) fn with_proc<R>(handle: i32, call: impl FnOnce(&Proc) -> Result<R>) -> Result<R> {
    let h = resolve(handle)?;
    // A current binding closed meanwhile is not bound any more.
    let closed = if handle == crate::M3_CURRENT {
        Errno::EDVSNOTBIND
    } else {
        Errno::EDVSBADF
    };
    let mut call = Some(call);
    let cached = LAST_USED.with(|last| {
        let last = last.borrow();
        match &*last {
            Some((lh, b)) if *lh == h => call.take().map(|c| run_on(b, closed, c)),
            _ => None,
        }
    });
    match (cached, call) {
        (Some(r), _) => r,
        (None, Some(c)) => {
            let b = bound(h).map_err(|e| if e == Errno::EDVSBADF { closed } else { e })?;
            LAST_USED.with(|last| *last.borrow_mut() = Some((h, Arc::clone(&b))));
            run_on(&b, closed, c)
        }
        (None, None) => Err(Errno::EDVSGENERIC),
    }
}

fn run_on<R>(b: &Bound, closed: Errno, call: impl FnOnce(&Proc) -> Result<R>) -> Result<R> {
    if b.epoch != fork_epoch() {
        return Err(Errno::EDVSNOTBIND);
    }
    let guard = match b.proc_.try_lock() {
        Ok(g) => g,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return Err(Errno::EDVSBUSY),
    };
    let p = guard.as_ref().ok_or(closed)?;
    call(p)
}

/// Close the endpoint handle `handle` (`M3_CURRENT`: the current binding) and unbind it. A
/// handle inherited across `fork` is closed without touching the parent's slot. Errors: those
/// of [`with_proc`]; the unbind's own (`EDVSNOTBIND` when the slot was already lost).
pub(crate) fn close_proc(handle: i32) -> Result<()> {
    let h = resolve(handle)?;
    let b = lock(&PROCS).get(h)?;
    let mut guard = match b.proc_.try_lock() {
        Ok(g) => g,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return Err(Errno::EDVSBUSY),
    };
    let p = guard.take().ok_or(Errno::EDVSBADF)?;
    drop(guard);
    let _ = lock(&PROCS).remove(h);
    forget_current(h);
    if b.owns_dc {
        let _ = close_dc(b.dc);
    }
    if b.epoch != fork_epoch() {
        // The parent's binding: leave its slot alone.
        std::mem::forget(p);
        return Err(Errno::EDVSNOTBIND);
    }
    p.unbind()
}

/// The handle `M3_CURRENT` resolves to, or `handle` itself.
fn resolve(handle: i32) -> Result<i32> {
    if handle != crate::M3_CURRENT {
        return Ok(handle);
    }
    let h = match THREAD_CURRENT.with(Cell::get) {
        0 => PROCESS_CURRENT.load(Ordering::Relaxed),
        h => h,
    };
    if h == 0 {
        Err(Errno::EDVSNOTBIND)
    } else {
        Ok(h)
    }
}

fn forget_current(h: i32) {
    THREAD_CURRENT.with(|c| {
        if c.get() == h {
            c.set(0);
        }
    });
    // Relaxed: see CURRENT_DC. Only this handle is cleared, never a newer binding.
    let _ = PROCESS_CURRENT.compare_exchange(h, 0, Ordering::Relaxed, Ordering::Relaxed);
}

/// Whether the scope (`thread`: the calling thread, else the process) has a live current
/// binding made in this process.
pub(crate) fn has_current(thread: bool) -> bool {
    let h = if thread {
        THREAD_CURRENT.with(Cell::get)
    } else {
        PROCESS_CURRENT.load(Ordering::Relaxed)
    };
    h != 0 && bound(h).is_ok_and(|b| lock_ok(&b))
}

fn lock_ok(b: &Bound) -> bool {
    match b.proc_.try_lock() {
        Ok(g) => g.is_some(),
        Err(TryLockError::Poisoned(p)) => p.into_inner().is_some(),
        Err(TryLockError::WouldBlock) => true,
    }
}

/// Make the endpoint handle `h` the current binding of the calling thread or of the process.
pub(crate) fn set_current(h: i32, thread: bool) {
    if thread {
        THREAD_CURRENT.with(|c| c.set(h));
    } else {
        PROCESS_CURRENT.store(h, Ordering::Relaxed);
    }
}

/// Forget a current binding inherited across `fork` (the child starts unbound), so that the
/// child may bind its own.
pub(crate) fn drop_inherited_current() {
    for thread in [true, false] {
        let h = if thread {
            THREAD_CURRENT.with(Cell::get)
        } else {
            PROCESS_CURRENT.load(Ordering::Relaxed)
        };
        if h != 0 && matches!(bound(h), Err(Errno::EDVSNOTBIND)) {
            let _ = close_proc(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_forged_handles_are_refused() {
        let mut t = Table::new();
        let a = t.insert(1u8).unwrap();
        assert!(a > 0);
        assert_eq!(*t.get(a).unwrap(), 1);
        t.remove(a).unwrap();
        assert_eq!(t.get(a).err(), Some(Errno::EDVSBADF));
        let b = t.insert(2u8).unwrap();
        assert_eq!(b & INDEX_MASK, a & INDEX_MASK, "the entry is reused");
        assert_ne!(a, b, "under a new generation");
        assert_eq!(t.get(a).err(), Some(Errno::EDVSBADF));
        for forged in [0, -1, i32::MIN, i32::MAX, b + 1, b ^ (1 << 20)] {
            assert_eq!(t.get(forged).err(), Some(Errno::EDVSBADF), "{forged}");
        }
    }

    #[test]
    fn a_full_table_says_so() {
        let mut t = Table::new();
        for _ in 0..INDEX_MASK {
            t.insert(()).unwrap();
        }
        assert_eq!(t.insert(()).err(), Some(Errno::EDVSNFILE));
    }
}
