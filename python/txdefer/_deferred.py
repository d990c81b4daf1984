"""
The public ``txdefer.Deferred`` class.

All behaviour is in the compiled base class ``txdefer._core.DeferredBase``; this
subclass adds the instance ``__dict__`` that Twisted's ``Deferred`` has (e.g. for
``d.debug = True`` on one instance), ``pickle`` and ``copy`` support (the state is
what Twisted's instance ``__dict__`` holds), and carries the public name.
"""

from __future__ import annotations

import copyreg
import operator
import weakref
from typing import Any, SupportsIndex, TypeVar

from txdefer import _core

#: ``copyreg.__newobj__``, which pickle protocols 0 and 1 call as ``cls.__new__(cls)``
#: (it is not in the type stubs of ``copyreg``).
_newobj = copyreg.__newobj__  # type: ignore[attr-defined]

_T = TypeVar("_T")


class Deferred(_core.DeferredBase[_T]):
    __doc__ = _core.DeferredBase.__doc__

    @property
    def __weakref__(self) -> Any:
        """
        The first weak reference to this Deferred (``None`` when there is none), as
        a Python class's ``__weakref__`` attribute gives it; the compiled base
        supports weak references without that attribute.
        """
        refs = weakref.getweakrefs(self)
        return refs[0] if refs else None

    def __getstate__(self) -> Any:
        """
        What Twisted's ``Deferred`` pickles: its instance ``__dict__``, which holds
        ``_callbacks`` (a list of ``((callback, args, kwargs), (errback, args,
        kwargs))``), ``_canceller``, and every attribute that differs from the
        class-level default (``called``, ``result``, ``paused``, ``_chainedTo``,
        ``_debugInfo``...), then the instance's own attributes.
        """
        return _with_slots(self, _state(self))

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        # Pickle protocols 0 and 1 rebuild an instance with ``object.__new__``,
        # which cannot make one of a compiled class: use the class's own
        # ``__new__`` instead, as protocol 2 does.  A ``__reduce__`` a subclass
        # defines still takes precedence, as with ``object.__reduce_ex__``.
        if operator.index(protocol) >= 2 or type(self).__reduce__ is not object.__reduce__:
            return super().__reduce_ex__(protocol)
        return (_newobj, (type(self),), self.__getstate__())

    def __setstate__(self, state: Any) -> None:
        # Twisted's Deferred has no ``__setstate__``: unpickling updates its
        # ``__dict__`` (and sets the ``__slots__`` of a subclass, given as a second
        # dict).  Here each attribute is assigned, so the state of a Deferred
        # pickled by Twisted's own class loads as well.
        _set_state(self, state)


_NO_RESULT = object()


# Twisted's class-level defaults: an attribute is in an instance's ``__dict__``
# only once it has been given another value (or the same one, by assignment).
_DEFAULTS = (
    ("called", False),
    ("paused", 0),
    ("_suppressAlreadyCalled", False),
    ("_runningCallbacks", False),
    ("_chainedTo", None),
    ("_debugInfo", None),
)
_SET_BY_A_RUN = frozenset({"_chainedTo", "_runningCallbacks"})


def _state(d: Deferred[Any]) -> dict[str, Any]:
    state: dict[str, Any] = {"_callbacks": list(d._callbacks), "_canceller": d._canceller}
    called = d.called
    for name, default in _DEFAULTS:
        value = getattr(d, name)
        # Running the callbacks (which firing does) leaves ``_chainedTo`` and
        # ``_runningCallbacks`` in Twisted's instance ``__dict__``.
        if (value is not default and value != default) or (called and name in _SET_BY_A_RUN):
            state[name] = value
    result = getattr(d, "result", _NO_RESULT)
    if result is not _NO_RESULT:
        state["result"] = result
    state.update(d.__dict__)
    return state


def _with_slots(obj: object, state: dict[str, Any]) -> Any:
    """
    ``state``, and beside it the ``__slots__`` a subclass defines, if any are set:
    the form ``object.__getstate__`` gives, ``(dict, slots)``.
    """
    slots = {
        name: getattr(obj, name)
        for name in copyreg._slotnames(type(obj))  # type: ignore[attr-defined]
        if hasattr(obj, name)
    }
    return (state, slots) if slots else state


def _split_state(state: Any) -> tuple[Any, Any]:
    """``(dict, slots)`` of a state in either form ``_with_slots`` gives."""
    return state if isinstance(state, tuple) else (state, None)


def _set_state(obj: object, state: Any) -> None:
    """Assign each attribute of ``state`` (a dict, or ``(dict, slots)``)."""
    for part in _split_state(state):
        for name, value in (part or {}).items():
            setattr(obj, name, value)


Deferred.__module__ = "txdefer"
_core._register_public(Deferred)
