//! The iterator behind `await d` and `yield from d`.
//!
//! Twisted's `Deferred.__iter__` is a generator: it yields the Deferred itself until
//! the Deferred has a result and is not paused, then returns the result (or raises the
//! failure's exception).  The driver (`inlineCallbacks`, `ensureDeferred`) sees the
//! yielded Deferred, waits for it, and resumes the coroutine with `send()`.
//!
//! A generator hands its return value back to `await` through CPython's `am_send`
//! slot, without raising `StopIteration`.  So does this iterator, where the
//! interpreter uses that slot (CPython 3.10 and 3.11, whose `await` and `yield from`
//! call `PyIter_Send`): an `await` of a Deferred that has its result then costs no
//! exception object.  Elsewhere (`next()`, and `await` on CPython 3.12 and later,
//! which calls `tp_iternext`) it raises `StopIteration(result)`, bare for `None`, as
//! a generator's return does; its `tp_iternext` makes that exception directly, not
//! through PyO3's error type.
//!
//! It has a generator's protocol besides: `send()` refuses a value before the
//! first step, `close()` finishes it, and `throw()` throws into Twisted's own
//! generator, started where this iterator stands, so that the exception leaves
//! with the same `__iter__` frame in its traceback as from Twisted's.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::{PyAssertionError, PyStopIteration, PyTypeError};
use pyo3::sync::PyOnceLock;
use pyo3::prelude::*;
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::gil_lock::GilLock;
use crate::deferred::Deferred;
use crate::errors::InternalError;
use crate::imports;

/// Iterator returned by `Deferred.__await__()` / `Deferred.__iter__()`.
#[pyclass(module = "txdefer", frozen)]
pub struct DeferredIterator {
    /// The Deferred awaited; `None` once the iterator is finished (it returned the
    /// result, raised the failure, or was closed), as a finished generator is.
    d: GilLock<Option<Py<Deferred>>>,
    /// Has it been stepped?  Until then, as a just-started generator, it refuses a
    /// value other than `None` sent in.
    started: AtomicBool,
    /// Reused for an `await` without being moved to the collector's youngest
    /// generation yet: that is done if it suspends (see `iterator_for`).
    stale: AtomicBool,
}

/// A finished iterator kept for the next `await`, so that an `await` of a fired
/// Deferred usually allocates no iterator.  An iterator goes in when it finishes (if
/// the slot is empty) and is taken out when handed out again, so the cache never
/// holds an iterator in use nor keeps a Deferred alive.  (CPython GIL builds only:
/// there a reference count of one means no other code can see the object.)
#[cfg(not(any(Py_GIL_DISABLED, PyPy, GraalPy)))]
static SPARE: GilLock<Option<Py<DeferredIterator>>> = GilLock::new(None);

/// `d.__await__()` / `iter(d)`: an iterator over `d`, the spare one if nothing else
/// holds it.  A reused iterator is moved to the collector's youngest generation (see
/// `renew_gc_generation`) at once, or, for `await d` (`stepped_next`: the interpreter
/// steps it straight after, with nothing run in between that could start a
/// collection), when a step suspends on `d`: an `await` of a Deferred that has fired
/// finishes in that step and lets go of `d` before any collection can see it.
pub fn iterator_for<'py>(d: &Bound<'py, Deferred>, stepped_next: bool) -> PyResult<Bound<'py, DeferredIterator>> {
    let py = d.py();
    #[cfg(not(any(Py_GIL_DISABLED, PyPy, GraalPy)))]
    {
        let spare = SPARE.try_lock().and_then(|mut slot| slot.take());
        if let Some(spare) = spare {
            // Held as a `Bound` from here, so that it is released at once whenever it
            // is let go of (see `install_await_slot`).
            let spare = spare.into_bound(py);
            // `get_refcnt` is deprecated because a count means little on free-threaded
            // builds; this code is only compiled for GIL builds, where it is exact.
            #[allow(deprecated)]
            let only_here = spare.get_refcnt() == 1;
            if only_here {
                // Finished, and nobody else can see it: start it over on `d`, moved to
                // the collector's youngest generation as a new object would be, now
                // or (`stale`) when a step suspends.
                spare.get().stale.store(stepped_next, Ordering::Relaxed);
                if !stepped_next {
                    renew_gc_generation(&spare);
                }
                spare.get().started.store(false, Ordering::Relaxed);
                let slot = spare.get().d.try_lock().map(|mut slot| slot.replace(d.clone().unbind()));
                if let Some(previous) = slot {
                    drop(previous.map(|p| p.into_bound(py))); // None: it was finished
                    return Ok(spare);
                }
            }
            // Still referenced elsewhere (say, a finished iterator a caller kept): let it be.
        }
    }
    Bound::new(py, DeferredIterator::new(d.clone().unbind()))
}

