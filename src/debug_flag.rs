//! `Deferred.debug`: Twisted's debugging switch, read on every creation and firing.
//!
//! Twisted reads `self.debug` in `__init__` and `_startRunCallbacks`: an instance
//! attribute if there is one, otherwise the class attribute that `setDebugging()`
//! sets.  Two generic attribute lookups for that cost about 7% of a whole
//! create-add-fire cycle, so the public `txdefer.Deferred` class holds a
//! `DebugAttribute` descriptor under `debug` instead of a plain bool:
//!
//! * `Deferred.debug` reads the process-wide switch that `setDebugging()` sets;
//! * `d.debug = value` stores `value` in the instance `__dict__`, as Twisted does, and
//!   flags the Deferred's state, so that the common case (no instance value) is known
//!   without looking at the `__dict__`;
//! * `debug_enabled(d)` answers from the switch and that flag when `d` is a
//!   `txdefer.Deferred` whose `d.debug` reads the descriptor (exactly the public
//!   class, or a subclass checked once to inherit the descriptor unchanged) and the
//!   class still holds it.  Anything else (a subclass with a `debug` of its own,
//!   `Deferred.debug = True` assigned directly, ...) takes Python's own attribute
//!   lookup, which gives Twisted's answer by construction.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyType};

use crate::deferred::{self, Deferred};

/// The switch set by `setDebugging()`.
static DEBUG: AtomicBool = AtomicBool::new(false);

/// The public class's namespace dict and the descriptor it was given.
struct Registered {
    class_dict: Py<PyDict>,
    descriptor: Py<DebugAttribute>,
}

static REGISTERED: PyOnceLock<Registered> = PyOnceLock::new();

/// The public class's version tag when its namespace was last seen holding the
/// descriptor; 0 if never.
static VERIFIED_TAG: AtomicU32 = AtomicU32::new(0);

/// `Deferred.debug`: whether the call stacks of a Deferred's creation and invocation
/// are recorded.  Reads as the switch set by `setDebugging()` on the class, and as the
/// instance's own value once one was assigned (`d.debug = True`).
#[pyclass(module = "txdefer._core", name = "DebugAttribute", frozen)]
pub struct DebugAttribute;

#[pymethods]
impl DebugAttribute {
    fn __get__<'py>(
        &self,
        py: Python<'py>,
        obj: Option<Bound<'py, PyAny>>,
        _owner: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match obj {
            Some(obj) if !obj.is_none() => instance_value(&obj),
            _ => Ok(switch(py)),
        }
    }

    fn __set__(&self, obj: Bound<'_, PyAny>, value: Bound<'_, PyAny>) -> PyResult<()> {
        let dict = instance_dict(&obj)?;
        dict.set_item(intern!(obj.py(), "debug"), value)?;
        set_override(&obj, true)
    }

    fn __delete__(&self, obj: Bound<'_, PyAny>) -> PyResult<()> {
        let py = obj.py();
        let dict = instance_dict(&obj)?;
        if dict.contains(intern!(py, "debug"))? {
            dict.del_item(intern!(py, "debug"))?;
            set_override(&obj, false)
        } else {
            Err(crate::errors::nothing_to_delete(&obj, "debug"))
        }
    }
}

fn switch(py: Python<'_>) -> Bound<'_, PyAny> {
    PyBool::new(py, DEBUG.load(Ordering::Relaxed)).to_owned().into_any()
}

fn instance_dict<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    Ok(obj.getattr(intern!(obj.py(), "__dict__"))?.cast_into::<PyDict>()?)
}

fn set_override(obj: &Bound<'_, PyAny>, on: bool) -> PyResult<()> {
    if let Ok(d) = obj.cast::<Deferred>() {
        d.get().lock()?.debug_override = on;
    }
    Ok(())
}

/// `d.debug` through the descriptor: the instance's own value if it has one.
fn instance_value<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let overridden = match obj.cast::<Deferred>() {
        Ok(d) => d.get().lock()?.debug_override,
        Err(_) => true,
    };
    if overridden {
        if let Some(value) = instance_dict(obj)?.get_item(intern!(py, "debug"))? {
            return Ok(value);
        }
    }
    Ok(switch(py))
}

