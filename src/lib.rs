//! `txdefer._core`: Twisted's `Deferred`, in Rust.
//!
//! This file only assembles the module; each concept lives in its own file:
//! `deferred` (the class), `construct` (making one), `allocate` (allocating one), `deferred_list` (`DeferredList`'s bookkeeping), `callbacks` (the chain's entries and queue),
//! `debug_flag` (`Deferred.debug`), `runner`
//! (running the chain), `await_iter` (`await d`), `callback_view` (Twisted-shaped
//! access to the chain, interop with Twisted's own class), `inline_callbacks` (the
//! generator/coroutine driver), `shortcuts` (`fail`,
//! `maybeDeferred`), `slots` (attributes kept in Rust for the concurrency
//! primitives), `lock` (`DeferredLock`, `DeferredSemaphore`), `queue`
//! (`DeferredQueue`), `imports` (cached Python objects), `errors` (internal errors).

mod allocate;
mod await_iter;
mod callback_view;
mod callbacks;
mod construct;
mod debug_flag;
mod deferred;
mod deferred_list;
mod errors;
mod fast_methods;
mod gil_lock;
mod imports;
mod inline_callbacks;
mod lock;
mod queue;
mod recycle;
mod runner;
mod shortcuts;
mod slots;
#[cfg(all(Py_3_13, not(Py_3_14)))]
mod teardown;

use pyo3::prelude::*;

