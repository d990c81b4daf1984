//! Reusing the memory of freed `txdefer.Deferred`s for new ones.
//!
//! Most Deferreds live for a moment: `await succeed(x)` makes one, takes its result
//! and lets it go.  Allocating an instance of the public class (`PyType_GenericAlloc`:
//! `malloc`, zeroing, linking it for the garbage collector) and freeing it again
//! (PyO3's deallocation wrapper, `free`) is a large part of that.  Reusing the
//! memory instead took such an `await` from 1,255 to 1,102 instructions on CPython
//! 3.11 (callgrind, `benches/instructions.py`), `Deferred()` from 1,008 to 858.
//! CPython keeps free lists of its own short-lived objects (floats, tuples, frames)
//! for the same reason.
//!
//! So the compiled class's deallocation keeps up to `CAPACITY` freed instances of
//! exactly the public class, and `allocate::instance` hands them out again instead
//! of allocating.  An instance is kept only when its state holds nothing but a
//! result (no callbacks, canceller, chained Deferred or debug record) and the
//! class has no finaliser.  Its result is let go of and its weak references are
//! cleared, at the point and in the order PyO3's deallocation does.  It is then
//! kept as it stands: reference count zero, untracked by the collector (so
//! `gc.get_objects()` never sees it), no weak references, no instance dictionary
//! (CPython's `subtype_dealloc` clears it before it calls the compiled class's
//! deallocation), still holding its reference to its class; its Rust value is a
//! state holding no Python reference.  Reused, it gets a reference count of one,
//! its new value, and is tracked again: what `tp_alloc` and PyO3 give a new
//! instance.
//!
//! Compiled only for CPython 3.10 to 3.12 with the GIL, without reference debugging
//! and outside the limited API: there the states above are what `subtype_dealloc`
//! leaves (3.11 and 3.12 reset the pointers to the instance's attribute storage,
//! kept before the object, to null; 3.10 keeps its dictionary pointer inside the
//! object and resets it), which `tests/test_recycle.py` checks.  On 3.13 and later
//! the memory is freed as before: there `teardown.rs` bounds the nesting of a
//! chain's teardown, which `keep`'s release of the result would go around, and
//! what `subtype_dealloc` leaves has not been checked.

// `txdefer_recycle`: set by `build.rs` for the builds named above.
#[cfg(txdefer_recycle)]
mod imp {
    use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
    use std::sync::OnceLock;

    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::PyType;

    use crate::deferred::Deferred;
    use crate::gil_lock::GilLock;

    /// Freed instances kept at most.  One is enough for a loop of `await succeed(x)`;
    /// a few more serve a chain of Deferreds freed together.
    const CAPACITY: usize = 16;

    /// The freed instances kept, as addresses (see the module docs for their state).
    struct Pool {
        kept: [usize; CAPACITY],
        len: usize,
    }

    static POOL: GilLock<Pool> = GilLock::new(Pool { kept: [0; CAPACITY], len: 0 });

    /// The public class, whose instances are kept; null until `install`.
    static PUBLIC: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(std::ptr::null_mut());

    /// The compiled class's deallocation as PyO3 made it, for every instance not kept.
    static ORIGINAL: OnceLock<unsafe extern "C" fn(*mut ffi::PyObject)> = OnceLock::new();

    /// The offset of the Rust value inside an instance (`allocate::prepare`
    /// measured it), set by `install`.
    static VALUE_OFFSET: AtomicUsize = AtomicUsize::new(0);

    /// Where the Rust value of `obj`, an instance of the public class, lies (a raw
    /// pointer, so that it may be written through).
    #[inline(always)]
    fn value_place(obj: *mut ffi::PyObject) -> *mut Deferred {
        // `wrapping_add`: only an address computation, inside the object (the
        // offset was checked against the instance size by `allocate::prepare`).
        obj.cast::<u8>().wrapping_add(VALUE_OFFSET.load(Ordering::Relaxed)).cast::<Deferred>()
    }

    /// Instances reused so far (for the tests).
    static REUSED: AtomicUsize = AtomicUsize::new(0);

