//! Running a Deferred's callback chain: Twisted's `_runCallbacks`, iteratively.
//!
//! Twisted keeps a stack of Deferreds whose results are being propagated up a chain of
//! returned Deferreds, so that a million-deep chain never recurses.  This loop keeps
//! the same stack, as frames, and adds one more kind of frame for
//! `chainDeferred(target)`: where Twisted recurses into `target.callback(result)`
//! (and runs out of stack about a thousand links deep), this loop pushes `target` as
//! a frame that behaves like that nested call: a paused Deferred above it abandons the
//! frames up to it, and the Deferred below it counts as running its callbacks until it
//! returns.  The order in which callbacks run is Twisted's in every case.

use pyo3::prelude::*;
use pyo3::intern;

use crate::callback_view::Resume;
use crate::callbacks::{Entry, Step};
use crate::deferred::{debug_enabled, debug_enabled_deferred, ensure_debug_info, Deferred, State};
use smallvec::SmallVec;
use crate::imports::{self, ResultKind};

const SELF_RETURN_WARNING: &str = "Callback returned the Deferred it was attached to; this breaks \
     the callback chain and will raise an exception in the future.";

/// Is `obj` a Deferred (txdefer's, or Twisted's pure-Python one)?  C-level checks only.
pub fn is_deferred(obj: &Bound<'_, PyAny>) -> bool {
    imports::classify(obj).is_ok_and(ResultKind::is_deferred)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The Deferred `_runCallbacks` was called on.
    Root,
    /// A Deferred that was waiting on the one below it and has just been handed its
    /// result.
    Continue,
    /// The target of a `chainDeferred`, fired by the Deferred below it: stands for
    /// Twisted's nested `target.callback(result)` call.
    Call,
}

struct Frame {
    d: Py<Deferred>,
    kind: Kind,
    /// Set when a `Call` frame above this one has returned: carry on with the next
    /// callback, as Twisted's loop does after `target.callback(...)` returns.
    resume: bool,
}

/// The next entry to run, with the result to run it on; `None` once there is none.
type Next = Option<(Entry, Py<PyAny>)>;

/// Pop the next entry of `st` into `next` (which must be `None`), flagging the
/// Deferred as running a user callback if the entry calls one (cleared when its
/// result is stored).  When there is none, `has_info` tells whether a `DebugInfo`
/// exists.  Written in place: the caller reads the entry where it is.
#[inline(always)]
fn pop_next(py: Python<'_>, st: &mut State, has_info: &mut bool, next: &mut Next) {
    match st.callbacks.pop_front() {
        Some(entry) => {
            st.running = entry.calls_user_code();
            let result = st.result.as_ref().map_or_else(|| py.None(), |r| r.clone_ref(py));
            *next = Some((entry, result));
        }
        None => {
            *has_info = st.debug_info.is_some();
        }
    }
}

/// `pop_next`, taking the lock; what `next` held before is dropped.
fn pop_next_locked(py: Python<'_>, d: &Bound<'_, Deferred>, has_info: &mut bool, next: &mut Next) -> PyResult<()> {
    let done = next.take();
    {
        let mut st = d.get().lock()?;
        pop_next(py, &mut st, has_info, next);
    }
    drop(done);
    Ok(())
}

/// Run the callbacks of `start` (Twisted's `Deferred._runCallbacks`).
///
/// `start` is the bottom frame of the emulated stack.  Its callbacks run here
/// directly; the stack of frames is only built when one of them needs another
/// Deferred's chain to run first (a returned Deferred that was waiting, or a
/// `chainDeferred` target).
pub fn run_callbacks(start: &Bound<'_, Deferred>) -> PyResult<()> {
    run_callbacks_from(start, false)
}

