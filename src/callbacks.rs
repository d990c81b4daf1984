//! The callback chain: what `addCallback`, `addErrback`, `addBoth`, `addCallbacks` and
//! chaining store, and the queue that holds it.
//!
//! Twisted stores every entry as `((callback, args, kwargs), (errback, args, kwargs))`,
//! two tuples and a dict per callback.  Here an entry is one small enum (three words);
//! the pass-through half of `addCallback`/`addErrback` is implicit, empty
//! `args`/`kwargs` are not stored, and the first two entries of a queue are kept
//! inline (no allocation for a Deferred with one or two callbacks).

use std::collections::VecDeque;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::PyVisit;
use pyo3::PyTraverseError;

use crate::deferred::Deferred;
use crate::imports;
use crate::deferred_list::{self, Collector};
use crate::inline_callbacks::{self, Driver};

/// The items of `t` as a slice: the tuple's own storage where PyO3 can lend it (not
/// on the limited API or GraalPy, where they are copied out).
#[cfg(not(any(Py_LIMITED_API, GraalPy)))]
#[inline]
pub fn tuple_items<'a, 'py>(t: &'a Bound<'py, PyTuple>) -> std::borrow::Cow<'a, [Bound<'py, PyAny>]> {
    std::borrow::Cow::Borrowed(t.as_slice())
}

#[cfg(any(Py_LIMITED_API, GraalPy))]
pub fn tuple_items<'a, 'py>(t: &'a Bound<'py, PyTuple>) -> std::borrow::Cow<'a, [Bound<'py, PyAny>]> {
    std::borrow::Cow::Owned(t.iter().collect())
}

/// One callable with its extra arguments, as given to `addCallback(f, *args, **kwargs)`.
///
/// Two words: the callable, and the rarely given separate arguments behind a box, so
/// that an entry takes three words and two fit inline in a Deferred's queue.
pub struct Call {
    /// The callable; or, when `addCallback(f, *args)` got extra positional arguments,
    /// the very tuple `(f, *args)` it was called with, kept as it is (no copy, no
    /// slice).  An exact tuple is never callable, so the two cannot be confused: a
    /// non-callable tuple given as the callable is stored packed, as `(tuple,)`.
    head: Py<PyAny>,
    /// Keyword arguments, or arguments given separately; `None` when there are none.
    extra: Option<Box<Extra>>,
}

/// What `addCallback(f, x=1)` or `addCallbacks(callbackArgs=...)` adds to a callable.
struct Extra {
    /// Extra positional arguments given separately (`addCallbacks(callbackArgs=...)`);
    /// `None` when there are none.  Usually a tuple, but any sequence is accepted, as
    /// in Twisted.
    args: Option<Py<PyAny>>,
    /// Extra keyword arguments; `None` when there are none.  Any mapping.
    kwargs: Option<Py<PyAny>>,
}

impl Call {
    /// Store `func` with its extra arguments.  `None` means none; the objects are
    /// kept as given (a keywords mapping may still change before the call, as in
    /// Twisted) except for an empty tuple of arguments.
    pub fn new(
        func: Bound<'_, PyAny>,
        args: Option<Bound<'_, PyAny>>,
        kwargs: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let py = func.py();
        let args = match args {
            Some(a) if !a.is_none() && !is_empty_tuple(&a) => Some(a.unbind()),
            _ => None,
        };
        let kwargs = kwargs.filter(|k| !k.is_none()).map(Bound::unbind);
        let head = if func.is_exact_instance_of::<PyTuple>() {
            PyTuple::new(py, [func])?.into_any().unbind()
        } else {
            func.unbind()
        };
        Ok(Call::with_extra(head, args, kwargs))
    }

    fn with_extra(head: Py<PyAny>, args: Option<Py<PyAny>>, kwargs: Option<Py<PyAny>>) -> Self {
        let extra = if args.is_none() && kwargs.is_none() {
            None
        } else {
            Some(Box::new(Extra { args, kwargs }))
        };
        Call { head, extra }
    }

    /// Extra positional arguments given separately, if any.
    pub fn args(&self) -> Option<&Py<PyAny>> {
        self.extra.as_ref().and_then(|e| e.args.as_ref())
    }