/// Look up `debug` on `obj` as Twisted does (`self.debug`) and test it for truth.
pub fn debug_enabled(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    if let Ok(d) = obj.cast::<Deferred>() {
        return debug_enabled_deferred(d);
    }
    obj.getattr(intern!(obj.py(), "debug"))?.is_truthy()
}

/// `debug_enabled` for a Deferred.
pub fn debug_enabled_deferred(d: &Bound<'_, Deferred>) -> PyResult<bool> {
    if let Some(on) = class_switch(d.as_any()) {
        if !d.get().lock()?.debug_override {
            return Ok(on);
        }
    }
    d.getattr(intern!(d.py(), "debug"))?.is_truthy()
}

/// The switch, if `obj` is a `txdefer.Deferred` whose `obj.debug` is read from the
/// public class's descriptor (exactly that class, or a subclass seen to read it from
/// there: `subclass_reads_descriptor`) and the class still holds the descriptor (not
/// replaced by `Deferred.debug = ...`): then `obj.debug` is the switch unless the
/// instance has its own value.
pub fn class_switch(obj: &Bound<'_, PyAny>) -> Option<bool> {
    let py = obj.py();
    let cls = deferred::public_type(py).ok()?;
    if obj.get_type_ptr() != cls.as_type_ptr() && !subclass_reads_descriptor(obj) {
        return None;
    }
    public_switch(cls)
}

/// `class_switch(obj)` when the answer is at hand without running anything: `obj` is
/// of the public class itself, whose descriptor was verified at the class's current
/// version tag.  `None` otherwise (not that the switch is unknown: only not known
/// here).
#[inline]
#[cfg_attr(any(Py_LIMITED_API, PyPy, GraalPy), allow(dead_code))]
pub fn known_switch(obj: &Bound<'_, PyAny>) -> Option<bool> {
    let cls = deferred::public_type(obj.py()).ok()?;
    if obj.get_type_ptr() != cls.as_type_ptr() {
        return None;
    }
    verified_switch(cls).ok()
}

/// Whether subclasses of the public class (such as `DeferredList`) read `debug`
/// from the registered descriptor (1) or not (0), as `check_subclass` found.
static SUBCLASSES: TagMemo<16> = TagMemo::new();

/// Does `obj.debug` (`obj` of a class other than the public one) go to the
/// registered descriptor?
#[inline]
fn subclass_reads_descriptor(obj: &Bound<'_, PyAny>) -> bool {
    let tag = type_version_tag(obj);
    if tag == 0 {
        // Nothing to remember the answer by (a class nothing was looked up on yet, or
        // a build without version tags): Python's own lookup, which gives the class a
        // tag where there are any.
        return false;
    }
    if let Some(reads) = SUBCLASSES.recall(tag) {
        return reads == 1;
    }
    let reads = check_subclass(obj);
    SUBCLASSES.remember(tag, u8::from(reads));
    reads
}

/// `subclass_reads_descriptor`, from the class's MRO: attribute lookup on `obj` is
/// `object.__getattribute__` (the first `__getattribute__` in the MRO is
/// `object`'s), which gives a data descriptor on the class precedence over the
/// instance `__dict__`, and the first class in the MRO whose namespace holds `debug`
/// holds the registered descriptor.
#[cold]
#[inline(never)]
fn check_subclass(obj: &Bound<'_, PyAny>) -> bool {
    let py = obj.py();
    let Some(registered) = REGISTERED.get(py) else {
        return false;
    };
    let object = py.get_type::<pyo3::types::PyAny>();
    let mut getattribute_is_generic = None;
    let mut debug_is_descriptor = None;
    for klass in obj.get_type().mro().iter() {
        let Ok(namespace) = klass.getattr(intern!(py, "__dict__")) else {
            return false;
        };
        if getattribute_is_generic.is_none() && namespace.contains(intern!(py, "__getattribute__")).unwrap_or(true) {
            getattribute_is_generic = Some(klass.is(&object));
        }
        if debug_is_descriptor.is_none() {
            match namespace.get_item(intern!(py, "debug")) {
                Ok(found) => debug_is_descriptor = Some(found.is(&registered.descriptor)),
                Err(err) if err.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => {}
                Err(_) => return false,
            }
        }
    }
    getattribute_is_generic == Some(true) && debug_is_descriptor == Some(true)
}

