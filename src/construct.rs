//! Making a `txdefer.Deferred`: `Deferred()` and `Deferred(canceller)` called from
//! Python (through the class's vectorcall entry, below), and the Deferreds that
//! `succeed`, `fail` and the `inlineCallbacks` driver make.
//!
//! `Deferred()` goes through `type.__call__`: the compiled `__new__`, then the
//! compiled `__init__`, each behind its own argument parsing.  While debugging is
//! off and the public class still has the compiled `__new__` and `__init__` (nobody
//! assigned `Deferred.__init__ = ...`), `__init__` would do nothing but set the
//! canceller: the object is then made as the compiled `__new__` makes it, directly
//! (without its argument parsing and wrapper), with the canceller, or `succeed`'s
//! result, already in place.  Otherwise the call goes to `type.__call__`, as without this module, so
//! a replaced `__init__` runs and debug mode records the creator stack.

use std::sync::atomic::{AtomicU32, Ordering};

use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::deferred::{public_type, Deferred, State};

/// How the code being mirrored passes the canceller to `Deferred(...)`: a replaced
/// `Deferred.__init__` is called with the arguments as given.
#[derive(Clone, Copy)]
pub enum CancellerArg<'a, 'py> {
    /// `Deferred()`
    Absent,
    /// `Deferred(canceller)`
    Positional(&'a Bound<'py, PyAny>),
    /// `Deferred(canceller=canceller)`
    Keyword(&'a Bound<'py, PyAny>),
}

/// A new, unfired `txdefer.Deferred` made as `Deferred(...)` with `canceller` makes
/// it (`None` given is no canceller).
pub fn new_public<'py>(py: Python<'py>, canceller: CancellerArg<'_, 'py>) -> PyResult<Bound<'py, Deferred>> {
    let cls = public_type(py)?;
    if new_alone(py, cls) {
        let given = match canceller {
            CancellerArg::Absent => None,
            CancellerArg::Positional(c) | CancellerArg::Keyword(c) => Some(c),
        };
        let state = State::new(None, given.filter(|c| !c.is_none()).map(|c| c.clone().unbind()));
        return create(py, cls, state);
    }
    let mut args = vec![cls.clone().into_any()];
    let mut kwargs = None;
    match canceller {
        CancellerArg::Absent => {}
        CancellerArg::Positional(c) => args.push(c.clone()),
        CancellerArg::Keyword(c) => {
            let dict = pyo3::types::PyDict::new(py);
            dict.set_item(pyo3::intern!(py, "canceller"), c)?;
            kwargs = Some(dict);
        }
    }
    let d = type_call(py, args, kwargs.as_ref())?;
    Ok(d.cast_into::<Deferred>()?)
}

/// A new `txdefer.Deferred` that has already been given `result` (`succeed(result)`):
/// made with its result in place when `new_public` would make it alone.
pub fn new_public_fired<'py>(py: Python<'py>, result: Bound<'py, PyAny>) -> PyResult<Bound<'py, Deferred>> {
    if let Some(cls) = made_alone(py)? {
        return new_public_fired_alone(cls, result);
    }
    let d = new_public(py, CancellerArg::Absent)?;
    let old = {
        let mut st = d.get().lock()?;
        st.called = true;
        st.result.replace(result.unbind())
    };
    drop(old);
    Ok(d)
}