    /// Extra keyword arguments, if any.
    pub fn kwargs(&self) -> Option<&Py<PyAny>> {
        self.extra.as_ref().and_then(|e| e.kwargs.as_ref())
    }

    /// `addCallback(f)`: the callable alone, which must not be a `tuple` (a tuple head
    /// is read as the callable packed with its arguments; `from_call_args` packs one).
    #[inline(always)]
    pub fn from_func(func: Py<PyAny>) -> Self {
        Call { head: func, extra: None }
    }

    /// `addCallback(*call_args, **kwargs)`: `call_args` is `(f, *args)`, non-empty.
    #[inline(always)]
    pub fn from_call_args(call_args: Bound<'_, PyTuple>, kwargs: Option<Bound<'_, PyAny>>) -> Self {
        let head = if call_args.len() == 1 {
            let func = tuple_items(&call_args)[0].clone();
            if func.is_exact_instance_of::<PyTuple>() {
                call_args.into_any().unbind()
            } else {
                func.unbind()
            }
        } else {
            call_args.into_any().unbind()
        };
        Call::with_extra(head, None, kwargs.map(Bound::unbind))
    }

    /// Replace the callable, keeping the extra arguments.
    pub fn with_func(self, func: Py<PyAny>) -> Self {
        Call { head: func, ..self }
    }

    /// The callable.
    pub fn func<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        let head = self.head.bind(py);
        match head.cast_exact::<PyTuple>() {
            Ok(packed) => tuple_items(packed)[0].clone(),
            Err(_) => head.clone(),
        }
    }

    /// The extra positional arguments, as one object (`None` if there are none).
    fn all_args<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let head = self.head.bind(py);
        let separate = self.args().map(|a| a.bind(py).clone());
        let Ok(packed) = head.cast_exact::<PyTuple>() else {
            return Ok(separate);
        };
        let inline = packed.get_slice(1, packed.len());
        Ok(match separate {
            None if inline.is_empty() => None,
            None => Some(inline.into_any()),
            Some(sep) if inline.is_empty() => Some(sep),
            Some(sep) => {
                let mut all: Vec<Bound<'py, PyAny>> = inline.iter().collect();
                for item in sep.try_iter()? {
                    all.push(item?);
                }
                Some(PyTuple::new(py, all)?.into_any())
            }
        })
    }

    pub fn clone_ref(&self, py: Python<'_>) -> Self {
        Call::with_extra(
            self.head.clone_ref(py),
            self.args().map(|a| a.clone_ref(py)),
            self.kwargs().map(|k| k.clone_ref(py)),
        )
    }

    /// `func(result, *args, **kwargs)`.
    pub fn invoke<'py>(
        &self,
        py: Python<'py>,
        result: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let head = self.head.bind(py);
        if self.args().is_none() {
            let kwargs = match self.kwargs() {
                None => None,
                Some(k) => match k.bind(py).cast::<PyDict>() {
                    Ok(d) if d.is_empty() => None,
                    Ok(d) => Some(d),
                    Err(_) => return self.invoke_general(py, result),
                },
            };
            let packed = head.cast_exact::<PyTuple>().ok();
            return match (packed, kwargs) {
                (None, None) => head.call1((result,)),
                (Some(t), None) => match &*tuple_items(t) {
                    [f, a] => f.call1((result, a)),
                    [f, a, b] => f.call1((result, a, b)),
                    [f, a, b, c] => f.call1((result, a, b, c)),
                    [f] => f.call1((result,)),
                    _ => self.invoke_slow(py, result, None),
                },
                (None, Some(k)) => head.call((result,), Some(k)),
                (Some(_), Some(k)) => self.invoke_slow(py, result, Some(k)),
            };
        }
        self.invoke_general(py, result)
    }

    /// Any number of positional arguments, plain tuple and dict.
    fn invoke_slow<'py>(
        &self,
        py: Python<'py>,
        result: Bound<'py, PyAny>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let func = self.func(py);
        let mut all = vec![result];
        if let Some(extra) = self.all_args(py)? {
            all.extend(tuple_items(extra.cast::<PyTuple>()?).iter().cloned());
        }
        func.call(PyTuple::new(py, all)?, kwargs)
    }

    /// Separately given arguments (`addCallbacks(callbackArgs=..., callbackKeywords=...)`).
    fn invoke_general<'py>(
        &self,
        py: Python<'py>,
        result: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let func = self.func(py);
        let args = self.all_args(py)?;
        let kwargs = self.kwargs().map(|k| k.bind(py));
        let args_tuple = match &args {
            None => None,
            Some(a) => match a.cast::<PyTuple>() {
                Ok(t) => Some(t),
                Err(_) => return imports::call_general(&func, result, args.as_ref(), kwargs),
            },
        };
        let kwargs_dict = match kwargs {
            None => None,
            Some(k) => match k.cast::<PyDict>() {
                Ok(d) if d.is_empty() => None,
                Ok(d) => Some(d),
                Err(_) => return imports::call_general(&func, result, args.as_ref(), kwargs),
            },
        };
        match (args_tuple, kwargs_dict) {
            (None, None) => func.call1((result,)),
            (Some(a), None) if a.len() == 1 => {
                let a = tuple_items(a);
                func.call1((result, &a[0]))
            }
            (a, k) => {
                let mut all = vec![result];
                if let Some(a) = a {
                    all.extend(tuple_items(a).iter().cloned());
                }
                let tuple = PyTuple::new(py, all)?;
                func.call(tuple, k)
            }
        }
    }

    /// The `(callable, args, kwargs)` triple Twisted would have stored.
    pub fn triple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let args: Bound<'py, PyAny> = match self.all_args(py)? {
            Some(a) => a,
            None => PyTuple::empty(py).into_any(),
        };
        let kwargs: Bound<'py, PyAny> = match self.kwargs() {
            Some(k) => k.bind(py).clone(),
            None => PyDict::new(py).into_any(),
        };
        PyTuple::new(py, [self.func(py), args, kwargs])
    }

    /// Drop the references now.  Dropping a `Py` handle first asks whether this
    /// thread is attached to the interpreter (a thread-local read); with `py` in hand
    /// that is known.
    pub fn release(self, py: Python<'_>) {
        let Call { head, extra } = self;
        head.drop_ref(py);
        if let Some(extra) = extra {
            let Extra { args, kwargs } = *extra;
            if let Some(args) = args {
                args.drop_ref(py);
            }
            if let Some(kwargs) = kwargs {
                kwargs.drop_ref(py);
            }
        }
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.head)?;
        visit.call(self.args())?;
        visit.call(self.kwargs())
    }
}

