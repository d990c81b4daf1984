"""
txdefer: Twisted's ``Deferred``, implemented in Rust.

``txdefer.Deferred`` behaves as ``twisted.internet.defer.Deferred`` does; every name
of ``twisted.internet.defer`` is importable from here and works on it.  Call
``txdefer.install()`` before importing the rest of Twisted to make all of Twisted,
and your program, run on it.
"""

from __future__ import annotations

# The compiled module first: outside the main interpreter it refuses to load, and
# then nothing of Twisted has been imported there either.
from txdefer import _core

import twisted.internet.defer as _tdefer  # noqa: E402

if not issubclass(_tdefer.Deferred, _core.DeferredBase):
    # Captured before install() can rebind anything in twisted.internet.defer: the
    # pure-Python class, so that its instances chain with ours.
    _core._configure(
        _tdefer.Deferred,
        _tdefer._CONTINUE,
        _tdefer._NONE_KWARGS,
        _tdefer._failthru,
        _tdefer.passthru,
    )

from txdefer._core import passthru, succeed  # noqa: E402
from txdefer._defer import (  # noqa: E402
    FAILURE,
    SUCCESS,
    AlreadyCalledError,
    AlreadyTryingToLockError,
    CancelledError,
    DebugInfo,
    DeferredFilesystemLock,
    DeferredList,
    DeferredLock,
    DeferredQueue,
    DeferredSemaphore,
    FailureGroup,
    FirstError,
    NotACoroutineError,
    QueueOverflow,
    QueueUnderflow,
    TimeoutError,
    ensureDeferred,
    execute,
    fail,
    gatherResults,
    getDebugging,
    inlineCallbacks,
    logError,
    maybeDeferred,
    race,
    returnValue,
    setDebugging,
    timeout,
)
from txdefer._deferred import Deferred  # noqa: E402
from txdefer._install import InstallWarning, install, installed  # noqa: E402

__all__ = [
    "Deferred",
    "DeferredList",
    "succeed",
    "fail",
    "FAILURE",
    "SUCCESS",
    "AlreadyCalledError",
    "TimeoutError",
    "gatherResults",
    "maybeDeferred",
    "ensureDeferred",
    "inlineCallbacks",
    "returnValue",
    "DeferredLock",
    "DeferredSemaphore",
    "DeferredQueue",
    "DeferredFilesystemLock",
    "AlreadyTryingToLockError",
    "CancelledError",
    "DebugInfo",
    "FailureGroup",
    "FirstError",
    "NotACoroutineError",
    "QueueOverflow",
    "QueueUnderflow",
    "execute",
    "getDebugging",
    "logError",
    "passthru",
    "race",
    "setDebugging",
    "timeout",
    "install",
    "installed",
    "InstallWarning",
]