/// Does `Deferred()` make a `txdefer.Deferred` by the compiled `__new__` alone, with
/// nothing a program can see (no debug mode, no replaced `__init__`)?  Where it
/// does (the public class is then returned), a Deferred that Twisted makes and then
/// fires can be made already fired, by `new_public_fired_alone`.
pub fn made_alone(py: Python<'_>) -> PyResult<Option<&Bound<'_, PyType>>> {
    let cls = public_type(py)?;
    Ok(new_alone(py, cls).then_some(cls))
}

/// `succeed(result)` where `made_alone` has just returned `cls` (so without asking
/// again).
pub fn new_public_fired_alone<'py>(
    cls: &Bound<'py, PyType>,
    result: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, Deferred>> {
    create(cls.py(), cls, State::new(Some(result.unbind()), None))
}

/// Does `cls` make its Deferreds by the compiled `__new__` alone, its `__init__`
/// adding nothing?  True while debugging is off and `cls` still has the compiled
/// `__new__` and `__init__`; false when the class must be called in full.
#[inline]
fn new_alone(py: Python<'_>, cls: &Bound<'_, PyType>) -> bool {
    if crate::debug_flag::public_switch(cls) != Some(false) {
        return false;
    }
    compiled_new(py, cls)
}

/// Does `cls` still have the compiled `__new__` and `__init__` (`has_compiled_new`)?
#[inline]
fn compiled_new(py: Python<'_>, cls: &Bound<'_, PyType>) -> bool {
    // Assigning `__new__` or `__init__` to the class (or to a class in its MRO)
    // gives it a new version tag: while the tag is the one seen with both slots
    // compiled, they still are.
    let tag = crate::debug_flag::version_tag(cls);
    (tag != 0 && tag == COMPILED_NEW_TAG.load(Ordering::Relaxed)) || verify_compiled_new(py, cls, tag)
}

/// `Deferred.__init__(d)`, as the `__init__` of a subclass calls it (Twisted's
/// `DeferredList` does): the compiled `__init__` directly while the public class
/// has it, else whatever `Deferred.__init__` now is.
pub fn init_as_public(d: &Bound<'_, Deferred>) -> PyResult<()> {
    let py = d.py();
    let cls = public_type(py)?;
    if compiled_new(py, cls) {
        return Deferred::__init__(d, None);
    }
    cls.getattr(pyo3::intern!(py, "__init__"))?.call1((d,))?;
    Ok(())
}

/// The public class's version tag when `has_compiled_new` last held for it (0: not
/// seen to hold).
static COMPILED_NEW_TAG: AtomicU32 = AtomicU32::new(0);

#[cold]
#[inline(never)]
fn verify_compiled_new(py: Python<'_>, cls: &Bound<'_, PyType>, tag: u32) -> bool {
    let compiled = has_compiled_new(py, cls);
    COMPILED_NEW_TAG.store(if compiled { tag } else { 0 }, Ordering::Relaxed);
    compiled
}

/// `type.__call__(cls, *args, **kwargs)` (`args[0]` is `cls`): `__new__`, then
/// `__init__`, as calling the class does; unlike calling the class, never through
/// the class's own vectorcall entry.
fn type_call<'py>(
    py: Python<'py>,
    args: Vec<Bound<'py, PyAny>>,
    kwargs: Option<&Bound<'py, pyo3::types::PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    py.get_type::<PyType>()
        .getattr(pyo3::intern!(py, "__call__"))?
        .call(pyo3::types::PyTuple::new(py, args)?, kwargs)
}

/// Does `cls` inherit both `tp_new` and `tp_init` from the compiled class unchanged
/// (then `__new__` and `__init__` are the compiled ones)?
#[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
fn has_compiled_new(py: Python<'_>, cls: &Bound<'_, PyType>) -> bool {
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
    // Compared by address (`fn_addr_eq` needs a newer Rust than this crate's minimum).
    let same_new = matches!((new, base_new), (Some(a), Some(b)) if a as usize == b as usize);
    let same_init = matches!((init, base_init), (Some(a), Some(b)) if a as usize == b as usize);
    same_new && same_init
}

#[cfg(any(Py_LIMITED_API, PyPy, GraalPy))]
fn has_compiled_new(_py: Python<'_>, _cls: &Bound<'_, PyType>) -> bool {
    false
}

/// A new instance of `cls`, a class whose `__new__` is the compiled one
/// (`has_compiled_new`), holding `state`: what that `__new__` makes, without its
/// calling convention (an argument tuple to parse and PyO3's wrapper around it),
/// and allocated without `object.__new__` where `allocate` can.
fn create<'py>(py: Python<'py>, cls: &Bound<'py, PyType>, state: State) -> PyResult<Bound<'py, Deferred>> {
    crate::allocate::instance(py, cls, Deferred::with_state(state))
}

/// Does `Deferred()` made from Rust skip `type.__call__` and `__init__` now?  (For
/// the tests.)
#[pyfunction]
pub fn _constructs_without_init(py: Python<'_>) -> PyResult<bool> {
    Ok(new_alone(py, public_type(py)?))
}