fn is_empty_tuple(obj: &Bound<'_, PyAny>) -> bool {
    obj.cast::<PyTuple>().map(|t| t.is_empty()).unwrap_or(false)
}



// Three words an entry, two entries inline: the queue takes no more room than one
// entry and an empty `VecDeque` did (see the memory benchmark, held to 200 bytes).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Entry>() == 24 && std::mem::size_of::<CallbackQueue>() == 48);

/// One link of a Deferred's callback chain.
pub enum Entry {
    /// `addCallback`: failures pass through untouched.
    Callback(Call),
    /// `addErrback`: successes pass through untouched.
    Errback(Call),
    /// `addBoth`: the same call for either outcome.
    Both(Call),
    /// `addCallbacks` with an explicit errback (or errback arguments).
    Pair(Box<[Call; 2]>),
    /// The Deferred given here is waiting for this chain's result (a callback of it
    /// returned this Deferred).  Handled by the run loop without recursion.
    Continue(Py<Deferred>),
    /// `chainDeferred(target)` for a native `Deferred`: fire `target` with the result,
    /// then continue with `None`.  Handled by the run loop without recursion.
    Chain(Py<Deferred>),
    /// A pure-Python Twisted `Deferred` waiting on this one (Twisted's own loop
    /// appended its `_CONTINUE` marker through the `_callbacks` view).
    ForeignContinue(Py<PyAny>),
    /// A callback implemented in Rust, called for either outcome without going
    /// through Python's call machinery.
    Native(Native),
}

/// The callbacks implemented in Rust.
pub enum Native {
    /// Resume an `inlineCallbacks` generator or coroutine waiting on this Deferred.
    Resume(Py<Driver>),
    /// Collect this Deferred's result as member `index` of a `DeferredList`.
    ListMember(Py<Collector>, usize),
}

