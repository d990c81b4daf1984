//! Python objects the extension needs, imported once and cached.
//!
//! Everything user-visible comes from Twisted itself: its `Failure`, its exception
//! classes, its `DebugInfo` (which owns the "Unhandled error in Deferred:" logging), so
//! that txdefer's observable behaviour is Twisted's by construction.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyTuple, PyType};
use pyo3::PyTypeInfo;

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
    /// Twisted's own `_failthru` (a Python function), called where its exact
    /// argument errors are observable.
    pub twisted_failthru: Py<PyAny>,
    /// Twisted's own `passthru`: named by the warning for a pass-through step that
    /// leaves a Deferred as its own result.
    pub twisted_passthru: Py<PyAny>,
}

pub static FOREIGN: PyOnceLock<Foreign> = PyOnceLock::new();

pub fn failure_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    FAILURE.import(py, "twisted.python.failure", "Failure")
}

/// The `Failure(captureVars=...)` Twisted builds inside `except` for a caught Python
/// error (`err`).
///
/// Built the way Twisted's `Failure.__init__` builds it, without running it (see
/// `build_failure`).  A value that is itself a `Failure` takes Twisted's own path
/// (`_extrapolate`).
pub fn failure_from_err<'py>(
    py: Python<'py>,
    err: PyErr,
    capture_vars: bool,
) -> PyResult<Bound<'py, PyAny>> {
    // `into_value` leaves the traceback on the exception, as CPython's `except`
    // does (and so as Twisted's `Failure()` finds it there): `failure.value.__traceback__`
    // is `failure.tb`, and `raise failure.value` or `traceback.print_exception(value)`
    // show where it was raised.  CPython 3.12 and later keep it there while the
    // exception propagates; 3.10 and 3.11 hand it to a C caller beside it.  Type and
    // traceback are then read from the exception itself.
    let value = err.into_value(py).into_bound(py);
    let ty = value.get_type().into_any();
    // SAFETY: `value` is a live exception and the thread attached;
    // `PyException_GetTraceback` returns a new reference to its traceback, or null
    // (setting no error) when it has none.
    let tb = unsafe { Bound::from_owned_ptr_or_opt(py, pyo3::ffi::PyException_GetTraceback(value.as_ptr())) };
    let value = value.into_any();
    if classify(&value)? == ResultKind::Failure {
        let tb_arg = tb.unwrap_or_else(|| py.None().into_bound(py));
        return failure_type(py)?.call1((value, ty, tb_arg, capture_vars));
    }
    build_failure(py, None, value, ty, tb, capture_vars)
}

/// `Failure(value)` for an arbitrary object (an exception or anything else), as
/// `errback(value)`, `fail(value)` and `cancel()` make it.
///
/// Built as `Failure.__init__` builds it (see `build_failure`): its type is
/// `value.__class__` for an `Exception`, else `type(value)`, and its traceback the
/// value's `__traceback__`, if any.  `None` (the exception being handled) and a
/// value that is itself a `Failure` take Twisted's own code.
pub fn failure_of<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = value.py();
    // `isinstance(self.value, Failure)`, `__class__` included, as Twisted asks it.
    if value.is_none() || value.is_instance(failure_type(py)?)? {
        return failure_type(py)?.call1((value,));
    }
    let ty = if value.is_instance(&py.get_type::<pyo3::exceptions::PyException>())? {
        value.getattr(pyo3::intern!(py, "__class__"))?
    } else {
        value.get_type().into_any()
    };
    build_failure(py, Some(value), value.clone(), ty, None, false)
}