/// Give the public class a vectorcall entry for `Deferred()` and
/// `Deferred(canceller)` (called once, by `_register_public`).
///
/// Calling a class goes through `type.__call__` unless the class has a
/// `tp_vectorcall` of its own, which CPython then calls directly (it is never
/// inherited, so subclasses keep `type.__call__`).  The entry makes the Deferred as
/// `new_public` does when it can, and otherwise hands the call to `type.__call__`,
/// so a replaced `__init__`, debug mode and wrong arguments behave as before.
#[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
pub fn install_vectorcall(cls: &Bound<'_, PyType>) {
    let tp = cls.as_type_ptr();
    // SAFETY: `tp` points to the live, initialised type object of the public class
    // (kept alive by `cls`), a heap type made by a `class` statement; its
    // `tp_vectorcall` field is unused (null) and CPython only reads it when the class
    // is called.  The write is made while this thread is attached (`cls` carries the
    // `'py` token) and before `_register_public` returns, i.e. before the class is
    // called from anywhere; on GIL builds no other thread runs Python meanwhile.
    // `vectorcall` has exactly the C signature of `vectorcallfunc`.
    unsafe {
        (*tp).tp_vectorcall = Some(vectorcall);
    }
}

#[cfg(any(Py_LIMITED_API, PyPy, GraalPy))]
pub fn install_vectorcall(_cls: &Bound<'_, PyType>) {}

/// `Deferred(...)`: see `install_vectorcall`.
#[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
unsafe extern "C" fn vectorcall(
    callable: *mut pyo3::ffi::PyObject,
    args: *const *mut pyo3::ffi::PyObject,
    nargsf: usize,
    kwnames: *mut pyo3::ffi::PyObject,
) -> *mut pyo3::ffi::PyObject {
    // Outside PyO3's entry points, a dropped `Py` is only queued until PyO3's next
    // entry: everything below holds Python objects as `Bound` values.
    // SAFETY: CPython calls a class's `tp_vectorcall` with the calling thread attached,
    // `callable` a borrowed reference to the class, `args` pointing to
    // `PyVectorcall_NARGS(nargsf)` positional arguments followed by one value per
    // name in `kwnames` (a tuple of strings, or null), all borrowed for the call.
    let py = unsafe { Python::assume_attached() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as above.
        let nargs = unsafe { pyo3::ffi::PyVectorcall_NARGS(nargsf) } as usize;
        // `Deferred()` of the public class, made by the compiled `__new__` alone: the
        // common case, taken first.  (`kwnames` is null or a tuple, as above.)
        if nargs == 0 && (kwnames.is_null() || unsafe { pyo3::ffi::PyTuple_GET_SIZE(kwnames) } == 0) {
            if let Ok(public) = public_type(py) {
                if std::ptr::eq(callable, public.as_ptr()) && new_alone(py, public) {
                    return Ok(create(py, public, State::new(None, None))?.into_any());
                }
            }
        }
        let cls = unsafe { Bound::from_borrowed_ptr(py, callable) };
        let kwnames = unsafe { Bound::from_borrowed_ptr_or_opt(py, kwnames) };
        let nkw = kwnames.as_ref().map_or(Ok(0), |k| k.len())?;
        // SAFETY: `args` holds `nargs + nkw` valid borrowed references.
        let arg = |i: usize| unsafe { Bound::from_borrowed_ptr(py, *args.add(i)) };
        // `Deferred()`, `Deferred(canceller)`, `Deferred(canceller=...)`.
        let first = (nargs + nkw > 0).then(|| arg(0));
        let canceller = match (nargs, nkw, &first) {
            (0, 0, _) => Some(CancellerArg::Absent),
            (1, 0, Some(c)) => Some(CancellerArg::Positional(c)),
            (0, 1, Some(c)) => match &kwnames {
                Some(names) if names.get_item(0)?.eq(pyo3::intern!(py, "canceller"))? => {
                    Some(CancellerArg::Keyword(c))
                }
                _ => None,
            },
            _ => None,
        };
        if let (Some(canceller), Ok(public)) = (canceller, public_type(py)) {
            if cls.is(public) {
                return Ok(new_public(py, canceller)?.into_any());
            }
        }
        // Anything else: `type.__call__(cls, *args, **kwargs)`, as without this entry.
        let mut positional = vec![cls];
        positional.extend((0..nargs).map(arg));
        let kwargs = match &kwnames {
            Some(names) => {
                let dict = pyo3::types::PyDict::new(py);
                for (i, name) in names.try_iter()?.enumerate() {
                    dict.set_item(name?, arg(nargs + i))?;
                }
                Some(dict)
            }
            None => None,
        };
        type_call(py, positional, kwargs.as_ref())
    }));
    crate::errors::entry_return(py, outcome, "panic while making a Deferred")
}