impl Native {
    /// Run it with the current result; what it returns becomes the new result.
    pub fn invoke<'py>(&self, py: Python<'py>, result: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Native::Resume(driver) => inline_callbacks::got_result(driver.bind(py), result),
            Native::ListMember(collector, index) => {
                let succeeded = !imports::is_failure(&result)?;
                deferred_list::member_fired(collector.bind(py), result, *index, succeeded)
            }
        }
    }

    /// The Python function Twisted would have called here (named by warnings).
    pub fn offender<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Native::Resume(driver) => Ok(driver.bind(py).clone().into_any()),
            Native::ListMember(..) => py
                .import("txdefer._defer")?
                .getattr("DeferredList")?
                .getattr("_cbDeferred"),
        }
    }

    /// The Python callable that does the same, for Twisted-shaped views.
    pub fn callable(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Native::Resume(driver) => {
                Ok(Py::new(py, inline_callbacks::DriverResume::new(driver.clone_ref(py)))?.into_any())
            }
            Native::ListMember(collector, _) => Ok(collector.clone_ref(py).into_any()),
        }
    }

    fn clone_ref(&self, py: Python<'_>) -> Self {
        match self {
            Native::Resume(driver) => Native::Resume(driver.clone_ref(py)),
            Native::ListMember(collector, index) => Native::ListMember(collector.clone_ref(py), *index),
        }
    }

    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Native::Resume(driver) => visit.call(driver),
            Native::ListMember(collector, _) => visit.call(collector),
        }
    }
}

