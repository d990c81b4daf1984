"""
What a workload produced, in a form that does not depend on the implementation.

Before anything is timed, every workload runs on both implementations and the two
outcomes must be equal.  Deferreds and Failures are different classes on each side,
so :func:`outcome` replaces them by plain tuples describing their state; everything
else (lists, tuples, dicts, numbers, strings) is compared as it is.
"""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure

from txdefer.bench.impls import DEFERRED_TYPES


def outcome(value: Any) -> Any:
    """
    Describe ``value`` with plain data.

    * a Deferred that has not fired: ``("pending",)``;
    * a Deferred that has fired but waits on another Deferred: ``("waiting",)``;
    * a fired Deferred: ``("fired", outcome(result))``.  Reading the result adds a
      callback that returns ``None``, so a failure is consumed and never logged as
      unhandled;
    * a Failure: ``("failure", exception class name, str(exception))``;
    * lists, tuples and dict values are described item by item.
    """
    if isinstance(value, DEFERRED_TYPES):
        return _deferred_outcome(value)
    if isinstance(value, Failure):
        return ("failure", type(value.value).__qualname__, str(value.value))
    if isinstance(value, BaseException):
        return ("exception", type(value).__qualname__, str(value))
    if isinstance(value, list):
        return [outcome(item) for item in value]
    if isinstance(value, tuple):
        return tuple(outcome(item) for item in value)
    if isinstance(value, dict):
        return {key: outcome(item) for key, item in value.items()}
    return value


def _deferred_outcome(d: Any) -> tuple[Any, ...]:
    if not d.called:
        return ("pending",)
    box: list[Any] = []
    d.addBoth(_store, box)
    if not box:
        return ("waiting",)
    return ("fired", outcome(box[0]))


def _store(result: Any, box: list[Any]) -> None:
    box.append(result)
