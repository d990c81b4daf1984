//! The bookkeeping of `DeferredList` (and so of `gatherResults`), in Rust.
//!
//! Twisted adds the bound method `self._cbDeferred` to every member Deferred, with
//! `(index, SUCCESS)` / `(index, FAILURE)` argument tuples.  Here each member gets a
//! native chain entry naming the collector and the index: no Python call, no tuple,
//! no bound method per member.  The `DeferredList` itself (a Python subclass of
//! `Deferred`, as in Twisted) keeps its public attributes; `resultList` is the very
//! list the collector fills.

use pyo3::exceptions::PyAssertionError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyTuple, PyType};
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::gil_lock::{GilGuard, GilLock};
use crate::callbacks::{Entry, Native};
use crate::deferred::{self, Deferred};
use crate::errors::InternalError;
use crate::imports;

static FIRST_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

struct Flags {
    /// The `DeferredList`, until it has fired: then the reference is dropped, so
    /// that the list and its collector (which the list refers to) do not keep each
    /// other alive once the members no longer need them.
    list: Option<Py<PyAny>>,
    fire_on_one_callback: bool,
    fire_on_one_errback: bool,
    consume_errors: bool,
    finished: usize,
}

/// What a `DeferredList` needs to collect its members' results.
#[pyclass(module = "txdefer._core", name = "_ListCollector", frozen)]
pub struct Collector {
    /// The `resultList` of the `DeferredList`.
    results: Py<PyList>,
    flags: GilLock<Flags>,
}

impl Collector {
    fn lock(&self) -> Result<GilGuard<'_, Flags>, InternalError> {
        self.flags.try_lock().ok_or(InternalError::Busy)
    }

    /// What a member's callback chain shows for this collector: Twisted's
    /// `list._cbDeferred`, bound to the list (which calls back into the collector),
    /// or the collector itself once the list has let go of it.
    pub fn shown_callback<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let list = slf.get().lock()?.list.as_ref().map(|list| list.clone_ref(py));
        match list {
            Some(list) => list.bind(py).getattr(intern!(py, "_cbDeferred")),
            None => Ok(slf.clone().into_any()),
        }
    }
}

/// Twisted's `DeferredList._cbDeferred(result, index, succeeded)`.
pub fn member_fired<'py>(
    collector: &Bound<'py, Collector>,
    result: Bound<'py, PyAny>,
    index: usize,
    succeeded: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = collector.py();
    let me = collector.get();
    let pair = PyTuple::new(py, [succeeded.into_pyobject(py)?.to_owned().into_any(), result.clone()])?;
    me.results.bind(py).set_item(index, pair)?;
    let (list, finished, fire_cb, fire_eb, consume) = {
        let mut flags = me.lock()?;
        flags.finished += 1;
        (
            flags.list.as_ref().map(|l| l.clone_ref(py).into_bound(py)),
            flags.finished,
            flags.fire_on_one_callback,
            flags.fire_on_one_errback,
            flags.consume_errors,
        )
    };
    let list = match list {
        Some(l) if is_called(&l)? => {
            let old = me.lock()?.list.take();
            drop(old);
            None
        }
        other => other,
    };
    if let Some(list) = list {
        if succeeded && fire_cb {
            list.call_method1(
                intern!(py, "callback"),
                (PyTuple::new(py, [result.clone(), index.into_pyobject(py)?.into_any()])?,),
            )?;
        } else if !succeeded && fire_eb {
            if !imports::is_failure(&result)? {
                return Err(PyAssertionError::new_err(()));
            }
            let first = FIRST_ERROR
                .import(py, "twisted.internet.defer", "FirstError")?
                .call1((&result, index))?;
            let failure = imports::failure_of(&first)?;
            list.call_method1(intern!(py, "errback"), (failure,))?;
        } else if finished == me.results.bind(py).len() {
            list.call_method1(intern!(py, "callback"), (me.results.bind(py),))?;
        }
        if is_called(&list)? {
            let old = me.lock()?.list.take();
            drop(old);
        }
    }
    if !succeeded && consume {
        return Ok(py.None().into_bound(py));
    }
    Ok(result)
}

