//! `addCallback`, `addErrback`, `addBoth`, `callback` and `errback` called the
//! way C functions are called fastest.
//!
//! PyO3 compiles a method taking `*args, **kwargs` (as Twisted's `addCallback`
//! does) with CPython's oldest convention: every call packs its arguments into a
//! new tuple and goes through two layers of generic wrapper.  These five methods
//! are the ones every Deferred's life goes through, so the methods PyO3 made are
//! replaced, once at module initialisation, by `METH_FASTCALL | METH_KEYWORDS`
//! methods that take the arguments in place.  They handle the common call shapes
//! themselves (positional arguments only: `d.addCallback(f)`, `d.addCallback(f, x)`,
//! `d.callback(result)`, `d.errback()`, `d.errback(failure)`) and forward every
//! other call, unchanged, to the method PyO3 made, so keywords, argument errors and
//! their messages stay exactly as they were.  Name, `__doc__`, `__text_signature__`
//! and `__qualname__` are those of the replaced method.  The module function
//! `succeed` is replaced the same way (`succeed(result)` handled, any other call
//! forwarded).
//!
//! The public classes get their own copies of the compiled methods they inherit,
//! these five included (`own_methods`): CPython's specialised call of a C method
//! checks that `self` is exactly of the class the method was made for, and
//! otherwise takes the generic path.
//!
//! The methods run inside the wrapper PyO3 gives its own `METH_FASTCALL |
//! METH_KEYWORDS` methods (`pyo3::impl_::trampoline`, which PyO3's macros use and
//! does not document): it counts the thread as attached for PyO3, so a `Py`
//! reference dropped by the method is released at once rather than queued until
//! PyO3's next entry, and turns a Rust panic into `PanicException`.  `Cargo.lock`
//! pins PyO3; an upgrade must check that wrapper.  The wrapper costs two
//! thread-local accesses per call, so the calls that run no callback enter without
//! it and let go of references only as `Bound`s, which are released at once:
//! `succeed(result)` (see `succeed_entry`), `addCallback`, `addErrback` and `addBoth`
//! on an unfired Deferred, and `callback(result)` on one with nothing to run (see
//! `entry_method!`).  Every other call of those goes on into the wrapper.
//!
//! Only on CPython without the limited API; elsewhere PyO3's methods stay.

use pyo3::prelude::*;

#[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
mod native {
    use std::ffi::{CStr, CString};

    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::sync::PyOnceLock;
    use pyo3::exceptions::{PyRuntimeError, PyValueError};
    use pyo3::types::{PyModule, PyTuple, PyType};

    use crate::callbacks::{Call, Entry};
    use crate::deferred::{errback_with, push_entry, start_run, Deferred};

    /// The methods PyO3 made, which calls of other shapes are forwarded to.
    static ADD_CALLBACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static ADD_ERRBACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static ADD_BOTH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static CALLBACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static ERRBACK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

    type Fast = ffi::PyCFunctionFastWithKeywords;

    /// Replace the five methods of the compiled `Deferred`, keeping PyO3's to forward
    /// to.  Name and docstring (with the signature) are those of PyO3's methods.
    pub fn install(py: Python<'_>) -> PyResult<()> {
        let methods: [(&CStr, Fast, &PyOnceLock<Py<PyAny>>); 5] = [
            (c"addCallback", add_callback_entry, &ADD_CALLBACK),
            (c"addErrback", add_errback_entry, &ADD_ERRBACK),
            (c"addBoth", add_both_entry, &ADD_BOTH),
            (c"callback", callback_entry, &CALLBACK),
            (c"errback", errback(), &ERRBACK),
        ];
        let ty = py.get_type::<Deferred>();
        for (name, meth, original) in methods {
            let name_str = name.to_str().expect("ASCII method name");
            let made = ty.getattr(name_str)?;
            let def = definition(&made).ok_or_else(|| PyRuntimeError::new_err(format!("{name_str} is not a compiled method")))?;
            original
                .set(py, made.unbind())
                .map_err(|_| PyRuntimeError::new_err("fast methods installed twice"))?;
            // CPython keeps a pointer to the definition (and its strings) for the life
            // of the descriptor, which lives as long as the type: it is leaked, once
            // per method, when the module is set up.
            let fast = ffi::PyMethodDef {
                ml_name: name.as_ptr(),
                ml_meth: ffi::PyMethodDefPointer { PyCFunctionFastWithKeywords: meth },
                ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
                ml_doc: copied_doc(&def),
            };
            ty.setattr(name_str, new_descriptor(&ty, Box::leak(Box::new(fast)))?)?;
        }
        Ok(())
    }

