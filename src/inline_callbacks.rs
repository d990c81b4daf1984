//! The driver behind `inlineCallbacks`, `ensureDeferred` and `Deferred.fromCoroutine`:
//! Twisted's `_inlineCallbacks` trampoline, in Rust.
//!
//! A generator (or coroutine) is sent the result of each Deferred it yields (awaits),
//! or has the failure thrown into it, each step run in the `contextvars` context
//! copied when it started, until it returns; its return value (or exception) then
//! fires the Deferred handed to the caller.  A Deferred that already has its result
//! is consumed on the spot and the loop goes on, so a generator yielding a million
//! fired Deferreds never recurses.  Cancellation is Twisted's own code
//! (`txdefer._support`), with the driver standing in for `_CancellationStatus`.
//!
//! Twisted steps the generator with `context.run(gen.send, result)`.  For a native
//! generator or coroutine and a `contextvars.Context`, the driver does what
//! `Context.run` does in C (enter the context, call, exit it) around CPython's
//! `PyIter_Send`, which hands back a returned value directly instead of raising
//! `StopIteration(value)` to be caught: the same steps, without the two calls
//! through Python's call machinery and the exception.

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::gil_lock::{GilGuard, GilLock};
use crate::callbacks::{Entry, Native};
use crate::deferred::{self, debug_enabled, Deferred};
use crate::errors::InternalError;
use crate::imports::{self, ResultKind};
use crate::runner;

static COPY_CONTEXT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DEFGEN_RETURN: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static COROUTINE_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GENERATOR_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Where the driver stands with the Deferred it last yielded (Twisted's `waiting`).
#[derive(Default)]
enum Waiting {
    /// Not inside the loop: a result arriving now resumes the generator.
    #[default]
    Suspended,
    /// Inside the loop, adding the resume callback: a result arriving now is kept
    /// for the loop to pick up (no recursion).
    Looping,
    /// The result that arrived while `Looping`.
    Got(Py<PyAny>),
}

struct DriverState {
    /// `status.deferred`: what the generator's outcome fires.  Replaced when the
    /// invocation is cancelled while waiting (see `_handleCancelInlineCallbacks`).
    deferred: Option<Py<PyAny>>,
    /// `status.waitingOn`: the Deferred the generator waits on.
    waiting_on: Option<Py<PyAny>>,
    waiting: Waiting,
}

/// One running `inlineCallbacks` generator or coroutine, and its cancellation status
/// (it has Twisted's `_CancellationStatus` attributes, `deferred` and `waitingOn`).
///
/// It is also the canceller of the Deferred the invocation returned: calling it with
/// that Deferred cancels the invocation, as Twisted's
/// `lambda d: _addCancelCallbackToDeferred(d, status)` does.
#[pyclass(module = "txdefer._core", name = "_InlineCallbacks", frozen)]
pub struct Driver {
    gen: Py<PyAny>,
    /// How each step reaches `gen` in its `contextvars.Context`.
    stepper: Stepper,
    /// Whether `gen` is a coroutine (see `value_to_send`).
    #[cfg(all(Py_3_12, not(any(PyPy, GraalPy))))]
    coroutine: bool,
    state: GilLock<DriverState>,
}

/// How a driver steps its generator in the copied `contextvars.Context` (Twisted:
/// `context.run(gen.send, value)`).
enum Stepper {
    /// `gen` is exactly a generator or a coroutine and the context exactly a
    /// `contextvars.Context`: each step is sent directly inside the context (see
    /// `send`), and no bound method is made for it.
    Direct { context: Py<PyAny> },
    /// Anything else: `run(send, value)`, with the context's `run` and `gen.send`
    /// looked up once.
    ViaRun { run: Py<PyAny>, send: Py<PyAny> },
}

impl Stepper {
    /// The context's `run`, to throw a failure into the generator through it.
    fn run<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Stepper::Direct { context } => context.bind(py).getattr(intern!(py, "run")),
            Stepper::ViaRun { run, .. } => Ok(run.bind(py).clone()),
        }
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Stepper::Direct { context } => visit.call(context),
            Stepper::ViaRun { run, send } => {
                visit.call(run)?;
                visit.call(send)
            }
        }
    }
}

