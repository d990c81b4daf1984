//! Making a `txdefer.Deferred` from Rust (`succeed`, `fail`, the `inlineCallbacks`
//! driver's Deferred): what `Deferred()` or `Deferred(canceller)` makes.
//!
//! `Deferred()` goes through `type.__call__`: the compiled `__new__`, then the
//! compiled `__init__`, each behind its own argument parsing.  While debugging is
//! off and the public class still has the compiled `__new__` and `__init__` (nobody
//! assigned `Deferred.__init__ = ...`), `__init__` would do nothing but set the
//! canceller: the object is then made by `__new__` alone and the canceller stored
//! directly.  Otherwise the class is called, as Twisted calls it, so a replaced
//! `__init__` runs and debug mode records the creator stack.

use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::deferred::{public_type, Deferred};

/// A new, unfired `txdefer.Deferred` with `canceller` (`None` for none).
pub fn new_public<'py>(
    py: Python<'py>,
    canceller: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, Deferred>> {
    let cls = public_type(py)?;
    if crate::debug_flag::public_switch(cls) == Some(false) {
        if let Some(new) = compiled_new(py, cls) {
            let d = new_without_init(py, cls, new)?;
            if let Some(canceller) = canceller.filter(|c| !c.is_none()) {
                d.get().lock()?.canceller = Some(canceller.clone().unbind());
            }
            return Ok(d);
        }
    }
    let d = match canceller {
        Some(canceller) => cls.call1((canceller,))?,
        None => cls.call0()?,
    };
    Ok(d.cast_into::<Deferred>()?)
}

/// `cls`'s `tp_new`, if `cls` inherits both `tp_new` and `tp_init` from the compiled
/// class unchanged (then `__init__` is the compiled one); `None` otherwise.
#[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
fn compiled_new(py: Python<'_>, cls: &Bound<'_, PyType>) -> Option<pyo3::ffi::newfunc> {
    let base = py.get_type::<Deferred>();
    let (tp, base_tp) = (cls.as_type_ptr(), base.as_type_ptr());
    // SAFETY: `cls` and `base` are live type objects (borrowed for this call), so both
    // pointers point to valid, initialised `PyTypeObject`s, whose layout `pyo3::ffi`
    // mirrors for this (non-limited CPython) build.  The four reads are plain
    // function-pointer loads, and nothing is written.  CPython writes these slots only
    // while updating a class (`type.__setattr__`), holding the GIL on GIL builds (which
    // this attached thread, in the middle of a C call, then holds) and with the world
    // stopped on free-threaded builds, so a read cannot race with a write.
    let (new, init, base_new, base_init) =
        unsafe { ((*tp).tp_new, (*tp).tp_init, (*base_tp).tp_new, (*base_tp).tp_init) };
    let same_new = matches!((new, base_new), (Some(a), Some(b)) if std::ptr::fn_addr_eq(a, b));
    let same_init = matches!((init, base_init), (Some(a), Some(b)) if std::ptr::fn_addr_eq(a, b));
    if same_new && same_init {
        new
    } else {
        None
    }
}

#[cfg(any(Py_LIMITED_API, PyPy, GraalPy))]
fn compiled_new(_py: Python<'_>, _cls: &Bound<'_, PyType>) -> Option<pyo3::ffi::newfunc> {
    None
}

/// `cls.__new__(cls)` through `new`, the compiled `tp_new` that `cls` inherits.
fn new_without_init<'py>(
    py: Python<'py>,
    cls: &Bound<'py, PyType>,
    new: pyo3::ffi::newfunc,
) -> PyResult<Bound<'py, Deferred>> {
    let args = pyo3::types::PyTuple::empty(py);
    // SAFETY: `new` is `cls`'s own `tp_new`, the compiled class's (`compiled_new`), a
    // `newfunc`: it takes a type, an argument tuple and optional keywords, and returns
    // a new reference or null with an exception set.  It is called as `type.__call__`
    // calls it: with `cls`, a live subtype of the compiled class, a valid empty tuple
    // and no keywords (PyO3's `__new__` here accepts any arguments).
    let obj = unsafe { new(cls.as_type_ptr(), args.as_ptr(), std::ptr::null_mut()) };
    // SAFETY: `obj` is a new (owned) reference, or null with an exception set.
    let obj = unsafe { Bound::from_owned_ptr_or_err(py, obj) }?;
    Ok(obj.cast_into::<Deferred>()?)
}

/// Does `Deferred()` made from Rust skip `type.__call__` and `__init__` now?  (For
/// the tests.)
#[pyfunction]
pub fn _constructs_without_init(py: Python<'_>) -> PyResult<bool> {
    let cls = public_type(py)?;
    Ok(crate::debug_flag::public_switch(cls) == Some(false) && compiled_new(py, cls).is_some())
}
