//! `fail` and `maybeDeferred`: Deferreds for results known now (`succeed` lives with
//! the class, in `deferred.rs`).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::intern;

use crate::deferred::{self, Deferred};
use crate::imports::{self, ResultKind};

/// Return a Deferred that has already had `.errback(result)` called.
///
/// `result` is what `Deferred.errback` takes: a `Failure`, an exception (or any
/// object) to wrap in one, or, with no argument inside an `except` block, the
/// exception being handled (`NoCurrentExceptionError` if there is none).
#[pyfunction]
#[pyo3(signature = (result=None))]
pub fn fail<'py>(py: Python<'py>, result: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, Deferred>> {
    let d = crate::construct::new_public(py, crate::construct::CancellerArg::Absent)?;
    deferred::errback_with(&d, result)?;
    Ok(d)
}

/// Invoke a function that may or may not return a Deferred or coroutine.
///
/// Call `f(*args, **kwargs)`: a Deferred it returns is returned as it is, a
/// `Failure` is wrapped with `fail`, a coroutine with `Deferred.fromCoroutine`,
/// anything else with `succeed`; an exception it raises becomes a failed Deferred.
#[pyfunction]
#[pyo3(name = "maybeDeferred", signature = (*args, **kwargs), text_signature = "(f, *args, **kwargs)")]
pub fn maybe_deferred<'py>(
    args: Bound<'py, PyTuple>,
    kwargs: Option<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = args.py();
    if kwargs.as_ref().is_some_and(|k| k.contains("f").unwrap_or(false)) && !args.is_empty() {
        return Err(PyTypeError::new_err("maybeDeferred() got multiple values for argument 'f'"));
    }
    let (f, rest, kwargs) = match args.len() {
        0 => match kwargs.as_ref().and_then(|k| k.get_item("f").ok().flatten()) {
            Some(f) => {
                let rest = kwargs.as_ref().map(|k| k.copy()).transpose()?;
                if let Some(rest) = &rest {
                    rest.del_item("f")?;
                }
                (f, PyTuple::empty(py), rest)
            }
            None => {
                return Err(PyTypeError::new_err(
                    "maybeDeferred() missing 1 required positional argument: 'f'",
                ))
            }
        },
        n => (args.get_item(0)?, args.get_slice(1, n), kwargs),
    };
    let called = match &kwargs {
        Some(k) if !k.is_empty() => f.call(rest, Some(k)),
        _ if rest.is_empty() => f.call0(),
        _ => f.call1(rest),
    };
    let result = match called {
        Ok(result) => result,
        Err(err) => {
            // `Failure(captureVars=Deferred.debug)`, as Twisted builds it.
            let debug = deferred::public_type(py)?.getattr(intern!(py, "debug"))?.is_truthy()?;
            let failure = imports::failure_from_err(py, err, debug)?;
            return Ok(fail(py, Some(failure))?.into_any());
        }
    };
    match imports::classify(&result)? {
        ResultKind::Deferred | ResultKind::ForeignDeferred => Ok(result),
        ResultKind::Failure => Ok(fail(py, Some(result))?.into_any()),
        ResultKind::Plain => {
            if result.get_type().is(crate::inline_callbacks::coroutine_type(py)?) {
                return crate::inline_callbacks::from_coroutine(result);
            }
            Ok(deferred::succeed(py, result)?.into_any())
        }
    }
}
