"""
The public ``txdefer.Deferred`` class.

All behaviour is in the compiled base class ``txdefer._core.DeferredBase``; this
subclass adds the instance ``__dict__`` that Twisted's ``Deferred`` has (e.g. for
``d.debug = True`` on one instance) and carries the public name.
"""

from __future__ import annotations

from typing import TypeVar

from txdefer import _core

_T = TypeVar("_T")


class Deferred(_core.DeferredBase[_T]):
    __doc__ = _core.DeferredBase.__doc__


Deferred.__module__ = "txdefer"
_core._register_public(Deferred)