/// `run_callbacks`; with `resumed`, as Twisted's inner loop goes on after a callback
/// (no check of `paused`, `_chainedTo` left as it is).
#[inline(always)]
fn run_callbacks_from(start: &Bound<'_, Deferred>, resumed: bool) -> PyResult<()> {
    let py = start.py();
    match run_frame(py, start, start, true, resumed) {
        Ok(Ran::Finished { has_info, result_kind }) => finish_frame(py, start, has_info, result_kind),
        // Running its callbacks already, or paused: nothing to do now.
        Ok(Ran::Running | Ran::Paused) => Ok(()),
        Ok(Ran::Push(frame)) => {
            let mut stack: SmallVec<[Frame; 4]> = SmallVec::new();
            stack.push(Frame {
                d: start.clone().unbind(),
                kind: Kind::Root,
                resume: false,
            });
            stack.push(frame);
            run_frames(py, start, &mut stack)
        }
        Err(err) => {
            // An error escaped: `start` is not running its callbacks any more.
            if let Ok(mut st) = start.get().lock() {
                st.running = false;
            }
            Err(err)
        }
    }
}

/// `addCallback(f, *args)` or `addBoth(f, *args)` (up to three extra arguments) on a
/// Deferred with nothing to do but run it: fired with a plain result (neither a
/// Deferred nor a `Failure`), not paused, not running its callbacks, none waiting, no
/// `DebugInfo`.  Twisted appends the entry and its loop runs it at once; here
/// `f(result, *args)` is called directly, without making the entry (no tuple of the
/// arguments, nothing queued and taken back), with what Twisted's loop does around
/// the call: `_chainedTo` cleared, `_runningCallbacks` set during it, the result
/// replaced by what it returned (or the `Failure` of what it raised), the warning if
/// it returned `d` itself, then whatever that calls for, as the loop goes on after a
/// callback (callbacks added meanwhile, a returned Deferred to chain on, the record of
/// a failure).  `None`, with nothing done, when `d` is not in that state.
#[cfg_attr(any(Py_LIMITED_API, PyPy, GraalPy), allow(dead_code))]
pub fn call_settled<'py>(d: &Bound<'py, Deferred>, positional: &[Borrowed<'_, 'py, PyAny>]) -> Option<PyResult<()>> {
    let py = d.py();
    let (f, extra) = positional.split_first()?;
    if extra.len() > 3 {
        return None;
    }
    let (result, old_chained) = {
        let mut st = d.get().lock().ok()?;
        if !(st.called && st.settles_at_once()) {
            return None;
        }
        // `known_plain` runs no Python code: it only compares types.
        let result = st.result.as_ref().filter(|r| imports::known_plain(r.bind(py)))?.clone_ref(py);
        st.running = true;
        (result.into_bound(py), st.chained_to.take())
    };
    drop(old_chained);
    let returned = match extra {
        [] => f.call1((&result,)),
        [a] => f.call1((&result, &**a)),
        [a, b] => f.call1((&result, &**a, &**b)),
        [a, b, c, ..] => f.call1((&result, &**a, &**b, &**c)),
    };
    drop(result);
    let outcome = settle_call(py, d, returned, f);
    if outcome.is_err() {
        // An error escaped: `d` is not running its callbacks any more.
        if let Ok(mut st) = d.get().lock() {
            st.running = false;
        }
    }
    Some(outcome)
}