    /// The `succeed` PyO3 made, which calls of other shapes are forwarded to.
    static SUCCEED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

    /// Replace the module function `succeed` of `module` by a `METH_FASTCALL |
    /// METH_KEYWORDS` function that makes the Deferred itself for `succeed(result)`
    /// and forwards every other call (`succeed(result=...)`, wrong arguments) to the
    /// one PyO3 made.  Name, docstring (with the signature), `__module__` and
    /// `__self__` are those of PyO3's function.
    pub fn install_functions(module: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = module.py();
        let made = module.getattr("succeed")?;
        let def = function_definition(&made).ok_or_else(|| PyRuntimeError::new_err("succeed is not a compiled function"))?;
        SUCCEED
            .set(py, made.unbind())
            .map_err(|_| PyRuntimeError::new_err("fast functions installed twice"))?;
        // Leaked once, as the methods' definitions are: CPython keeps pointing to it.
        let fast: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
            ml_name: c"succeed".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer { PyCFunctionFastWithKeywords: succeed_entry },
            ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: copied_doc(&def),
        }));
        let name = module.name()?;
        // SAFETY: `fast` is a valid `PyMethodDef` that is never freed, whose `ml_meth`
        // has the C signature its `ml_flags` announce; `module` and `name` are live
        // objects (borrowed: `PyCMethod_New` takes its own references).  The result is
        // a new reference or null with an exception set.
        let function = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyCMethod_New(fast, module.as_ptr(), name.as_ptr(), std::ptr::null_mut()),
            )
        }?;
        module.setattr("succeed", function)
    }

    /// The definition (`PyMethodDef`) a compiled function was made from, copied out;
    /// `None` if `function` is not exactly a `builtin_function_or_method`.
    fn function_definition(function: &Bound<'_, PyAny>) -> Option<ffi::PyMethodDef> {
        // The address of CPython's static type object (taken, not read).
        let builtin_function = &raw mut ffi::PyCFunction_Type;
        if !std::ptr::eq(function.get_type().as_type_ptr(), builtin_function) {
            return None;
        }
        // SAFETY: `function` is exactly a `builtin_function_or_method` (checked
        // above), whose C layout is `PyCFunctionObject`, alive while it is borrowed
        // here; its `m_ml` points to the valid `PyMethodDef` it was made from, which
        // is copied out (plain data).
        Some(unsafe { *(*function.as_ptr().cast::<ffi::PyCFunctionObject>()).m_ml })
    }

    /// `succeed`: see `install_functions`.  Run without PyO3's wrapper, which counts
    /// the thread as attached for PyO3 on the way in and out: two thread-local
    /// accesses (each a call in a shared library), about a tenth of the whole call.
    /// `succeed(result)` where `Deferred()` would be made by the compiled `__new__`
    /// alone (`construct::made_alone`), the common case, is made here; every other
    /// call goes to the function PyO3 made, with its wrapper.  Nothing here lets go
    /// of a `Py` reference (which, outside that count, PyO3 would queue rather than
    /// release) but the Deferred's value if it cannot be allocated.  A Rust panic
    /// becomes `PanicException`, as in the wrapper.
    ///
    /// # Safety
    /// Called by CPython as the function `install_functions` made: the thread is
    /// attached, `args` points to `nargs` positional values then one value per name
    /// in `kwnames` (null or a tuple), all borrowed for the call.
    unsafe extern "C" fn succeed_entry(
        _module: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject {
        // SAFETY: CPython calls a C function with the calling thread attached.
        let py = unsafe { Python::assume_attached() };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: `kwnames` is null or a valid tuple.
            if nargs == 1 && !unsafe { has_keywords(kwnames) } {
                if let Some(cls) = crate::construct::made_alone(py)? {
                    // SAFETY: `args[0]` is a valid borrowed reference for this call.
                    let result = unsafe { Bound::from_borrowed_ptr(py, *args) };
                    return crate::construct::new_public_fired_alone(cls, result).map(Bound::into_any);
                }
            }
            let original = SUCCEED
                .get(py)
                .ok_or_else(|| PyRuntimeError::new_err("fast functions not installed"))?;
            // SAFETY: the arguments are passed on exactly as they came (positional
            // values then keyword values, as `kwnames` describes), borrowed; the
            // result is a new reference or null with an exception set.
            unsafe {
                Bound::from_owned_ptr_or_err(
                    py,
                    ffi::PyObject_Vectorcall(original.as_ptr(), args, nargs as usize, kwnames),
                )
            }
        }));
        crate::errors::entry_return(py, outcome, "panic in succeed")
    }

    /// Give `sub` its own copy of each method of `base` (a compiled class) that `sub`
    /// inherits unchanged: the same C function, made for `sub`, so that CPython's
    /// specialised calls apply to `sub`'s instances (they check the exact class a C
    /// method was made for).  The copy takes its arguments and behaves as the
    /// original; a subclass of `sub` inherits it, with the generic call.
    pub fn own_methods(sub: &Bound<'_, PyType>, base: &Bound<'_, PyType>) -> PyResult<()> {
        let py = sub.py();
        let namespace = base.getattr(pyo3::intern!(py, "__dict__"))?;
        for item in namespace.call_method0(pyo3::intern!(py, "items"))?.try_iter()? {
            let (name, value): (String, Bound<'_, PyAny>) = item?.extract()?;
            let Some(def) = definition(&value) else { continue };
            if !sub.getattr(&*name)?.is(&value) {
                // `sub` (or a class between) defines the method itself: it stays.
                continue;
            }
            if def.ml_flags & (ffi::METH_METHOD | ffi::METH_CLASS | ffi::METH_STATIC) != 0 {
                // Told the class it was defined in (or bound to a class): a copy made
                // for `sub` would be told `sub`.  Left as it is.
                continue;
            }
            // The name and docstring are copied too, so the new definition depends on
            // nothing but the function, which is code.
            let copy = ffi::PyMethodDef {
                ml_name: leak_cstr(CString::new(name.as_str()).map_err(|e| PyValueError::new_err(e.to_string()))?),
                ml_doc: copied_doc(&def),
                ..def
            };
            let descriptor = new_descriptor(sub, Box::leak(Box::new(copy)))?;
            sub.setattr(&*name, descriptor)?;
        }
        Ok(())
    }

    /// Are `a` and `b` both compiled methods (`method_descriptor`s) that run the same C
    /// function: one method and its copy made by `own_methods`?
    pub fn same_method(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> bool {
        match (definition(a), definition(b)) {
            (Some(a), Some(b)) => std::ptr::eq(a.ml_meth.as_ptr(), b.ml_meth.as_ptr()),
            _ => false,
        }
    }

    /// The definition (`PyMethodDef`) a compiled method was made from, copied out;
    /// `None` if `method` is not exactly a `method_descriptor`.
    fn definition(method: &Bound<'_, PyAny>) -> Option<ffi::PyMethodDef> {
        // The address of CPython's static type object (taken, not read).
        let method_descriptor = &raw mut ffi::PyMethodDescr_Type;
        if !std::ptr::eq(method.get_type().as_type_ptr(), method_descriptor) {
            return None;
        }
        // SAFETY: `method` is exactly a `method_descriptor` (checked above), whose C
        // layout is `PyMethodDescrObject`, alive while it is borrowed here; its
        // `d_method` points to the valid `PyMethodDef` it was made from, which is
        // copied out (plain data: two string pointers, a function pointer, flags).
        Some(unsafe { *(*method.as_ptr().cast::<ffi::PyMethodDescrObject>()).d_method })
    }

    /// A copy of `def`'s docstring that lives as long as the process (null for none).
    fn copied_doc(def: &ffi::PyMethodDef) -> *const std::ffi::c_char {
        if def.ml_doc.is_null() {
            return std::ptr::null();
        }
        // SAFETY: a non-null `ml_doc` is a valid NUL-terminated string.
        leak_cstr(unsafe { CStr::from_ptr(def.ml_doc) }.to_owned())
    }

    /// A string that lives as long as the process (for a method definition, which
    /// CPython points to for as long as the class lives).
    fn leak_cstr(s: CString) -> *const std::ffi::c_char {
        Box::leak(s.into_boxed_c_str()).as_ptr()
    }

    /// A method descriptor of `ty` for `def`.
    fn new_descriptor<'py>(ty: &Bound<'py, PyType>, def: &'static mut ffi::PyMethodDef) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: `ty` is a live type object and `def` a valid `PyMethodDef` that
        // outlives it (it is never freed), whose `ml_meth` has the C signature its
        // `ml_flags` announce.  `PyDescr_NewMethod` returns a new reference or null
        // with an exception set, which `from_owned_ptr_or_err` takes over.
        unsafe { Bound::from_owned_ptr_or_err(ty.py(), ffi::PyDescr_NewMethod(ty.as_type_ptr(), def)) }
    }

    /// The common body of the five methods, run inside PyO3's own wrapper for
    /// `METH_FASTCALL | METH_KEYWORDS` methods (the one PyO3 gives the methods it
    /// makes: it counts the thread as attached for PyO3, so references dropped here
    /// are released at once, and turns a Rust panic into `PanicException`).  `body`
    /// gets the Deferred and the positional arguments when there are no keyword
    /// arguments, and returns `None` for a call it leaves to the `original` method.
    ///
    /// # Safety
    /// The arguments must be those CPython passes to a `METH_FASTCALL |
    /// METH_KEYWORDS` method of a descriptor made by `install` (or a copy of one made
    /// by `own_methods`), with the thread attached.
    #[inline(always)]
    unsafe fn fastcall<'py>(
        py: Python<'py>,
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: ffi::Py_ssize_t,
        kwnames: *mut ffi::PyObject,
        original: &PyOnceLock<Py<PyAny>>,
        body: impl for<'a> FnOnce(
            &'a Bound<'py, Deferred>,
            &'a [Borrowed<'a, 'py, PyAny>],
        ) -> Option<PyResult<Bound<'py, PyAny>>>,
    ) -> PyResult<*mut ffi::PyObject> {
        // SAFETY: the method descriptor checks that `self` is an instance of the type
        // it was made for (`Deferred`, or a subclass) before calling, in every path
        // (the descriptor's own call, a bound method made by its `__get__`, the
        // interpreter's specialised calls, which check the exact type); `slf` is a
        // valid borrowed reference for this call.
        let d = unsafe { Borrowed::from_ptr(py, slf).cast_unchecked::<Deferred>() };
        let nargs = usize::try_from(nargs).unwrap_or(0);
        // SAFETY: `args` points to `nargs` valid borrowed references (then the keyword
        // arguments' values, not read here), alive for this call.  `Borrowed<PyAny>`
        // is a `#[repr(transparent)]` wrapper of a non-null `*mut ffi::PyObject`, so
        // the array can be read as a slice of them.
        let positional: &[Borrowed<'_, 'py, PyAny>] = if nargs == 0 {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(args.cast::<Borrowed<'_, 'py, PyAny>>(), nargs) }
        };
        // SAFETY: `kwnames` is null or a valid tuple of the keyword names.
        let handled = if unsafe { has_keywords(kwnames) } { None } else { body(&d, positional) };
        match handled {
            Some(result) => result.map(Bound::into_ptr),
            None => forward(py, original, slf, args, nargs, kwnames),
        }
    }

    /// Did the call pass keyword arguments?
    ///
    /// # Safety
    /// `kwnames` is the `kwnames` of a vectorcall: null or a valid tuple of strings.
    #[inline(always)]
    unsafe fn has_keywords(kwnames: *mut ffi::PyObject) -> bool {
        // SAFETY: as this function's own contract.
        !kwnames.is_null() && unsafe { ffi::PyTuple_GET_SIZE(kwnames) } != 0
    }

    /// Call `original(self, *args, **kwargs)` with the arguments as they came.
    #[inline(never)]
    fn forward(
        py: Python<'_>,
        original: &PyOnceLock<Py<PyAny>>,
        slf: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargs: usize,
        kwnames: *mut ffi::PyObject,
    ) -> PyResult<*mut ffi::PyObject> {
        let original = original
            .get(py)
            .ok_or_else(|| PyRuntimeError::new_err("fast methods not installed"))?;
        // SAFETY: `kwnames` is null or a valid tuple (as in `fastcall`).
        let nkw = if kwnames.is_null() { 0 } else { unsafe { ffi::PyTuple_GET_SIZE(kwnames) } };
        let total = nargs + usize::try_from(nkw).unwrap_or(0);
        let mut stack = Vec::with_capacity(total + 1);
        stack.push(slf);
        // SAFETY: `args` points to `nargs` positional values followed by one value
        // per keyword name, all valid borrowed references for this call.
        stack.extend((0..total).map(|i| unsafe { *args.add(i) }));
        // SAFETY: `original` is a live callable; `stack` holds `nargs + 1` positional
        // and `nkw` keyword values, borrowed (the callee does not steal them), as
        // `kwnames` describes; the result is a new reference or null with an
        // exception set.
        let result = unsafe {
            ffi::PyObject_Vectorcall(original.as_ptr(), stack.as_ptr(), nargs + 1, kwnames)
        };
        if result.is_null() {
            Err(PyErr::fetch(py))
        } else {
            Ok(result)
        }
    }

    /// A `METH_FASTCALL | METH_KEYWORDS` C function wrapped by PyO3,
    /// whose body is `fastcall` with `$original` and the closure given.
    macro_rules! fast_method {
        ($original:ident, |$d:ident, $positional:ident| $body:expr) => {{
            /// # Safety
            /// Called by CPython (through PyO3's wrapper) as a method `install` made.
            unsafe fn body<'py>(
                py: Python<'py>,
                slf: *mut ffi::PyObject,
                args: *const *mut ffi::PyObject,
                nargs: ffi::Py_ssize_t,
                kwnames: *mut ffi::PyObject,
            ) -> PyResult<*mut ffi::PyObject> {
                // SAFETY: as this function's own contract.
                unsafe { fastcall(py, slf, args, nargs, kwnames, &$original, |$d, $positional| $body) }
            }
            pyo3::impl_::trampoline::get_trampoline_function!(fastcall_cfunction_with_keywords, body)
        }};
    }

    /// A C entry for a method, run without PyO3's wrapper, which counts the thread
    /// as attached for PyO3 on the way in and out (two thread-local accesses, each a
    /// call in a shared library).  It handles calls with positional arguments only
    /// when `$quick` can (`$quick` returns `None` for the cases it leaves, having
    /// changed nothing), and passes every other call to `$wrapped`, the same method
    /// inside PyO3's wrapper.  `$quick` lets go of references only as `Bound`s
    /// (released at once: outside the wrapper's count PyO3 would queue a dropped
    /// `Py`).  A Rust panic becomes `PanicException`, as in the wrapper.
    macro_rules! entry_method {
        ($name:ident, $wrapped:expr, $what:literal, |$d:ident, $positional:ident| $quick:expr) => {
            /// # Safety
            /// Called by CPython as a method `install` made (or a copy `own_methods`
            /// made): the thread is attached, `slf` is an instance of the compiled
            /// class, `args` points to `nargs` positional values then one value per
            /// name in `kwnames` (null or a tuple), all borrowed for the call.
            unsafe extern "C" fn $name(
                slf: *mut ffi::PyObject,
                args: *const *mut ffi::PyObject,
                nargs: ffi::Py_ssize_t,
                kwnames: *mut ffi::PyObject,
            ) -> *mut ffi::PyObject {
                // SAFETY: `kwnames` is null or a valid tuple.
                if nargs > 0 && !unsafe { has_keywords(kwnames) } {
                    // SAFETY: CPython calls a C method with the calling thread attached.
                    let py = unsafe { Python::assume_attached() };
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        // SAFETY: the method descriptor checks that `self` is an
                        // instance of the type it was made for (as in `fastcall`);
                        // `slf` is a valid borrowed reference for this call, and
                        // `args` points to `nargs` of them (read as in `fastcall`).
                        let ($d, $positional) = unsafe {
                            (
                                Borrowed::from_ptr(py, slf).cast_unchecked::<Deferred>(),
                                std::slice::from_raw_parts(args.cast::<Borrowed<'_, '_, PyAny>>(), nargs as usize),
                            )
                        };
                        let quick: PyResult<Option<Bound<'_, PyAny>>> = $quick;
                        quick
                    }));
                    match outcome {
                        Ok(Ok(None)) => {}
                        Ok(Ok(Some(obj))) => return obj.into_ptr(),
                        Ok(Err(err)) => return crate::errors::entry_return(py, Ok(Err(err)), $what),
                        Err(payload) => return crate::errors::entry_return(py, Err(payload), $what),
                    }
                }
                // SAFETY: the arguments are passed on exactly as they came, to the
                // same method inside PyO3's wrapper, under the same contract.
                unsafe { ($wrapped)(slf, args, nargs, kwnames) }
            }
        };
    }

    /// `addCallback(f, *args)` (and `addErrback`, `addBoth`) given positionally on an
    /// unfired Deferred: the entry is added, as `add` makes it, and nothing runs.
    #[inline(always)]
    fn add_unfired<'py>(
        d: &Bound<'py, Deferred>,
        positional: &[Borrowed<'_, 'py, PyAny>],
        entry: fn(Call) -> Entry,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(first) = positional.first() else { return Ok(None) };
        let call_args = if is_bare_callable(positional) {
            None
        } else {
            // Not made for a Deferred that has fired (the common case where it has):
            // the method PyO3 made would make it again.
            if crate::deferred::is_called(d)? {
                return Ok(None);
            }
            Some(packed(d.py(), positional)?)
        };
        // If `d` has fired meanwhile (only code run by a collection while the tuple
        // was allocated could fire it), `call_args` is let go of as a `Bound`.
        let added = crate::deferred::push_unfired(d, || {
            entry(match call_args {
                None => Call::from_func(Borrowed::to_owned(*first).unbind()),
                Some(call_args) => Call::from_call_args(call_args, None),
            })
        })?;
        Ok(added.then(|| d.clone().into_any()))
    }

    entry_method!(add_callback_entry, add_callback(), "panic in addCallback", |d, positional| add_unfired(
        &d,
        positional,
        Entry::Callback
    ));
    entry_method!(add_errback_entry, add_errback(), "panic in addErrback", |d, positional| add_unfired(
        &d,
        positional,
        Entry::Errback
    ));
    entry_method!(add_both_entry, add_both(), "panic in addBoth", |d, positional| add_unfired(
        &d,
        positional,
        Entry::Both
    ));
    entry_method!(callback_entry, callback(), "panic in callback", |d, positional| match positional {
        [result] => {
            let py = d.py();
            crate::deferred::fire_settled(&d, &Borrowed::to_owned(*result))
                .map(|done| done.then(|| py.None().into_bound(py)))
        }
        _ => Ok(None),
    });

    fn add_callback() -> Fast {
        fast_method!(ADD_CALLBACK, |d, positional| add(d, positional, Entry::Callback, true))
    }

    fn add_errback() -> Fast {
        fast_method!(ADD_ERRBACK, |d, positional| add(d, positional, Entry::Errback, false))
    }

    fn add_both() -> Fast {
        fast_method!(ADD_BOTH, |d, positional| add(d, positional, Entry::Both, true))
    }

    /// The tuple `(f, *args)` of a call's positional arguments, kept as the entry's
    /// packed call (`Call::from_call_args`).  Made with `PyTuple_New` and filled in
    /// place: `PyTuple::new`'s conversion of each item, and its check that the
    /// iterator gave as many items as it said, cost about 35 instructions a call here
    /// (`chain_fires_at_start`, four such calls: 7,500 -> 7,360).
    #[inline(always)]
    fn packed<'py>(py: Python<'py>, positional: &[Borrowed<'_, 'py, PyAny>]) -> PyResult<Bound<'py, PyTuple>> {
        // A slice never holds more than `isize::MAX` items.
        let len = positional.len() as ffi::Py_ssize_t;
        // SAFETY: `PyTuple_New` returns a new tuple of `len` empty slots, or null with
        // an exception set (taken as an error).  Each slot `i < len` is then given a
        // new reference to an item, which the tuple owns (`PyTuple_SET_ITEM` steals
        // it); nothing runs between the allocation and the last item (no Python code,
        // no allocation that could start a collection), so no code sees an empty slot.
        unsafe {
            let tuple = Bound::from_owned_ptr_or_err(py, ffi::PyTuple_New(len))?;
            for (i, item) in positional.iter().enumerate() {
                ffi::PyTuple_SET_ITEM(tuple.as_ptr(), i as ffi::Py_ssize_t, Borrowed::to_owned(*item).into_ptr());
            }
            Ok(tuple.cast_into_unchecked())
        }
    }

    /// Are the positional arguments of `addCallback(...)` the callable alone, kept as
    /// it is (`Call::from_func`)?  A tuple alone is packed, as `Call::from_call_args`
    /// packs it, so that it is not taken for the packed arguments.
    #[inline(always)]
    fn is_bare_callable(positional: &[Borrowed<'_, '_, PyAny>]) -> bool {
        matches!(positional, [only] if !only.is_exact_instance_of::<PyTuple>())
    }

    /// `addCallback(f, *args)` (or `addErrback`, `addBoth`) given positionally.
    #[inline(always)]
    fn add<'py>(
        d: &Bound<'py, Deferred>,
        positional: &[Borrowed<'_, 'py, PyAny>],
        entry: fn(Call) -> Entry,
        runs_on_success: bool,
    ) -> Option<PyResult<Bound<'py, PyAny>>> {
        let (first, _) = positional.split_first()?;
        if runs_on_success {
            if let Some(ran) = crate::runner::call_settled(d, positional) {
                return Some(ran.map(|()| d.clone().into_any()));
            }
        }
        let call = if is_bare_callable(positional) {
            Ok(Call::from_func(Borrowed::to_owned(*first).unbind()))
        } else {
            packed(d.py(), positional).map(|args| Call::from_call_args(args, None))
        };
        Some(call.and_then(|call| push_entry(d, entry(call))).map(Bound::into_any))
    }

    fn callback() -> Fast {
        fast_method!(CALLBACK, |d, positional| match positional {
            [result] => Some(start_run(d, Borrowed::to_owned(*result)).map(|()| d.py().None().into_bound(d.py()))),
            _ => None,
        })
    }

    fn errback() -> Fast {
        fast_method!(ERRBACK, |d, positional| {
            let fail = match positional {
                [] => None,
                [fail] => Some(Borrowed::to_owned(*fail)),
                _ => return None,
            };
            Some(errback_with(d, fail).map(|()| d.py().None().into_bound(d.py())))
        })
    }
}

