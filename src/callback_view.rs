//! Twisted-shaped access to the callback chain.
//!
//! `Deferred._callbacks` (and the deprecated `callbacks`) return a live view in
//! Twisted's `((callback, args, kwargs), (errback, args, kwargs))` shape.  Twisted's
//! own pure-Python `Deferred` appends its `_CONTINUE` marker to it when one of its
//! callbacks returns a txdefer Deferred, which is how the two implementations chain
//! into each other.  `Resume` is the reverse hook: the callback txdefer adds to a
//! pure-Python Deferred that one of its callbacks returned.

use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::callbacks::{Call, Entry, Native};
use crate::deferred::Deferred;
use crate::imports;
use crate::runner;

/// A live, list-like view of a Deferred's callback chain.
#[pyclass(module = "txdefer", frozen, sequence)]
pub struct CallbackList {
    d: Py<Deferred>,
}

impl CallbackList {
    pub fn new(d: Py<Deferred>) -> Self {
        CallbackList { d }
    }

    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let entries: Vec<Entry> = {
            let st = self.d.get().lock()?;
            st.callbacks.iter().map(|e| e.clone_ref(py)).collect()
        };
        let list = PyList::empty(py);
        for entry in &entries {
            list.append(render(py, entry)?)?;
        }
        Ok(list)
    }

    fn index(&self, index: isize) -> PyResult<usize> {
        let len = self.d.get().lock()?.callbacks.len();
        let resolved = if index < 0 { index + len as isize } else { index };
        if resolved < 0 || resolved as usize >= len {
            return Err(PyIndexError::new_err("list index out of range"));
        }
        Ok(resolved as usize)
    }
}

#[pymethods]
impl CallbackList {
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.d.get().lock()?.callbacks.len())
    }

    fn __bool__(&self) -> PyResult<bool> {
        Ok(!self.d.get().lock()?.callbacks.is_empty())
    }

    fn __getitem__<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyTuple>> {
        let i = self.index(index)?;
        let entry = {
            let st = self.d.get().lock()?;
            st.callbacks.get(i).map(|e| e.clone_ref(py))
        };
        match entry {
            Some(e) => render(py, &e),
            None => Err(PyIndexError::new_err("list index out of range")),
        }
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.snapshot(py)?.try_iter().map(Bound::into_any)
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.snapshot(py)?.eq(other)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.snapshot(py)?.repr()?.to_string())
    }

    /// Append a `((callback, args, kwargs), (errback, args, kwargs))` pair without
    /// running the chain (as appending to Twisted's list does).
    fn append(&self, pair: &Bound<'_, PyAny>) -> PyResult<()> {
        let entry = entry_from_pair(pair)?;
        self.d.get().lock()?.callbacks.push_back(entry);
        Ok(())
    }

    fn extend(&self, pairs: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut entries = Vec::new();
        for pair in pairs.try_iter()? {
            entries.push(entry_from_pair(&pair?)?);
        }
        let mut st = self.d.get().lock()?;
        for entry in entries {
            st.callbacks.push_back(entry);
        }
        Ok(())
    }

    #[pyo3(signature = (index=-1))]
    fn pop<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyTuple>> {
        let i = self.index(index)?;
        let entry = self.d.get().lock()?.callbacks.remove(i);
        match entry {
            Some(e) => render(py, &e),
            None => Err(PyIndexError::new_err("pop index out of range")),
        }
    }

    fn clear(&self) -> PyResult<()> {
        let old = self.d.get().lock()?.callbacks.take();
        drop(old);
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.d)
    }
}

/// The callback pair that makes `d` continue with the result handed to it: Twisted's
/// `((_CONTINUE, (d,), _NONE_KWARGS),) * 2`, as `Deferred._continuation()` returns it.
pub fn continue_pair<'py>(py: Python<'py>, d: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let foreign = imports::foreign(py)?;
    let triple = PyTuple::new(
        py,
        [
            foreign.continue_marker.bind(py).clone(),
            PyTuple::new(py, [d])?.into_any(),
            foreign.none_kwargs.bind(py).clone(),
        ],
    )?;
    PyTuple::new(py, [triple.clone(), triple])
}

fn pass_triple<'py>(py: Python<'py>, func: &Py<PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    Call::new(func.bind(py).clone(), None, None)?.triple(py)
}

