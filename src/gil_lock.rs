//! `GilLock`: the lock around state that only threads holding the GIL touch.
//!
//! Every object of this crate keeps its mutable state behind a lock that is only
//! ever *tried* (`try_lock`), never waited for: no Python code runs while it is
//! held, so on a build with a GIL it is never contended, and a failed `try_lock`
//! means re-entrancy (an internal error, reported as a `RuntimeError`), not another
//! thread.
//!
//! A general-purpose mutex pays for an atomic read-modify-write on every
//! `try_lock` (`lock cmpxchg` on x86), about 4 ns more than a plain flag on the
//! machines this crate is measured on, several times per Deferred.  On a build with
//! a GIL the GIL already gives both mutual exclusion and ordering, so `GilLock`
//! only needs a flag read and written while holding it.  On free-threaded builds
//! (and PyPy and GraalPy, whose threading is not CPython's) it is `spin::Mutex`.

#[cfg(any(Py_GIL_DISABLED, PyPy, GraalPy))]
pub use spin::{Mutex as GilLock, MutexGuard as GilGuard};

#[cfg(not(any(Py_GIL_DISABLED, PyPy, GraalPy)))]
pub use with_gil::{GilGuard, GilLock};

#[cfg(not(any(Py_GIL_DISABLED, PyPy, GraalPy)))]
mod with_gil {
    use std::cell::UnsafeCell;
    use std::marker::PhantomData;
    use std::ops::{Deref, DerefMut};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A value with a "held" flag, for a build with a GIL.
    ///
    /// The invariant this relies on: `try_lock` is only called, and its guard only
    /// used and dropped, by a thread that holds the GIL.  Every function of this
    /// crate runs on such a thread: each is entered from CPython (a method, a slot,
    /// `tp_dealloc`, `tp_traverse`, a vectorcall entry), which calls extension code
    /// only from an attached thread, and nothing here releases the GIL
    /// (`Python::detach` is not used).  Python objects, and so the state they hold,
    /// are freed only by an attached thread too: a `Py` dropped elsewhere is queued
    /// by PyO3 until a thread holds the GIL.  And there is one GIL for all of them:
    /// the module refuses to initialise outside the main interpreter
    /// (`main_interpreter_only` in lib.rs), so no interpreter with a GIL of its own
    /// (CPython 3.12 and later) ever runs this code.
    pub struct GilLock<T> {
        held: AtomicBool,
        value: UnsafeCell<T>,
    }

    // SAFETY: `GilLock` hands out access to its value only through `GilGuard`, and at
    // most one guard exists at a time:
    // * `try_lock` reads `held` and, if it is clear, sets it; the guard clears it when
    //   dropped.  Between the read and the write no other thread runs: by the
    //   invariant above the caller holds the GIL, and no code that could release it
    //   runs in between (two atomic accesses).
    // * A thread can only see `held` clear after the last guard was dropped: within
    //   one thread by program order; across threads, every access to `held` is made
    //   holding the GIL, and passing the GIL from one thread to another (a mutex
    //   released and acquired) orders everything before the release before everything
    //   after the acquire.  The `Release` store and `Acquire` load below give the same
    //   order for the value itself even without relying on that.
    // * A guard is not `Send` (`PhantomData<*mut ()>`), so it cannot be moved into
    //   a closure run without the GIL (`Python::detach` requires `Send`); if the GIL
    //   is released meanwhile by the thread holding the guard (CPython switches
    //   threads only inside Python code, which the crate never runs while holding a
    //   guard, but if it did), other threads see `held` set and get `None`.
    // So the value is never accessed by two threads, or through two guards, at once,
    // which is what sharing `&GilLock<T>` across threads needs of a `T: Send`, as
    // for `std::sync::Mutex<T>`.
    unsafe impl<T: Send> Sync for GilLock<T> {}

    impl<T> GilLock<T> {
        pub const fn new(value: T) -> Self {
            GilLock {
                held: AtomicBool::new(false),
                value: UnsafeCell::new(value),
            }
        }

        /// The value, unless a guard for it exists already (re-entrancy).
        #[inline(always)]
        pub fn try_lock(&self) -> Option<GilGuard<'_, T>> {
            if self.held.load(Ordering::Acquire) {
                return None;
            }
            self.held.store(true, Ordering::Relaxed);
            Some(GilGuard {
                lock: self,
                _not_send: PhantomData,
            })
        }
    }

    impl<T: Default> Default for GilLock<T> {
        fn default() -> Self {
            GilLock::new(T::default())
        }
    }

    /// Access to a `GilLock`'s value; releases it when dropped.
    pub struct GilGuard<'a, T> {
        lock: &'a GilLock<T>,
        _not_send: PhantomData<*mut ()>,
    }

    impl<T> Deref for GilGuard<'_, T> {
        type Target = T;
        #[inline(always)]
        fn deref(&self) -> &T {
            // SAFETY: this guard is the only one for `lock` (see `Sync` above), and it
            // borrows the guard for as long as the reference lives.
            unsafe { &*self.lock.value.get() }
        }
    }

    impl<T> DerefMut for GilGuard<'_, T> {
        #[inline(always)]
        fn deref_mut(&mut self) -> &mut T {
            // SAFETY: as in `deref`, borrowing the guard mutably.
            unsafe { &mut *self.lock.value.get() }
        }
    }

    impl<T> Drop for GilGuard<'_, T> {
        #[inline(always)]
        fn drop(&mut self) {
            self.lock.held.store(false, Ordering::Release);
        }
    }
}
