//! The iterator behind `await d` and `yield from d`.
//!
//! Twisted's `Deferred.__iter__` is a generator: it yields the Deferred itself until
//! the Deferred has a result and is not paused, then returns the result (or raises the
//! failure's exception).  The driver (`inlineCallbacks`, `ensureDeferred`) sees the
//! yielded Deferred, waits for it, and resumes the coroutine with `send()`.

use pyo3::exceptions::{PyAssertionError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::deferred::Deferred;
use crate::imports;

/// Iterator returned by `Deferred.__await__()` / `Deferred.__iter__()`.
#[pyclass(module = "txdefer", frozen)]
pub struct DeferredIterator {
    d: Py<Deferred>,
}

impl DeferredIterator {
    pub fn new(d: Py<Deferred>) -> Self {
        DeferredIterator { d }
    }

    fn step(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let d = self.d.bind(py);
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
            return Ok(d.clone().into_any().unbind());
        }
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
        // The `StopIteration(result)` instance made here and raised as it is: cheaper
        // than a lazily built error, which would be set, fetched and normalised.
        let stop = py.get_type::<PyStopIteration>().call1((result,))?;
        Err(PyErr::from_value(stop))
    }
}

#[pymethods]
impl DeferredIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.step(py)
    }

    /// The value sent in is ignored: the Deferred's own result is what counts.
    fn send(&self, py: Python<'_>, _value: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.step(py)
    }

    fn close(&self) {}

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.d)
    }
}
