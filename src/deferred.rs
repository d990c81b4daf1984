//! `txdefer.Deferred`: Twisted's `Deferred`, with the state in Rust.
//!
//! Concurrency and re-entrancy: the class is `frozen` and keeps its state behind one
//! lock (`GilLock`).  The lock is only ever held for short, Python-free sections: no call into
//! Python, no allocation of a Python object and no drop of one happens while it is
//! held (objects taken out of the state are dropped after the guard).  User callbacks
//! can therefore re-enter the same Deferred freely, and misuse from several threads
//! yields Python exceptions, never a deadlock or memory corruption.


use pyo3::exceptions::{PyAttributeError, PyDeprecationWarning, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::await_iter::DeferredIterator;
use crate::callback_view::CallbackList;
use crate::callbacks::{Call, CallbackQueue, Entry};
use crate::gil_lock::{GilGuard, GilLock};
use crate::errors::InternalError;
use crate::imports::{self, AlreadyCalledError, CancelledError};
use crate::runner;

/// How many `str()`/`repr()` of Deferreds are in progress on this thread, nested.
///
/// Twisted's `__str__` includes the result's `repr()`, so a Deferred whose result is
/// itself, or a chain of Deferreds each holding the next as its result, recurses
/// through Python frames until `RecursionError`.  Here each level is a C call, which
/// CPython 3.12 and later count only against their separate C recursion limit (ten
/// thousand levels on 3.13), deep enough to overflow the thread's stack with larger
/// frames (a debug build, or a thread with a small stack).  `ReprDepth` raises
/// `RecursionError` once the nesting passes `sys.getrecursionlimit()`, as Twisted
/// does (on CPython 3.11 the interpreter's own check stops it first).
struct ReprDepth;

thread_local! {
    static REPR_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl ReprDepth {
    /// Nesting below which the recursion limit is not looked up: no recursion limit
    /// is that low.
    const UNCHECKED: u32 = 50;

    fn enter(py: Python<'_>) -> PyResult<ReprDepth> {
        let depth = REPR_DEPTH.with(|d| {
            let depth = d.get().saturating_add(1);
            d.set(depth);
            depth
        });
        // Made before the check, so that the count goes down again on every return.
        let guard = ReprDepth;
        if depth > Self::UNCHECKED {
            let limit: i64 = py.import(intern!(py, "sys"))?.call_method0(intern!(py, "getrecursionlimit"))?.extract()?;
            if i64::from(depth) > limit {
                return Err(pyo3::exceptions::PyRecursionError::new_err(
                    "maximum recursion depth exceeded while getting the repr of an object",
                ));
            }
        }
        Ok(guard)
    }
}

impl Drop for ReprDepth {
    fn drop(&mut self) {
        REPR_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// The mutable state of one Deferred.  Field names follow Twisted's attributes.
/// (On CPython 3.13 it is freed by `teardown`, which bounds nested teardowns.)
#[derive(Default)]
pub struct State {
    /// `result`; `None` until the Deferred is fired (the attribute is then absent).
    pub result: Option<Py<PyAny>>,
    pub called: bool,
    pub paused: isize,
    /// `_runningCallbacks`
    pub running: bool,
    /// `_suppressAlreadyCalled`
    pub suppress_already_called: bool,
    /// Whether `debug` was assigned on this instance (see `debug_flag`).
    pub debug_override: bool,
    /// `_canceller`
    pub canceller: Option<Py<PyAny>>,
    /// `_chainedTo`
    pub chained_to: Option<Py<PyAny>>,
    /// `_debugInfo`: a `twisted.internet.defer.DebugInfo`, created when needed; it logs
    /// "Unhandled error in Deferred:" when it is collected holding a failure.
    pub debug_info: Option<Py<PyAny>>,
    /// `_callbacks`
    pub callbacks: CallbackQueue,
}

impl State {
    /// A new Deferred's state: fired with `result` if there is one (`succeed`), with
    /// `canceller` if there is one.  One literal: on CPython 3.13 `State` has its own
    /// `Drop` (teardown.rs), which rules out `State { ..State::default() }`.
    #[inline(always)]
    pub fn new(result: Option<Py<PyAny>>, canceller: Option<Py<PyAny>>) -> Self {
        State {
            called: result.is_some(),
            result,
            paused: 0,
            running: false,
            suppress_already_called: false,
            debug_override: false,
            canceller,
            chained_to: None,
            debug_info: None,
            callbacks: CallbackQueue::default(),
        }
    }

    /// Given a plain (non-`Failure`, non-Deferred) result, would running the chain
    /// leave nothing for Twisted's `_runCallbacks` to do but clear `_chainedTo`: no
    /// callbacks, not paused, not running them, no `DebugInfo` to update?  (Asked
    /// before firing, and by `runner::call_settled` before a callback is added to a
    /// fired Deferred.)
    #[inline(always)]
    pub(crate) fn settles_at_once(&self) -> bool {
        self.callbacks.is_empty() && self.paused == 0 && !self.running && self.debug_info.is_none()
    }
}

/// This is a callback which will be put off until later.
///
/// A drop-in replacement for `twisted.internet.defer.Deferred`, implemented in Rust.
/// Callbacks added with `addCallback`/`addErrback`/`addBoth`/`addCallbacks` run in
/// order once `callback(result)` or `errback(failure)` is called; a callback
/// returning another Deferred pauses this one until that one has a result.
///
/// When creating a Deferred, you may provide a canceller function, which will be
/// called by `d.cancel()` to let you do any clean-up necessary if the user decides
/// not to wait for the deferred to complete.
///
/// This compiled class is the base of `txdefer.Deferred`, a plain Python subclass
/// that adds the instance `__dict__`.  (PyO3's own `dict` slot is not used: on CPython
/// 3.11 the dict is then created while the new object is already tracked by the
/// garbage collector but not yet initialised, and a collection at that moment would
/// traverse uninitialised state.)
#[pyclass(module = "txdefer._core", name = "DeferredBase", subclass, weakref, frozen, generic)]
pub struct Deferred {
    state: GilLock<State>,
}

/// The lock around a Deferred's state.  Only ever taken with `try_lock` (it never
/// waits): it is never contended, because no Python code runs while it is held; if
/// it ever were, the caller gets a `RuntimeError` instead of a deadlock.  On a build
/// with a GIL, taking and releasing it are a plain read and two plain writes (see
/// `gil_lock`).
pub type StateGuard<'a> = GilGuard<'a, State>;

impl Deferred {
    /// The Rust side of a new Deferred, holding `state`.
    pub fn with_state(state: State) -> Self {
        Deferred { state: GilLock::new(state) }
    }

    /// Lock the state.  Never held across a call into Python (see the module docs).
    pub fn lock(&self) -> Result<StateGuard<'_>, InternalError> {
        self.state.try_lock().ok_or(InternalError::Busy)
    }
}

pub use crate::debug_flag::{debug_enabled, debug_enabled_deferred};

/// `AttributeError` for a Deferred without a result, worded as Python words it.
fn no_result_error(slf: &Bound<'_, Deferred>) -> PyErr {
    let name = slf
        .get_type()
        .name()
        .map_or_else(|_| "Deferred".to_owned(), |n| n.to_string());
    PyAttributeError::new_err(format!("'{name}' object has no attribute 'result'"))
}

/// Get the `DebugInfo` of `d`, creating it if needed.
pub fn ensure_debug_info<'py>(d: &Bound<'py, Deferred>) -> PyResult<Bound<'py, PyAny>> {
    let py = d.py();
    if let Some(existing) = d.get().lock()?.debug_info.as_ref() {
        return Ok(existing.bind(py).clone());
    }
    let fresh = imports::new_debug_info(py)?;
    let mut st = d.get().lock()?;
    match st.debug_info.as_ref() {
        Some(existing) => Ok(existing.bind(py).clone()),
        None => {
            st.debug_info = Some(fresh.clone().unbind());
            Ok(fresh)
        }
    }
}

/// `AlreadyCalledError`, with the debug tracebacks in debug mode.
fn already_called(d: &Bound<'_, Deferred>) -> PyResult<PyErr> {
    if debug_enabled_deferred(d)? {
        let info = ensure_debug_info(d)?;
        let tracebacks: String = info.call_method0("_getDebugTracebacks")?.extract()?;
        return Ok(AlreadyCalledError::new_err(format!("\n{tracebacks}")));
    }
    Ok(AlreadyCalledError::new_err(()))
}

/// `d.callback(result)` where it needs nothing but `d`'s own state: `d` is unfired,
/// with no callbacks, not paused, not running, without a `DebugInfo`, of the public
/// class with debugging off, and `result` a plain value (the last two as far as is
/// known without running anything).  Twisted's `_startRunCallbacks` then only stores
/// the result, drops the canceller and clears `_chainedTo`, as `start_run` does in
/// its `settled` case: done here, returning `true`.  `false`, with nothing changed,
/// in every other case (the caller then takes `start_run`).
///
/// For `callback`'s C entry, run outside PyO3's wrapper: it lets go of references
/// only as `Bound`s, which are released at once (PyO3 would queue a `Py` dropped
/// there).
#[inline(always)]
#[cfg_attr(any(Py_LIMITED_API, PyPy, GraalPy), allow(dead_code))]
pub fn fire_settled(d: &Bound<'_, Deferred>, result: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = d.py();
    let (old_canceller, old_result, old_chained);
    {
        let mut st = d.get().lock()?;
        // Callbacks to run come first (in `settles_at_once`): the case this is most
        // often asked about and cannot take.  The last two checks run no Python code.
        if !st.settles_at_once()
            || st.called
            || st.debug_override
            || !imports::known_plain(result)
            || crate::debug_flag::known_switch(d.as_any()) != Some(false)
        {
            return Ok(false);
        }
        st.called = true;
        old_canceller = st.canceller.take();
        old_result = st.result.replace(result.clone().unbind());
        old_chained = st.chained_to.take();
    }
    drop(old_canceller.map(|c| c.into_bound(py)));
    drop(old_result.map(|r| r.into_bound(py)));
    drop(old_chained.map(|c| c.into_bound(py)));
    Ok(true)
}

/// `push_entry` for an unfired `d`: the entry `make` gives is added (nothing runs),
/// returning `true`.  `false`, with nothing made or changed, if `d` has fired (the
/// caller then takes `push_entry`, which runs the callbacks).  `make` is called with
/// `d`'s state locked, so it must not run Python code.  Lets go of nothing.
#[inline(always)]
#[cfg_attr(any(Py_LIMITED_API, PyPy, GraalPy), allow(dead_code))]
pub fn push_unfired(d: &Bound<'_, Deferred>, make: impl FnOnce() -> Entry) -> PyResult<bool> {
    let mut st = d.get().lock()?;
    if st.called {
        return Ok(false);
    }
    st.callbacks.push_back(make());
    Ok(true)
}

/// Has `d` fired (`called`)?
#[inline(always)]
#[cfg_attr(any(Py_LIMITED_API, PyPy, GraalPy), allow(dead_code))]
pub fn is_called(d: &Bound<'_, Deferred>) -> PyResult<bool> {
    Ok(d.get().lock()?.called)
}

/// Twisted's `_startRunCallbacks`: fire `d` with `result` and run its callbacks.
pub fn start_run(d: &Bound<'_, Deferred>, result: Bound<'_, PyAny>) -> PyResult<()> {
    let py = d.py();
    let switch = crate::debug_flag::class_switch(d.as_any());
    // With no callbacks to run and a plain result, Twisted's `_runCallbacks` only
    // clears `_chainedTo` (and a `DebugInfo`'s `failResult`, when there is one):
    // done here, without entering the runner.
    let plain = imports::classify(&result)? == imports::ResultKind::Plain;
    let (old_canceller, old_result, old_chained);
    {
        let mut st = d.get().lock()?;
        if st.called {
            if st.suppress_already_called {
                st.suppress_already_called = false;
                return Ok(());
            }
            drop(st);
            return Err(already_called(d)?);
        }
        let debug = match switch {
            Some(on) if !st.debug_override => on,
            _ => {
                drop(st);
                let on = debug_enabled_deferred(d)?;
                st = d.get().lock()?;
                if st.called {
                    drop(st);
                    return Err(already_called(d)?);
                }
                on
            }
        };
        if debug {
            drop(st);
            let info = ensure_debug_info(d)?;
            info.setattr(intern!(py, "invoker"), imports::format_stack(py)?)?;
            st = d.get().lock()?;
            if st.called {
                drop(st);
                return Err(already_called(d)?);
            }
        }
        st.called = true;
        // Drop the canceller to avoid reference cycles: it is never called once fired.
        old_canceller = st.canceller.take();
        old_result = st.result.replace(result.unbind());
        let settled = plain && st.settles_at_once();
        old_chained = if settled { Some(st.chained_to.take()) } else { None };
    }
    drop(old_canceller);
    drop(old_result);
    match old_chained {
        Some(chained) => {
            drop(chained);
            Ok(())
        }
        None => runner::run_callbacks(d),
    }
}

/// `d.errback(fail)`: `fail` may be a `Failure`, any other object (wrapped in a
/// `Failure`), or `None` inside an `except` block for the exception being handled.
pub fn errback_with(slf: &Bound<'_, Deferred>, fail: Option<Bound<'_, PyAny>>) -> PyResult<()> {
    let py = slf.py();
    let failure = match fail {
        Some(f) if !f.is_none() => {
            if imports::is_failure(&f)? {
                f
            } else {
                imports::failure_of(&f)?
            }
        }
        _ => imports::failure_current(py, debug_enabled_deferred(slf)?)?,
    };
    start_run(slf, failure)
}

/// `cancel()` of a Deferred that has not fired: its canceller, then `CancelledError`
/// unless the canceller fired it.
fn cancel_unfired(d: &Bound<'_, Deferred>, canceller: Option<Py<PyAny>>) -> PyResult<()> {
    let py = d.py();
    match canceller.map(|c| c.into_bound(py)) {
        Some(c) if c.is_truthy()? => {
            c.call1((d,))?;
        }
        _ => d.get().lock()?.suppress_already_called = true,
    }
    if !d.get().lock()?.called {
        // `Failure(CancelledError())`: the exception made by calling its class, not
        // raised (so it takes no `__context__` from an exception being handled).
        let failure = imports::failure_of(&py.get_type::<CancelledError>().call0()?)?;
        if is_exact_public(d.as_any()) {
            start_run(d, failure)?;
        } else {
            d.call_method1(intern!(py, "errback"), (failure,))?;
        }
    }
    Ok(())
}

/// Would `obj.cancel()` run `Deferred.cancel` itself (not an override, in a subclass
/// or on the instance)?
fn cancel_is_ours(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    let name = intern!(py, "cancel");
    let ours = py.get_type::<Deferred>().getattr(name)?;
    if !crate::fast_methods::is_compiled_method(&obj.get_type().getattr(name)?, &ours) {
        return Ok(false);
    }
    match obj.getattr_opt(intern!(py, "__dict__"))? {
        Some(dict) => Ok(!dict.cast::<PyDict>().is_ok_and(|d| d.contains(name).unwrap_or(true))),
        None => Ok(true),
    }
}

/// `sys.getrecursionlimit()`.
fn recursion_limit(py: Python<'_>) -> PyResult<usize> {
    py.import("sys")?.call_method0(intern!(py, "getrecursionlimit"))?.extract()
}

/// Append an entry; run the chain if the Deferred has already been fired.
#[inline(always)]
pub fn push_entry<'py>(slf: &Bound<'py, Deferred>, entry: Entry) -> PyResult<Bound<'py, Deferred>> {
    let called = {
        let mut st = slf.get().lock()?;
        st.callbacks.push_back(entry);
        st.called
    };
    if called {
        runner::run_callbacks(slf)?;
    }
    Ok(slf.clone())
}