impl Driver {
    fn lock(&self) -> Result<GilGuard<'_, DriverState>, InternalError> {
        self.state.try_lock().ok_or(InternalError::Busy)
    }
}

/// The callback that resumes a driver, for Deferreds whose chain is reached through
/// Python (subclasses, Twisted's own class, Twisted-shaped views of a chain).
#[pyclass(module = "txdefer._core", name = "_InlineResume", frozen)]
pub struct DriverResume {
    driver: Py<Driver>,
}

impl DriverResume {
    pub fn new(driver: Py<Driver>) -> Self {
        DriverResume { driver }
    }
}

#[pymethods]
impl DriverResume {
    fn __call__<'py>(&self, py: Python<'py>, result: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        got_result(self.driver.bind(py), result)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.driver)
    }
}

/// Twisted's `_cancellableInlineCallbacks(gen)`: start driving `gen`; return the
/// Deferred that fires with its outcome.
#[pyfunction]
#[pyo3(name = "_cancellableInlineCallbacks")]
pub fn cancellable_inline_callbacks<'py>(gen: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = gen.py();
    let context = COPY_CONTEXT.import(py, "contextvars", "copy_context")?.call0()?;
    #[cfg(all(Py_3_12, not(any(PyPy, GraalPy))))]
    let coroutine = gen.get_type().is(coroutine_type(py)?);
    let stepper = if sends_directly(&gen, &context)? {
        Stepper::Direct { context: context.unbind() }
    } else {
        Stepper::ViaRun {
            run: context.getattr(intern!(py, "run"))?.unbind(),
            send: gen.getattr(intern!(py, "send"))?.unbind(),
        }
    };
    let driver = Bound::new(
        py,
        Driver {
            gen: gen.unbind(),
            stepper,
            #[cfg(all(Py_3_12, not(any(PyPy, GraalPy))))]
            coroutine,
            state: GilLock::new(DriverState {
                deferred: None,
                waiting_on: None,
                waiting: Waiting::Suspended,
            }),
        },
    )?;
    // The driver is the canceller: Twisted's `lambda d: _addCancelCallbackToDeferred(d, status)`.
    let d = crate::construct::new_public(py, crate::construct::CancellerArg::Positional(driver.as_any()))?.into_any();
    driver.get().lock()?.deferred = Some(d.clone().unbind());
    drive(&driver, py.None().into_bound(py))?;
    Ok(d)
}

/// Is `obj` a coroutine or a generator (`iscoroutine(obj) or isgenerator(obj)`), to be
/// driven as a nested `inlineCallbacks`?
fn is_coroutine_or_generator(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    if is_native_generator(obj)? {
        return Ok(true);
    }
    imports::support(py)?
        .getattr(intern!(py, "_isCoroutineOrGenerator"))?
        .call1((obj,))?
        .is_truthy()
}

/// Is `obj` exactly a coroutine or a generator (CPython's own types, not a class
/// registered with `collections.abc`)?
fn is_native_generator(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    let t = obj.get_type();
    Ok(t.is(coroutine_type(py)?) || t.is(GENERATOR_TYPE.import(py, "types", "GeneratorType")?))
}

/// `types.CoroutineType`.
pub fn coroutine_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    COROUTINE_TYPE.import(py, "types", "CoroutineType")
}

