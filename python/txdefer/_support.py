"""
Glue around the Rust ``Deferred``: timeouts, asyncio futures, and the driver behind
``inlineCallbacks``, ``ensureDeferred`` and ``Deferred.fromCoroutine``.

The behaviour is Twisted's (``twisted/internet/defer.py``, MIT licence), written
against ``txdefer.Deferred``; the Rust class calls into this module for these methods.
"""

from __future__ import annotations

import inspect
import warnings
from asyncio import iscoroutine
from functools import wraps
from types import GeneratorType

from twisted.internet.defer import (
    _cancelledToTimedOutError,
    _DefGen_Return,
    _InternalInlineCallbacksCancelledError,
)
from twisted.python.failure import Failure

from txdefer._core import _cancellableInlineCallbacks
from txdefer._deferred import Deferred


def _exhausted():
    return
    yield  # a generator function


#: A finished generator: its ``throw()`` raises what it is given, after checking the
#: arguments as every generator's does (the await iterator's ``throw`` uses it).
_EXHAUSTED = _exhausted()
for _ in _EXHAUSTED:
    pass


class _Unfired:
    """Stands in for a Deferred without a result to give (``called`` is false)."""

    called = False
    paused = 0


#: What the await iterator's ``throw`` runs Twisted's ``Deferred.__iter__`` on when
#: the Deferred itself has a result it is not to give (see ``await_iter.rs``).
_UNFIRED = _Unfired()


def _call(func, result, args, kwargs):
    # Callback arguments that are not a plain tuple and dict: let Python unpack them,
    # so that errors read as they do in Twisted.
    if kwargs is None:
        return func(result, *args)
    return func(result, *args, **kwargs)


def addTimeout(self, timeout, clock, onTimeoutCancel=None):
    timedOut = [False]

    def timeItOut():
        timedOut[0] = True
        self.cancel()

    delayedCall = clock.callLater(timeout, timeItOut)

    def convertCancelled(result):
        # If the Deferred was timed out, call the translation function.
        if timedOut[0]:
            toCall = onTimeoutCancel or _cancelledToTimedOutError
            return toCall(result, timeout)
        return result

    def cancelTimeout(result):
        # Stop the pending call to cancel the Deferred if it has been fired.
        if delayedCall.active():
            delayedCall.cancel()
        return result

    return self.addBoth(convertCancelled).addBoth(cancelTimeout)


def asFuture(self, loop):
    future = loop.create_future()

    def checkCancel(futureAgain):
        if futureAgain.cancelled():
            self.cancel()

    def maybeFail(failure):
        if not future.cancelled():
            future.set_exception(failure.value)

    def maybeSucceed(result):
        if not future.cancelled():
            future.set_result(result)

    self.addCallbacks(maybeSucceed, maybeFail)
    future.add_done_callback(checkCancel)
    return future


def fromFuture(cls, future):
    def adapt(result):
        try:
            extracted = result.result()
        except BaseException:
            extracted = Failure()
        actual.callback(extracted)

    futureCancel = object()

    def cancel(reself):
        future.cancel()
        reself.callback(futureCancel)

    self = cls(cancel)
    actual = self

    def uncancel(result):
        if result is futureCancel:
            nonlocal actual
            actual = Deferred()
            return actual
        return result

    self.addCallback(uncancel)
    future.add_done_callback(adapt)
    return self


def _parseDeferredListResult(resultList, fireOnOneErrback=False, /):
    # Twisted's code, for the inputs the compiled fast path does not take (anything
    # but a list of (True, value) tuples): it fails exactly as Twisted's does.
    if __debug__:
        for result in resultList:
            assert result is not None
            success, value = result
            assert success
    return [x[1] for x in resultList]


def _isCoroutineOrGenerator(obj):
    # What the driver does with a yielded object that is not a Deferred: drive it too.
    return iscoroutine(obj) or inspect.isgenerator(obj)


def _warnNonLocalReturnValue(tb, isFailure):
    """
    ``returnValue()`` ended a generator: warn, as Twisted does, if it was called from
    a function other than the generator itself.  ``tb`` starts at the first Python
    frame the exception went through: the generator's (or, when a failure was thrown
    in, ``throwExceptionIntoGenerator``'s).
    """
    appCodeTrace = tb.tb_next if isFailure else tb
    # returnValue itself and its deprecation wrapper take two frames.
    if appCodeTrace.tb_next.tb_next.tb_next:
        ultimateTrace = appCodeTrace
        while ultimateTrace.tb_next.tb_next.tb_next:
            ultimateTrace = ultimateTrace.tb_next
        filename = ultimateTrace.tb_frame.f_code.co_filename
        lineno = ultimateTrace.tb_lineno
        warnings.warn_explicit(
            "returnValue() in %r causing %r to exit: "
            "returnValue should only be invoked by functions decorated "
            "with inlineCallbacks"
            % (
                ultimateTrace.tb_frame.f_code.co_name,
                appCodeTrace.tb_frame.f_code.co_name,
            ),
            DeprecationWarning,
            filename,
            lineno,
        )


def _addCancelCallbackToDeferred(it, status):
    # Put the cancellation errback first in the chain.
    it._callbacks, tmp = [], list(it._callbacks)
    it = it.addErrback(_handleCancelInlineCallbacks, status)
    it._callbacks.extend(tmp)
    it.errback(_InternalInlineCallbacksCancelledError())


def _handleCancelInlineCallbacks(result, status, /):
    result.trap(_InternalInlineCallbacksCancelledError)
    status.deferred = Deferred(lambda d: _addCancelCallbackToDeferred(d, status))
    # We only get here if the generator is waiting on another Deferred: cancel it.
    awaited = status.waitingOn
    assert awaited is not None
    awaited.cancel()
    return status.deferred


def inlineCallbacks(f):
    """
    Write Deferred-using code that looks like a regular sequential function: the
    decorated generator yields Deferreds and is resumed with their results; calling
    it returns a Deferred that fires with the generator's return value.
    """

    @wraps(f)
    def unwindGenerator(*args, **kwargs):
        try:
            gen = f(*args, **kwargs)
        except _DefGen_Return:
            raise TypeError(
                "inlineCallbacks requires %r to produce a generator; instead"
                "caught returnValue being used in a non-generator" % (f,)
            )
        if not isinstance(gen, GeneratorType):
            raise TypeError(
                "inlineCallbacks requires %r to produce a generator; "
                "instead got %r" % (f, gen)
            )
        return _cancellableInlineCallbacks(gen)

    return unwindGenerator