/// The switch, if the public class `cls` still holds the descriptor: then a new
/// instance's `debug` is the switch.
#[inline]
pub fn public_switch(cls: &Bound<'_, PyType>) -> Option<bool> {
    match verified_switch(cls) {
        Ok(on) => Some(on),
        Err(tag) => {
            verify_descriptor(cls, tag)?;
            Some(DEBUG.load(Ordering::Relaxed))
        }
    }
}

/// The switch, if the public class `cls` still has the version tag seen with the
/// descriptor in place; otherwise `Err` with its tag, for `verify_descriptor`.
/// (CPython gives a class a new version tag whenever its namespace, or a base
/// class's, changes: while the tag is the one seen with the descriptor in place, the
/// descriptor is still there, and the dict lookup is skipped.)
#[inline]
fn verified_switch(cls: &Bound<'_, PyType>) -> Result<bool, u32> {
    let tag = version_tag(cls);
    if tag == 0 || tag != VERIFIED_TAG.load(Ordering::Relaxed) {
        return Err(tag);
    }
    Ok(DEBUG.load(Ordering::Relaxed))
}

/// Is the registered descriptor still `cls.debug`?  If so, remember `cls`'s version
/// tag (given one if it has none) as seen with it in place.
#[cold]
#[inline(never)]
fn verify_descriptor(cls: &Bound<'_, PyType>, tag: u32) -> Option<()> {
    let py = cls.py();
    let registered = REGISTERED.get(py)?;
    let found = registered.class_dict.bind(py).get_item(intern!(py, "debug")).ok()??;
    if !found.is(&registered.descriptor) {
        return None;
    }
    // A program that only makes Deferreds (`succeed()`, `await`) never looks an
    // attribute up on the class: give it a tag here, by a lookup of `debug`, just
    // seen to be the registered descriptor, whose `__get__` only reads the switch.
    let tag = if tag == 0 { assign_version_tag(cls, "debug") } else { tag };
    VERIFIED_TAG.store(tag, Ordering::Relaxed);
    Some(())
}

/// Give `cls` a version tag if it has none, by looking `name` up on it, and return
/// the tag (0 if CPython gives none).
///
/// CPython hands out a tag on a class's first attribute lookup through its type
/// cache, not when the class is made or changed; a class nothing was looked up on
/// keeps 0, and whatever is remembered by tag (here, and in `imports::classify`) is
/// looked up again every time.  The caller chooses a `name` whose lookup runs no
/// Python code.  An error (none is expected) only leaves the tag unassigned.
#[cold]
pub fn assign_version_tag(cls: &Bound<'_, PyType>, name: &str) -> u32 {
    let _ = cls.getattr_opt(name);
    version_tag(cls)
}

/// Answers about classes (a small number each), remembered by the class's version
/// tag: `tag << 8 | answer`, in one of `N` entries chosen by the tag's low bits.  A
/// version tag is never handed out twice and is reset when the class, or any class
/// in its MRO, changes (see `type_version_tag`), so an entry whose tag matches an
/// object's class is the answer for that class as it was when it was given.  Tag 0
/// (none) is never stored or matched.
pub struct TagMemo<const N: usize>([AtomicU64; N]);

impl<const N: usize> TagMemo<N> {
    pub const fn new() -> Self {
        TagMemo([const { AtomicU64::new(0) }; N])
    }

    /// The answer remembered for the class with version tag `tag`, if any.
    #[inline]
    pub fn recall(&self, tag: u32) -> Option<u8> {
        if tag == 0 {
            return None;
        }
        let entry = self.0[tag as usize % N].load(Ordering::Relaxed);
        ((entry >> 8) as u32 == tag).then_some((entry & 0xff) as u8)
    }

    /// Remember `answer` for the class with version tag `tag` (nothing for 0).
    pub fn remember(&self, tag: u32, answer: u8) {
        if tag != 0 {
            self.0[tag as usize % N].store(u64::from(tag) << 8 | u64::from(answer), Ordering::Relaxed);
        }
    }
}

