//! `put` and `get` of `DeferredQueue`, compiled.
//!
//! The public class (in `txdefer/_defer.py`) derives from this base; its steps are
//! Twisted's, in Twisted's order, on attributes kept in `Slots` (see `slots.rs`).
//! The canceller of a waiting get is `self._cancelGet`, looked up on the instance
//! as Twisted does.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyTuple};

use crate::deferred::succeed;
use crate::slots::{append, hand_to_first_waiter, names, new_waiter, nonempty, pop_first, Attr, Slots, WAITING};

pyo3::import_exception!(twisted.internet.defer, QueueOverflow);
pyo3::import_exception!(twisted.internet.defer, QueueUnderflow);

/// `DeferredQueue`'s attributes after `waiting`.
const PENDING: Attr = Attr { index: 1, name: "pending" };
const SIZE: Attr = Attr { index: 2, name: "size" };
const BACKLOG: Attr = Attr { index: 3, name: "backlog" };

/// `limit is None or len(items) < limit`.
fn below(items: &Bound<'_, PyAny>, limit: &Bound<'_, PyAny>) -> PyResult<bool> {
    if limit.is_none() {
        return Ok(true);
    }
    PyInt::new(items.py(), items.len()?).lt(limit)
}

/// The compiled base of `txdefer.DeferredQueue`.
#[pyclass(module = "txdefer._core", name = "QueueBase", extends = Slots, subclass, frozen)]
pub struct QueueBase;

#[pymethods]
impl QueueBase {
    /// The attributes kept in `Slots`, by slot index.
    #[classattr]
    const FIELDS: [&'static str; 4] = names([WAITING, PENDING, SIZE, BACKLOG]);

    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> PyClassInitializer<Self> {
        PyClassInitializer::from(Slots::default()).add_subclass(Self)
    }

    /// Add an object to this queue: the oldest waiting get, if any, fires with it;
    /// otherwise it joins `pending`.  `QueueOverflow` if `pending` already holds
    /// `size` objects.
    fn put(slf: &Bound<'_, Self>, obj: Bound<'_, PyAny>) -> PyResult<()> {
        let slots = slf.as_super().get();
        let any = slf.as_any();
        if hand_to_first_waiter(&slots.require(any, WAITING)?, &obj, || Ok(()))? {
            return Ok(());
        }
        let pending = slots.require(any, PENDING)?;
        if below(&pending, &slots.require(any, SIZE)?)? {
            return append(&pending, &obj);
        }
        Err(QueueOverflow::new_err(()))
    }

    /// Retrieve and remove an object from the queue: a Deferred already fired with
    /// the oldest pending object, or one that fires when an object is put.
    /// `QueueUnderflow` if `backlog` gets are already waiting.  Cancelling a
    /// waiting get removes it from `waiting`.
    fn get<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let slots = slf.as_super().get();
        let any = slf.as_any();
        let pending = slots.require(any, PENDING)?;
        if nonempty(&pending)? {
            return Ok(succeed(py, pop_first(&pending)?)?.into_any());
        }
        let waiting = slots.require(any, WAITING)?;
        if below(&waiting, &slots.require(any, BACKLOG)?)? {
            return new_waiter(any, &waiting, intern!(py, "_cancelGet"));
        }
        Err(QueueUnderflow::new_err(()))
    }
}