/// After `call_settled`'s call of `f`: what `run_frame` does after a callback returned.
#[cfg_attr(any(Py_LIMITED_API, PyPy, GraalPy), allow(dead_code))]
fn settle_call<'py>(
    py: Python<'py>,
    d: &Bound<'py, Deferred>,
    mut returned: PyResult<Bound<'py, PyAny>>,
    f: &Bound<'py, PyAny>,
) -> PyResult<()> {
    warn_if_self(d, &mut returned, || Ok(f.clone()));
    // The common case: a plain value, and nothing added meanwhile.
    if let Ok(value) = &returned {
        if imports::known_plain(value) {
            let (old, done) = {
                let mut st = d.get().lock()?;
                st.running = false;
                let done = st.callbacks.is_empty() && st.debug_info.is_none();
                (st.result.replace(value.clone().unbind()), done)
            };
            drop(old);
            return if done { Ok(()) } else { run_callbacks_from(d, true) };
        }
    }
    let (new_result, new_kind) = match returned {
        Ok(value) => {
            let kind = imports::classify(&value)?;
            (value, kind)
        }
        Err(err) => {
            let value = make_failure(py, d, err)?;
            let kind = imports::classify(&value)?;
            (value, kind)
        }
    };
    let old = {
        let mut st = d.get().lock()?;
        st.running = false;
        st.result.replace(new_result.clone().unbind())
    };
    drop(old);
    if new_kind.is_deferred() && chain_on(py, d, &new_result)? {
        let has_info = d.get().lock()?.debug_info.is_some();
        return finish_frame(py, d, has_info, None);
    }
    run_callbacks_from(d, true)
}

/// Run the emulated stack of frames to the end; `stack[0]` is `start`'s frame.
#[inline(never)]
fn run_frames(py: Python<'_>, start: &Bound<'_, Deferred>, stack: &mut SmallVec<[Frame; 4]>) -> PyResult<()> {
    let outcome = run_stack(py, start, stack);
    if outcome.is_err() {
        // An error escaped: nothing on the stack is running its callbacks any more.
        if let Some(top) = stack.last() {
            if let Ok(mut st) = top.d.get().lock() {
                st.running = false;
            }
        }
        for pair in stack.windows(2) {
            if pair[1].kind == Kind::Call {
                if let Ok(mut st) = pair[0].d.get().lock() {
                    st.running = false;
                }
            }
        }
    }
    for frame in stack.drain(..) {
        frame.d.drop_ref(py);
    }
    outcome
}

/// How a frame's run of callbacks ended.
enum Ran {
    /// No callback is left to run now (none is left, or the Deferred now waits on
    /// another): the frame is done.  `result_kind` is the result's kind when known.
    Finished {
        has_info: bool,
        result_kind: Option<ResultKind>,
    },
    /// Another Deferred's chain must run before this frame carries on: this frame
    /// stays on the stack, under the new one.
    Push(Frame),
    /// The bottom Deferred is running its callbacks already: don't recursively run
    /// them.
    Running,
    /// The Deferred is paused: it isn't going to produce a result now.
    Paused,
}