/// Return `arg` unchanged (the pass-through callback).
#[pyfunction]
fn passthru(arg: Bound<'_, PyAny>) -> Bound<'_, PyAny> {
    arg
}

/// Return `arg` unchanged (the pass-through errback).
#[pyfunction]
fn _failthru(arg: Bound<'_, PyAny>) -> Bound<'_, PyAny> {
    arg
}

/// Is `obj` a Deferred: txdefer's (or a subclass), or Twisted's pure-Python one?
#[pyfunction]
fn _is_deferred(obj: &Bound<'_, PyAny>) -> bool {
    runner::is_deferred(obj)
}

/// Register the public `txdefer.Deferred` (the Python subclass of `DeferredBase`).
#[pyfunction]
fn _register_public(cls: Bound<'_, pyo3::types::PyType>) -> PyResult<()> {
    if !cls.is_subclass_of::<deferred::Deferred>()? {
        return Err(pyo3::exceptions::PyTypeError::new_err("the public Deferred must subclass DeferredBase"));
    }
    debug_flag::register(&cls)?;
    let base = cls.py().get_type::<deferred::Deferred>();
    construct::install_vectorcall(&cls);
    recycle::install(&base, &cls);
    await_iter::install_await_slot(&cls);
    fast_methods::own_methods(&cls, &base)?;
    deferred::register_public(cls);
    Ok(())
}

/// Give the public class `cls` its own copies of the methods it inherits from the
/// compiled class `base` (`DeferredLock` of `LockBase`'s, ...): CPython's specialised
/// calls of a C method apply only to instances of exactly the class it was made for.
#[pyfunction]
fn _own_methods(cls: Bound<'_, pyo3::types::PyType>, base: Bound<'_, pyo3::types::PyType>) -> PyResult<()> {
    fast_methods::own_methods(&cls, &base)
}

/// Panic with `message`.  For the test suite only: it checks that a Rust panic
/// surfaces as a Python exception (`pyo3_runtime.PanicException`) and that the
/// interpreter carries on, i.e. that the extension is built with `panic = "unwind"`.
#[pyfunction]
fn _panic_for_test(message: &str) -> PyResult<()> {
    panic!("{message}")
}

/// Hand the extension the pieces of Twisted's pure-Python implementation it
/// interoperates with.  Called once by `txdefer/__init__.py`, before `install()` can
/// rebind anything in `twisted.internet.defer`.
#[pyfunction]
#[pyo3(pass_module)]
fn _configure(
    m: &Bound<'_, PyModule>,
    deferred_type: Bound<'_, pyo3::types::PyType>,
    continue_marker: Bound<'_, PyAny>,
    none_kwargs: Bound<'_, PyAny>,
    twisted_failthru: Bound<'_, PyAny>,
    twisted_passthru: Bound<'_, PyAny>,
) -> PyResult<()> {
    let py = m.py();
    let foreign = imports::Foreign {
        deferred_type: deferred_type.unbind(),
        continue_marker: continue_marker.unbind(),
        none_kwargs: none_kwargs.unbind(),
        passthru: m.getattr("passthru")?.unbind(),
        failthru: m.getattr("_failthru")?.unbind(),
        twisted_failthru: twisted_failthru.unbind(),
        twisted_passthru: twisted_passthru.unbind(),
    };
    // A second call (a reload) keeps the first configuration.
    let _ = imports::FOREIGN.set(py, foreign);
    Ok(())
}

/// Refuse to initialise the module anywhere but in the main interpreter.
///
/// The module keeps Python objects in process-wide statics (classes, imported
/// functions, the spare await iterator), which an interpreter's objects must not
/// outlive, and its state locks rely on there being one GIL (`gil_lock`).  CPython
/// 3.12 and later already refuse it in an interpreter with a GIL of its own; a
/// subinterpreter sharing the main GIL would otherwise initialise it, and the
/// interpreter's teardown would leave the statics dangling.
#[cfg(not(any(PyPy, GraalPy)))]
fn main_interpreter_only(py: Python<'_>) -> PyResult<()> {
    // SAFETY: both functions require an attached thread, which `py` proves; they read
    // the current interpreter's state and return its ID (0 for the main interpreter,
    // -1 with an exception set on error).
    let id = unsafe { pyo3::ffi::PyInterpreterState_GetID(pyo3::ffi::PyInterpreterState_Get()) };
    match id {
        0 => Ok(()),
        -1 => Err(PyErr::fetch(py)),
        _ => Err(pyo3::exceptions::PyImportError::new_err(
            "txdefer can only be imported in the main interpreter, not in a subinterpreter",
        )),
    }
}

#[cfg(any(PyPy, GraalPy))]
fn main_interpreter_only(_py: Python<'_>) -> PyResult<()> {
    Ok(())
}

#[pymodule]
mod _core {
    #[pymodule_export]
    use super::await_iter::DeferredIterator;
    #[pymodule_export]
    use super::callback_view::{CallbackList, Resume};
    #[pymodule_export]
    use super::debug_flag::{DebugAttribute, _set_debugging};
    #[pymodule_export]
    use super::deferred::Deferred;
    #[pymodule_export]
    use super::deferred::succeed;
    #[pymodule_export]
    use super::construct::_constructs_without_init;
    #[pymodule_export]
    use super::allocate::_allocates_directly;
    #[pymodule_export]
    use super::recycle::_recycle_counts;
    #[pymodule_export]
    use super::{_failthru, _is_deferred, passthru};
    #[pymodule_export]
    use super::shortcuts::{fail, maybe_deferred};
    #[pymodule_export]
    use super::deferred_list::{collect, parse_deferred_list_result, start_list, Collector};
    #[pymodule_export]
    use super::slots::{Field, Slots};
    #[pymodule_export]
    use super::lock::{LockBase, SemaphoreBase};
    #[pymodule_export]
    use super::queue::QueueBase;
    #[pymodule_export]
    use super::inline_callbacks::{cancellable_inline_callbacks, ensure_deferred, Driver, DriverResume};

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = m.py();
        super::main_interpreter_only(py)?;
        m.add("_DEFERRED_SUBCLASSES", super::deferred::subclasses(py)?)?;
        super::await_iter::install_send_slot(py);
        super::allocate::prepare(py)?;
        super::fast_methods::install(m)?;
        m.add_function(pyo3::wrap_pyfunction!(super::_configure, m)?)?;
        m.add_function(pyo3::wrap_pyfunction!(super::_register_public, m)?)?;
        m.add_function(pyo3::wrap_pyfunction!(super::_own_methods, m)?)?;
        m.add_function(pyo3::wrap_pyfunction!(super::_panic_for_test, m)?)?;
        Ok(())
    }
}