/// Move `it` to the garbage collector's youngest generation, where a newly made
/// object starts.  A reused iterator may sit in an older generation (or be frozen by
/// `gc.freeze()`); holding a young Deferred from there, it would make that Deferred
/// and what it refers to look referenced from outside to every younger collection,
/// delaying their collection (and the logging of their unhandled errors) until a
/// full one, or for ever if frozen.
#[cfg(not(any(Py_GIL_DISABLED, PyPy, GraalPy)))]
fn renew_gc_generation(it: &Bound<'_, DeferredIterator>) {
    let ptr = it.as_ptr();
    // SAFETY: `ptr` is a live object (`it` holds a reference) of a type with
    // `Py_TPFLAGS_HAVE_GC` (PyO3 sets it for a class with `__traverse__`), whose
    // state is fully initialised.  `PyObject_GC_UnTrack` accepts a tracked or an
    // untracked object; `PyObject_GC_Track` then gets an untracked one, as it
    // requires, and links it into generation 0.  The thread is attached (`it` carries
    // the `'py` token) and holds the GIL on this (GIL) build, so no collection runs
    // concurrently, and nothing between the two calls can start one.
    unsafe {
        pyo3::ffi::PyObject_GC_UnTrack(ptr.cast());
        pyo3::ffi::PyObject_GC_Track(ptr.cast());
    }
}

/// What one step of the iterator gives: Twisted's generator yields the Deferred or
/// returns its result.
enum Step {
    Yield(Py<PyAny>),
    Return(Py<PyAny>),
}

impl DeferredIterator {
    pub fn new(d: Py<Deferred>) -> Self {
        DeferredIterator { d: GilLock::new(Some(d)), started: AtomicBool::new(false), stale: AtomicBool::new(false) }
    }

    /// A step with `value` sent in (`None` for `next()`): refused, as a generator
    /// refuses it, if the iterator has not started and `value` is not `None`.
    #[inline]
    fn check_sent(&self, value_is_none: bool) -> PyResult<()> {
        if value_is_none || self.started.load(Ordering::Relaxed) || self.is_finished() {
            return Ok(());
        }
        Err(PyTypeError::new_err("can't send non-None value to a just-started generator"))
    }

    fn is_finished(&self) -> bool {
        self.d.try_lock().is_some_and(|slot| slot.is_none())
    }

    fn step(slf: &Bound<'_, Self>) -> PyResult<Step> {
        let py = slf.py();
        slf.get().started.store(true, Ordering::Relaxed);
        // The Deferred's state is read through the iterator's own reference, which is
        // taken out of the iterator (not copied) if this step finishes it.  No Python
        // code runs while the two locks are held.
        let (_deferred, result, info) = {
            let mut slot = slf.get().d.try_lock().ok_or(InternalError::Busy)?;
            let Some(d) = slot.as_ref() else {
                // Finished: as a finished generator, return None.
                return Ok(Step::Return(py.None()));
            };
            let st = d.get().lock()?;
            if !(st.called && st.paused == 0) {
                // We have no result to give: yield the Deferred to the driver.
                let yielded = d.clone_ref(py).into_any();
                drop(st);
                drop(slot);
                // Suspending, holding `d`: the iterator must be young now.
                #[cfg(not(any(Py_GIL_DISABLED, PyPy, GraalPy)))]
                if slf.get().stale.swap(false, Ordering::Relaxed) {
                    renew_gc_generation(slf);
                }
                return Ok(Step::Yield(yielded));
            }
            let result = st.result.as_ref().map(|r| r.clone_ref(py).into_bound(py));
            let info = st.debug_info.as_ref().map(|i| i.clone_ref(py).into_bound(py));
            drop(st);
            (slot.take().map(|d| d.into_bound(py)), result, info)
        };
        // The generator ends here, with the result or the failure's exception.
        // (`_deferred`, a `Bound`, lets go of the Deferred when this returns; see
        // `finish`.)
        Self::finish(slf);
        let result = result.unwrap_or_else(|| py.None().into_bound(py));
        if imports::is_failure(&result)? {
            // Not by way of Twisted's generator (as `throw` goes): its `__iter__`
            // frame followed by `raiseException` is the pattern by which trial's
            // reporter recognises a test that raised at once, and it then trims
            // six frames, counting one for Twisted's `maybeDeferred`, which is
            // compiled here and has none; it would trim the test's own frame.
            // The failure is handled by whoever awaited it: not "unhandled".  Twisted
            // asserts that its record of the failure exists; it does not yet while
            // the Deferred's own errbacks are running.
            let Some(info) = info else {
                return Err(PyAssertionError::new_err(()));
            };
            info.setattr(intern!(py, "failResult"), py.None())?;
            result.call_method0(intern!(py, "raiseException"))?;
        }
        Ok(Step::Return(result.unbind()))
    }