fn is_called(list: &Bound<'_, PyAny>) -> PyResult<bool> {
    match list.cast::<Deferred>() {
        Ok(d) => Ok(d.get().lock()?.called),
        Err(_) => list.getattr(intern!(list.py(), "called"))?.is_truthy(),
    }
}

#[pymethods]
impl Collector {
    /// `(result, index, succeeded)`: the callback Twisted adds to each member, for
    /// members whose chain is reached through Python.
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        result: Bound<'py, PyAny>,
        index: usize,
        succeeded: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        member_fired(slf, result, index, succeeded)
    }

    /// `finishedCount`
    #[getter(finishedCount)]
    fn get_finished(&self) -> PyResult<usize> {
        Ok(self.lock()?.finished)
    }

    #[setter(finishedCount)]
    fn set_finished(&self, value: usize) -> PyResult<()> {
        self.lock()?.finished = value;
        Ok(())
    }

    #[getter(fireOnOneCallback)]
    fn get_fire_on_one_callback(&self) -> PyResult<bool> {
        Ok(self.lock()?.fire_on_one_callback)
    }

    #[setter(fireOnOneCallback)]
    fn set_fire_on_one_callback(&self, value: Bound<'_, PyAny>) -> PyResult<()> {
        let value = value.is_truthy()?;
        self.lock()?.fire_on_one_callback = value;
        Ok(())
    }

    #[getter(fireOnOneErrback)]
    fn get_fire_on_one_errback(&self) -> PyResult<bool> {
        Ok(self.lock()?.fire_on_one_errback)
    }

    #[setter(fireOnOneErrback)]
    fn set_fire_on_one_errback(&self, value: Bound<'_, PyAny>) -> PyResult<()> {
        let value = value.is_truthy()?;
        self.lock()?.fire_on_one_errback = value;
        Ok(())
    }

    #[getter(consumeErrors)]
    fn get_consume_errors(&self) -> PyResult<bool> {
        Ok(self.lock()?.consume_errors)
    }

    #[setter(consumeErrors)]
    fn set_consume_errors(&self, value: Bound<'_, PyAny>) -> PyResult<()> {
        let value = value.is_truthy()?;
        self.lock()?.consume_errors = value;
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(flags) = self.flags.try_lock() {
            visit.call(&flags.list)?;
        }
        visit.call(&self.results)
    }

    fn __clear__(&self) {
        if let Some(mut flags) = self.flags.try_lock() {
            let old = flags.list.take();
            drop(flags);
            drop(old);
        }
    }
}

