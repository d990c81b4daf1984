//! Allocating a new `txdefer.Deferred` without `object.__new__`.
//!
//! PyO3 makes an instance of a class by calling its native base's `tp_new`, here
//! `object.__new__`, and then writing the Rust value into the new object.  For a
//! class defined in Python, as the public `txdefer.Deferred` is, `object.__new__`
//! on CPython 3.11 and 3.12 also gives every instance an array for its instance
//! attributes: a `malloc` when the Deferred is made and a `free` when it goes,
//! although almost no Deferred ever gets an attribute of its own.  Otherwise
//! `object.__new__`, called without arguments, only allocates (`tp_alloc`) and
//! refuses an abstract class.
//!
//! So the constructors on the hot path (`Deferred()`, `succeed()`, a waiter...)
//! allocate with the class's `tp_alloc` and write the value where PyO3 writes it.
//! The instance then starts as instances made by `PyType_GenericNew` do (the
//! `tp_new` of many C types): without its attribute array, which CPython makes
//! when an attribute is first set.  CPython 3.10 has no such array, and 3.13 sets
//! it up in `tp_alloc` itself.
//!
//! Where the value goes is measured, not assumed: `prepare` makes one Deferred
//! the ordinary way and records the offset of its value.  It also checks that PyO3
//! wrote nothing but zeroes in the rest of the object (its weak-reference slot, and
//! slots that take no room for this class), which is what `tp_alloc` leaves there.
//! If either check fails (another PyO3 layout), every Deferred is made the ordinary
//! way.

use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::deferred::Deferred;

/// The offset of the Rust value inside an instance, where `prepare` found that an
/// instance can be allocated directly; unset (ordinary construction) otherwise.
#[cfg(not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy)))]
static VALUE_OFFSET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Measure the layout of an instance, once (at module initialisation): see the
/// module docs.
#[cfg(not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy)))]
pub fn prepare(py: Python<'_>) -> PyResult<()> {
    let sample = Bound::new(py, Deferred::with_state(crate::deferred::State::new(None, None)))?;
    let object = sample.as_ptr().cast::<u8>();
    let value = std::ptr::from_ref(sample.get()).cast::<u8>();
    let header = std::mem::size_of::<pyo3::ffi::PyObject>();
    let size = std::mem::size_of::<Deferred>();
    // SAFETY: the type object of the compiled class is live (PyO3 keeps it for the
    // life of the process) and fully initialised; `tp_basicsize` is a plain read.
    let basic_size = unsafe { (*py.get_type::<Deferred>().as_type_ptr()).tp_basicsize };
    let Ok(basic_size) = usize::try_from(basic_size) else { return Ok(()) };
    let offset = (value as usize).wrapping_sub(object as usize);
    let fits = offset >= header
        && offset % std::mem::align_of::<Deferred>() == 0
        && offset.checked_add(size).is_some_and(|end| end <= basic_size);
    if !fits {
        return Ok(());
    }
    // SAFETY: `object` points to the start of a live instance (`sample` holds it)
    // whose allocation is at least `tp_basicsize` bytes long; the bytes read are
    // those after the object header and outside the Rust value (`offset` and
    // `size` were checked to lie inside that range).  PyO3 initialised them when it
    // made the object (`tp_alloc` zeroes everything, then PyO3 writes its slots:
    // after the value, fields that are zero-sized or one pointer wide, so no
    // padding its write could leave undefined), so they are initialised memory, and
    // nothing writes to them during this read.
    let rest_is_zero = unsafe {
        let before = std::slice::from_raw_parts(object.add(header), offset - header);
        let after = std::slice::from_raw_parts(object.add(offset + size), basic_size - offset - size);
        before.iter().chain(after).all(|&b| b == 0)
    };
    if rest_is_zero {
        let _ = VALUE_OFFSET.set(offset);
    }
    Ok(())
}

#[cfg(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy))]
pub fn prepare(_py: Python<'_>) -> PyResult<()> {
    Ok(())
}