/// A `Failure` of `value` (of type `ty`), with traceback `tb` (`None`: the value's
/// `__traceback__`, if any), built the way Twisted's `Failure.__init__` builds it,
/// without running it: the same instance (its `args` are what `BaseException.__new__`
/// keeps of the positional argument given to `Failure(...)`, if any), the same
/// attributes in the same order (`count`, `type`, `value`, `captureVars`, `tb`), the
/// same global `count`.
fn build_failure<'py>(
    py: Python<'py>,
    argument: Option<&Bound<'py, PyAny>>,
    value: Bound<'py, PyAny>,
    ty: Bound<'py, PyAny>,
    tb: Option<Bound<'py, PyAny>>,
    capture_vars: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let cls = failure_type(py)?;
    let failure = match argument {
        Some(argument) => new_instance(cls, &PyTuple::new(py, [argument])?)?,
        None => new_instance(cls, &PyTuple::empty(py))?,
    };
    // `global count; count = count + 1; self.count = count`: the module's globals,
    // read and written as Twisted's own code does.
    let globals = failure_globals(py)?;
    let count = match globals.get_item(pyo3::intern!(py, "count"))? {
        Some(count) => count.add(1)?,
        None => return Err(pyo3::exceptions::PyNameError::new_err("name 'count' is not defined")),
    };
    globals.set_item(pyo3::intern!(py, "count"), &count)?;
    // `if exc_tb: tb = exc_tb`, `elif getattr(self.value, "__traceback__", None): ...`
    let tb = match tb {
        Some(tb) if tb.is_truthy()? => tb,
        _ => match value.getattr_opt(pyo3::intern!(py, "__traceback__"))? {
            Some(t) if t.is_truthy()? => t,
            _ => py.None().into_bound(py),
        },
    };
    let dict = instance_dict(&failure)?;
    dict.set_item(pyo3::intern!(py, "count"), count)?;
    dict.set_item(pyo3::intern!(py, "type"), ty)?;
    dict.set_item(pyo3::intern!(py, "value"), value)?;
    dict.set_item(pyo3::intern!(py, "captureVars"), capture_vars)?;
    dict.set_item(pyo3::intern!(py, "tb"), tb)?;
    Ok(failure)
}

/// `cls.__new__(cls, *args)`, run as calling `cls` runs it before `__init__`: through
/// the class's `tp_new` slot, which is `BaseException.__new__` for Twisted's `Failure`
/// (and a call of the Python `__new__` for a class that defines one, as CPython keeps
/// the slot in step with the attribute).  This skips the generic wrapper `cls.__new__`
/// is called through, and its copy of the arguments.
fn new_instance<'py>(cls: &Bound<'py, PyType>, args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    // SAFETY: `cls` is a live type object (borrowed for this call) and the thread is
    // attached; `PyType_GetSlot` reads one of its slots and sets no error for a heap
    // type, which `Failure` is (for any other type, a null return falls back below).
    let slot = unsafe { pyo3::ffi::PyType_GetSlot(cls.as_type_ptr(), pyo3::ffi::Py_tp_new) };
    if slot.is_null() {
        // No slot: `cls.__new__(cls, *args)` by name, which raises what it raises.
        let mut with_cls = vec![cls.clone().into_any()];
        with_cls.extend(args.iter());
        return cls.getattr(pyo3::intern!(py, "__new__"))?.call1(PyTuple::new(py, with_cls)?);
    }
    // SAFETY: a non-null `Py_tp_new` slot holds the type's `tp_new` function, whose
    // C type is `newfunc`; the two pointer types have the same size and ABI.
    let tp_new: pyo3::ffi::newfunc = unsafe { std::mem::transmute::<*mut std::ffi::c_void, pyo3::ffi::newfunc>(slot) };
    // SAFETY: this is the call `type.__call__` makes: the type's own `tp_new` with the
    // type itself, a tuple of positional arguments and no keywords, both alive for the
    // call, with the thread attached.  It returns a new reference or null with an
    // exception set, which `from_owned_ptr_or_err` takes as such.
    unsafe {
        let obj = tp_new(cls.as_type_ptr(), args.as_ptr(), std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(py, obj)
    }
}

/// The instance dictionary of `obj` (made if it has none yet), as `obj.__dict__` gives
/// it for an object whose class does not redefine `__dict__` (as `Failure` does not).
fn instance_dict<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    // SAFETY: `obj` is alive and the thread attached; `PyObject_GenericGetDict` returns
    // a new reference to its dictionary, or null with an exception set (an object with
    // no dictionary), which `from_owned_ptr_or_err` takes as such.
    let dict = unsafe {
        Bound::from_owned_ptr_or_err(obj.py(), pyo3::ffi::PyObject_GenericGetDict(obj.as_ptr(), std::ptr::null_mut()))
    }?;
    Ok(dict.cast_into::<pyo3::types::PyDict>()?)
}
static FAILURE_GLOBALS: PyOnceLock<Py<pyo3::types::PyDict>> = PyOnceLock::new();