    /// Give the compiled class `base` the deallocation that keeps instances of the
    /// public class `public` (called once, by `_register_public`, after
    /// `allocate::prepare` has found where the Rust value lies; without that, nothing
    /// is kept).
    pub fn install(base: &Bound<'_, PyType>, public: &Bound<'_, PyType>) {
        let Some(offset) = crate::allocate::value_offset() else { return };
        if ORIGINAL.get().is_some() {
            return;
        }
        VALUE_OFFSET.store(offset, Ordering::Relaxed);
        let tp = base.as_type_ptr();
        // SAFETY: `tp` points to the live, initialised type object of the compiled
        // class (PyO3 keeps it for the life of the process), a heap type PyO3 made
        // with `PyType_FromSpec`.  Its `tp_dealloc` is read and replaced while this
        // thread is attached on a GIL build, at registration, so no other thread
        // runs Python meanwhile.  `dealloc` has exactly the C signature of
        // `destructor`, and calls the slot read here for every instance it does not
        // keep.  Python subclasses call it through `subtype_dealloc`, which reads
        // the base's slot at each deallocation; no type caches it.
        unsafe {
            let Some(original) = (*tp).tp_dealloc else { return };
            let _ = ORIGINAL.set(original);
            PUBLIC.store(public.as_type_ptr(), Ordering::Relaxed);
            (*tp).tp_dealloc = Some(dealloc);
        }
    }

    /// The compiled class's `tp_dealloc`: keep `obj` if `keep` can, else PyO3's.
    unsafe extern "C" fn dealloc(obj: *mut ffi::PyObject) {
        // SAFETY: CPython calls `tp_dealloc` with the thread attached and `obj` an
        // instance (reference count zero) of the compiled class or a subclass,
        // which this function then owns; see `keep` and `ORIGINAL`.
        unsafe {
            if keep(obj) {
                return;
            }
            if let Some(original) = ORIGINAL.get() {
                original(obj);
            }
        }
    }

    /// Keep `obj` for reuse if it is an instance of exactly the public class, its
    /// class has no finaliser, there is room, and its state holds nothing but a
    /// result; true if it was kept (or freed here, see below).
    ///
    /// # Safety
    /// As `dealloc`: attached, `obj` a Deferred being deallocated, owned here.
    unsafe fn keep(obj: *mut ffi::PyObject) -> bool {
        let public = PUBLIC.load(Ordering::Relaxed);
        // An instance finalised once (its class had a finaliser then) keeps that
        // mark in its collector header, where a new object must start without it.
        // SAFETY: `obj` is a valid object (being deallocated, memory still valid);
        // its type pointer is a plain read, and `PyObject_GC_IsFinalized` reads its
        // collector header (every instance of a PyO3 class has one).  `public` is
        // the public class, which `obj` references, so its slots can be read; the
        // thread is attached, so they are not being written.
        let eligible = unsafe {
            ffi::Py_TYPE(obj) == public
                && (*public).tp_finalize.is_none()
                && (*public).tp_del.is_none()
                && ffi::PyObject_GC_IsFinalized(obj) == 0
        };
        if !eligible || POOL.try_lock().map_or(true, |pool| pool.len == CAPACITY) {
            return false;
        }
        let place = value_place(obj);
        // SAFETY: CPython calls `tp_dealloc` with the thread attached.
        let py = unsafe { Python::assume_attached() };
        // SAFETY: `obj` is an instance of the public class, a subclass of the
        // compiled class, so it has its layout; the value stays valid until
        // dropped, and nothing else refers to the object.
        let deferred: &Deferred = unsafe { pyo3::Borrowed::from_ptr(py, obj).cast_unchecked::<Deferred>() }.get();
        let result = {
            let Some(mut st) = deferred.lock().ok() else { return false };
            let holds_only_result = st.callbacks.is_empty()
                && st.canceller.is_none()
                && st.chained_to.is_none()
                && st.debug_info.is_none()
                && !st.running;
            if !holds_only_result {
                return false;
            }
            // The state then holds no Python reference: dropping it (when the
            // instance is reused, or freed below) runs no Python code.
            st.result.take()
        };
        // SAFETY: `obj` is a GC object (PyO3 classes always are) whose deallocation
        // this is; untracking it first is what PyO3's deallocation does, so that a
        // collection started by the code run below (the result's own
        // deallocation, weak-reference callbacks) never sees it.
        unsafe { ffi::PyObject_GC_UnTrack(obj.cast()) };
        // Let go of the result as a `Bound`: released at once (outside PyO3's own
        // entry points a dropped `Py` would only be queued).
        drop(result.map(|r| r.into_bound(py)));
        // SAFETY: `obj` has reference count zero and a class that supports weak
        // references, as `PyObject_ClearWeakRefs` requires; it clears the list
        // (calling the callbacks), leaving the slot null.  PyO3 does this at the
        // same point, after the value.
        unsafe { ffi::PyObject_ClearWeakRefs(obj) };
        // The code just run may have filled the pool.
        if let Some(mut pool) = POOL.try_lock() {
            if pool.len < CAPACITY {
                let len = pool.len;
                pool.kept[len] = obj as usize;
                pool.len = len + 1;
                return true;
            }
        }
        // No room: free it as PyO3's deallocation would from here.
        // SAFETY: the value at `place` (where `deferred` points; not used again) is
        // valid, holds no Python reference, and is dropped once, here; `tp_free` of
        // the public class (`PyObject_GC_Del`) frees the memory of an untracked GC
        // object, which is not touched again; the reference the instance held to
        // its heap type is then given back, as PyO3 does.
        unsafe {
            std::ptr::drop_in_place(place);
            if let Some(free) = (*public).tp_free {
                free(obj.cast());
            }
            ffi::Py_DECREF(public.cast());
        }
        true
    }

