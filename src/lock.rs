//! `acquire` and `release` of `DeferredLock` and `DeferredSemaphore`, compiled.
//!
//! The public classes (in `txdefer/_defer.py`) derive from these bases and from
//! `_ConcurrencyPrimitive`, which keeps `run`, `__aenter__` and `__aexit__` in
//! Python.  The steps are Twisted's, in Twisted's order; the attributes they use
//! live in `Slots` (see `slots.rs`).  The canceller of a waiting acquire is
//! `self._cancelAcquire`, looked up on the instance as Twisted does, so a subclass
//! may override it.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyTuple, PyType};
use pyo3::intern;

use crate::construct::{made_alone, new_public_fired_alone};
use crate::slots::{
    append, assertion, asserts_enabled, fire, hand_to_first_waiter, names, new_cancellable,
    new_waiter, Attr, Slots, WAITING,
};

/// `DeferredLock`'s attribute after `waiting`; `DeferredSemaphore`'s two.
const LOCKED: Attr = Attr { index: 1, name: "locked" };
const TOKENS: Attr = Attr { index: 1, name: "tokens" };
const LIMIT: Attr = Attr { index: 2, name: "limit" };

/// A waiting acquire: `Deferred(canceller=self._cancelAcquire)`, appended to
/// `self.waiting`.
fn wait<'py>(slf: &Bound<'py, PyAny>, slots: &Slots) -> PyResult<Bound<'py, PyAny>> {
    new_waiter(slf, &slots.require(slf, WAITING)?, intern!(slf.py(), "_cancelAcquire"))
}

/// A free acquire: what Twisted's `Deferred(self._cancelAcquire)` then
/// `d.callback(self)` leave (firing drops the canceller), made in one step.  Only
/// where `made_alone` gave the class: `Deferred()` does nothing a program can see.
fn acquired<'py>(cls: &Bound<'py, PyType>, slf: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    Ok(new_public_fired_alone(cls, slf.clone())?.into_any())
}

/// Twisted's `acquire` of a free lock or token, step by step, for when making a
/// Deferred is observable:
/// debug mode (`Deferred()` records the creator's stack, `d.callback(self)` the
/// invoker's) or a replaced `Deferred.__init__` (which is given the canceller).
/// `Deferred(canceller=self._cancelAcquire)`; then `take()` takes the lock or a
/// token, and the Deferred fires with `slf`, or, if there was none to take, it is
/// appended to `waiting`.
fn acquire_in_steps<'py>(
    slf: &Bound<'py, PyAny>,
    slots: &Slots,
    take: impl FnOnce() -> PyResult<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    let d = new_cancellable(slf, intern!(slf.py(), "_cancelAcquire"))?;
    if take()? {
        fire(&d, slf.clone())?;
    } else {
        append(&slots.require(slf, WAITING)?, &d)?;
    }
    Ok(d)
}

/// The end of a release: the first waiter, if any, gets the primitive, after
/// `claim` has taken the lock or token back for it.
fn release_to_first_waiter(
    slf: &Bound<'_, PyAny>,
    slots: &Slots,
    claim: impl FnOnce() -> PyResult<()>,
) -> PyResult<()> {
    hand_to_first_waiter(&slots.require(slf, WAITING)?, slf, claim).map(drop)
}

/// The compiled base of `txdefer.DeferredLock`.
#[pyclass(module = "txdefer._core", name = "LockBase", extends = Slots, subclass, frozen)]
pub struct LockBase;

#[pymethods]
impl LockBase {
    /// The attributes kept in `Slots`, by slot index.
    #[classattr]
    const FIELDS: [&'static str; 2] = names([WAITING, LOCKED]);

    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> PyClassInitializer<Self> {
        PyClassInitializer::from(Slots::default()).add_subclass(Self)
    }

    /// Attempt to acquire the lock.  Returns a Deferred that fires with this lock
    /// once it is acquired: at once (already fired) if the lock is free, otherwise
    /// when the waiters before it have released it.  Cancelling a waiting acquire
    /// removes it from `waiting`.
    fn acquire<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let slots = slf.as_super().get();
        let any = slf.as_any();
        if is_locked(any, slots)? {
            return wait(any, slots);
        }
        let Some(cls) = made_alone(py)? else {
            return acquire_in_steps(any, slots, || {
                // Read again: making the Deferred may have run a program's code.
                if is_locked(any, slots)? {
                    return Ok(false);
                }
                slots.set(LOCKED.index, Some(flag(py, true)))?;
                Ok(true)
            });
        };
        slots.set(LOCKED.index, Some(flag(py, true)))?;
        acquired(cls, any)
    }