/// Twisted's `DeferredList.__init__`, in one native call from the Python class's
/// `__init__` (which gives the defaults), in Twisted's order: `_deferredList` is
/// `list(deferredList)`, `resultList` as many `None`s, `Deferred.__init__(self)`, an
/// empty list fires at once with `[]` (unless `fireOnOneCallback`), the three flags go
/// into the instance `__dict__` as given, then every member gets the list's callback
/// (`collect`).
#[pyfunction]
#[pyo3(name = "_start_list")]
pub fn start_list<'py>(
    list: &Bound<'py, Deferred>,
    deferred_list: &Bound<'py, PyAny>,
    fire_on_one_callback: &Bound<'py, PyAny>,
    fire_on_one_errback: &Bound<'py, PyAny>,
    consume_errors: &Bound<'py, PyAny>,
    via_python: bool,
) -> PyResult<()> {
    let py = list.py();
    let members = match deferred_list.cast_exact::<PyList>() {
        Ok(given) => given.get_slice(0, given.len()),
        Err(_) => PyList::new(py, deferred_list.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
    };
    let results = PyList::new(py, (0..members.len()).map(|_| py.None()))?;
    list.setattr(intern!(py, "_deferredList"), &members)?;
    list.setattr(intern!(py, "resultList"), &results)?;
    crate::construct::init_as_public(list)?;
    if members.is_empty() && !fire_on_one_callback.is_truthy()? {
        list.call_method1(intern!(py, "callback"), (PyList::empty(py),))?;
    }
    // As given, where Twisted keeps them; the class's descriptors (which read them
    // back) are bypassed, as they would look for the collector.
    let namespace = list.getattr(intern!(py, "__dict__"))?;
    namespace.set_item(intern!(py, "fireOnOneCallback"), fire_on_one_callback)?;
    namespace.set_item(intern!(py, "fireOnOneErrback"), fire_on_one_errback)?;
    namespace.set_item(intern!(py, "consumeErrors"), consume_errors)?;
    collect(
        list.clone().into_any(),
        members,
        results,
        fire_on_one_callback.is_truthy()?,
        fire_on_one_errback.is_truthy()?,
        consume_errors.is_truthy()?,
        via_python,
    )?;
    Ok(())
}

/// Start collecting: create the collector of `list` (a `DeferredList`) and add its
/// callback to every member, in order; members that have already fired are collected
/// at once.  `via_python` makes every member go through `list._cbDeferred` (for
/// subclasses that override it).
#[pyfunction]
#[pyo3(name = "_collect")]
#[allow(clippy::too_many_arguments)]
pub fn collect<'py>(
    list: Bound<'py, PyAny>,
    members: Bound<'py, PyList>,
    results: Bound<'py, PyList>,
    fire_on_one_callback: bool,
    fire_on_one_errback: bool,
    consume_errors: bool,
    via_python: bool,
) -> PyResult<Bound<'py, Collector>> {
    let py = list.py();
    let collector = Bound::new(
        py,
        Collector {
            results: results.unbind(),
            flags: GilLock::new(Flags {
                list: Some(list.clone().unbind()),
                fire_on_one_callback,
                fire_on_one_errback,
                consume_errors,
                finished: 0,
            }),
        },
    )?;
    // Set before the members' callbacks run (they run at once for fired members).
    list.setattr(intern!(py, "_collector"), &collector)?;
    // Members reached through Python get `list._cbDeferred`, as in Twisted.
    let mut callback: Option<Bound<'py, PyAny>> = None;
    // Iterate over a snapshot, by index, as Twisted's loop over the list does.
    let members: Vec<Bound<'py, PyAny>> = members.iter().collect();
    for (index, member) in members.iter().enumerate() {
        let native = !via_python
            && (deferred::is_exact_public(member) || member.is_exact_instance_of::<Deferred>());
        if native {
            let d = member.cast::<Deferred>()?;
            deferred::push_entry(
                d,
                Entry::Native(Native::ListMember(collector.clone().unbind(), index)),
            )?;
        } else {
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item(intern!(py, "callbackArgs"), (index, true))?;
            kwargs.set_item(intern!(py, "errbackArgs"), (index, false))?;
            let callback = match &callback {
                Some(cb) => cb.clone(),
                None => callback.insert(list.getattr(intern!(py, "_cbDeferred"))?).clone(),
            };
            member.call_method(intern!(py, "addCallbacks"), (&callback, &callback), Some(&kwargs))?;
        }
    }
    // A list that has fired already (an empty one fires before it collects) no
    // longer needs to be reached from the collector: without the reference, the two
    // are not a cycle, and are freed as soon as the program lets go of the list.
    if is_called(&list)? {
        let old = collector.get().lock()?.list.take();
        drop(old);
    }
    Ok(collector)
}

/// Twisted's `_parseDeferredListResult`: the results of a `DeferredList` that fired
/// with every member successful (`gatherResults`).  The usual input (a list of
/// `(True, value)` tuples) is handled here; anything else goes to Twisted's own code,
/// which raises what Twisted raises.
#[pyfunction]
#[pyo3(name = "_parseDeferredListResult", signature = (resultList, fireOnOneErrback=false, /))]
#[allow(non_snake_case)]
pub fn parse_deferred_list_result<'py>(
    resultList: Bound<'py, PyAny>,
    fireOnOneErrback: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = resultList.py();
    if let Ok(list) = resultList.cast_exact::<PyList>() {
        let mut values = Vec::with_capacity(list.len());
        let mut plain = true;
        for item in list.iter() {
            match item.cast_exact::<PyTuple>() {
                Ok(pair) if pair.len() == 2 && pair.get_item(0)?.is_truthy()? => {
                    values.push(pair.get_item(1)?);
                }
                _ => {
                    plain = false;
                    break;
                }
            }
        }
        if plain {
            return Ok(PyList::new(py, values)?.into_any());
        }
    }
    imports::support(py)?
        .getattr(intern!(py, "_parseDeferredListResult"))?
        .call1((resultList, fireOnOneErrback))
}