/// Replace the five methods of the compiled `Deferred` and the function `succeed`
/// of `module` (called once, when the module is initialised, before any subclass
/// exists).
pub fn install(module: &Bound<'_, pyo3::types::PyModule>) -> PyResult<()> {
    #[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
    {
        native::install(module.py())?;
        native::install_functions(module)?;
    }
    #[cfg(any(Py_LIMITED_API, PyPy, GraalPy))]
    let _ = module;
    Ok(())
}

/// Give the public class `sub` its own copies of the methods it inherits from the
/// compiled class `base` (see `native::own_methods`).
pub fn own_methods(sub: &Bound<'_, pyo3::types::PyType>, base: &Bound<'_, pyo3::types::PyType>) -> PyResult<()> {
    #[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
    native::own_methods(sub, base)?;
    #[cfg(any(Py_LIMITED_API, PyPy, GraalPy))]
    let _ = (sub, base);
    Ok(())
}

/// Is `found` the compiled method `ours`, or a copy of it made by `own_methods`?
pub fn is_compiled_method(found: &Bound<'_, PyAny>, ours: &Bound<'_, PyAny>) -> bool {
    #[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
    return found.is(ours) || native::same_method(found, ours);
    #[cfg(any(Py_LIMITED_API, PyPy, GraalPy))]
    return found.is(ours);
}