    /// Let go of the Deferred: the iterator is finished.  It becomes the spare if
    /// there is none.
    fn finish(slf: &Bound<'_, Self>) {
        #[cfg(not(any(Py_GIL_DISABLED, PyPy, GraalPy)))]
        if let Some(mut spare) = SPARE.try_lock() {
            if spare.is_none() {
                *spare = Some(slf.clone().unbind());
            }
        }
        let taken = slf.get().take();
        // Dropped as a `Bound`: the reference goes at once, even when this runs
        // outside PyO3's own entry points (from `am_send`), where dropping a `Py`
        // would only queue it for PyO3's next entry.
        drop(taken.map(|d| d.into_bound(slf.py())));
    }

    /// The Deferred awaited, if the iterator is not finished (a new reference; the
    /// iterator keeps its own until `finish`).
    fn awaited<'py>(&self, py: Python<'py>) -> Option<Bound<'py, Deferred>> {
        self.d.try_lock().and_then(|slot| slot.as_ref().map(|d| d.clone_ref(py).into_bound(py)))
    }

    /// Take the reference to the Deferred out of the lock.
    #[inline]
    fn take(&self) -> Option<Py<Deferred>> {
        self.d.try_lock().and_then(|mut slot| slot.take())
    }

    /// One step, the generator way for `__next__`/`send`: the result is returned by
    /// raising `StopIteration(result)`.
    fn next_or_stop(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        match Self::step(slf)? {
            Step::Yield(d) => Ok(d),
            // A generator returning `None` raises a bare `StopIteration`.
            Step::Return(result) if result.is_none(py) => Err(PyStopIteration::new_err(())),
            Step::Return(result) => {
                // The `StopIteration(result)` instance made here and raised as it is:
                // cheaper than a lazily built error, which would be set, fetched and
                // normalised.
                Err(PyErr::from_value(stop_iteration(result.into_bound(py))?))
            }
        }
    }
}

#[pymethods]
impl DeferredIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::next_or_stop(slf)
    }

    /// The value sent in is ignored: the Deferred's own result is what counts.  As
    /// to a just-started generator, only `None` can be sent before the first step.
    fn send(slf: &Bound<'_, Self>, value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        slf.get().check_sent(value.is_none())?;
        Self::next_or_stop(slf)
    }

    /// Raise an exception "at the `yield`", as Twisted's generator does: nothing
    /// in it catches one, so the iterator finishes and the exception propagates.
    /// It is thrown into Twisted's own generator, so the arguments (an exception,
    /// or a class with an optional value and traceback) are checked, and the
    /// exception made, by a generator's `throw()` (the same errors and warnings),
    /// and the traceback gets the same `__iter__` frame.
    #[pyo3(signature = (*args))]
    fn throw(slf: &Bound<'_, Self>, args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let Some(deferred) = slf.get().awaited(py) else {
            // Finished: a finished generator raises what it is thrown (after checking
            // the arguments) without running any code.
            let exhausted = EXHAUSTED_THROW.get_or_try_init(py, || {
                Ok::<_, PyErr>(imports::support(py)?.getattr(intern!(py, "_EXHAUSTED"))?.getattr(intern!(py, "throw"))?.unbind())
            })?;
            return exhausted.bind(py).call1(args).map(Bound::unbind);
        };
        let started = slf.get().started.load(Ordering::Relaxed);
        // Thrown into Twisted's own generator where this iterator stands, at its
        // start or at its `yield self`: the exception propagates with that frame
        // in its traceback, as from Twisted's.  The generator runs on the Deferred
        // while it has no result to give, else on a stand-in that has none.
        let waiting = {
            let st = deferred.get().lock()?;
            !st.called || st.paused != 0
        };
        let on = if waiting { deferred.into_any() } else { imports::support(py)?.getattr(intern!(py, "_UNFIRED"))? };
        let generator = twisted_iter(py)?.call1((on,))?;
        if started {
            generator.call_method0(intern!(py, "__next__"))?;
        }
        let outcome = generator.call_method1(intern!(py, "throw"), args);
        // The generator finished (it catches nothing), unless it refused the
        // arguments, which leaves it, and so this iterator, as it was.
        if generator.getattr(intern!(py, "gi_frame"))?.is_none() {
            Self::finish(slf);
        }
        outcome.map(Bound::unbind)
    }

    /// Finish the iterator, as `close()` finishes a generator.
    fn close(slf: &Bound<'_, Self>) {
        Self::finish(slf);
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self.d.try_lock() {
            Some(d) => visit.call(&*d),
            None => Ok(()),
        }
    }

    fn __clear__(&self) {
        // Only let go of the Deferred: an object being cleared is not made the spare.
        drop(self.take());
    }
}