/// `cls->tp_version_tag`: nonzero and unique for the life of the process while the
/// class's attributes (its MRO's namespaces) stay as they are; CPython sets it to 0
/// when any of them changes (`PyType_Modified`, called by `type.__setattr__` and
/// `type.__delattr__`, and by assigning `__bases__`) and hands out a fresh value on
/// the next lookup.  PyO3 has no accessor for it.
pub fn version_tag(cls: &Bound<'_, PyType>) -> u32 {
    // SAFETY: `cls` is a live type object, borrowed for this call.
    unsafe { tag_of(cls.as_type_ptr()) }
}

/// The version tag of `obj`'s class (see `version_tag`), 0 where there is none to
/// rely on.
#[inline]
pub fn type_version_tag(obj: &Bound<'_, PyAny>) -> u32 {
    // SAFETY: an object holds a reference to its class, so the class is alive while
    // `obj` is, and `obj` is borrowed for this call.
    unsafe { tag_of(obj.get_type_ptr()) }
}

/// `tp->tp_version_tag`.
///
/// # Safety
/// `tp` must point to a type object that stays alive for the call, and the thread
/// must be attached to the interpreter.
#[cfg(not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy)))]
#[inline]
unsafe fn tag_of(tp: *mut pyo3::ffi::PyTypeObject) -> u32 {
    // SAFETY: by the contract above `tp` points to a valid, initialised
    // `PyTypeObject`, whose layout `pyo3::ffi` mirrors for this (non-limited,
    // CPython) build.  The read is a plain `u32` field load, and nothing is written.
    // On a GIL build CPython only writes this field while holding the GIL, which this
    // attached thread holds, so the read cannot race with a write.  (Free-threaded
    // builds write it atomically from any thread: there this function is not
    // compiled and the tag is taken as unknown.)
    unsafe { (*tp).tp_version_tag }
}

/// No version tag to rely on: always check the namespace.
#[cfg(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy))]
#[inline]
unsafe fn tag_of(_tp: *mut pyo3::ffi::PyTypeObject) -> u32 {
    0
}

/// Give the public class its `debug` descriptor (called once, by `_register_public`).
pub fn register(cls: &Bound<'_, PyType>) -> PyResult<()> {
    let py = cls.py();
    let descriptor = Py::new(py, DebugAttribute)?;
    cls.setattr(intern!(py, "debug"), &descriptor)?;
    // The class's own namespace dict, read (never written) to check that the
    // descriptor is still in place: `cls.__dict__` is a read-only proxy of it, and
    // its only referent.  If it cannot be found, every lookup takes the generic path.
    let proxy = cls.getattr(intern!(py, "__dict__"))?;
    let referents = py.import("gc")?.call_method1("get_referents", (&proxy,))?;
    let live = referents
        .try_iter()?
        .filter_map(Result::ok)
        .filter_map(|r| r.cast_into::<PyDict>().ok())
        .find(|dict| {
            dict.get_item(intern!(py, "debug"))
                .ok()
                .flatten()
                .is_some_and(|found| found.is(&descriptor))
        });
    if let Some(class_dict) = live {
        let _ = REGISTERED.set(py, Registered { class_dict: class_dict.unbind(), descriptor });
    }
    Ok(())
}

/// `setDebugging(on)`: set the switch; `Deferred.debug` reads it again even if it was
/// assigned directly since.
#[pyfunction]
pub fn _set_debugging(py: Python<'_>, on: bool) -> PyResult<()> {
    DEBUG.store(on, Ordering::Relaxed);
    let Ok(cls) = deferred::public_type(py) else {
        return Ok(());
    };
    let Some(registered) = REGISTERED.get(py) else {
        // No fast path: the class attribute is a plain value, as in Twisted.
        cls.setattr(intern!(py, "debug"), on)?;
        return Ok(());
    };
    let current = registered.class_dict.bind(py).get_item(intern!(py, "debug"))?;
    if !current.is_some_and(|found| found.is(&registered.descriptor)) {
        cls.setattr(intern!(py, "debug"), registered.descriptor.bind(py))?;
    }
    Ok(())
}