/// What the run loop does with an entry for the current result.
pub enum Step<'a> {
    Call(&'a Call),
    PassThrough,
    Continue(&'a Py<Deferred>),
    Chain(&'a Py<Deferred>),
    ForeignContinue(&'a Py<PyAny>),
    Native(&'a Native),
}

impl Entry {
    /// Drop the entry's references now (see `Call::release`).
    pub fn release(self, py: Python<'_>) {
        match self {
            Entry::Callback(call) | Entry::Errback(call) | Entry::Both(call) => call.release(py),
            Entry::Pair(pair) => {
                let [callback, errback] = *pair;
                callback.release(py);
                errback.release(py);
            }
            Entry::Continue(d) | Entry::Chain(d) => d.drop_ref(py),
            Entry::ForeignContinue(waiting) => waiting.drop_ref(py),
            Entry::Native(Native::Resume(driver)) => driver.drop_ref(py),
            Entry::Native(Native::ListMember(collector, _)) => collector.drop_ref(py),
        }
    }

    pub fn step(&self, is_failure: bool) -> Step<'_> {
        match self {
            Entry::Callback(c) if !is_failure => Step::Call(c),
            Entry::Errback(c) if is_failure => Step::Call(c),
            Entry::Callback(_) | Entry::Errback(_) => Step::PassThrough,
            Entry::Both(c) => Step::Call(c),
            Entry::Pair(pair) => Step::Call(&pair[usize::from(is_failure)]),
            Entry::Continue(d) => Step::Continue(d),
            Entry::Chain(d) => Step::Chain(d),
            Entry::ForeignContinue(d) => Step::ForeignContinue(d),
            Entry::Native(n) => Step::Native(n),
        }
    }

    /// Does running this entry call user code (so that the Deferred counts as
    /// running its callbacks meanwhile)?
    pub fn calls_user_code(&self) -> bool {
        matches!(
            self,
            Entry::Callback(_) | Entry::Errback(_) | Entry::Both(_) | Entry::Pair(_) | Entry::Native(_)
        )
    }

    pub fn clone_ref(&self, py: Python<'_>) -> Self {
        match self {
            Entry::Callback(c) => Entry::Callback(c.clone_ref(py)),
            Entry::Errback(c) => Entry::Errback(c.clone_ref(py)),
            Entry::Both(c) => Entry::Both(c.clone_ref(py)),
            Entry::Pair(p) => Entry::Pair(Box::new([p[0].clone_ref(py), p[1].clone_ref(py)])),
            Entry::Continue(d) => Entry::Continue(d.clone_ref(py)),
            Entry::Chain(d) => Entry::Chain(d.clone_ref(py)),
            Entry::ForeignContinue(d) => Entry::ForeignContinue(d.clone_ref(py)),
            Entry::Native(n) => Entry::Native(n.clone_ref(py)),
        }
    }

    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Entry::Callback(c) | Entry::Errback(c) | Entry::Both(c) => c.traverse(visit),
            Entry::Pair(p) => {
                p[0].traverse(visit)?;
                p[1].traverse(visit)
            }
            Entry::Continue(d) | Entry::Chain(d) => visit.call(d),
            Entry::ForeignContinue(d) => visit.call(d),
            Entry::Native(n) => n.traverse(visit),
        }
    }
}

/// A FIFO of entries whose first two are stored inline: most Deferreds get one or
/// two callbacks, and then nothing is allocated for them.  The third entry moves them
/// all to the heap, where they stay.
pub enum CallbackQueue {
    /// At most two entries.  Invariant: the second is `None` if the first is.
    Inline([Option<Entry>; 2]),
    /// Any number.
    Heap(VecDeque<Entry>),
}

impl Default for CallbackQueue {
    fn default() -> Self {
        CallbackQueue::Inline([None, None])
    }
}

impl CallbackQueue {
    #[inline]
    pub fn push_back(&mut self, entry: Entry) {
        match self {
            CallbackQueue::Inline([first @ None, _]) => *first = Some(entry),
            CallbackQueue::Inline([Some(_), second @ None]) => *second = Some(entry),
            CallbackQueue::Inline(_) => self.spill(entry),
            CallbackQueue::Heap(rest) => rest.push_back(entry),
        }
    }

    /// A third entry: move the two inline ones and `entry` to the heap.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, entry: Entry) {
        let mut all = VecDeque::with_capacity(4);
        if let CallbackQueue::Inline([first, second]) = self {
            all.extend(first.take());
            all.extend(second.take());
        }
        all.push_back(entry);
        *self = CallbackQueue::Heap(all);
    }

    #[inline]
    pub fn pop_front(&mut self) -> Option<Entry> {
        match self {
            CallbackQueue::Inline([first, second]) => {
                let popped = first.take();
                *first = second.take();
                popped
            }
            CallbackQueue::Heap(rest) => rest.pop_front(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CallbackQueue::Inline(inline) => inline.iter().filter(|e| e.is_some()).count(),
            CallbackQueue::Heap(rest) => rest.len(),
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        match self {
            CallbackQueue::Inline([first, _]) => first.is_none(),
            CallbackQueue::Heap(rest) => rest.is_empty(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        let (inline, rest): (&[Option<Entry>], _) = match self {
            CallbackQueue::Inline(inline) => (inline, None),
            CallbackQueue::Heap(rest) => (&[], Some(rest)),
        };
        inline.iter().flatten().chain(rest.into_iter().flatten())
    }

    pub fn get(&self, index: usize) -> Option<&Entry> {
        match self {
            CallbackQueue::Inline(inline) => inline.get(index).and_then(Option::as_ref),
            CallbackQueue::Heap(rest) => rest.get(index),
        }
    }

    pub fn remove(&mut self, index: usize) -> Option<Entry> {
        if index == 0 {
            return self.pop_front();
        }
        match self {
            CallbackQueue::Inline([_, second]) if index == 1 => second.take(),
            CallbackQueue::Inline(_) => None,
            CallbackQueue::Heap(rest) => rest.remove(index),
        }
    }

    /// Take every entry out, leaving the queue empty (to be dropped after the lock is
    /// released: dropping a callback can run arbitrary Python code).
    pub fn take(&mut self) -> CallbackQueue {
        std::mem::take(self)
    }

    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        for entry in self.iter() {
            entry.traverse(visit)?;
        }
        Ok(())
    }
}

impl IntoIterator for CallbackQueue {
    type Item = Entry;
    type IntoIter = std::iter::Chain<
        std::iter::Flatten<std::array::IntoIter<Option<Entry>, 2>>,
        std::collections::vec_deque::IntoIter<Entry>,
    >;
    fn into_iter(self) -> Self::IntoIter {
        let (inline, rest) = match self {
            CallbackQueue::Inline(inline) => (inline, VecDeque::new()),
            CallbackQueue::Heap(rest) => ([None, None], rest),
        };
        inline.into_iter().flatten().chain(rest)
    }
}