/// Twisted's representation of one entry.
fn render<'py>(py: Python<'py>, entry: &Entry) -> PyResult<Bound<'py, PyTuple>> {
    match entry {
        Entry::Callback(c) => {
            let eb = pass_triple(py, &imports::foreign(py)?.failthru)?;
            PyTuple::new(py, [c.triple(py)?, eb])
        }
        Entry::Errback(c) => {
            let cb = pass_triple(py, &imports::foreign(py)?.passthru)?;
            PyTuple::new(py, [cb, c.triple(py)?])
        }
        Entry::Both(c) => {
            let t = c.triple(py)?;
            PyTuple::new(py, [t.clone(), t])
        }
        Entry::Pair(p) => PyTuple::new(py, [p[0].triple(py)?, p[1].triple(py)?]),
        Entry::Continue(d) => continue_pair(py, d.bind(py).clone().into_any()),
        Entry::ForeignContinue(d) => continue_pair(py, d.bind(py).clone()),
        Entry::Native(Native::ListMember(collector, index)) => {
            // As Twisted's `addCallbacks(self._cbDeferred, self._cbDeferred,
            // callbackArgs=(index, True), errbackArgs=(index, False))` leaves it.
            let cb = crate::deferred_list::Collector::shown_callback(collector.bind(py))?;
            let none_kwargs = imports::foreign(py)?.none_kwargs.bind(py).clone();
            let on_success = PyTuple::new(py, [cb.clone(), (*index, true).into_pyobject(py)?.into_any(), none_kwargs.clone()])?;
            let on_failure = PyTuple::new(py, [cb, (*index, false).into_pyobject(py)?.into_any(), none_kwargs])?;
            PyTuple::new(py, [on_success, on_failure])
        }
        Entry::Native(n) => {
            let t = pass_triple(py, &n.callable(py)?)?;
            PyTuple::new(py, [t.clone(), t])
        }
        Entry::Chain(d) => {
            // As Twisted's `addCallbacks(d.callback, d.errback)` leaves it, with its
            // shared empty keyword mapping.
            let d = d.bind(py);
            let none_kwargs = imports::foreign(py)?.none_kwargs.bind(py).clone();
            let empty = PyTuple::empty(py).into_any();
            let cb = PyTuple::new(py, [d.getattr(intern!(py, "callback"))?, empty.clone(), none_kwargs.clone()])?;
            let eb = PyTuple::new(py, [d.getattr(intern!(py, "errback"))?, empty, none_kwargs])?;
            PyTuple::new(py, [cb, eb])
        }
    }
}

fn unpack_triple<'py>(
    obj: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let items: Vec<Bound<'py, PyAny>> = obj.try_iter()?.collect::<PyResult<_>>()?;
    match <[Bound<'py, PyAny>; 3]>::try_from(items) {
        Ok([f, a, k]) => Ok((f, a, k)),
        Err(_) => Err(PyTypeError::new_err(
            "a callback entry is a (callable, args, kwargs) triple",
        )),
    }
}

/// Parse Twisted's `((callback, args, kwargs), (errback, args, kwargs))` pair.
pub fn entry_from_pair(pair: &Bound<'_, PyAny>) -> PyResult<Entry> {
    let py = pair.py();
    let halves: Vec<Bound<'_, PyAny>> = pair.try_iter()?.collect::<PyResult<_>>()?;
    let [first, second] = <[Bound<'_, PyAny>; 2]>::try_from(halves).map_err(|_| {
        PyTypeError::new_err("a callback chain entry is a (callback, errback) pair of triples")
    })?;
    let (cb, cb_args, cb_kwargs) = unpack_triple(&first)?;
    if cb.is(&imports::foreign(py)?.continue_marker) {
        let waiting = cb_args.get_item(0)?;
        return Ok(match waiting.cast::<Deferred>() {
            Ok(d) => Entry::Continue(d.clone().unbind()),
            Err(_) => Entry::ForeignContinue(waiting.unbind()),
        });
    }
    let (eb, eb_args, eb_kwargs) = unpack_triple(&second)?;
    Ok(Entry::Pair(Box::new([
        Call::new(cb, Some(cb_args), Some(cb_kwargs))?,
        Call::new(eb, Some(eb_args), Some(eb_kwargs))?,
    ])))
}

/// The callback txdefer adds to a pure-Python Twisted `Deferred` that one of its
/// callbacks returned: hands the result back and lets the waiting Deferred continue.
#[pyclass(module = "txdefer", frozen)]
pub struct Resume {
    d: Py<Deferred>,
}

impl Resume {
    pub fn new(d: Py<Deferred>) -> Self {
        Resume { d }
    }
}

#[pymethods]
impl Resume {
    fn __call__(&self, py: Python<'_>, result: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let d = self.d.bind(py);
        let (old, run) = {
            let mut st = d.get().lock()?;
            let old = st.result.replace(result.unbind());
            st.paused -= 1;
            (old, st.paused == 0)
        };
        drop(old);
        if run {
            runner::run_callbacks(d)?;
        }
        Ok(py.None())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.d)
    }
}
