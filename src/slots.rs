//! Instance attributes kept in Rust, for `DeferredLock`, `DeferredSemaphore` and
//! `DeferredQueue`.
//!
//! Twisted's classes keep `waiting`, `locked`, `tokens`, `limit`, `pending`, `size`
//! and `backlog` as plain instance attributes.  Here they live in a `Slots` base
//! class, so that the compiled `acquire`/`release`/`get`/`put` read and write them
//! without an attribute lookup.  Python sees them through `Field` descriptors on the
//! public classes: read, assigned and deleted as instance attributes are, holding
//! any object, with a class-level default where Twisted's class has one
//! (`DeferredLock.locked` is `False`).
//!
//! Like a Deferred's state, the slots sit behind a lock that is only ever held for
//! Python-free sections: values are cloned out before any Python code can run.

use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::gil_lock::GilLock;
use crate::deferred::{is_exact_public, start_run, Deferred};
use crate::errors::InternalError;

/// How many attributes a primitive keeps in Rust (`DeferredQueue` has the most).
const COUNT: usize = 4;

/// One attribute kept in `Slots`: its slot and its Python name.
#[derive(Clone, Copy)]
pub struct Attr {
    pub index: usize,
    pub name: &'static str,
}

/// `waiting`, the first attribute of every primitive.
pub const WAITING: Attr = Attr { index: 0, name: "waiting" };

/// The names of `attrs`, which must be listed in slot order (checked when
/// compiling): a primitive's `FIELDS`, from which `txdefer/_defer.py` makes its
/// descriptors.
pub const fn names<const N: usize>(attrs: [Attr; N]) -> [&'static str; N] {
    let mut names = [""; N];
    let mut i = 0;
    while i < N {
        assert!(attrs[i].index == i, "attributes must be listed in slot order");
        names[i] = attrs[i].name;
        i += 1;
    }
    names
}

/// The compiled base of the concurrency primitives: their attributes, by index.
#[pyclass(module = "txdefer._core", name = "Slots", subclass, frozen)]
#[derive(Default)]
pub struct Slots {
    values: GilLock<[Option<Py<PyAny>>; COUNT]>,
}

impl Slots {
    /// The attribute at `index`, `None` while it is unset.
    pub fn get(&self, py: Python<'_>, index: usize) -> PyResult<Option<Py<PyAny>>> {
        let values = self.values.try_lock().ok_or(InternalError::Busy)?;
        Ok(values[index].as_ref().map(|v| v.clone_ref(py)))
    }

    /// Set (or, with `None`, unset) the attribute at `index`.  The old value is
    /// dropped after the lock is released.
    pub fn set(&self, index: usize, value: Option<Py<PyAny>>) -> PyResult<()> {
        let old = {
            let mut values = self.values.try_lock().ok_or(InternalError::Busy)?;
            std::mem::replace(&mut values[index], value)
        };
        drop(old);
        Ok(())
    }

    /// `obj.<attr>`, or `AttributeError` worded as Python words it.
    pub fn require<'py>(&self, obj: &Bound<'py, PyAny>, attr: Attr) -> PyResult<Bound<'py, PyAny>> {
        match self.get(obj.py(), attr.index)? {
            Some(v) => Ok(v.into_bound(obj.py())),
            None => Err(crate::errors::no_attribute(obj, attr.name)),
        }
    }
}

#[pymethods]
impl Slots {
    /// Every attribute starts unset; the Python `__init__` assigns them.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self::default()
    }

    /// `{name: value}` of the attributes that are set; `names[i]` names slot `i`.
    /// For `__getstate__`.
    fn _slot_items<'py>(&self, py: Python<'py>, names: Vec<String>) -> PyResult<Bound<'py, PyDict>> {
        let items = PyDict::new(py);
        for (index, name) in names.iter().enumerate().take(COUNT) {
            if let Some(value) = self.get(py, index)? {
                items.set_item(name, value)?;
            }
        }
        Ok(items)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never blocks: no Python code runs while the slots are locked.
        let Some(values) = self.values.try_lock() else {
            return Ok(());
        };
        for value in values.iter() {
            visit.call(value)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let taken = self.values.try_lock().map(|mut values| std::mem::take(&mut *values));
        drop(taken);
    }
}

/// One attribute of a primitive, as a data descriptor on its public class.
///
/// `Field(name, index)` has no class-level value (reading it on the class raises
/// `AttributeError`, as for an attribute Twisted only sets in `__init__`);
/// `Field(name, index, default)` reads as `default` on the class and on an instance
/// where it is unset, as a class attribute does.
#[pyclass(module = "txdefer._core", name = "Field", frozen)]
pub struct Field {
    name: String,
    index: usize,
    default: Option<Py<PyAny>>,
}

#[pymethods]
impl Field {
    #[new]
    #[pyo3(signature = (name, index, *default))]
    fn new(name: String, index: usize, default: &Bound<'_, PyTuple>) -> PyResult<Self> {
        if index >= COUNT || default.len() > 1 {
            return Err(pyo3::exceptions::PyValueError::new_err("Field(name, index[, default])"));
        }
        let default = default.iter().next().map(Bound::unbind);
        Ok(Self { name, index, default })
    }