/// Twisted's own `Deferred.__iter__`, the generator function behind its `await`.
fn twisted_iter(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    TWISTED_ITER
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(imports::foreign(py)?.deferred_type.bind(py).getattr(intern!(py, "__iter__"))?.unbind())
        })
        .map(|f| f.bind(py))
}

static TWISTED_ITER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The `throw` method of a finished generator (`_support._EXHAUSTED`).
static EXHAUSTED_THROW: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Give `DeferredIterator` its `am_send` and `tp_iternext` slots (called once, when
/// the module is initialised).  PyO3 has no way to declare `am_send`, and its
/// `tp_iternext` reports a returned result through a lazily built `PyErr`; both are
/// written into the type object PyO3 made.  (`it.__next__()` and `it.send(v)` stay
/// PyO3's methods, with the same behaviour.)
#[cfg(all(Py_3_10, not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy))))]
pub fn install_send_slot(py: Python<'_>) {
    let ty = py.get_type::<DeferredIterator>();
    let tp = ty.as_type_ptr();
    // SAFETY: `tp` points to the live, initialised type object of `DeferredIterator`
    // (kept alive by `ty`, and by PyO3's lazy type object for the life of the
    // process).  PyO3 builds it with `PyType_FromSpec`, which makes a heap type whose
    // `tp_as_async` points to the `as_async` struct inside the same allocation
    // (never null for a heap type; checked anyway), so the writes stay inside memory
    // that CPython owns for this type and that nothing else aliases mutably.  They
    // are made while this thread is attached to the interpreter (`py`) on a GIL
    // build, at module initialisation, before any `DeferredIterator` exists, so no
    // other thread and no interpreter code reads the slots concurrently.  `am_send`
    // and `tp_iternext` have exactly the C signatures of `sendfunc` and
    // `iternextfunc`.  The type is final (no subclass inherits the old slots), and
    // slots are not cached by the type's version tag, so no `PyType_Modified` is
    // needed.
    unsafe {
        let methods = (*tp).tp_as_async;
        if !methods.is_null() {
            (*methods).am_send = Some(am_send);
        }
        (*tp).tp_iternext = Some(tp_iternext);
    }
}

#[cfg(not(all(Py_3_10, not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy)))))]
pub fn install_send_slot(_py: Python<'_>) {}

/// Give the public class `cls` (`txdefer.Deferred`) an `am_await` slot (`await d`)
/// that runs without PyO3's wrapper (called once, by `_register_public`).
///
/// Every `await` of a Deferred calls the slot; PyO3's wrapper around
/// `__await__` counts the thread as attached for PyO3 on the way in and out (two
/// thread-local accesses, each a call in a shared library) and catches panics.
/// This one catches panics too, and lets go of references only as `Bound`s, which
/// release them at once whether or not PyO3 counts the thread as attached.  The
/// slot is written into the public class only: `d.__await__()` stays PyO3's method,
/// and a subclass gets PyO3's slot from CPython (through that method), as before.
#[cfg(all(Py_3_10, not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy))))]
pub fn install_await_slot(cls: &Bound<'_, pyo3::types::PyType>) {
    let tp = cls.as_type_ptr();
    // SAFETY: `tp` points to the live type object of the public class (kept alive by
    // `cls`), a heap type made by a `class` statement, whose `tp_as_async` points to
    // the `as_async` struct inside the same allocation (checked non-null anyway).
    // The write is made while this thread is attached on a GIL build, before
    // `_register_public` returns, so before the class is used; no other thread runs
    // Python meanwhile.  `am_await` has exactly the C signature of `unaryfunc`.
    // CPython rewrites the slot itself if `__await__` is later assigned to the class.
    unsafe {
        let methods = (*tp).tp_as_async;
        if !methods.is_null() {
            (*methods).am_await = Some(am_await);
        }
    }
}

#[cfg(not(all(Py_3_10, not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy)))))]
pub fn install_await_slot(_cls: &Bound<'_, pyo3::types::PyType>) {}

/// The public class's `am_await` slot: `iterator_for(d)`.  A Rust panic becomes
/// `PanicException`, as in PyO3's own wrappers.
#[cfg(all(Py_3_10, not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy))))]
unsafe extern "C" fn am_await(d: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject {
    // SAFETY: CPython calls a type's `am_await` with the calling thread attached and
    // with `d` a valid, borrowed reference to an instance of the type whose slot it
    // is: the public class or a subclass of it, all instances of the compiled
    // `Deferred`'s layout (`__class__` can only be assigned between classes of the
    // same layout).
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `d` is a valid borrowed reference to a `Deferred` (above), alive
        // for this call.
        let d = unsafe { pyo3::Borrowed::from_ptr(py, d).cast_unchecked::<Deferred>() };
        iterator_for(&d, true).map(Bound::into_any)
    }));
    crate::errors::entry_return(py, outcome, "panic in Deferred.__await__")
}

/// The `am_send` slot: `PyIter_Send(iterator, value, &result)` (the `await` and
/// `yield from` of CPython 3.10 and 3.11).  The value sent is ignored, as by
/// `send()`.  A Rust panic is turned into `PanicException`, as PyO3's own
/// trampolines do (here and in `tp_iternext`).
#[cfg(all(Py_3_10, not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy))))]
unsafe extern "C" fn am_send(
    iter: *mut pyo3::ffi::PyObject,
    value: *mut pyo3::ffi::PyObject,
    presult: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    use pyo3::ffi::PySendResult;
    // SAFETY: CPython calls a type's `am_send` with the calling thread attached and
    // with `iter` a valid, borrowed reference to an instance of this type (the slot
    // is only installed on `DeferredIterator`, which is final), `presult` a valid
    // pointer to write the result to.
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `iter` is a valid borrowed reference to a `DeferredIterator`
        // (above), alive for this call.
        let iter = unsafe { pyo3::Borrowed::from_ptr(py, iter).cast_unchecked::<DeferredIterator>() };
        // SAFETY: `Py_None` only returns the address of the `None` singleton.
        iter.get().check_sent(value == unsafe { pyo3::ffi::Py_None() })?;
        DeferredIterator::step(&iter)
    }));
    let (status, object) = match outcome {
        Ok(Ok(Step::Yield(d))) => (PySendResult::PYGEN_NEXT, d.into_ptr()),
        Ok(Ok(Step::Return(result))) => (PySendResult::PYGEN_RETURN, result.into_ptr()),
        Ok(Err(err)) => {
            err.restore(py);
            (PySendResult::PYGEN_ERROR, std::ptr::null_mut())
        }
        Err(payload) => {
            crate::errors::restore_panic(py, payload, "panic in DeferredIterator");
            (PySendResult::PYGEN_ERROR, std::ptr::null_mut())
        }
    };
    // SAFETY: `presult` is valid for a write (above); the reference written is a new
    // (owned) one, or null with an exception set, as `sendfunc` requires.
    unsafe { *presult = object };
    status
}