fn run_stack(py: Python<'_>, start: &Bound<'_, Deferred>, stack: &mut SmallVec<[Frame; 4]>) -> PyResult<()> {
    while let Some(top) = stack.last_mut() {
        let current = top.d.bind(py).clone();
        let resumed = std::mem::replace(&mut top.resume, false);
        // The Root frame only ever sits at the bottom of the stack.
        let is_root = top.kind == Kind::Root;
        match run_frame(py, start, &current, is_root, resumed)? {
            Ran::Running => return Ok(()),
            Ran::Paused => {
                // Everything up to the nearest nested call waits with it.
                unwind_to_call(py, stack)?;
            }
            Ran::Push(frame) => stack.push(frame),
            Ran::Finished { has_info, result_kind } => {
                finish_frame(py, &current, has_info, result_kind)?;
                if let Some(frame) = stack.pop() {
                    let was_call = frame.kind == Kind::Call;
                    frame.d.drop_ref(py);
                    if was_call {
                        returned_from_call(py, stack)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Twisted's end of a frame: as much of the chain as can run now has run.  Keep the
/// `DebugInfo`'s record of an unhandled failure in step with the result (when the
/// result may be a failure or there is a `DebugInfo`).
#[inline(always)]
fn finish_frame(
    py: Python<'_>,
    current: &Bound<'_, Deferred>,
    has_info: bool,
    result_kind: Option<ResultKind>,
) -> PyResult<()> {
    let maybe_failed = result_kind.map_or(true, |k| k == ResultKind::Failure);
    if maybe_failed || has_info {
        update_debug_info(py, current)?;
    }
    Ok(())
}

/// One frame of Twisted's loop for `current`: the checks at its start, then its
/// callbacks, in Twisted's inner loop, until none is left, `current` waits on another
/// Deferred, or another Deferred's chain must run first.  `check_running` for the
/// bottom frame; `resumed` for a frame going on after a nested call returned (no
/// checks, and `_chainedTo` left as it is: Twisted is still inside its inner loop).
///
/// The entry to run next is a local of this one function from the moment it is
/// popped: handed between functions, the 32-byte value was copied through the stack
/// several times per callback, each copy waiting for the one before.
fn run_frame(
    py: Python<'_>,
    start: &Bound<'_, Deferred>,
    current: &Bound<'_, Deferred>,
    check_running: bool,
    resumed: bool,
) -> PyResult<Ran> {
    let mut has_info = false;
    let mut next: Next = None;
    let old_chained = {
        let mut st = current.get().lock()?;
        if check_running && !resumed && st.running {
            return Ok(Ran::Running);
        }
        let old_chained = if resumed {
            None
        } else {
            if st.paused != 0 {
                return Ok(Ran::Paused);
            }
            st.chained_to.take()
        };
        pop_next(py, &mut st, &mut has_info, &mut next);
        old_chained
    };
    drop(old_chained);
    // What the current result is, when already known.
    let mut result_kind: Option<ResultKind> = None;
    loop {
        // Used where it is, not moved out: copying the entry just written by
        // `pop_next` stalls on the stores that wrote it.
        let Some((entry, result)) = &next else {
            return Ok(Ran::Finished { has_info, result_kind });
        };
        let result = result.bind(py).clone();
        let kind = match result_kind.take() {
            Some(known) => known,
            None => imports::classify(&result)?,
        };
        let is_fail = kind == ResultKind::Failure;
        match entry.step(is_fail) {
            step @ (Step::Call(_) | Step::Native(_) | Step::PassThrough) => {
                let passed_through = matches!(step, Step::PassThrough);
                let mut returned = match step {
                    Step::Call(call) => call.invoke(py, result),
                    Step::Native(native) => native.invoke(py, result),
                    // Twisted calls `passthru`/`_failthru`, which return the result
                    // unchanged.
                    _ => Ok(result),
                };
                // Twisted warns, naming the function it called, when that returned
                // the Deferred it is attached to.
                warn_if_self(current, &mut returned, || match step {
                    Step::Call(call) => Ok(call.func(py)),
                    Step::Native(native) => native.offender(py),
                    _ => {
                        let foreign = imports::foreign(py)?;
                        let offender = if is_fail { &foreign.twisted_failthru } else { &foreign.twisted_passthru };
                        Ok(offender.bind(py).clone())
                    }
                });
                let (new_result, new_kind) = match returned {
                    Ok(value) if passed_through => (value, kind),
                    Ok(value) => {
                        let new_kind = imports::classify(&value)?;
                        (value, new_kind)
                    }
                    Err(err) => {
                        let value = make_failure(py, start, err)?;
                        let new_kind = imports::classify(&value)?;
                        (value, new_kind)
                    }
                };
                let new_is_deferred = new_kind.is_deferred();
                let (old, done);
                {
                    let mut st = current.get().lock()?;
                    st.running = false;
                    old = st.result.replace(new_result.clone().unbind());
                    done = next.take();
                    if !new_is_deferred {
                        pop_next(py, &mut st, &mut has_info, &mut next);
                    }
                }
                if let Some(old) = old {
                    old.drop_ref(py);
                }
                if let Some((entry, result)) = done {
                    entry.release(py);
                    result.drop_ref(py);
                }
                if new_is_deferred {
                    if chain_on(py, current, &new_result)? {
                        let has_info = current.get().lock()?.debug_info.is_some();
                        return Ok(Ran::Finished { has_info, result_kind: None });
                    }
                    pop_next_locked(py, current, &mut has_info, &mut next)?;
                } else {
                    result_kind = Some(new_kind);
                }
            }
            Step::Continue(chainee) => {
                let chainee = chainee.bind(py).clone();
                hand_over(py, current, &chainee)?;
                return Ok(Ran::Push(Frame {
                    d: chainee.unbind(),
                    kind: Kind::Continue,
                    resume: false,
                }));
            }
            Step::ForeignContinue(waiting) => {
                // A pure-Python Twisted Deferred waits on this one: give it the
                // result and let its own loop carry on.
                let waiting = waiting.bind(py).clone();
                let value = take_result(py, current)?;
                waiting.setattr(intern!(py, "result"), value)?;
                waiting.call_method0(intern!(py, "unpause"))?;
                pop_next_locked(py, current, &mut has_info, &mut next)?;
            }
            Step::Chain(target) => {
                let target = target.bind(py).clone();
                if fire_chained(py, start, current, &target, result)? {
                    return Ok(Ran::Push(Frame {
                        d: target.unbind(),
                        kind: Kind::Call,
                        resume: false,
                    }));
                }
                pop_next_locked(py, current, &mut has_info, &mut next)?;
            }
        }
    }
}

/// Twisted's check after each callback: one that returned the Deferred it is attached
/// to gets a warning naming `offender` (the function Twisted would have called); a
/// warning turned into an error becomes the callback's error.  Checked in place, so
/// that the result is not moved on the common path.
#[inline(always)]
fn warn_if_self<'py>(
    current: &Bound<'py, Deferred>,
    returned: &mut PyResult<Bound<'py, PyAny>>,
    offender: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
) {
    if matches!(returned, Ok(value) if value.is(current)) {
        if let Err(err) = offender().and_then(|f| imports::warn_about_function(&f, SELF_RETURN_WARNING)) {
            *returned = Err(err);
        }
    }
}

/// Twisted returns from `_runCallbacks` when it meets a paused Deferred: drop the frames
/// of this (emulated) invocation, up to and including the nearest `Call` frame.
fn unwind_to_call(py: Python<'_>, stack: &mut SmallVec<[Frame; 4]>) -> PyResult<()> {
    while let Some(frame) = stack.pop() {
        if frame.kind == Kind::Call {
            return returned_from_call(py, stack);
        }
    }
    Ok(())
}

/// The nested `target.callback(...)` has returned to the Deferred below it, whose
/// result becomes what that call returned: `None`.
fn returned_from_call(py: Python<'_>, stack: &mut [Frame]) -> PyResult<()> {
    if let Some(below) = stack.last_mut() {
        let old = {
            let mut st = below.d.get().lock()?;
            st.running = false;
            st.result.replace(py.None())
        };
        drop(old);
        below.resume = true;
    }
    Ok(())
}

fn make_failure<'py>(
    py: Python<'py>,
    start: &Bound<'py, Deferred>,
    err: PyErr,
) -> PyResult<Bound<'py, PyAny>> {
    // Including full frame information in the Failure is expensive: only in debug mode.
    let capture = debug_enabled(start.as_any())?;
    imports::failure_from_err(py, err, capture)
}

/// Take `current`'s result for a Deferred waiting on it, leaving `None` behind.
fn take_result(py: Python<'_>, current: &Bound<'_, Deferred>) -> PyResult<Py<PyAny>> {
    let (value, info) = {
        let mut st = current.get().lock()?;
        (
            st.result.replace(py.None()),
            st.debug_info.as_ref().map(|i| i.clone_ref(py)),
        )
    };
    if let Some(info) = info {
        info.bind(py).setattr(intern!(py, "failResult"), py.None())?;
    }
    Ok(value.unwrap_or_else(|| py.None()))
}

/// Give `current`'s result to `chainee`, which was waiting on it.  In Twisted's
/// order: `chainee.result = current.result; current.result = None` (so a Deferred
/// chained to itself ends with `None`), then `chainee.paused -= 1`.
fn hand_over(py: Python<'_>, current: &Bound<'_, Deferred>, chainee: &Bound<'_, Deferred>) -> PyResult<()> {
    let (value, info) = {
        let st = current.get().lock()?;
        (
            st.result.as_ref().map_or_else(|| py.None(), |r| r.clone_ref(py)),
            st.debug_info.as_ref().map(|i| i.clone_ref(py)),
        )
    };
    let old_chainee = chainee.get().lock()?.result.replace(value);
    let old_current = current.get().lock()?.result.replace(py.None());
    drop(old_chainee);
    drop(old_current);
    if let Some(info) = info {
        info.bind(py).setattr(intern!(py, "failResult"), py.None())?;
    }
    chainee.get().lock()?.paused -= 1;
    Ok(())
}

/// `current`'s callback returned the Deferred `other`: take its result if it has one,
/// otherwise pause `current` until it has.  Returns true if `current` now waits.
fn chain_on(py: Python<'_>, current: &Bound<'_, Deferred>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
    if let Ok(other) = other.cast::<Deferred>() {
        let (their_result, their_paused) = {
            let st = other.get().lock()?;
            (st.result.as_ref().map(|r| r.clone_ref(py)), st.paused)
        };
        let must_wait = match &their_result {
            None => true,
            Some(r) => their_paused != 0 || is_deferred(r.bind(py)),
        };
        if must_wait {
            let old = {
                let mut st = current.get().lock()?;
                st.paused += 1;
                st.chained_to.replace(other.clone().into_any().unbind())
            };
            drop(old);
            other
                .get()
                .lock()?
                .callbacks
                .push_back(Entry::Continue(current.clone().unbind()));
            return Ok(true);
        }
        // It has a result: steal it and keep going.
        let value = take_result(py, other)?;
        let old = current.get().lock()?.result.replace(value);
        drop(old);
        drop(their_result);
        return Ok(false);
    }

    // A pure-Python Twisted Deferred.
    let their_result = other.getattr_opt(intern!(py, "result"))?;
    let must_wait = match &their_result {
        None => true,
        Some(r) => is_deferred(r) || other.getattr(intern!(py, "paused"))?.is_truthy()?,
    };
    if must_wait {
        let old = {
            let mut st = current.get().lock()?;
            st.paused += 1;
            st.chained_to.replace(other.clone().unbind())
        };
        drop(old);
        let resume = Bound::new(py, Resume::new(current.clone().unbind()))?;
        let triple = (resume, pyo3::types::PyTuple::empty(py), pyo3::types::PyDict::new(py));
        let triple = triple.into_pyobject(py)?;
        other
            .getattr(intern!(py, "_callbacks"))?
            .call_method1(intern!(py, "append"), ((triple.clone(), triple),))?;
        return Ok(true);
    }
    let value = their_result.map_or_else(|| py.None(), Bound::unbind);
    other.setattr(intern!(py, "result"), py.None())?;
    let info = other.getattr(intern!(py, "_debugInfo"))?;
    if !info.is_none() {
        info.setattr(intern!(py, "failResult"), py.None())?;
    }
    let old = current.get().lock()?.result.replace(value);
    drop(old);
    Ok(false)
}

/// `chainDeferred`: Twisted's `current.result = target.callback(current.result)`,
/// without the recursion.  Returns true if `target`'s chain must now run (as a `Call`
/// frame); `current`'s result has been replaced by what the call returned.
fn fire_chained(
    py: Python<'_>,
    start: &Bound<'_, Deferred>,
    current: &Bound<'_, Deferred>,
    target: &Bound<'_, Deferred>,
    result: Bound<'_, PyAny>,
) -> PyResult<bool> {
    current.get().lock()?.running = true;
    let fired = start_chained(py, target, result);
    // While `target`'s callbacks run, `current` keeps its result (Twisted is inside
    // `target.callback(current.result)`); it becomes `None` when that call returns
    // (`returned_from_call`), or now if there is nothing to run.
    let new_result = match fired {
        Ok(true) => {
            current.get().lock()?.running = true;
            return Ok(true);
        }
        Ok(false) => py.None(),
        Err(err) => make_failure(py, start, err)?.unbind(),
    };
    let old = {
        let mut st = current.get().lock()?;
        st.running = false;
        st.result.replace(new_result)
    };
    drop(old);
    Ok(false)
}

/// `_startRunCallbacks` on a chained target, up to (not including) running its
/// callbacks.  Returns whether its callbacks should run now.
fn start_chained(py: Python<'_>, target: &Bound<'_, Deferred>, result: Bound<'_, PyAny>) -> PyResult<bool> {
    {
        let mut st = target.get().lock()?;
        if st.called {
            if st.suppress_already_called {
                st.suppress_already_called = false;
                return Ok(false);
            }
            drop(st);
            // Let `callback` raise its AlreadyCalledError, with debug details.
            crate::deferred::start_run(target, result)?;
            return Ok(false);
        }
    }
    if debug_enabled_deferred(target)? {
        let info = ensure_debug_info(target)?;
        info.setattr(intern!(py, "invoker"), imports::format_stack(py)?)?;
    }
    let (old_canceller, old_result, running) = {
        let mut st = target.get().lock()?;
        st.called = true;
        (st.canceller.take(), st.result.replace(result.unbind()), st.running)
    };
    drop(old_canceller);
    drop(old_result);
    Ok(!running)
}

/// Keep the `DebugInfo`'s record of an unhandled failure in step with the result.
#[inline(never)]
fn update_debug_info(py: Python<'_>, current: &Bound<'_, Deferred>) -> PyResult<()> {
    let (result, info) = {
        let st = current.get().lock()?;
        (
            st.result.as_ref().map(|r| r.clone_ref(py)),
            st.debug_info.as_ref().map(|i| i.clone_ref(py)),
        )
    };
    let failed = match &result {
        Some(r) => imports::is_failure(r.bind(py))?,
        None => false,
    };
    if failed {
        let info = ensure_debug_info(current)?;
        info.setattr(intern!(py, "failResult"), result)?;
    } else if let Some(info) = info {
        info.bind(py).setattr(intern!(py, "failResult"), py.None())?;
    }
    Ok(())
}

/// The result of `d`, taken as a callback added now would take it (leaving `None`
/// behind), if `d` would run such a callback at once and return straight away: fired,
/// not paused, not running its callbacks, none left to run, and its result not a
/// Deferred.  `None` otherwise (the caller then adds a callback).  This is the
/// end state Twisted reaches by appending the callback and running the chain.
pub fn take_ready_result<'py>(d: &Bound<'py, Deferred>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = d.py();
    let ready = |st: &State| st.called && st.paused == 0 && !st.running && st.callbacks.is_empty();
    let current = {
        let st = d.get().lock()?;
        if !ready(&st) {
            return Ok(None);
        }
        match st.result.as_ref() {
            Some(r) => r.clone_ref(py).into_bound(py),
            None => return Ok(None),
        }
    };
    // Classified without the lock held (it may import on first use).
    if is_deferred(&current) {
        return Ok(None);
    }
    let (value, chained, info) = {
        let mut st = d.get().lock()?;
        if !ready(&st) || !st.result.as_ref().is_some_and(|r| r.is(&current)) {
            return Ok(None);
        }
        (
            st.result.replace(py.None()),
            st.chained_to.take(),
            st.debug_info.as_ref().map(|i| i.clone_ref(py)),
        )
    };
    drop(current);
    drop(chained);
    if let Some(info) = info {
        info.bind(py).setattr(intern!(py, "failResult"), py.None())?;
    }
    Ok(value.map(|v| v.into_bound(py)))
}