/// The globals of `twisted.python.failure`, where `Failure` counts its instances.
fn failure_globals(py: Python<'_>) -> PyResult<&Bound<'_, pyo3::types::PyDict>> {
    FAILURE_GLOBALS
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("twisted.python.failure")?.dict().unbind()))
        .map(|m| m.bind(py))
}

/// `Failure(captureVars=...)` from the exception currently being handled
/// (`sys.exc_info()`), as `errback()` called without a failure makes it.
///
/// Built as `Failure.__init__` builds it (see `build_failure`), from the type, value
/// and traceback `sys.exc_info()` gives.  With no exception being handled (Twisted
/// raises `NoCurrentExceptionError`), or one that is itself a `Failure`, Twisted's
/// own code runs.
pub fn failure_current(py: Python<'_>, capture_vars: bool) -> PyResult<Bound<'_, PyAny>> {
    let info = EXC_INFO.import(py, "sys", "exc_info")?.call0()?.cast_into::<PyTuple>()?;
    let (ty, value, tb) = (info.get_item(0)?, info.get_item(1)?, info.get_item(2)?);
    if ty.is_none() || value.is_instance(failure_type(py)?)? {
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item(pyo3::intern!(py, "captureVars"), capture_vars)?;
        return failure_type(py)?.call((), Some(&kwargs));
    }
    build_failure(py, None, value, ty, Some(tb), capture_vars)
}

static EXC_INFO: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

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
/// `func(result, *args, **kwargs)` done by Python itself, for argument objects that
/// are not a plain tuple and dict: errors then read exactly as in Twisted.
pub fn call_general<'py>(
    func: &Bound<'py, PyAny>,
    result: Bound<'py, PyAny>,
    args: Option<&Bound<'py, PyAny>>,
    kwargs: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = func.py();
    let empty = PyTuple::empty(py).into_any();
    let none = py.None().into_bound(py);
    support(py)?
        .getattr(pyo3::intern!(py, "_call"))?
        .call1((func, result, args.unwrap_or(&empty), kwargs.unwrap_or(&none)))
}

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

/// What kind of object a callback produced, as far as the callback chain cares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ResultKind {
    Plain,
    /// An instance of `twisted.python.failure.Failure` (or a subclass).
    Failure,
    /// A txdefer `Deferred` (or a subclass).
    Deferred,
    /// Twisted's pure-Python `Deferred` (or a subclass).
    ForeignDeferred,
}

impl ResultKind {
    /// A Deferred of either implementation: chained on when a callback returns it.
    pub fn is_deferred(self) -> bool {
        matches!(self, ResultKind::Deferred | ResultKind::ForeignDeferred)
    }
}

/// Classify `obj` by its real type in one walk of the MRO, by identity: no
/// `__instancecheck__`, no `__class__` lookup, no Python code.  The answer for the
/// last few classes seen is remembered by their version tag (see `classified`).
///
/// Inlined into the callback loop: `None`, `int`, `str` and a remembered class
/// take a few instructions; everything else goes to `classify_slow`.
#[inline(always)]
pub fn classify(obj: &Bound<'_, PyAny>) -> PyResult<ResultKind> {
    match classify_at_hand(obj) {
        Ok(kind) => Ok(kind),
        Err(tag) => classify_slow(obj, tag),
    }
}

/// `classify(obj)` where the answer is at hand without running anything (`None`,
/// `int`, `str`, a remembered class); otherwise `Err` with the class's version tag,
/// for `classify_slow`.
#[inline(always)]
fn classify_at_hand(obj: &Bound<'_, PyAny>) -> Result<ResultKind, u32> {
    use pyo3::types::{PyInt, PyString};
    if obj.is_none() || obj.is_exact_instance_of::<PyInt>() || obj.is_exact_instance_of::<PyString>() {
        return Ok(ResultKind::Plain);
    }
    let tag = crate::debug_flag::type_version_tag(obj);
    classified(tag).ok_or(tag)
}

/// Is `classify(obj)` known to be `Plain` without running anything?  `false` also
/// where the answer is not at hand (then `classify` finds it).
#[inline(always)]
#[cfg_attr(any(Py_LIMITED_API, PyPy, GraalPy), allow(dead_code))]
pub fn known_plain(obj: &Bound<'_, PyAny>) -> bool {
    classify_at_hand(obj) == Ok(ResultKind::Plain)
}

