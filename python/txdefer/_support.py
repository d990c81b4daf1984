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
from contextvars import copy_context as _copy_context
from functools import wraps
from sys import exc_info
from types import GeneratorType
from typing import Any

from twisted.internet.defer import (
    NotACoroutineError,
    _CancellationStatus,
    _cancelledToTimedOutError,
    _DefGen_Return,
    _InternalInlineCallbacksCancelledError,
)
from twisted.python.failure import Failure, _extraneous

from txdefer._core import _DEFERRED_SUBCLASSES, _is_deferred
from txdefer._deferred import Deferred


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


def fromCoroutine(coro):
    # asyncio.iscoroutine < 3.12 accepts generators too; >= 3.12 needs isgenerator.
    if iscoroutine(coro) or inspect.isgenerator(coro):
        return _cancellableInlineCallbacks(coro)
    raise NotACoroutineError(f"{coro!r} is not a coroutine")


def ensureDeferred(coro):
    """
    Schedule the execution of a coroutine that awaits/yields from Deferreds, wrapping
    it in a Deferred that fires on success/failure of the coroutine.  A Deferred is
    returned as it is.
    """
    if type(coro) in _DEFERRED_SUBCLASSES or _is_deferred(coro):
        return coro
    try:
        return fromCoroutine(coro)
    except NotACoroutineError:
        # It's not a coroutine.  Say that it's also not a Deferred.
        raise NotACoroutineError(f"{coro!r} is not a coroutine or a Deferred")


def _gotResultInlineCallbacks(r, waiting, gen, status, context):
    if waiting[0]:
        waiting[0] = False
        waiting[1] = r
    else:
        _inlineCallbacks(r, gen, status, context)


@_extraneous
def _inlineCallbacks(result, gen, status, context):
    # A loop, with `waiting`, so that generators yielding already-fired Deferreds
    # don't recurse.
    waiting: list[Any] = [True, None]
    stopIteration = False
    callbackValue: Any = None

    while 1:
        try:
            # Send the last result back as the result of the yield expression.
            isFailure = isinstance(result, Failure)
            if isFailure:
                result = context.run(result.throwExceptionIntoGenerator, gen)
            else:
                result = context.run(gen.send, result)
        except StopIteration as e:
            # fell off the end, or "return" statement
            stopIteration = True
            callbackValue = getattr(e, "value", None)
        except _DefGen_Return as e:
            # returnValue() was called.  Warn if it was called from a function other
            # than the generator itself.  The traceback starts in this frame; the
            # next one down is the application code (after
            # throwExceptionIntoGenerator's frame, when an exception was thrown in).
            appCodeTrace = exc_info()[2].tb_next
            if isFailure:
                appCodeTrace = appCodeTrace.tb_next
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
            stopIteration = True
            callbackValue = e.value
        except BaseException:
            status.deferred.errback()
            return

        if stopIteration:
            # Outside the exception handler, so a failing callback doesn't show
            # "During handling of the above exception...".
            status.deferred.callback(callbackValue)
            return

        isDeferred = type(result) in _DEFERRED_SUBCLASSES or _is_deferred(result)
        if not isDeferred and (iscoroutine(result) or inspect.isgenerator(result)):
            result = _cancellableInlineCallbacks(result)
            isDeferred = True

        if isDeferred:
            result.addBoth(_gotResultInlineCallbacks, waiting, gen, status, context)
            if waiting[0]:
                # Not fired yet: get called back later.
                waiting[0] = False
                status.waitingOn = result
                return
            result = waiting[1]
            waiting[0] = True
            waiting[1] = None


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


def _cancellableInlineCallbacks(gen):
    deferred = Deferred(lambda d: _addCancelCallbackToDeferred(d, status))
    status = _CancellationStatus(deferred)
    _inlineCallbacks(None, gen, status, _copy_context())
    return deferred


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
