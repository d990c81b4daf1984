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
//! exception object.  Elsewhere `__next__` raises `StopIteration(result)`, as a
//! generator's return does.

use pyo3::exceptions::{PyAssertionError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::deferred::Deferred;
use crate::errors::InternalError;
use crate::imports;

/// Iterator returned by `Deferred.__await__()` / `Deferred.__iter__()`.
#[pyclass(module = "txdefer", frozen)]
pub struct DeferredIterator {
    /// The Deferred awaited; `None` once the iterator is finished (it returned the
    /// result, raised the failure, or was closed), as a finished generator is.
    d: spin::Mutex<Option<Py<Deferred>>>,
}

/// One spare iterator, handed out again once only this cache holds it: an `await`
/// of a fired Deferred then allocates no iterator.  (GIL builds only: there a
/// reference count of one means no other code can see the object.)
#[cfg(not(Py_GIL_DISABLED))]
static SPARE: pyo3::sync::PyOnceLock<Py<DeferredIterator>> = pyo3::sync::PyOnceLock::new();

/// `d.__await__()` / `iter(d)`: an iterator over `d`, the spare one if it is free.
pub fn iterator_for<'py>(d: &Bound<'py, Deferred>) -> PyResult<Bound<'py, DeferredIterator>> {
    let py = d.py();
    #[cfg(not(Py_GIL_DISABLED))]
    if let Some(spare) = SPARE.get(py) {
        // `get_refcnt` is deprecated because a count means little on free-threaded
        // builds; this code is only compiled for GIL builds, where it is exact.
        #[allow(deprecated)]
        let only_cached = spare.get_refcnt(py) == 1;
        if only_cached {
            // Only the cache holds it.  Take a reference first, so that whatever
            // dropping the previous Deferred runs sees the spare in use.
            let it = spare.bind(py).clone();
            let previous = it.get().d.try_lock().map(|mut slot| slot.replace(d.clone().unbind()));
            if let Some(previous) = previous {
                drop(previous);
                return Ok(it);
            }
        }
    }
    let it = Bound::new(py, DeferredIterator::new(d.clone().unbind()))?;
    #[cfg(not(Py_GIL_DISABLED))]
    if SPARE.get(py).is_none() {
        let _ = SPARE.set(py, it.clone().unbind());
    }
    Ok(it)
}

/// What one step of the iterator gives: Twisted's generator yields the Deferred or
/// returns its result.
enum Step {
    Yield(Py<PyAny>),
    Return(Py<PyAny>),
}

impl DeferredIterator {
    pub fn new(d: Py<Deferred>) -> Self {
        DeferredIterator { d: spin::Mutex::new(Some(d)) }
    }

    fn step(&self, py: Python<'_>) -> PyResult<Step> {
        let d = self.d.try_lock().ok_or(InternalError::Busy)?.as_ref().map(|d| d.clone_ref(py));
        let Some(d) = d else {
            // Finished: as a finished generator, return None.
            return Ok(Step::Return(py.None()));
        };
        let d = d.into_bound(py);
        let (ready, result, info) = {
            let st = d.get().lock()?;
            (
                st.called && st.paused == 0,
                st.result.as_ref().map(|r| r.clone_ref(py)),
                st.debug_info.as_ref().map(|i| i.clone_ref(py)),
            )
        };
        if !ready {
            // We have no result to give: yield the Deferred to the driver.
            return Ok(Step::Yield(d.into_any().unbind()));
        }
        // The generator ends here, with the result or the failure's exception.
        self.finish();
        let result = result.map_or_else(|| py.None().into_bound(py), |r| r.into_bound(py));
        if imports::is_failure(&result)? {
            // The failure is handled by whoever awaited it: not "unhandled".  Twisted
            // asserts that its record of the failure exists; it does not yet while
            // the Deferred's own errbacks are running.
            let Some(info) = info else {
                return Err(PyAssertionError::new_err(()));
            };
            info.bind(py).setattr(intern!(py, "failResult"), py.None())?;
            result.call_method0(intern!(py, "raiseException"))?;
        }
        Ok(Step::Return(result.unbind()))
    }

    /// Let go of the Deferred: the iterator is finished.
    fn finish(&self) {
        let taken = self.d.try_lock().and_then(|mut slot| slot.take());
        drop(taken);
    }