/// Bind `addCallback(callback, *args, **kwargs)` (or `addErrback`/`addBoth`, whose
/// first parameter is `param`) by hand: the tuple Python packed the call's positional
/// arguments into is kept whole (see `Call::from_call_args`), and argument errors read
/// exactly as Python words them for Twisted's methods.
#[inline(always)]
fn call_from_args<'py>(
    method: &str,
    param: &str,
    args: Bound<'py, PyTuple>,
    kwargs: Option<Bound<'py, PyDict>>,
) -> PyResult<Call> {
    match kwargs {
        None if !args.is_empty() => Ok(Call::from_call_args(args, None)),
        _ => call_from_args_and_keywords(method, param, args, kwargs),
    }
}

/// `call_from_args` with keyword arguments, or none at all.
#[inline(never)]
fn call_from_args_and_keywords<'py>(
    method: &str,
    param: &str,
    args: Bound<'py, PyTuple>,
    kwargs: Option<Bound<'py, PyDict>>,
) -> PyResult<Call> {
    let Some(kwargs) = kwargs.filter(|k| !k.is_empty()) else {
        if args.is_empty() {
            return Err(missing_argument(method, param));
        }
        return Ok(Call::from_call_args(args, None));
    };
    let mut func = None;
    for key in kwargs.keys() {
        let Ok(name) = key.extract::<&str>() else { continue };
        if name == "self" || (name == param && !args.is_empty()) {
            return Err(PyTypeError::new_err(format!(
                "Deferred.{method}() got multiple values for argument '{name}'"
            )));
        }
        if name == param {
            func = Some(kwargs.get_item(name)?);
        }
    }
    match func {
        None if args.is_empty() => Err(missing_argument(method, param)),
        None => Ok(Call::from_call_args(args, Some(kwargs.into_any()))),
        Some(func) => {
            // Keyword-only call: `addCallback(callback=f, **more)`.  The mapping may be
            // the caller's own (when called from C): copy before removing `param`.
            let rest = kwargs.copy()?;
            rest.del_item(param)?;
            let rest = (!rest.is_empty()).then(|| rest.into_any());
            Call::new(func.unwrap_or_else(|| args.py().None().into_bound(args.py())), None, rest)
        }
    }
}