/// Twisted's `_inlineCallbacks(result, gen, status, context)`.
fn drive<'py>(driver: &Bound<'py, Driver>, mut result: Bound<'py, PyAny>) -> PyResult<()> {
    let py = driver.py();
    let me = driver.get();
    loop {
        let is_failure = imports::classify(&result)? == ResultKind::Failure;
        let sent = if is_failure {
            let throw = result.getattr(intern!(py, "throwExceptionIntoGenerator"))?;
            Sent::from(me.stepper.run(py).and_then(|run| run.call1((throw, me.gen.bind(py)))))
        } else {
            send(me, py, value_to_send(me, result)?)
        };
        let yielded = match sent {
            Sent::Yielded(value) => value,
            Sent::Returned(value) => return fire(&outer_deferred(driver)?, value),
            Sent::Raised(err) => return finish(driver, err, is_failure),
        };
        let awaited = match imports::classify(&yielded)? {
            ResultKind::Deferred | ResultKind::ForeignDeferred => yielded,
            _ if is_coroutine_or_generator(&yielded)? => cancellable_inline_callbacks(yielded)?,
            _ => {
                // Anything else is sent straight back.
                result = yielded;
                continue;
            }
        };
        match wait_on(driver, &awaited)? {
            Some(value) => result = value,
            None => return Ok(()),
        }
    }
}

/// What one step of the generator gave.
enum Sent<'py> {
    /// It yielded (awaited) this.
    Yielded(Bound<'py, PyAny>),
    /// It returned this (sent directly: no `StopIteration` was raised; only where
    /// the direct send is compiled).
    #[cfg_attr(any(Py_LIMITED_API, PyPy, GraalPy), allow(dead_code))]
    Returned(Bound<'py, PyAny>),
    /// It raised (`StopIteration` when it returned, through `gen.send`).
    Raised(PyErr),
}

impl<'py> From<PyResult<Bound<'py, PyAny>>> for Sent<'py> {
    fn from(outcome: PyResult<Bound<'py, PyAny>>) -> Self {
        match outcome {
            Ok(value) => Sent::Yielded(value),
            Err(err) => Sent::Raised(err),
        }
    }
}

/// Are `gen` and `context` what `send` may step directly: exactly a generator or a
/// coroutine, and exactly a `contextvars.Context`?
fn sends_directly(gen: &Bound<'_, PyAny>, context: &Bound<'_, PyAny>) -> PyResult<bool> {
    #[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
    {
        let native = is_native_generator(gen)?;
        // The address of CPython's static type object (taken, not read).
        let context_type = &raw mut pyo3::ffi::PyContext_Type;
        Ok(native && std::ptr::eq(context.get_type().as_type_ptr(), context_type))
    }
    #[cfg(any(Py_LIMITED_API, PyPy, GraalPy))]
    {
        let _ = (gen, context);
        Ok(false)
    }
}

/// Twisted's `context.run(gen.send, value)`.
fn send<'py>(me: &Driver, py: Python<'py>, value: Bound<'py, PyAny>) -> Sent<'py> {
    let (run, send) = match &me.stepper {
        Stepper::ViaRun { run, send } => (run, send),
        Stepper::Direct { context } => return send_directly(me, context.bind(py), value),
    };
    Sent::from(run.bind(py).call1((send.bind(py), value)))
}