    /// Release the lock.  The first Deferred waiting, if any, fires with the lock,
    /// which stays locked for it.  `AssertionError` if the lock is not locked.
    fn release(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let slots = slf.as_super().get();
        let any = slf.as_any();
        if asserts_enabled(py)? && !is_locked(any, slots)? {
            return Err(assertion("Tried to release an unlocked lock"));
        }
        slots.set(LOCKED.index, Some(flag(py, false)))?;
        release_to_first_waiter(any, slots, || slots.set(LOCKED.index, Some(flag(py, true))))
    }
}

/// `True` or `False`.
fn flag(py: Python<'_>, value: bool) -> Py<PyAny> {
    PyBool::new(py, value).to_owned().into_any().unbind()
}

/// `bool(self.locked)`, the class default (`False`) while unset.
fn is_locked(slf: &Bound<'_, PyAny>, slots: &Slots) -> PyResult<bool> {
    match slots.get(slf.py(), LOCKED.index)? {
        Some(l) => l.bind(slf.py()).is_truthy(),
        None => Ok(false),
    }
}

/// The compiled base of `txdefer.DeferredSemaphore`.
#[pyclass(module = "txdefer._core", name = "SemaphoreBase", extends = Slots, subclass, frozen)]
pub struct SemaphoreBase;

#[pymethods]
impl SemaphoreBase {
    /// The attributes kept in `Slots`, by slot index.
    #[classattr]
    const FIELDS: [&'static str; 3] = names([WAITING, TOKENS, LIMIT]);

    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> PyClassInitializer<Self> {
        PyClassInitializer::from(Slots::default()).add_subclass(Self)
    }

    /// Attempt to acquire a token.  Returns a Deferred that fires with this
    /// semaphore once a token is acquired: at once if one is free, otherwise when
    /// one is released to it.  Cancelling a waiting acquire removes it from
    /// `waiting`.
    fn acquire<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let slots = slf.as_super().get();
        let any = slf.as_any();
        let tokens = slots.require(any, TOKENS)?;
        if asserts_enabled(py)? && !tokens.ge(0)? {
            return Err(assertion("Internal inconsistency??  tokens should never be negative"));
        }
        if !tokens.is_truthy()? {
            return wait(any, slots);
        }
        let Some(cls) = made_alone(py)? else {
            return acquire_in_steps(any, slots, || {
                // Read again: making the Deferred may have run a program's code.
                let tokens = slots.require(any, TOKENS)?;
                if !tokens.is_truthy()? {
                    return Ok(false);
                }
                slots.set(TOKENS.index, Some(tokens.sub(1)?.unbind()))?;
                Ok(true)
            });
        };
        slots.set(TOKENS.index, Some(tokens.sub(1)?.unbind()))?;
        acquired(cls, any)
    }

    /// Release a token.  The first Deferred waiting, if any, fires with the
    /// semaphore, taking the token.  `AssertionError` if every token is already
    /// free.
    fn release(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let slots = slf.as_super().get();
        let any = slf.as_any();
        let tokens = slots.require(any, TOKENS)?;
        if asserts_enabled(py)? && !tokens.lt(slots.require(any, LIMIT)?)? {
            return Err(assertion("Someone released me too many times: too many tokens!"));
        }
        slots.set(TOKENS.index, Some(tokens.add(1)?.unbind()))?;
        release_to_first_waiter(any, slots, || {
            let tokens = slots.require(any, TOKENS)?.sub(1)?;
            slots.set(TOKENS.index, Some(tokens.unbind()))
        })
    }
}