/// A new instance of `cls` (the public class, whose `__new__` is the compiled one)
/// holding `value`: allocated directly where `prepare` allowed it and `cls` is not
/// abstract, else by PyO3 as the compiled `__new__` makes it.
pub fn instance<'py>(py: Python<'py>, cls: &Bound<'py, PyType>, value: Deferred) -> PyResult<Bound<'py, Deferred>> {
    #[cfg(not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy)))]
    if let Some(&offset) = VALUE_OFFSET.get() {
        let tp = cls.as_type_ptr();
        // SAFETY: `tp` is the live type object of `cls` (borrowed for this call), a
        // subclass of the compiled class; reading its flags and `tp_alloc` are
        // plain loads, not raced by writes (the thread is attached on a GIL build).
        let (flags, alloc) = unsafe { ((*tp).tp_flags, (*tp).tp_alloc) };
        if flags & pyo3::ffi::Py_TPFLAGS_IS_ABSTRACT == 0 {
            let value = match crate::recycle::reuse(py, tp, value) {
                Ok(reused) => return Ok(reused),
                Err(value) => value,
            };
            let alloc = alloc.unwrap_or(pyo3::ffi::PyType_GenericAlloc);
            // SAFETY: `tp_alloc(tp, 0)` is how `object.__new__` allocates an instance
            // of `tp`: it returns a new reference to a zero-filled object of
            // `tp_basicsize` bytes (at least the compiled class's), with its type set,
            // or null with an exception set.
            let obj = unsafe { alloc(tp, 0) };
            if obj.is_null() {
                return Err(PyErr::fetch(py));
            }
            // SAFETY: `obj` is a new instance of a subclass of the compiled class, so
            // it has the compiled class's layout, in which `prepare` found the Rust
            // value at `offset` (suitably aligned, inside `tp_basicsize`) and zeroes
            // everywhere else after the header, as `tp_alloc` has just left them.
            // Writing the value there leaves the object exactly as PyO3 leaves one
            // it makes.  No Python code has run since the allocation (so no
            // collection could visit the object before the value is in place), and
            // `obj` is not yet visible to any other code.
            unsafe {
                obj.cast::<u8>().add(offset).cast::<Deferred>().write(value);
                return Ok(Bound::from_owned_ptr(py, obj).cast_into_unchecked::<Deferred>());
            }
        }
    }
    let init = pyo3::PyClassInitializer::from(value);
    // SAFETY: `tp_new_impl` requires `cls` to be the type object of `Deferred` or of a
    // subclass: `cls` is the public class, registered by `_register_public` only
    // after checking that it subclasses the compiled class, and alive (borrowed for
    // this call).  It allocates with `cls`'s `tp_alloc` and moves `init` into the
    // new object, exactly as the compiled `__new__` (`Deferred::py_new`) does.
    let obj = unsafe { pyo3::impl_::pymethods::tp_new_impl(py, init, cls.as_type_ptr()) }?;
    // SAFETY: `obj` is a new (owned, non-null) reference to an instance of `cls`,
    // a subclass of `Deferred`.
    Ok(unsafe { Bound::from_owned_ptr(py, obj).cast_into_unchecked::<Deferred>() })
}

/// The offset of the Rust value inside an instance, if `prepare` measured it.
#[cfg(txdefer_recycle)]
pub(crate) fn value_offset() -> Option<usize> {
    VALUE_OFFSET.get().copied()
}

/// Are new Deferreds allocated directly (`prepare` found the layout it needs)?
/// (For the tests; always false on builds where the direct path is compiled out.)
#[pyfunction]
pub fn _allocates_directly() -> bool {
    #[cfg(not(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy)))]
    {
        VALUE_OFFSET.get().is_some()
    }
    #[cfg(any(Py_LIMITED_API, Py_GIL_DISABLED, PyPy, GraalPy))]
    {
        false
    }
}
