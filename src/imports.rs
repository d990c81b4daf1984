//! Python objects the extension needs, imported once and cached.
//!
//! Everything user-visible comes from Twisted itself: its `Failure`, its exception
//! classes, its `DebugInfo` (which owns the "Unhandled error in Deferred:" logging), so
//! that txdefer's observable behaviour is Twisted's by construction.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyTuple, PyType};

pyo3::import_exception!(twisted.internet.defer, AlreadyCalledError);
pyo3::import_exception!(twisted.internet.defer, CancelledError);

static FAILURE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DEBUG_INFO: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FORMAT_STACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static WARN_ABOUT_FUNCTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SUPPORT: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Objects handed over by the Python package at import time (see `_configure`): they
/// must be captured before `install()` rebinds names in `twisted.internet.defer`.
pub struct Foreign {
    /// Twisted's pure-Python `Deferred` class.
    pub deferred_type: Py<PyType>,
    /// Twisted's `_CONTINUE` marker for chained Deferreds.
    pub continue_marker: Py<PyAny>,
    /// Twisted's `_NONE_KWARGS` (an empty mapping proxy).
    pub none_kwargs: Py<PyAny>,
    /// `txdefer._core.passthru` and `_failthru`, as Python objects.
    pub passthru: Py<PyAny>,
    pub failthru: Py<PyAny>,
}

pub static FOREIGN: PyOnceLock<Foreign> = PyOnceLock::new();

pub fn failure_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    FAILURE.import(py, "twisted.python.failure", "Failure")
}

/// `isinstance(obj, Failure)`, by the object's real type: the exact-type check first,
/// then the MRO (no `__class__` lookup, so no Python code runs).
pub fn is_failure(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let ft = failure_type(obj.py())?;
    let ty = obj.get_type();
    if ty.is(ft) {
        return Ok(true);
    }
    ty.is_subclass(ft)
}

/// `Failure(value, type, tb, captureVars)` built from a caught Python error.
pub fn failure_from_err<'py>(
    py: Python<'py>,
    err: &PyErr,
    capture_vars: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let value = err.value(py);
    let tb = err.traceback(py);
    failure_type(py)?.call1((value, err.get_type(py), tb, capture_vars))
}

/// `Failure(value)` for an arbitrary object (an exception or anything else).
pub fn failure_of<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    failure_type(value.py())?.call1((value,))
}

/// `Failure(captureVars=...)` from the exception currently being handled.
pub fn failure_current(py: Python<'_>, capture_vars: bool) -> PyResult<Bound<'_, PyAny>> {
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item(pyo3::intern!(py, "captureVars"), capture_vars)?;
    failure_type(py)?.call((), Some(&kwargs))
}

pub fn new_debug_info(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    DEBUG_INFO
        .import(py, "twisted.internet.defer", "DebugInfo")?
        .call0()
}

/// `traceback.format_stack()`: the Python frames of the caller (there is no Rust frame
/// on the Python stack, so unlike Twisted nothing needs trimming).
pub fn format_stack(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    FORMAT_STACK
        .import(py, "traceback", "format_stack")?
        .call0()
}

pub fn warn_about_function(func: &Bound<'_, PyAny>, message: &str) -> PyResult<()> {
    let py = func.py();
    WARN_ABOUT_FUNCTION
        .import(py, "twisted.python.deprecate", "warnAboutFunction")?
        .call1((func, message))?;
    Ok(())
}

/// The Python half of the package (`txdefer._support`): behaviour that is plain glue
/// around the Deferred (futures, timeouts, the coroutine driver).
pub fn support(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    SUPPORT
        .get_or_try_init(py, || py.import("txdefer._support").map(Bound::unbind))
        .map(|m| m.bind(py))
}

pub fn foreign(py: Python<'_>) -> PyResult<&Foreign> {
    FOREIGN.get(py).ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err("txdefer._core was not configured")
    })
}

/// Is `obj` an instance of Twisted's pure-Python `Deferred` (or a subclass of it)?
/// Walks the type's MRO by identity: no `__instancecheck__`, no Python code.
pub fn is_foreign_deferred(obj: &Bound<'_, PyAny>) -> bool {
    let Some(foreign) = FOREIGN.get(obj.py()) else {
        return false;
    };
    let target = foreign.deferred_type.as_ptr();
    let mro: Bound<'_, PyTuple> = obj.get_type().mro();
    mro.iter().any(|t| t.as_ptr() == target)
}