fn missing_argument(method: &str, param: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "Deferred.{method}() missing 1 required positional argument: '{param}'"
    ))
}

#[pymethods]
impl Deferred {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs), text_signature = "(canceller=None)")]
    fn py_new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Deferred::with_state(State::default())
    }

    /// Initialize a Deferred.
    ///
    /// `canceller` is called by `cancel()` with this Deferred; if it does not fire the
    /// Deferred (or there is none), `cancel()` errbacks it with `CancelledError`.
    #[pyo3(signature = (canceller=None))]
    pub(crate) fn __init__(slf: &Bound<'_, Self>, canceller: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let mut canceller = canceller.filter(|c| !c.is_none()).map(Bound::unbind);
        if crate::debug_flag::class_switch(slf.as_any()) == Some(false) {
            // Debugging is off for the class: unless this instance has its own `debug`,
            // there is no creator stack to record.
            let old = {
                let mut st = slf.get().lock()?;
                if st.debug_override {
                    None
                } else {
                    Some((st.callbacks.take(), std::mem::replace(&mut st.canceller, canceller.take())))
                }
            };
            if let Some(old) = old {
                drop(old);
                return Ok(());
            }
        }
        let debug_info = if debug_enabled_deferred(slf)? {
            let info = imports::new_debug_info(py)?;
            info.setattr(intern!(py, "creator"), imports::format_stack(py)?)?;
            Some(info.unbind())
        } else {
            None
        };
        let (old_callbacks, old_canceller, old_info);
        {
            let mut st = slf.get().lock()?;
            old_callbacks = st.callbacks.take();
            old_canceller = std::mem::replace(&mut st.canceller, canceller);
            old_info = match debug_info {
                Some(info) => st.debug_info.replace(info),
                None => None,
            };
        }
        drop((old_callbacks, old_canceller, old_info));
        Ok(())
    }

    /// `debug`: whether the call stacks of creation and invocation are recorded; the
    /// switch `setDebugging()` sets, or this instance's own value if one was assigned.
    #[classattr]
    fn debug() -> crate::debug_flag::DebugAttribute {
        crate::debug_flag::DebugAttribute
    }

    /// Convenience method for adding just a callback.  See `addCallbacks`.
    #[pyo3(name = "addCallback", signature = (*args, **kwargs), text_signature = "($self, callback, *args, **kwargs)")]
    fn add_callback<'py>(
        slf: &Bound<'py, Self>,
        args: Bound<'py, PyTuple>,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Self>> {
        let call = call_from_args("addCallback", "callback", args, kwargs)?;
        push_entry(slf, Entry::Callback(call))
    }

    /// Convenience method for adding just an errback.  See `addCallbacks`.
    #[pyo3(name = "addErrback", signature = (*args, **kwargs), text_signature = "($self, errback, *args, **kwargs)")]
    fn add_errback<'py>(
        slf: &Bound<'py, Self>,
        args: Bound<'py, PyTuple>,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Self>> {
        let call = call_from_args("addErrback", "errback", args, kwargs)?;
        push_entry(slf, Entry::Errback(call))
    }

    /// Convenience method for adding a single callable as both a callback and an
    /// errback.  See `addCallbacks`.
    #[pyo3(name = "addBoth", signature = (*args, **kwargs), text_signature = "($self, callback, *args, **kwargs)")]
    fn add_both<'py>(
        slf: &Bound<'py, Self>,
        args: Bound<'py, PyTuple>,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Self>> {
        let call = call_from_args("addBoth", "callback", args, kwargs)?;
        push_entry(slf, Entry::Both(call))
    }

    /// Add a pair of callbacks (success and error) to this Deferred.
    ///
    /// These will be executed when the 'master' callback is run.  A missing errback
    /// passes failures through.  Returns `self`.
    #[pyo3(
        name = "addCallbacks",
        signature = (callback, errback=None, callbackArgs=None, callbackKeywords=None, errbackArgs=None, errbackKeywords=None)
    )]
    #[allow(non_snake_case)]
    fn add_callbacks<'py>(
        slf: &Bound<'py, Self>,
        callback: Bound<'py, PyAny>,
        errback: Option<Bound<'py, PyAny>>,
        callbackArgs: Option<Bound<'py, PyAny>>,
        callbackKeywords: Option<Bound<'py, PyAny>>,
        errbackArgs: Option<Bound<'py, PyAny>>,
        errbackKeywords: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let py = slf.py();
        let cb = Call::new(callback, callbackArgs, callbackKeywords)?;
        let errback = errback.filter(|e| !e.is_none());
        let entry = match errback {
            None => {
                let eb_extra = Call::new(py.None().into_bound(py), errbackArgs, errbackKeywords)?;
                if eb_extra.args().is_none() && eb_extra.kwargs().is_none() {
                    Entry::Callback(cb)
                } else {
                    // Twisted's `_failthru` is still called with the extra arguments
                    // (and fails with a TypeError, as it does there).
                    let failthru = imports::foreign(py)?.twisted_failthru.clone_ref(py);
                    let eb = eb_extra.with_func(failthru);
                    Entry::Pair(Box::new([cb, eb]))
                }
            }
            Some(eb) => Entry::Pair(Box::new([cb, Call::new(eb, errbackArgs, errbackKeywords)?])),
        };
        push_entry(slf, entry)
    }

    /// Chain another Deferred to this Deferred: any event that fires this one also
    /// fires `d` (but not the other way round).  Equivalent to
    /// `self.addCallbacks(d.callback, d.errback)`; unlike Twisted, long chains built
    /// this way do not recurse and so cannot exhaust the stack.  Returns `self`.
    #[pyo3(name = "chainDeferred")]
    fn chain_deferred<'py>(
        slf: &Bound<'py, Self>,
        d: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, Self>> {
        let py = slf.py();
        if is_exact_public(&d) {
            let target = d.cast::<Deferred>()?;
            let old = target
                .get()
                .lock()?
                .chained_to
                .replace(slf.clone().into_any().unbind());
            drop(old);
            push_entry(slf, Entry::Chain(target.clone().unbind()))
        } else {
            d.setattr(intern!(py, "_chainedTo"), slf)?;
            let cb = Call::new(d.getattr(intern!(py, "callback"))?, None, None)?;
            let eb = Call::new(d.getattr(intern!(py, "errback"))?, None, None)?;
            push_entry(slf, Entry::Pair(Box::new([cb, eb])))
        }
    }

    /// Run all success callbacks that have been added to this Deferred.
    ///
    /// Raises `AlreadyCalledError` if `callback` or `errback` was already called.
    fn callback(slf: &Bound<'_, Self>, result: Bound<'_, PyAny>) -> PyResult<()> {
        start_run(slf, result)
    }

    /// Run all error callbacks that have been added to this Deferred.
    ///
    /// `fail` may be a `Failure`, any other object (wrapped in a `Failure`), or
    /// omitted inside an `except` block to use the exception being handled.
    #[pyo3(signature = (fail=None))]
    fn errback(slf: &Bound<'_, Self>, fail: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        errback_with(slf, fail)
    }

    /// Stop processing on a Deferred until `unpause()` is called.
    fn pause(&self) -> PyResult<()> {
        self.lock()?.paused += 1;
        Ok(())
    }

    /// Process all callbacks made since `pause()` was called.
    fn unpause(slf: &Bound<'_, Self>) -> PyResult<()> {
        let run = {
            let mut st = slf.get().lock()?;
            st.paused -= 1;
            st.paused == 0 && st.called
        };
        if run {
            runner::run_callbacks(slf)?;
        }
        Ok(())
    }

    /// Cancel this Deferred.
    ///
    /// If it has not fired yet, call its canceller; if that does not fire it (or there
    /// is none), errback with `CancelledError`.  If it is waiting on another Deferred,
    /// forward the cancellation to that one.
    fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        // A fired Deferred waiting on another cancels that one instead, which may wait
        // on another... Twisted recurses down that chain; this follows it in a loop
        // while the next one is a txdefer Deferred whose `cancel` is this one (not
        // overridden), and raises `RecursionError` where Twisted would run out of
        // recursion depth (a cycle, or a chain longer than the recursion limit),
        // before changing anything.
        let mut current = slf.clone();
        let mut forwarded: usize = 0;
        let mut limit: Option<usize> = None;
        loop {
            let (called, canceller, result) = {
                let st = current.get().lock()?;
                (
                    st.called,
                    st.canceller.as_ref().map(|c| c.clone_ref(py)),
                    st.result.as_ref().map(|r| r.clone_ref(py)),
                )
            };
            if !called {
                return cancel_unfired(&current, canceller);
            }
            let Some(result) = result.map(|r| r.into_bound(py)) else {
                return Ok(());
            };
            if !runner::is_deferred(&result) {
                return Ok(());
            }
            match result.cast::<Deferred>() {
                Ok(next) if cancel_is_ours(&result)? => {
                    forwarded += 1;
                    let limit = match limit {
                        Some(limit) => limit,
                        None => *limit.insert(recursion_limit(py)?),
                    };
                    if forwarded > limit {
                        return Err(pyo3::exceptions::PyRecursionError::new_err(
                            "maximum recursion depth exceeded",
                        ));
                    }
                    current = next.clone();
                }
                _ => {
                    result.call_method0(intern!(py, "cancel"))?;
                    return Ok(());
                }
            }
        }
    }

    /// Time out this Deferred by scheduling it to be cancelled after `timeout`
    /// seconds on `clock`.  See Twisted's `Deferred.addTimeout`.
    #[pyo3(name = "addTimeout", signature = (timeout, clock, onTimeoutCancel=None))]
    #[allow(non_snake_case)]
    fn add_timeout<'py>(
        slf: &Bound<'py, Self>,
        timeout: Bound<'py, PyAny>,
        clock: Bound<'py, PyAny>,
        onTimeoutCancel: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        imports::support(py)?
            .getattr(intern!(py, "addTimeout"))?
            .call1((slf, timeout, clock, onTimeoutCancel))
    }

    /// Adapt this Deferred into an asyncio `Future` bound to `loop`.  Consumes the
    /// result: afterwards this Deferred fires with `None`.
    #[pyo3(name = "asFuture")]
    fn as_future<'py>(
        slf: &Bound<'py, Self>,
        r#loop: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        imports::support(py)?
            .getattr(intern!(py, "asFuture"))?
            .call1((slf, r#loop))
    }

    /// Adapt an asyncio `Future` to a Deferred.
    #[classmethod]
    #[pyo3(name = "fromFuture")]
    fn from_future<'py>(
        cls: &Bound<'py, PyType>,
        future: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = cls.py();
        imports::support(py)?
            .getattr(intern!(py, "fromFuture"))?
            .call1((cls, future))
    }

    /// Schedule the execution of a coroutine (or generator) that awaits on Deferreds,
    /// wrapping it in a Deferred that fires with its outcome.  Raises
    /// `NotACoroutineError` for anything else.
    #[classmethod]
    #[pyo3(name = "fromCoroutine")]
    fn from_coroutine<'py>(
        cls: &Bound<'py, PyType>,
        coro: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = cls;
        crate::inline_callbacks::from_coroutine(coro)
    }

    /// Record every subclass in `_DEFERRED_SUBCLASSES`, as Twisted does.
    #[classmethod]
    #[pyo3(signature = (**_kwargs))]
    fn __init_subclass__(
        cls: &Bound<'_, PyType>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        subclasses(cls.py())?.append(cls)
    }

    fn __str__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let _depth = ReprDepth::enter(py)?;
        let cname = slf.get_type().name()?;
        let (chained, result) = {
            let st = slf.get().lock()?;
            (
                st.chained_to.as_ref().map(|c| c.clone_ref(py)),
                st.result.as_ref().map(|r| r.clone_ref(py)),
            )
        };
        let addr = slf.as_ptr() as usize;
        Ok(if let Some(chained) = chained {
            format!(
                "<{cname} at 0x{addr:x} waiting on Deferred at 0x{:x}>",
                chained.as_ptr() as usize
            )
        } else if let Some(result) = result {
            format!("<{cname} at 0x{addr:x} current result: {}>", result.bind(py).repr()?)
        } else {
            format!("<{cname} at 0x{addr:x}>")
        })
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        Self::__str__(slf)
    }

    fn __iter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, DeferredIterator>> {
        crate::await_iter::iterator_for(slf, false)
    }

    fn __await__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, DeferredIterator>> {
        crate::await_iter::iterator_for(slf, false)
    }

    #[getter]
    fn get_result(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if let Some(r) = slf.get().lock()?.result.as_ref() {
            return Ok(r.clone_ref(py));
        }
        Err(no_result_error(slf))
    }

    #[setter]
    fn set_result(&self, value: Bound<'_, PyAny>) -> PyResult<()> {
        let old = self.lock()?.result.replace(value.unbind());
        drop(old);
        Ok(())
    }

    #[deleter]
    fn delete_result(slf: &Bound<'_, Self>) -> PyResult<()> {
        let old = slf.get().lock()?.result.take();
        match old {
            Some(old) => {
                drop(old);
                Ok(())
            }
            None => Err(crate::errors::nothing_to_delete(slf.as_any(), "result")),
        }
    }

    /// False until either `callback` or `errback` is called, True afterwards.
    #[getter]
    fn get_called(&self) -> PyResult<bool> {
        Ok(self.lock()?.called)
    }

    #[setter]
    fn set_called(&self, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let v = match value {
            Some(v) => v.is_truthy()?,
            None => false,
        };
        self.lock()?.called = v;
        Ok(())
    }

    /// A counter of how many unmatched `pause` calls have been made.
    #[getter]
    fn get_paused(&self) -> PyResult<isize> {
        Ok(self.lock()?.paused)
    }

    #[setter]
    fn set_paused(&self, value: Option<isize>) -> PyResult<()> {
        self.lock()?.paused = value.unwrap_or(0);
        Ok(())
    }

    /// The Deferred this one is waiting on, if any.
    #[getter(_chainedTo)]
    fn get_chained_to(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self
            .lock()?
            .chained_to
            .as_ref()
            .map_or_else(|| py.None(), |c| c.clone_ref(py)))
    }

    #[setter(_chainedTo)]
    fn set_chained_to(&self, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let value = value.filter(|v| !v.is_none()).map(Bound::unbind);
        let old = std::mem::replace(&mut self.lock()?.chained_to, value);
        drop(old);
        Ok(())
    }

    #[getter(_canceller)]
    fn get_canceller(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self
            .lock()?
            .canceller
            .as_ref()
            .map_or_else(|| py.None(), |c| c.clone_ref(py)))
    }

    #[setter(_canceller)]
    fn set_canceller(&self, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let value = value.filter(|v| !v.is_none()).map(Bound::unbind);
        let old = std::mem::replace(&mut self.lock()?.canceller, value);
        drop(old);
        Ok(())
    }

    #[getter(_debugInfo)]
    fn get_debug_info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self
            .lock()?
            .debug_info
            .as_ref()
            .map_or_else(|| py.None(), |c| c.clone_ref(py)))
    }

    #[setter(_debugInfo)]
    fn set_debug_info(&self, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let value = value.filter(|v| !v.is_none()).map(Bound::unbind);
        let old = std::mem::replace(&mut self.lock()?.debug_info, value);
        drop(old);
        Ok(())
    }

    #[getter(_suppressAlreadyCalled)]
    fn get_suppress(&self) -> PyResult<bool> {
        Ok(self.lock()?.suppress_already_called)
    }

    #[setter(_suppressAlreadyCalled)]
    fn set_suppress(&self, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let v = match value {
            Some(v) => v.is_truthy()?,
            None => false,
        };
        self.lock()?.suppress_already_called = v;
        Ok(())
    }

    #[getter(_runningCallbacks)]
    fn get_running(&self) -> PyResult<bool> {
        Ok(self.lock()?.running)
    }

    #[setter(_runningCallbacks)]
    fn set_running(&self, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let v = match value {
            Some(v) => v.is_truthy()?,
            None => false,
        };
        self.lock()?.running = v;
        Ok(())
    }

    /// A live view of the callback chain, in Twisted's
    /// `((callback, args, kwargs), (errback, args, kwargs))` shape.
    #[getter(_callbacks)]
    fn get_callbacks_view(slf: &Bound<'_, Self>) -> CallbackList {
        CallbackList::new(slf.clone().unbind())
    }

    #[setter(_callbacks)]
    fn set_callbacks_view(slf: &Bound<'_, Self>, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let mut fresh = CallbackQueue::default();
        if let Some(value) = value {
            for item in value.try_iter()? {
                fresh.push_back(crate::callback_view::entry_from_pair(&item?)?);
            }
        }
        let old = std::mem::replace(&mut slf.get().lock()?.callbacks, fresh);
        drop(old);
        Ok(())
    }

    /// Deprecated since Twisted 25.5.0: the callback chain, as `_callbacks`.
    #[getter]
    fn callbacks(slf: &Bound<'_, Self>) -> PyResult<CallbackList> {
        PyErr::warn(
            slf.py(),
            &slf.py().get_type::<PyDeprecationWarning>(),
            c"twisted.internet.defer.Deferred.callbacks was deprecated in Twisted 25.5.0",
            1,
        )?;
        Ok(Self::get_callbacks_view(slf))
    }

    /// Fire with `result` and run the callbacks (Twisted's internal
    /// `_startRunCallbacks`): `callback`/`errback` without their checks of the
    /// argument; a `Failure` result runs the errbacks.
    #[pyo3(name = "_startRunCallbacks")]
    fn py_start_run(slf: &Bound<'_, Self>, result: Bound<'_, PyAny>) -> PyResult<()> {
        start_run(slf, result)
    }

    /// The callback pair that, added to another Deferred, makes this one continue
    /// with that Deferred's result (Twisted's internal `_continuation`).
    #[pyo3(name = "_continuation")]
    fn py_continuation<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        crate::callback_view::continue_pair(slf.py(), slf.clone().into_any())
    }

    /// Run the callback chain (Twisted's internal `_runCallbacks`).
    #[pyo3(name = "_runCallbacks")]
    fn py_run_callbacks(slf: &Bound<'_, Self>) -> PyResult<()> {
        runner::run_callbacks(slf)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never blocks: on a GIL build the state is never locked while the collector
        // runs (no Python code runs under the lock); if it were, skip this round.
        let Some(st) = self.state.try_lock() else {
            return Ok(());
        };
        visit.call(&st.result)?;
        visit.call(&st.canceller)?;
        visit.call(&st.chained_to)?;
        visit.call(&st.debug_info)?;
        st.callbacks.traverse(&visit)
    }

    fn __clear__(&self) {
        let taken = self.state.try_lock().map(|mut st| {
            (
                st.result.take(),
                st.canceller.take(),
                st.chained_to.take(),
                st.debug_info.take(),
                st.callbacks.take(),
            )
        });
        drop(taken);
    }
}