/// `send` for `Stepper::Direct`: what `Context.run(gen.send, value)` does, in C.
fn send_directly<'py>(me: &Driver, context: &Bound<'py, PyAny>, value: Bound<'py, PyAny>) -> Sent<'py> {
    let py = context.py();
    #[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
    {
        use pyo3::ffi;
        // What `Context.run` does in C: enter the context, call, exit the context
        // (an error exiting wins over the call's outcome).
        // SAFETY: `context` is a live `contextvars.Context` (checked exactly when the
        // driver was made, `sends_directly`) and this thread is attached.
        if unsafe { ffi::PyContext_Enter(context.as_ptr()) } != 0 {
            return Sent::Raised(PyErr::fetch(py));
        }
        let mut out: *mut ffi::PyObject = std::ptr::null_mut();
        // SAFETY: `gen` is a live generator or coroutine and `value` a live object
        // (both borrowed for the call); `PyIter_Send` stores a new reference in `out`
        // for a yield or a return, or leaves it null with an exception set.
        let status = unsafe { ffi::PyIter_Send(me.gen.as_ptr(), value.as_ptr(), &mut out) };
        let sent = match status {
            ffi::PySendResult::PYGEN_ERROR => Err(PyErr::fetch(py)),
            // SAFETY: `out` is a new (owned, non-null) reference.
            _ => Ok(unsafe { Bound::from_owned_ptr(py, out) }),
        };
        // SAFETY: `context` was entered above, by this thread.
        if unsafe { ffi::PyContext_Exit(context.as_ptr()) } != 0 {
            let err = PyErr::fetch(py);
            drop(sent);
            return Sent::Raised(err);
        }
        return match (status, sent) {
            (_, Err(err)) => Sent::Raised(err),
            (ffi::PySendResult::PYGEN_RETURN, Ok(value)) => Sent::Returned(value),
            (_, Ok(value)) => Sent::Yielded(value),
        };
    }
    // Not made where the direct send is not compiled (see `sends_directly`); if it
    // were, this is what the direct send does.
    #[cfg(any(Py_LIMITED_API, PyPy, GraalPy))]
    {
        let step = || -> PyResult<Bound<'py, PyAny>> {
            let send = me.gen.bind(py).getattr(intern!(py, "send"))?;
            context.getattr(intern!(py, "run"))?.call1((send, value))
        };
        Sent::from(step())
    }
}

/// What `drive` sends into the generator to hand it `result`: `result` itself, as
/// Twisted sends it, or `None` where that is the same to the generator.
///
/// A coroutine suspended in `await d` (its `cr_await` is `d`'s iterator) passes the
/// value sent on to the iterator, which ignores it (it returns the Deferred's own
/// result, as Twisted's generator does).  From CPython 3.12 the interpreter hands a
/// value other than `None` to such an iterator by calling its `send` method, and
/// `None` by its `tp_iternext` slot, which costs a fraction of that; so `None` is
/// sent.  Anywhere else (a generator, an awaitable of another kind, a coroutine
/// awaiting a coroutine) the value may be used and is sent as it is.
#[cfg(all(Py_3_12, not(any(PyPy, GraalPy))))]
fn value_to_send<'py>(driver: &Driver, result: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = result.py();
    if !driver.coroutine || result.is_none() {
        return Ok(result);
    }
    let awaiting = driver.gen.bind(py).getattr(intern!(py, "cr_await"))?;
    if awaiting.is_exact_instance_of::<crate::await_iter::DeferredIterator>() {
        return Ok(py.None().into_bound(py));
    }
    Ok(result)
}

/// What `drive` sends into the generator to hand it `result`: `result` itself, as
/// Twisted sends it.  (Before CPython 3.12 an iterator that ignores the value gets
/// it through its `am_send` slot at no extra cost.)
#[cfg(not(all(Py_3_12, not(any(PyPy, GraalPy)))))]
#[inline(always)]
fn value_to_send<'py>(_driver: &Driver, result: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    Ok(result)
}

/// Add the resume callback to `awaited`.  Returns its result if it already has one
/// (the loop goes on), or `None` when the generator must wait.
fn wait_on<'py>(
    driver: &Bound<'py, Driver>,
    awaited: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = driver.py();
    match awaited.cast::<Deferred>() {
        Ok(native) if deferred::is_exact_public(awaited) || awaited.is_exact_instance_of::<Deferred>() => {
            if let Some(value) = runner::take_ready_result(native)? {
                return Ok(Some(value));
            }
            driver.get().lock()?.waiting = Waiting::Looping;
            deferred::push_entry(native, Entry::Native(Native::Resume(driver.clone().unbind())))?;
        }
        _ => {
            // A subclass (whose addBoth may be overridden) or Twisted's own class:
            // through the public method, as Twisted does.
            driver.get().lock()?.waiting = Waiting::Looping;
            let resume = Bound::new(py, DriverResume::new(driver.clone().unbind()))?;
            awaited.call_method1(intern!(py, "addBoth"), (resume,))?;
        }
    }
    let mut st = driver.get().lock()?;
    match std::mem::take(&mut st.waiting) {
        Waiting::Got(value) => Ok(Some(value.into_bound(py))),
        Waiting::Looping | Waiting::Suspended => {
            // Not fired yet: get called back later.
            let old = st.waiting_on.replace(awaited.clone().unbind());
            drop(st);
            if let Some(old) = old {
                old.drop_ref(py);
            }
            Ok(None)
        }
    }
}

