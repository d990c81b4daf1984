"""
``txdefer.install()``: make ``twisted.internet.defer`` hand out txdefer's
implementations.
"""

from __future__ import annotations

import sys
import warnings

import twisted.internet.defer as _tdefer

from txdefer import _defer, _support
from txdefer._core import _DEFERRED_SUBCLASSES
from txdefer._deferred import Deferred

#: Names of ``twisted.internet.defer`` that install() rebinds to txdefer's objects.
#: Everything else (exception classes, ``returnValue``, ``FirstError``, ``DebugInfo``,
#: the logger...) is shared: txdefer uses Twisted's own objects for those.
REPLACED = (
    "Deferred",
    "DeferredList",
    "succeed",
    "fail",
    "execute",
    "maybeDeferred",
    "passthru",
    "_failthru",
    "setDebugging",
    "getDebugging",
    "logError",
    "ensureDeferred",
    "inlineCallbacks",
    "_cancellableInlineCallbacks",
    "_addCancelCallbackToDeferred",
    "_handleCancelInlineCallbacks",
    "gatherResults",
    "_parseDeferredListResult",
    "race",
    "_ConcurrencyPrimitive",
    "DeferredLock",
    "DeferredSemaphore",
    "DeferredQueue",
    "DeferredFilesystemLock",
    "_DEFERRED_SUBCLASSES",
)


class InstallWarning(RuntimeWarning):
    """
    ``install()`` was called after some Twisted code had already captured Twisted's
    own ``Deferred`` in a way that cannot be rebound (a subclass of it).
    """


_originals: dict[str, object] = {}


def _ours(name: str) -> object:
    if name == "_DEFERRED_SUBCLASSES":
        return _DEFERRED_SUBCLASSES
    for source in (_defer, _support):
        if hasattr(source, name):
            return getattr(source, name)
    raise AttributeError(name)


def installed() -> bool:
    """
    Is txdefer installed into ``twisted.internet.defer``?
    """
    return _tdefer.Deferred is Deferred


def install() -> None:
    """
    Make ``twisted.internet.defer`` (and so all of Twisted) use txdefer.

    Call it before the rest of Twisted is imported.  It rebinds, in
    ``twisted.internet.defer``, ``Deferred``, ``DeferredList``, ``succeed``,
    ``inlineCallbacks``, ``ensureDeferred`` and the rest of the names in
    ``txdefer._install.REPLACED``; Twisted's exception classes stay as they are (they
    are the ones txdefer raises).

    Calling it again does nothing.  Called late, it also rebinds those names in the
    Twisted modules (``twisted.*``) already imported that hold Twisted's originals.
    Classes that already subclass Twisted's own ``Deferred`` cannot be changed: they
    keep working (their instances chain with txdefer's), and an ``InstallWarning``
    names them.
    """
    if installed():
        return
    originals = {name: getattr(_tdefer, name) for name in REPLACED}
    _originals.update(originals)
    oldSubclasses = list(originals["_DEFERRED_SUBCLASSES"])
    for name in REPLACED:
        setattr(_tdefer, name, _ours(name))

    # Modules imported earlier captured names with `from ... import`: rebind those
    # that still point at Twisted's originals.
    byIdentity = {id(obj): name for name, obj in originals.items()}
    for modname, module in list(sys.modules.items()):
        if module is None or module is _tdefer:
            continue
        if not (modname == "twisted" or modname.startswith("twisted.")):
            continue
        namespace = getattr(module, "__dict__", None)
        if not namespace:
            continue
        for attr, value in list(namespace.items()):
            replaced = byIdentity.get(id(value))
            if replaced is not None and originals[replaced] is value:
                namespace[attr] = _ours(replaced)

    stuck = [
        cls
        for cls in oldSubclasses
        if cls is not originals["Deferred"] and cls is not originals["DeferredList"]
    ]
    if stuck:
        warnings.warn(
            "txdefer.install() was called after these subclasses of Twisted's "
            "pure-Python Deferred were created; they stay pure-Python: "
            + ", ".join(f"{c.__module__}.{c.__qualname__}" for c in stuck),
            InstallWarning,
            stacklevel=2,
        )