/// Return a Deferred that has already had `.callback(result)` called.
///
/// Like Twisted's, this sets the result directly: no callbacks run and a `Failure`
/// given here is not recorded as an unhandled error.
#[pyfunction]
pub fn succeed<'py>(py: Python<'py>, result: Bound<'py, PyAny>) -> PyResult<Bound<'py, Deferred>> {
    // As Twisted's `Deferred()`: the creator stack is recorded in debug mode.
    crate::construct::new_public_fired(py, result)
}

static PUBLIC: pyo3::sync::PyOnceLock<Py<PyType>> = pyo3::sync::PyOnceLock::new();

/// The public `txdefer.Deferred` (registered by `_register_public`).
pub fn public_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    PUBLIC
        .get(py)
        .map(|t| t.bind(py))
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("txdefer.Deferred is not registered"))
}

pub fn register_public(cls: Bound<'_, PyType>) {
    let _ = PUBLIC.set(cls.py(), cls.unbind());
}

/// Is `obj` exactly a `txdefer.Deferred` (not a subclass that may override methods)?
pub fn is_exact_public(obj: &Bound<'_, PyAny>) -> bool {
    PUBLIC
        .get(obj.py())
        .is_some_and(|t| obj.get_type_ptr().cast::<pyo3::ffi::PyObject>() == t.as_ptr())
}

static SUBCLASSES: pyo3::sync::PyOnceLock<Py<PyList>> = pyo3::sync::PyOnceLock::new();

/// `_DEFERRED_SUBCLASSES`: `Deferred` and every subclass of it, in creation order.
pub fn subclasses(py: Python<'_>) -> PyResult<&Bound<'_, PyList>> {
    SUBCLASSES
        .get_or_try_init(py, || Ok::<_, PyErr>(PyList::empty(py).unbind()))
        .map(|l| l.bind(py))
}
