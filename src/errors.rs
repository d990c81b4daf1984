//! The extension's own internal errors, with a single conversion into `PyErr`.
//!
//! Errors that Twisted users can observe (`AlreadyCalledError`, `CancelledError`, ...)
//! are always Twisted's own exception classes (see `imports.rs`); this enum only covers
//! conditions that indicate misuse of the extension itself.

use pyo3::exceptions::PyRuntimeError;
use pyo3::PyErr;

#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// The state of a Deferred was locked when another access was attempted.  On a
    /// GIL build this can only happen when two threads use one Deferred without the
    /// GIL being held around the access, which the extension never allows; it is
    /// reported instead of deadlocking.
    #[error("Deferred state is in use by another thread; Deferreds are not thread-safe")]
    Busy,
}

impl From<InternalError> for PyErr {
    fn from(err: InternalError) -> PyErr {
        PyRuntimeError::new_err(err.to_string())
    }
}

/// Raise a panic caught at a C entry point of the extension (a slot PyO3 does not
/// wrap) as `pyo3_runtime.PanicException`, as PyO3's own entry points do; `what`
/// stands in for a panic message that is not a string.
pub fn restore_panic(py: pyo3::Python<'_>, payload: Box<dyn std::any::Any + Send>, what: &str) {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or(what);
    pyo3::panic::PanicException::new_err(message.to_owned()).restore(py);
}

/// `'DeferredLock' object has no attribute 'waiting'`: Python's `AttributeError` for
/// reading an attribute `obj` does not have.
pub fn no_attribute(obj: &pyo3::Bound<'_, pyo3::PyAny>, name: &str) -> PyErr {
    use pyo3::types::{PyAnyMethods, PyTypeMethods};
    let owner = obj
        .get_type()
        .name()
        .map_or_else(|_| "object".to_owned(), |n| n.to_string());
    pyo3::exceptions::PyAttributeError::new_err(format!("'{owner}' object has no attribute '{name}'"))
}

/// The `AttributeError` of `del obj.name` when `obj` has no such instance attribute,
/// worded as the running CPython words it: as for reading it (`no_attribute`) from
/// 3.11 on, the bare attribute name on 3.10.
pub fn nothing_to_delete(obj: &pyo3::Bound<'_, pyo3::PyAny>, name: &str) -> PyErr {
    #[cfg(Py_3_11)]
    {
        no_attribute(obj, name)
    }
    #[cfg(not(Py_3_11))]
    {
        let _ = obj;
        pyo3::exceptions::PyAttributeError::new_err(name.to_owned())
    }
}