    fn __get__(
        &self,
        py: Python<'_>,
        obj: Option<&Bound<'_, PyAny>>,
        owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let Some(obj) = obj.filter(|o| !o.is_none()) else {
            if let Some(default) = &self.default {
                return Ok(default.clone_ref(py));
            }
            let owner = owner
                .and_then(|o| o.getattr(intern!(py, "__name__")).ok())
                .map_or_else(|| "?".to_owned(), |n| n.to_string());
            return Err(PyAttributeError::new_err(format!(
                "type object '{owner}' has no attribute '{}'",
                self.name
            )));
        };
        let slots = obj.cast::<Slots>()?;
        match slots.get().get(py, self.index)? {
            Some(v) => Ok(v),
            None => match &self.default {
                Some(default) => Ok(default.clone_ref(py)),
                None => Err(crate::errors::no_attribute(obj, &self.name)),
            },
        }
    }

    fn __set__(&self, obj: &Bound<'_, PyAny>, value: Bound<'_, PyAny>) -> PyResult<()> {
        obj.cast::<Slots>()?.get().set(self.index, Some(value.unbind()))
    }

    fn __delete__(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let slots = obj.cast::<Slots>()?;
        if slots.get().get(obj.py(), self.index)?.is_none() {
            return Err(crate::errors::nothing_to_delete(obj, &self.name));
        }
        slots.get().set(self.index, None)
    }
}

/// `bool(items)`: a list's length read directly.
#[inline]
pub fn nonempty(items: &Bound<'_, PyAny>) -> PyResult<bool> {
    match items.cast_exact::<PyList>() {
        Ok(list) => Ok(!list.is_empty()),
        Err(_) => items.is_truthy(),
    }
}

/// `items.append(item)`.
pub fn append(items: &Bound<'_, PyAny>, item: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Ok(list) = items.cast_exact::<PyList>() {
        return list.append(item);
    }
    items.call_method1(intern!(items.py(), "append"), (item,)).map(drop)
}

/// `items.pop(0)`.
pub fn pop_first<'py>(items: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(list) = items.cast_exact::<PyList>() {
        if !list.is_empty() {
            let first = list.get_item(0)?;
            list.del_item(0)?;
            return Ok(first);
        }
    }
    items.call_method1(intern!(items.py(), "pop"), (0,))
}

/// `Deferred(canceller=getattr(slf, canceller))`, as the primitives make their
/// Deferreds (the canceller looked up on the instance, so a subclass may override it).
pub fn new_cancellable<'py>(
    slf: &Bound<'py, PyAny>,
    canceller: &Bound<'py, pyo3::types::PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    let canceller = slf.getattr(canceller)?;
    Ok(crate::construct::new_public(slf.py(), crate::construct::CancellerArg::Keyword(&canceller))?.into_any())
}

/// A request that must wait: `new_cancellable`, appended to `waiting`.
pub fn new_waiter<'py>(
    slf: &Bound<'py, PyAny>,
    waiting: &Bound<'py, PyAny>,
    canceller: &Bound<'py, pyo3::types::PyString>,
) -> PyResult<Bound<'py, PyAny>> {
    let d = new_cancellable(slf, canceller)?;
    append(waiting, &d)?;
    Ok(d)
}

/// If anyone waits (`waiting` is true): `claim()` (the lock or token taken back for
/// the first waiter), then `waiting.pop(0).callback(value)`.  Whether anyone did.
pub fn hand_to_first_waiter(
    waiting: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    claim: impl FnOnce() -> PyResult<()>,
) -> PyResult<bool> {
    if !nonempty(waiting)? {
        return Ok(false);
    }
    claim()?;
    fire(&pop_first(waiting)?, value.clone())?;
    Ok(true)
}

/// `d.callback(result)`: directly for a `txdefer.Deferred`, by name for anything
/// else (a subclass may override `callback`).
pub fn fire(d: &Bound<'_, PyAny>, result: Bound<'_, PyAny>) -> PyResult<()> {
    if is_exact_public(d) {
        return start_run(d.cast::<Deferred>()?, result);
    }
    d.call_method1(intern!(d.py(), "callback"), (result,)).map(drop)
}

static ASSERTS: PyOnceLock<bool> = PyOnceLock::new();

/// Whether `assert` statements run (not `python -O`): Twisted's checks in `release`
/// and `acquire` are `assert`s and vanish under `-O`; so do these.
pub fn asserts_enabled(py: Python<'_>) -> PyResult<bool> {
    ASSERTS
        .get_or_try_init(py, || {
            let optimize: i64 = py
                .import("sys")?
                .getattr("flags")?
                .getattr("optimize")?
                .extract()?;
            Ok::<_, PyErr>(optimize == 0)
        })
        .copied()
}

/// `AssertionError(message)`.
pub fn assertion(message: &'static str) -> PyErr {
    pyo3::exceptions::PyAssertionError::new_err(message)
}
