"""
The public ``txdefer.Deferred`` class.

All behaviour is in the compiled base class ``txdefer._core.DeferredBase``; this
subclass adds the instance ``__dict__`` that Twisted's ``Deferred`` has (e.g. for
``d.debug = True`` on one instance) and carries the public name.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

from txdefer import _core

_T = TypeVar("_T")


class Deferred(_core.DeferredBase[_T]):
    __doc__ = _core.DeferredBase.__doc__

    def __copy__(self) -> Deferred[_T]:
        # As copying Twisted's Deferred does: same state, same instance attributes.
        return _copyState(self, lambda value: value)

    def __deepcopy__(self, memo: dict[int, Any]) -> Deferred[_T]:
        return _copyState(self, lambda value: copy.deepcopy(value, memo))


_NO_RESULT = object()


def _copyState(d: Deferred[Any], copier: Callable[[Any], Any]) -> Deferred[Any]:
    cls = type(d)
    new = cls.__new__(cls)
    new.__dict__.update(copier(d.__dict__))
    if "debug" in new.__dict__:
        # Through the descriptor, which notes that this instance has its own value.
        new.debug = new.__dict__["debug"]
    result = getattr(d, "result", _NO_RESULT)
    if result is not _NO_RESULT:
        new.result = copier(result)
    new.called = d.called
    new.paused = d.paused
    new._suppressAlreadyCalled = d._suppressAlreadyCalled
    new._canceller = copier(d._canceller)
    new._chainedTo = copier(d._chainedTo)
    new._debugInfo = copier(d._debugInfo)
    new._callbacks = copier(list(d._callbacks))
    return new


Deferred.__module__ = "txdefer"
_core._register_public(Deferred)
