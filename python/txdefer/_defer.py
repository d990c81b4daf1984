"""
The rest of ``twisted.internet.defer``'s API, on txdefer's ``Deferred``.

Every function and class here behaves as its namesake in Twisted's
``twisted/internet/defer.py`` (MIT licence) does, but creates and recognises
txdefer Deferreds.  Exception classes, ``returnValue``, ``FirstError`` and the other
plain values are Twisted's own objects, re-exported unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Generic, TypeVar

from twisted.internet.defer import (  # noqa: F401  (re-exported)
    FAILURE,
    SUCCESS,
    AlreadyCalledError,
    AlreadyTryingToLockError,
    CancelledError,
    DebugInfo,
    FailureGroup,
    FirstError,
    NotACoroutineError,
    QueueOverflow,
    QueueUnderflow,
    TimeoutError,
    _cancelledToTimedOutError,
    _DefGen_Return,
    log,
    returnValue,
    timeout,
)
from twisted.python import lockfile
from twisted.python.failure import Failure

from txdefer import _core
from txdefer._core import (  # noqa: F401  (re-exported)
    _DEFERRED_SUBCLASSES,
    _collect,
    _start_list,
    _failthru,
    _is_deferred,
    _parseDeferredListResult,
    ensureDeferred,
    fail,
    maybeDeferred,
    passthru,
    succeed,
)
from txdefer._deferred import Deferred, _set_state, _split_state, _with_slots
from txdefer._support import (  # noqa: F401  (re-exported)
    _cancellableInlineCallbacks,
    inlineCallbacks,
)


def logError(err: Failure) -> Failure:
    """
    Log and return failure.

    This method can be used as an errback that passes the failure on to the next
    errback unmodified.
    """
    log.failure("", err)
    return err


def execute(callable, *args, **kwargs):
    """
    Create a Deferred from a callable and arguments: fired with its return value, or
    failed with the exception it raised.
    """
    try:
        result = callable(*args, **kwargs)
    except BaseException:
        return fail()
    else:
        return succeed(result)


def setDebugging(on: bool) -> None:
    """
    Enable or disable Deferred debugging: the call stacks of creation and invocation
    are recorded, and added to any ``AlreadyCalledError`` raised.
    """
    _core._set_debugging(bool(on))


def getDebugging() -> bool:
    """
    Determine whether Deferred debugging is enabled.
    """
    return Deferred.debug


_NO_DEFAULT = object()


class _CollectorAttribute:
    """
    A ``DeferredList`` attribute kept by its collector (in Rust), where the members'
    callbacks read and update it.  On the class it reads as Twisted's class default.

    A flag (``kept_as_given``) is also kept in the instance ``__dict__`` as it was
    given, which is what it reads as: Twisted stores the object (``1``, ``"yes"``),
    the collector its truth value.
    """

    def __init__(self, default: object, kept_as_given: bool = False) -> None:
        self.default = default
        self.kept_as_given = kept_as_given

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> object:
        if obj is None:
            if self.default is _NO_DEFAULT:
                raise AttributeError(self.name)
            return self.default
        namespace = obj.__dict__
        if self.kept_as_given and self.name in namespace:
            return namespace[self.name]
        try:
            collector = namespace["_collector"]
        except KeyError:
            raise AttributeError(self.name) from None
        return getattr(collector, self.name)

    def __set__(self, obj: object, value: object) -> None:
        setattr(obj.__dict__["_collector"], self.name, value)
        if self.kept_as_given:
            obj.__dict__[self.name] = value

    def __delete__(self, obj: object) -> None:
        # Twisted's instance then reads the class default; the two attributes
        # without one stay (Twisted's own code could no longer read them).
        if self.default is _NO_DEFAULT or self.name not in obj.__dict__:
            raise AttributeError(f"cannot delete {self.name!r} of a DeferredList")
        setattr(obj.__dict__["_collector"], self.name, self.default)
        del obj.__dict__[self.name]


_COLLECTOR_FIELDS = ("fireOnOneCallback", "fireOnOneErrback", "consumeErrors", "finishedCount")


class DeferredList(Deferred):
    """
    Collect the results of several Deferreds.

    Fires, by default, with a list of ``(success, result)`` tuples once every
    Deferred has fired; see Twisted's ``DeferredList`` for ``fireOnOneCallback``,
    ``fireOnOneErrback`` and ``consumeErrors``.
    """

    fireOnOneCallback = _CollectorAttribute(False, kept_as_given=True)
    fireOnOneErrback = _CollectorAttribute(False, kept_as_given=True)
    consumeErrors = _CollectorAttribute(_NO_DEFAULT, kept_as_given=True)
    finishedCount = _CollectorAttribute(_NO_DEFAULT)

    def __init__(
        self,
        deferredList,
        fireOnOneCallback=False,
        fireOnOneErrback=False,
        consumeErrors=False,
    ):
        # Twisted's steps, in its order, in one native call (``_start_list``).
        # Every member gets a native callback, unless a subclass overrides
        # _cbDeferred: then it is called, as in Twisted.
        cls = type(self)
        _start_list(
            self,
            deferredList,
            fireOnOneCallback,
            fireOnOneErrback,
            consumeErrors,
            cls is not DeferredList and cls._cbDeferred is not DeferredList._cbDeferred,
        )

    def __getstate__(self):
        # Twisted's instance ``__dict__``: the collector's attributes in place of it.
        state = super().__getstate__()
        values, _ = _split_state(state)
        if values.pop("_collector", None) is not None:
            for name in _COLLECTOR_FIELDS:
                values[name] = getattr(self, name)
        return state

    def __setstate__(self, state):
        # A collector for the members whose callbacks (``_cbDeferred``) come with
        # them; it adds no callback itself.
        if "_collector" not in self.__dict__:
            values, _ = _split_state(state)
            results = (values or {}).get("resultList")
            _collect(self, [], results if isinstance(results, list) else [], False, False, False, True)
        super().__setstate__(state)

    def _cbDeferred(self, result, index, succeeded):
        """
        (internal) Callback for when one of my deferreds fires.
        """
        return self.__dict__["_collector"](result, index, succeeded)

    def cancel(self):
        """
        Cancel this DeferredList: if it hasn't fired yet, cancel every Deferred in
        the list.
        """
        if not self.called:
            for deferred in self._deferredList:
                try:
                    deferred.cancel()
                except BaseException:
                    log.failure("Exception raised from user supplied canceller")


def gatherResults(deferredList, consumeErrors=False):
    """
    Return, via a Deferred, a list with the results of the given Deferreds: fires
    when all have fired, or fails (with ``FirstError``) when any one fails.
    Cancelling it cancels them all.
    """
    return DeferredList(
        deferredList, fireOnOneErrback=True, consumeErrors=consumeErrors
    ).addCallback(_parseDeferredListResult)


def race(ds):
    """
    Select the first available result from the sequence of Deferreds and cancel the
    rest.  Fires with ``(index, result)``, or fails with ``FailureGroup`` if they
    all fail.
    """
    winner = None

    def cancel(result):
        for d in to_cancel:
            d.cancel()

    final_result = Deferred(canceller=cancel)

    def succeeded(this_output, this_index):
        nonlocal winner
        if winner is None:
            winner = to_cancel[this_index]
            for d in to_cancel:
                if d is not winner:
                    d.cancel()
            final_result.callback((this_index, this_output))

    failure_state = []

    def failed(failure, this_index):
        failure_state.append((this_index, failure))
        if len(failure_state) == len(to_cancel):
            failure_state.sort()
            failures = [f for (ignored, f) in failure_state]
            final_result.errback(FailureGroup(failures))

    to_cancel = list(ds)
    for index, d in enumerate(ds):
        d.addCallbacks(succeeded, failed, callbackArgs=(index,), errbackArgs=(index,))

    return final_result


class _ConcurrencyPrimitive(ABC):
    def __init__(self) -> None:
        self.waiting: list[Deferred] = []

    def _releaseAndReturn(self, r):
        self.release()
        return r

    def run(self, /, f, *args, **kwargs):
        """
        Acquire, run, release.  If ``f`` returns a Deferred, release when it fires.
        """

        def execute(ignoredResult):
            return maybeDeferred(f, *args, **kwargs).addBoth(self._releaseAndReturn)

        return self.acquire().addCallback(execute)

    def __aenter__(self):
        return self.acquire()

    def __aexit__(self, __exc_type, __exc_value, __traceback):
        self.release()
        return succeed(False)

    @abstractmethod
    def acquire(self):
        pass

    @abstractmethod
    def release(self):
        pass


def _field(base, name, *default):
    """
    The descriptor for attribute ``name`` of a primitive whose compiled base is
    ``base`` (its slot is the name's place in ``base.FIELDS``); ``default``, if
    given, is the class-level value.
    """
    return _core.Field(name, base.FIELDS.index(name), *default)


class _KeptBySlots:
    """
    ``copy`` and ``pickle`` for a primitive whose attributes the compiled base keeps:
    its state is what Twisted's instance ``__dict__`` would hold, the compiled
    attributes that are set (``FIELDS``), then the rest of ``__dict__``.
    """

    def __getstate__(self):
        state = self._slot_items(type(self).FIELDS)
        state.update(self.__dict__)
        return _with_slots(self, state)

    def __setstate__(self, state):
        _set_state(self, state)


class DeferredLock(_KeptBySlots, _core.LockBase, _ConcurrencyPrimitive):
    """
    A lock for event driven systems.

    ``locked`` is True while the lock is held.  ``acquire`` and ``release`` are
    compiled; ``waiting`` and ``locked`` are kept by the compiled base.
    """

    waiting: _core.Field[list[Deferred]] = _field(_core.LockBase, "waiting")
    locked: _core.Field[bool] = _field(_core.LockBase, "locked", False)

    def _cancelAcquire(self, d):
        self.waiting.remove(d)



class DeferredSemaphore(_KeptBySlots, _core.SemaphoreBase, _ConcurrencyPrimitive):
    """
    A semaphore for event driven systems: at most ``limit`` users at once.
    ``tokens`` is ``limit`` less the users holding it.
    """

    waiting: _core.Field[list[Deferred]] = _field(_core.SemaphoreBase, "waiting")
    tokens: _core.Field[int] = _field(_core.SemaphoreBase, "tokens")
    limit: _core.Field[int] = _field(_core.SemaphoreBase, "limit")

    def __init__(self, tokens: int) -> None:
        _ConcurrencyPrimitive.__init__(self)
        if tokens < 1:
            raise ValueError("DeferredSemaphore requires tokens >= 1")
        self.tokens = tokens
        self.limit = tokens

    def _cancelAcquire(self, d):
        self.waiting.remove(d)



_T = TypeVar("_T")


class DeferredQueue(_KeptBySlots, _core.QueueBase, Generic[_T]):
    """
    An event driven queue: ``get()`` returns a Deferred that fires when an object is
    available.  ``size`` bounds the pending objects (``QueueOverflow``), ``backlog``
    the waiting gets (``QueueUnderflow``); ``None`` for no limit.
    """

    waiting: _core.Field[list[Deferred[_T]]] = _field(_core.QueueBase, "waiting")
    pending: _core.Field[list[_T]] = _field(_core.QueueBase, "pending")
    size: _core.Field[int | None] = _field(_core.QueueBase, "size")
    backlog: _core.Field[int | None] = _field(_core.QueueBase, "backlog")

    def __init__(self, size=None, backlog=None) -> None:
        self.waiting = []
        self.pending = []
        self.size = size
        self.backlog = backlog

    if TYPE_CHECKING:

        def put(self, obj: _T) -> None: ...
        def get(self) -> Deferred[_T]: ...

    def _cancelGet(self, d):
        self.waiting.remove(d)


# Each class gets its own copies of the compiled methods it inherits (acquire,
# release, put, get): CPython's specialised calls of a C method apply only to
# instances of exactly the class the method was made for.
_core._own_methods(DeferredLock, _core.LockBase)
_core._own_methods(DeferredSemaphore, _core.SemaphoreBase)
_core._own_methods(DeferredQueue, _core.QueueBase)


class DeferredFilesystemLock(lockfile.FilesystemLock):
    """
    A ``FilesystemLock`` that allows for a Deferred to be fired when the lock is
    acquired.
    """

    _interval = 1
    _tryLockCall = None
    _timeoutCall = None

    def __init__(self, name, scheduler=None):
        lockfile.FilesystemLock.__init__(self, name)
        if scheduler is None:
            from twisted.internet import reactor

            scheduler = reactor
        self._scheduler = scheduler

    def deferUntilLocked(self, timeout=None):
        """
        Wait until we acquire this lock (not safe for concurrent use).  Fails with
        ``TimeoutError`` after ``timeout`` seconds, or with
        ``AlreadyTryingToLockError`` if already waiting.
        """
        if self._tryLockCall is not None:
            return fail(
                AlreadyTryingToLockError(
                    "deferUntilLocked isn't safe for concurrent use."
                )
            )

        def _cancelLock(reason):
            assert self._tryLockCall is not None
            self._tryLockCall.cancel()
            self._tryLockCall = None
            if self._timeoutCall is not None and self._timeoutCall.active():
                self._timeoutCall.cancel()
                self._timeoutCall = None

            if self.lock():
                d.callback(None)
            else:
                d.errback(reason)

        d = Deferred(lambda deferred: _cancelLock(CancelledError()))

        def _tryLock():
            if self.lock():
                if self._timeoutCall is not None:
                    self._timeoutCall.cancel()
                    self._timeoutCall = None
                self._tryLockCall = None
                d.callback(None)
            else:
                if timeout is not None and self._timeoutCall is None:
                    reason = Failure(
                        TimeoutError(
                            "Timed out acquiring lock: %s after %fs"
                            % (self.name, timeout)
                        )
                    )
                    self._timeoutCall = self._scheduler.callLater(
                        timeout, _cancelLock, reason
                    )
                self._tryLockCall = self._scheduler.callLater(self._interval, _tryLock)

        _tryLock()
        return d