#[inline(never)]
fn classify_slow(obj: &Bound<'_, PyAny>, tag: u32) -> PyResult<ResultKind> {
    use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyList};
    // Other builtins a callback often returns, which are never a Deferred or a
    // Failure (type pointer comparisons only).
    if obj.is_exact_instance_of::<PyTuple>()
        || obj.is_exact_instance_of::<PyList>()
        || obj.is_exact_instance_of::<PyDict>()
        || obj.is_exact_instance_of::<PyBool>()
        || obj.is_exact_instance_of::<PyBytes>()
        || obj.is_exact_instance_of::<PyFloat>()
    {
        return Ok(ResultKind::Plain);
    }
    let py = obj.py();
    let failure = failure_type(py)?.as_ptr();
    let native = crate::deferred::Deferred::type_object_raw(py).cast::<pyo3::ffi::PyObject>();
    let foreign = FOREIGN
        .get(py)
        .map_or(std::ptr::null_mut(), |f| f.deferred_type.as_ptr());
    let public = crate::deferred::public_type(py).map_or(std::ptr::null_mut(), |t| t.as_ptr());
    let check = |t: *mut pyo3::ffi::PyObject| {
        if t == public || t == native {
            Some(ResultKind::Deferred)
        } else if t == failure {
            Some(ResultKind::Failure)
        } else if t == foreign {
            Some(ResultKind::ForeignDeferred)
        } else {
            None
        }
    };
    let kind = match check(obj.get_type_ptr().cast()) {
        Some(kind) => kind,
        None => {
            let mro: Bound<'_, PyTuple> = obj.get_type().mro();
            crate::callbacks::tuple_items(&mro)
                .iter()
                .find_map(|t| check(t.as_ptr()))
                .unwrap_or(ResultKind::Plain)
        }
    };
    // Only once every class it compares with is known: before that, an answer
    // could change.
    if !foreign.is_null() && !public.is_null() {
        let tag = if tag == 0 { assign_version_tag(obj) } else { tag };
        remember(tag, kind);
    }
    Ok(kind)
}

/// Give `obj`'s class a version tag (`debug_flag::assign_version_tag`) if that can
/// be done without running Python code, and return the class's tag (0 if it still
/// has none).
///
/// A class nothing was ever looked up on (on 3.11, `Exception` itself, raised and
/// caught without any attribute read) would otherwise be classified from its MRO on
/// every raise.  The lookup made here is of a name no class defines, on a class whose
/// metaclass is exactly `type`: `type.__getattribute__` then only searches the
/// namespaces of `type` and of the class's MRO, finds nothing, and raises
/// `AttributeError` (dropped) without calling any descriptor or `__getattr__`.  A
/// class with another metaclass is left as it is.
#[cold]
fn assign_version_tag(obj: &Bound<'_, PyAny>) -> u32 {
    let py = obj.py();
    let cls = obj.get_type();
    if !cls.get_type().is(PyType::new::<PyType>(py)) {
        return 0;
    }
    crate::debug_flag::assign_version_tag(&cls, "__txdefer_version_tag_probe__")
}

/// Classes recently classified, by version tag (the index of their kind in
/// `KINDS`), in 64 entries (with only four, an exception class and `Failure` could
/// share an entry and push each other out on every raise, as they did in the
/// errback benchmark).
static CLASSIFIED: crate::debug_flag::TagMemo<64> = crate::debug_flag::TagMemo::new();

const KINDS: [ResultKind; 4] = [
    ResultKind::Plain,
    ResultKind::Failure,
    ResultKind::Deferred,
    ResultKind::ForeignDeferred,
];

#[inline]
fn classified(tag: u32) -> Option<ResultKind> {
    CLASSIFIED.recall(tag).and_then(|index| KINDS.get(usize::from(index)).copied())
}

fn remember(tag: u32, kind: ResultKind) {
    let index = KINDS.iter().position(|k| *k == kind).unwrap_or(0) as u8;
    CLASSIFIED.remember(tag, index);
}

/// `isinstance(obj, Failure)`, by the object's real type.
pub fn is_failure(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(classify(obj)? == ResultKind::Failure)
}
