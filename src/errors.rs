//! The extension's own internal errors, with a single conversion into `PyErr`.
//!
//! Errors that Twisted users can observe (`AlreadyCalledError`, `CancelledError`, ...)
//! are always Twisted's own exception classes (see `imports.rs`); this enum only covers
//! conditions that indicate misuse of the extension itself.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
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
/// stands in for a panic message that is not a string.  (There are no such entry
/// points on the limited API, PyPy and GraalPy.)
#[cfg_attr(any(Py_LIMITED_API, PyPy, GraalPy), allow(dead_code))]
pub fn restore_panic(py: pyo3::Python<'_>, payload: Box<dyn std::any::Any + Send>, what: &str) {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or(what);
    pyo3::panic::PanicException::new_err(message.to_owned()).restore(py);
}

/// What a C entry point run outside PyO3's wrapper (a slot function, a vectorcall
/// entry) returns for `outcome`, its body run under `catch_unwind`: the object the
/// body made (a new reference), or null with the body's error raised, or its panic
/// raised as `PanicException` (see `restore_panic`), as PyO3's wrapper does.
#[cfg_attr(any(Py_LIMITED_API, PyPy, GraalPy), allow(dead_code))]
pub fn entry_return(
    py: pyo3::Python<'_>,
    outcome: std::thread::Result<PyResult<pyo3::Bound<'_, pyo3::PyAny>>>,
    what: &str,
) -> *mut pyo3::ffi::PyObject {
    match outcome {
        Ok(Ok(obj)) => obj.into_ptr(),
        Ok(Err(err)) => {
            err.restore(py);
            std::ptr::null_mut()
        }
        Err(payload) => {
            restore_panic(py, payload, what);
            std::ptr::null_mut()
        }
    }
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

/// Give `exc`, a new exception about to be raised, the exception being handled (if
/// any) as its `__context__`, as raising it from Python, or a generator's `return`,
/// does.  Raising an instance from Rust (`PyErr_Restore`, `PyErr_SetRaisedException`)
/// sets none.  `exc` is new, so it cannot be in that exception's own chain of
/// contexts: no cycle can form.
pub fn set_implicit_context(exc: &Bound<'_, PyAny>) {
    let py = exc.py();
    #[cfg(Py_3_11)]
    // SAFETY: the thread is attached (`py`); `PyErr_GetHandledException` returns a
    // new reference or null.
    let handled = unsafe { Bound::from_owned_ptr_or_opt(py, pyo3::ffi::PyErr_GetHandledException()) };
    #[cfg(not(Py_3_11))]
    let handled = {
        let (mut kind, mut value, mut traceback) =
            (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: the thread is attached (`py`); `PyErr_GetExcInfo` writes three new
        // references or nulls, each taken over here.
        unsafe {
            pyo3::ffi::PyErr_GetExcInfo(&mut kind, &mut value, &mut traceback);
            drop(Bound::from_owned_ptr_or_opt(py, kind));
            drop(Bound::from_owned_ptr_or_opt(py, traceback));
            Bound::from_owned_ptr_or_opt(py, value)
        }
    };
    if let Some(handled) = handled.filter(|handled| !handled.is_none()) {
        set_context(exc, handled);
    }
}

/// Run `f` with `exc` as the exception being handled, as inside an `except` block
/// that caught it: what `sys.exc_info()` gives, what a bare `raise` raises again,
/// the implicit `__context__` of an exception raised meanwhile, also of an error
/// `f` returns that Rust made (it is made into an exception before leaving, as
/// raising it inside the `except` block would).  The exception handled before is
/// put back afterwards, also if `f` panics.
///
/// Twisted runs code inside its own `except` blocks (the `inlineCallbacks` driver
/// calls `errback()` there, and with it the Deferred's errbacks); Rust code has no
/// `except` block, so the state is set here as the interpreter sets it on entering
/// one and restored as on leaving it.
pub fn while_handling<T>(exc: &Bound<'_, PyAny>, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    struct Restore {
        kind: *mut pyo3::ffi::PyObject,
        value: *mut pyo3::ffi::PyObject,
        traceback: *mut pyo3::ffi::PyObject,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: `Restore` exists only inside `while_handling`, whose caller holds
            // the thread attached (`exc`'s `'py` token) for as long as it lives.
            // `PyErr_SetExcInfo` takes over the three references (new ones, or null)
            // that `PyErr_GetExcInfo` gave when the guard was made, each exactly once.
            unsafe { pyo3::ffi::PyErr_SetExcInfo(self.kind, self.value, self.traceback) };
        }
    }
    let py = exc.py();
    let mut saved = Restore {
        kind: std::ptr::null_mut(),
        value: std::ptr::null_mut(),
        traceback: std::ptr::null_mut(),
    };
    let traceback = exc.getattr_opt(pyo3::intern!(py, "__traceback__")).ok().flatten();
    // SAFETY: the thread is attached (`py`).  `PyErr_GetExcInfo` writes three new
    // references (or nulls) into `saved`, which owns them until its drop hands them
    // back.  `PyErr_SetExcInfo` takes over the three new references `into_ptr`
    // gives (the type, the exception and its traceback, or null), as CPython 3.10
    // keeps all three and 3.11 and later keep the exception alone.
    unsafe {
        pyo3::ffi::PyErr_GetExcInfo(&mut saved.kind, &mut saved.value, &mut saved.traceback);
        pyo3::ffi::PyErr_SetExcInfo(
            exc.get_type().into_any().into_ptr(),
            exc.clone().into_ptr(),
            traceback.map_or(std::ptr::null_mut(), Bound::into_ptr),
        );
    }
    let result = f();
    if let Err(err) = &result {
        // An error made in Rust is raised (through `PyErr_SetObject`, which chains
        // the exception being handled as its context) only when first looked at.
        err.value(py);
    }
    drop(saved);
    result
}

/// `exc.__context__ = context`, where both are exception instances (otherwise
/// nothing is done: `exc` may come from a class a program replaced).
pub fn set_context(exc: &Bound<'_, PyAny>, context: Bound<'_, PyAny>) {
    use pyo3::exceptions::PyBaseException;
    if !(exc.is_instance_of::<PyBaseException>() && context.is_instance_of::<PyBaseException>()) {
        return;
    }
    // SAFETY: `exc` and `context` are exception instances (checked above), alive
    // (borrowed, and owned); `PyException_SetContext` takes over the new reference
    // `into_ptr` hands it.  The thread is attached (`exc` carries the `'py` token).
    unsafe { pyo3::ffi::PyException_SetContext(exc.as_ptr(), context.into_ptr()) };
}