    /// One step, the generator way for `__next__`/`send`: the result is returned by
    /// raising `StopIteration(result)`.
    fn next_or_stop(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.step(py)? {
            Step::Yield(d) => Ok(d),
            Step::Return(result) => {
                // The `StopIteration(result)` instance made here and raised as it is:
                // cheaper than a lazily built error, which would be set, fetched and
                // normalised.
                let stop = py.get_type::<PyStopIteration>().call1((result,))?;
                Err(PyErr::from_value(stop))
            }
        }
    }
}

#[pymethods]
impl DeferredIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.next_or_stop(py)
    }

    /// The value sent in is ignored: the Deferred's own result is what counts.
    fn send(&self, py: Python<'_>, _value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.next_or_stop(py)
    }

    /// Finish the iterator, as `close()` finishes a generator.
    fn close(&self) {
        self.finish();
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self.d.try_lock() {
            Some(d) => visit.call(&*d),
            None => Ok(()),
        }
    }

    fn __clear__(&self) {
        self.finish();
    }
}

/// Give `DeferredIterator` its `am_send` slot (called once, when the module is
/// initialised).  PyO3 has no way to declare that slot, so it is written into the
/// type object PyO3 made.
#[cfg(all(Py_3_10, not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy))))]
pub fn install_send_slot(py: Python<'_>) {
    let ty = py.get_type::<DeferredIterator>();
    let tp = ty.as_type_ptr();
    // SAFETY: `tp` points to the live, initialised type object of `DeferredIterator`
    // (kept alive by `ty`, and by PyO3's lazy type object for the life of the
    // process).  PyO3 builds it with `PyType_FromSpec`, which makes a heap type whose
    // `tp_as_async` points to the `as_async` struct inside the same allocation
    // (never null for a heap type; checked anyway), so the write stays inside memory
    // that CPython owns for this type and that nothing else aliases mutably.  It is
    // made while this thread is attached to the interpreter (`py`) on a GIL build, at
    // module initialisation, before any `DeferredIterator` exists, so no other thread
    // and no interpreter code reads the slot concurrently.  `am_send` has exactly
    // the C signature of `sendfunc`.  Slots are not cached by the type's version tag,
    // so no `PyType_Modified` is needed.
    unsafe {
        let methods = (*tp).tp_as_async;
        if !methods.is_null() {
            (*methods).am_send = Some(am_send);
        }
    }
}

#[cfg(not(all(Py_3_10, not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy)))))]
pub fn install_send_slot(_py: Python<'_>) {}

/// The `am_send` slot: `PyIter_Send(iterator, value, &result)`.  The value sent is
/// ignored, as by `send()`.  A Rust panic is turned into `PanicException`, as PyO3's
/// own trampolines do.
#[cfg(all(Py_3_10, not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy))))]
unsafe extern "C" fn am_send(
    iter: *mut pyo3::ffi::PyObject,
    _value: *mut pyo3::ffi::PyObject,
    presult: *mut *mut pyo3::ffi::PyObject,
) -> pyo3::ffi::PySendResult {
    use pyo3::ffi::PySendResult;
    // SAFETY: CPython calls a type's `am_send` with the calling thread attached and
    // with `iter` a valid, borrowed reference to an instance of this type (the slot
    // is only installed on `DeferredIterator`, which is final), `presult` a valid
    // pointer to write the result to.
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `iter` is a valid borrowed reference (above).
        let iter = unsafe { Bound::from_borrowed_ptr(py, iter) };
        let iter = iter.cast_into::<DeferredIterator>().map_err(PyErr::from)?;
        iter.get().step(py)
    }));
    let (status, object) = match outcome {
        Ok(Ok(Step::Yield(d))) => (PySendResult::PYGEN_NEXT, d.into_ptr()),
        Ok(Ok(Step::Return(result))) => (PySendResult::PYGEN_RETURN, result.into_ptr()),
        Ok(Err(err)) => {
            err.restore(py);
            (PySendResult::PYGEN_ERROR, std::ptr::null_mut())
        }
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("panic in DeferredIterator");
            pyo3::panic::PanicException::new_err(message.to_owned()).restore(py);
            (PySendResult::PYGEN_ERROR, std::ptr::null_mut())
        }
    };
    // SAFETY: `presult` is valid for a write (above); the reference written is a new
    // (owned) one, or null with an exception set, as `sendfunc` requires.
    unsafe { *presult = object };
    status
}