/// The generator is done: it returned, called `returnValue`, or raised.
fn finish(driver: &Bound<'_, Driver>, err: PyErr, is_failure: bool) -> PyResult<()> {
    let py = driver.py();
    let outer = outer_deferred(driver)?;
    let value = if err.is_instance_of::<PyStopIteration>(py) {
        // Fell off the end, or "return" statement.
        err.value(py).getattr_opt(intern!(py, "value"))?
    } else if err.matches(py, DEFGEN_RETURN.import(py, "twisted.internet.defer", "_DefGen_Return")?)? {
        // returnValue() was called: warn if not from the generator itself.
        let exc = err.value(py);
        imports::support(py)?
            .getattr(intern!(py, "_warnNonLocalReturnValue"))?
            .call1((err.traceback(py), is_failure))?;
        Some(exc.getattr(intern!(py, "value"))?)
    } else {
        // Twisted calls `errback()` inside `except BaseException:`, so the errbacks
        // it runs then see the generator's exception as the one being handled.
        let capture = debug_enabled(&outer)?;
        let exc = err.value(py).clone().into_any();
        let failure = imports::failure_from_err(py, err, capture)?;
        return crate::errors::while_handling(&exc, || fire(&outer, failure));
    };
    drop(err);
    fire(&outer, value.unwrap_or_else(|| py.None().into_bound(py)))
}

/// The Deferred the generator's outcome fires (Twisted's `status.deferred`).
fn outer_deferred<'py>(driver: &Bound<'py, Driver>) -> PyResult<Bound<'py, PyAny>> {
    let py = driver.py();
    driver
        .get()
        .lock()?
        .deferred
        .as_ref()
        .map(|d| d.clone_ref(py).into_bound(py))
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("inlineCallbacks has no Deferred"))
}

/// `status.deferred.callback(value)` (or errback, for a failure).
fn fire(outer: &Bound<'_, PyAny>, value: Bound<'_, PyAny>) -> PyResult<()> {
    match outer.cast::<Deferred>() {
        Ok(d) if deferred::is_exact_public(outer) => deferred::start_run(d, value),
        _ => {
            let py = outer.py();
            let method = if imports::is_failure(&value)? {
                intern!(py, "errback")
            } else {
                intern!(py, "callback")
            };
            outer.call_method1(method, (value,))?;
            Ok(())
        }
    }
}

/// Twisted's `_gotResultInlineCallbacks`: a Deferred the generator waits on has its
/// result.  Returns `None` (the awaited Deferred's result becomes `None`).
pub fn got_result<'py>(driver: &Bound<'py, Driver>, result: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = driver.py();
    {
        let mut st = driver.get().lock()?;
        if matches!(st.waiting, Waiting::Looping) {
            st.waiting = Waiting::Got(result.unbind());
            return Ok(py.None().into_bound(py));
        }
    }
    drive(driver, result)?;
    Ok(py.None().into_bound(py))
}

#[pymethods]
impl Driver {
    /// Cancel the invocation whose Deferred is `d` (the canceller).
    fn __call__(slf: &Bound<'_, Self>, d: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        imports::support(py)?
            .getattr(intern!(py, "_addCancelCallbackToDeferred"))?
            .call1((d, slf))?;
        Ok(())
    }