    /// A kept instance of `tp` (the public class) holding `value`, if there is one.
    pub fn reuse<'py>(py: Python<'py>, tp: *mut ffi::PyTypeObject, value: Deferred) -> Result<Bound<'py, Deferred>, Deferred> {
        if tp != PUBLIC.load(Ordering::Relaxed) {
            return Err(value);
        }
        let Some((obj, place)) = POOL.try_lock().and_then(|mut pool| {
            let last = pool.len.checked_sub(1)?;
            let obj = pool.kept[last] as *mut ffi::PyObject;
            pool.len = last;
            Some((obj, value_place(obj)))
        }) else {
            return Err(value);
        };
        REUSED.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `obj` was kept by `keep`: memory of an instance of exactly the
        // public class (`tp`, which it still references), reference count zero,
        // untracked, weak-reference list and instance dictionary null, its Rust
        // value, holding no Python reference, at `place` (`keep` found it there).
        // Nothing else refers to it.  Setting the count to one makes it a new
        // reference, owned by the `Bound`; the old value is dropped (it holds no
        // Python reference, so this runs no Python code) and the new one written
        // in its place; then the object is tracked, as `PyType_GenericAlloc` tracks
        // a new one, only once it is complete.  No Python code runs in between, so
        // no collection can see it half made.
        unsafe {
            // `Py_SET_REFCNT(obj, 1)` (which `pyo3::ffi` lacks): a plain store on
            // these versions, for an object that is not immortal.
            #[cfg(Py_3_12)]
            {
                (*obj).ob_refcnt.ob_refcnt = 1;
            }
            #[cfg(not(Py_3_12))]
            {
                (*obj).ob_refcnt = 1;
            }
            std::ptr::drop_in_place(place);
            place.write(value);
            ffi::PyObject_GC_Track(obj.cast());
            Ok(Bound::from_owned_ptr(py, obj).cast_into_unchecked::<Deferred>())
        }
    }

    /// Instances reused so far, and instances kept now.
    pub fn counts() -> (usize, usize) {
        (REUSED.load(Ordering::Relaxed), POOL.try_lock().map_or(0, |pool| pool.len))
    }
}

#[cfg(not(txdefer_recycle))]
mod imp {
    use pyo3::prelude::*;
    use pyo3::types::PyType;

    use crate::deferred::Deferred;

    pub fn install(_base: &Bound<'_, PyType>, _public: &Bound<'_, PyType>) {}

    #[allow(dead_code)]
    pub fn reuse<'py>(_py: Python<'py>, _tp: *mut pyo3::ffi::PyTypeObject, value: Deferred) -> Result<Bound<'py, Deferred>, Deferred> {
        Err(value)
    }

    pub fn counts() -> (usize, usize) {
        (0, 0)
    }
}

pub use imp::{counts, install};
// Called where new Deferreds are allocated directly (see `allocate.rs`).
#[cfg(not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy)))]
pub use imp::reuse;

/// `(reused, kept)`: Deferreds whose memory has been reused so far, and freed ones
/// kept now.  Both stay zero where reuse is not compiled.  (For the tests.)
#[pyo3::pyfunction]
pub fn _recycle_counts() -> (usize, usize) {
    counts()
}