/// The `tp_iternext` slot: `next(iterator)`, and the `await` and `yield from` of
/// CPython 3.12 and later, whose `SEND` calls `tp_iternext` for an iterator that is
/// not a generator.  A result is returned the way a generator's `return` is:
/// nothing raised for `None` (CPython then raises a bare `StopIteration` where one
/// is needed, as for a generator), else `StopIteration(result)`, made and raised
/// directly rather than through a `PyErr`.
#[cfg(all(Py_3_10, not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy))))]
unsafe extern "C" fn tp_iternext(iter: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject {
    // SAFETY: CPython calls a type's `tp_iternext` with the calling thread attached
    // and with `iter` a valid, borrowed reference to an instance of this type (the
    // slot is only installed on `DeferredIterator`, which is final).
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `iter` is a valid borrowed reference to a `DeferredIterator`
        // (above), alive for this call.
        let iter = unsafe { pyo3::Borrowed::from_ptr(py, iter).cast_unchecked::<DeferredIterator>() };
        DeferredIterator::step(&iter)
    }));
    match outcome {
        Ok(Ok(Step::Yield(d))) => d.into_ptr(),
        Ok(Ok(Step::Return(result))) => {
            let result = result.into_bound(py);
            if !result.is_none() {
                match stop_iteration(result) {
                    // SAFETY: the thread is attached; `PyErr_SetRaisedException`
                    // takes the (owned) reference to an exception instance given to
                    // it, which `into_ptr` hands over.
                    #[cfg(Py_3_12)]
                    Ok(stop) => unsafe { pyo3::ffi::PyErr_SetRaisedException(stop.into_ptr()) },
                    #[cfg(not(Py_3_12))]
                    Ok(stop) => PyErr::from_value(stop).restore(py),
                    Err(err) => err.restore(py),
                }
            }
            std::ptr::null_mut()
        }
        Ok(Err(err)) => {
            err.restore(py);
            std::ptr::null_mut()
        }
        Err(payload) => {
            crate::errors::restore_panic(py, payload, "panic in DeferredIterator");
            std::ptr::null_mut()
        }
    }
}