    /// The Deferred the generator's outcome fires.
    #[getter]
    fn get_deferred(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.lock()?.deferred.as_ref().map_or_else(|| py.None(), |d| d.clone_ref(py)))
    }

    #[setter]
    fn set_deferred(&self, value: Py<PyAny>) -> PyResult<()> {
        let old = self.lock()?.deferred.replace(value);
        drop(old);
        Ok(())
    }

    /// The Deferred the generator is waiting on, if any.
    #[getter(waitingOn)]
    fn get_waiting_on(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.lock()?.waiting_on.as_ref().map_or_else(|| py.None(), |d| d.clone_ref(py)))
    }

    #[setter(waitingOn)]
    fn set_waiting_on(&self, value: Option<Py<PyAny>>) -> PyResult<()> {
        let old = std::mem::replace(&mut self.lock()?.waiting_on, value);
        drop(old);
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let gen = self.gen.bind(py).repr()?;
        Ok(format!("<inlineCallbacks driving {gen}>"))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.gen)?;
        self.stepper.traverse(&visit)?;
        if let Some(st) = self.state.try_lock() {
            visit.call(&st.deferred)?;
            visit.call(&st.waiting_on)?;
            if let Waiting::Got(value) = &st.waiting {
                visit.call(value)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        if let Some(mut st) = self.state.try_lock() {
            let taken = (st.deferred.take(), st.waiting_on.take(), std::mem::take(&mut st.waiting));
            drop(st);
            drop(taken);
        }
    }
}


/// `Deferred.fromCoroutine(coro)`: drive a coroutine (or generator) that awaits
/// Deferreds; raises `NotACoroutineError` for anything else.
pub fn from_coroutine<'py>(coro: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if is_coroutine_or_generator(&coro)? {
        return cancellable_inline_callbacks(coro);
    }
    Err(PyErr::from_value(not_a_coroutine(&coro)?))
}

/// `NotACoroutineError("<coro> is not a coroutine")`, with the exception being
/// handled as its `__context__`, as `fromCoroutine` raises it.
fn not_a_coroutine<'py>(coro: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let exc = not_a_coroutine_error(coro, "")?;
    crate::errors::set_implicit_context(&exc);
    Ok(exc)
}

/// `NotACoroutineError("<coro> is not a coroutine<more>")`, of the class
/// `twisted.internet.defer` holds.
fn not_a_coroutine_error<'py>(coro: &Bound<'py, PyAny>, more: &str) -> PyResult<Bound<'py, PyAny>> {
    let cls = NOT_A_COROUTINE.import(coro.py(), "twisted.internet.defer", "NotACoroutineError")?;
    cls.call1((format!("{} is not a coroutine{more}", coro.repr()?),))
}

static NOT_A_COROUTINE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Schedule the execution of a coroutine that awaits/yields from Deferreds, wrapping
/// it in a Deferred that will fire on success/failure of the coroutine.
///
/// A Deferred (txdefer's or Twisted's) is returned as it is.  Coroutine functions can
/// therefore be used wherever Deferred-returning functions are expected:
/// `ensureDeferred(main())`.  Raises `NotACoroutineError` for anything else.
#[pyfunction]
#[pyo3(name = "ensureDeferred")]
pub fn ensure_deferred<'py>(coro: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if runner::is_deferred(&coro) {
        return Ok(coro);
    }
    if is_coroutine_or_generator(&coro)? {
        return cancellable_inline_callbacks(coro);
    }
    // It's not a coroutine.  Say that it's also not a Deferred, raised (as Twisted
    // does) while handling `fromCoroutine`'s error, which becomes its `__context__`.
    let inner = not_a_coroutine(&coro)?;
    let exc = not_a_coroutine_error(&coro, " or a Deferred")?;
    crate::errors::set_context(&exc, inner);
    Err(PyErr::from_value(exc))
}