/// `StopIteration(result)`: an instance equal to the one calling the class makes
/// (`args == (result,)`, `value is result`).
///
/// Made by the class's `tp_new` with the argument tuple, then `value` filled in,
/// which is all that `StopIteration.__init__` adds.  On CPython 3.12 and later every
/// `await` of a Deferred that has its result makes one (their `await` reads the
/// result from the exception); calling the class instead (a type call, argument
/// parsing, `__init__`) took about a tenth of such an `await`.
#[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
fn stop_iteration(result: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyAny>> {
    use pyo3::types::PyTuple;
    let py = result.py();
    let args = PyTuple::new(py, [&result])?;
    let tp = py.get_type::<PyStopIteration>().as_type_ptr();
    // SAFETY: `tp` is `PyExc_StopIteration`, a static type object, initialised since
    // the interpreter started; its `tp_new` (inherited from `BaseException`) takes
    // the type, an argument tuple (`args`, alive for the call) and null keywords, and
    // returns a new reference or null with an exception set.  The thread is attached
    // (`py`).
    let exc = unsafe {
        let new = (*tp).tp_new.ok_or_else(|| pyo3::exceptions::PySystemError::new_err("StopIteration has no tp_new"))?;
        Bound::from_owned_ptr_or_err(py, new(tp, args.as_ptr(), std::ptr::null_mut()))?
    };
    // SAFETY: `exc` is an instance of exactly `StopIteration` (made by its `tp_new`
    // from its own type), so it has the C layout `PyStopIterationObject`, which
    // `pyo3::ffi` mirrors for this (non-limited CPython) build; it is new and not yet
    // seen by any other code.  `value` is null after `tp_new` (the object is
    // zero-filled, and only `__init__` sets it); whatever it holds is released as
    // `Py_XSETREF` would, after the new (owned) reference is stored.
    let previous = unsafe {
        let stop = exc.as_ptr().cast::<pyo3::ffi::PyStopIterationObject>();
        std::mem::replace(&mut (*stop).value, result.into_ptr())
    };
    // SAFETY: `previous` is null or an owned reference the exception held.
    drop(unsafe { Bound::from_owned_ptr_or_opt(py, previous) });
    crate::errors::set_implicit_context(&exc);
    Ok(exc)
}

#[cfg(any(Py_LIMITED_API, PyPy, GraalPy))]
fn stop_iteration(result: Bound<'_, PyAny>) -> PyResult<Bound<'_, PyAny>> {
    let exc = result.py().get_type::<PyStopIteration>().call1((result,))?;
    crate::errors::set_implicit_context(&exc);
    Ok(exc)
}
