"""Type stub for the compiled module ``txdefer._core``."""

from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar, final, overload

from twisted.python.failure import Failure
from typing_extensions import Concatenate, ParamSpec, Self, disjoint_base

from txdefer._deferred import Deferred

_T = TypeVar("_T")
_R = TypeVar("_R")
_P = ParamSpec("_P")

@disjoint_base
class DeferredBase(Awaitable[_T], Generic[_T]):
    """
    The compiled implementation of ``txdefer.Deferred`` (use that class).
    """

    debug: bool
    called: bool
    paused: int
    result: Any
    _chainedTo: DeferredBase[Any] | None
    _canceller: Callable[[Any], object] | None
    _debugInfo: Any
    _suppressAlreadyCalled: bool
    _runningCallbacks: bool
    _callbacks: CallbackList
    @property
    def callbacks(self) -> CallbackList: ...
    def __init__(self, canceller: Callable[[Any], object] | None = None) -> None: ...
    def __class_getitem__(cls, key: Any) -> Any: ...
    @overload
    def addCallback(
        self,
        callback: Callable[Concatenate[_T, _P], DeferredBase[_R]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_R]: ...
    @overload
    def addCallback(
        self,
        callback: Callable[Concatenate[_T, _P], Failure | _R],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_R]: ...
    def addErrback(
        self,
        errback: Callable[Concatenate[Failure, _P], object],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[Any]: ...
    def addBoth(
        self,
        callback: Callable[Concatenate[Any, _P], object],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[Any]: ...
    def addCallbacks(
        self,
        callback: Callable[..., object],
        errback: Callable[..., object] | None = None,
        callbackArgs: tuple[Any, ...] | None = None,
        callbackKeywords: Any = None,
        errbackArgs: tuple[Any, ...] | None = None,
        errbackKeywords: Any = None,
    ) -> Deferred[Any]: ...
    def addTimeout(
        self,
        timeout: float,
        clock: Any,
        onTimeoutCancel: Callable[[Any, float], object] | None = None,
    ) -> Deferred[Any]: ...
    def chainDeferred(self, d: DeferredBase[_T]) -> Deferred[None]: ...
    def callback(self, result: _T | Failure) -> None: ...
    def errback(self, fail: Failure | BaseException | None = None) -> None: ...
    def pause(self) -> None: ...
    def unpause(self) -> None: ...
    def cancel(self) -> None: ...
    def asFuture(self, loop: Any) -> Any: ...
    @classmethod
    def fromFuture(cls, future: Any) -> Self: ...
    @classmethod
    def fromCoroutine(
        cls,
        coro: Coroutine[Any, Any, _R] | Generator[Any, Any, _R],
    ) -> Deferred[_R]: ...
    def __iter__(self) -> Generator[Any, None, _T]: ...
    def __await__(self) -> Generator[Any, None, _T]: ...
    def _startRunCallbacks(self, result: object) -> None: ...
    def _continuation(self) -> tuple[tuple[Any, tuple[Any, ...], Mapping[str, Any]], tuple[Any, tuple[Any, ...], Mapping[str, Any]]]: ...
    def _runCallbacks(self) -> None: ...

@final
class CallbackList:
    def __len__(self) -> int: ...
    def __getitem__(self, index: int, /) -> tuple[Any, Any]: ...
    def __iter__(self) -> Iterator[tuple[Any, Any]]: ...
    def append(self, pair: tuple[Any, Any]) -> None: ...
    def extend(self, pairs: Any) -> None: ...
    def pop(self, index: int = ...) -> tuple[Any, Any]: ...
    def clear(self) -> None: ...

@final
class DeferredIterator(Iterator[Any]):
    def __next__(self) -> Any: ...
    def send(self, value: object) -> Any: ...
    def throw(self, *args: Any) -> Any: ...
    def close(self) -> None: ...
@final
class Resume:
    def __call__(self, result: object) -> None: ...

@final
class _InlineCallbacks:
    """A running inlineCallbacks generator or coroutine, and its cancellation status."""

    deferred: Deferred[Any]
    waitingOn: DeferredBase[Any] | None
    def __call__(self, d: object) -> None: ...

@final
class _ListCollector:
    """What a DeferredList needs to collect its members' results."""

    finishedCount: int
    fireOnOneCallback: bool
    fireOnOneErrback: bool
    consumeErrors: bool
    def __call__(self, result: object, index: int, succeeded: bool) -> Any: ...

@final
class DebugAttribute:
    """`Deferred.debug`: the `setDebugging()` switch, or an instance's own value."""

    @overload
    def __get__(self, instance: None, owner: type | None = None, /) -> bool: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None, /) -> Any: ...
    def __set__(self, instance: object, value: object, /) -> None: ...
    def __delete__(self, instance: object, /) -> None: ...

_V = TypeVar("_V")

@disjoint_base
class Slots:
    """The compiled base of the concurrency primitives: their attributes."""

    def __new__(cls, *_args: object, **_kwargs: object) -> Self: ...
    def _slot_items(self, names: list[str]) -> dict[str, Any]: ...

@final
class Field(Generic[_V]):
    """One attribute of a primitive, kept in `Slots`, as an instance attribute."""

    def __new__(cls, name: str, index: int, *default: _V) -> Self: ...
    @overload
    def __get__(self, instance: None, owner: type | None = None, /) -> _V: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None, /) -> _V: ...
    def __set__(self, instance: object, value: _V, /) -> None: ...
    def __delete__(self, instance: object, /) -> None: ...

class LockBase(Slots):
    """The compiled `acquire` and `release` of `DeferredLock`."""

    FIELDS: list[str]
    def acquire(self) -> Deferred[Self]: ...
    def release(self) -> None: ...

class SemaphoreBase(Slots):
    """The compiled `acquire` and `release` of `DeferredSemaphore`."""

    FIELDS: list[str]
    def acquire(self) -> Deferred[Self]: ...
    def release(self) -> None: ...

class QueueBase(Slots):
    """The compiled `put` and `get` of `DeferredQueue`."""

    FIELDS: list[str]
    def put(self, obj: Any) -> None: ...
    def get(self) -> Deferred[Any]: ...

@final
class _InlineResume:
    def __call__(self, result: object) -> None: ...

__all__ = [
    "CallbackList",
    "DebugAttribute",
    "Field",
    "LockBase",
    "QueueBase",
    "SemaphoreBase",
    "Slots",
    "DeferredBase",
    "DeferredIterator",
    "Resume",
    "_InlineCallbacks",
    "_InlineResume",
    "_ListCollector",
    "_collect",
    "_start_list",
    "_parseDeferredListResult",
    "ensureDeferred",
    "_cancellableInlineCallbacks",
    "_failthru",
    "_is_deferred",
    "passthru",
    "succeed",
    "fail",
    "maybeDeferred",
    "_DEFERRED_SUBCLASSES",
    "_configure",
    "_register_public",
    "_own_methods",
    "_set_debugging",
    "_panic_for_test",
    "_constructs_without_init",
    "_allocates_directly",
    "_recycle_counts",
]
_DEFERRED_SUBCLASSES: list[type[DeferredBase[Any]]]

def succeed(result: _T) -> Deferred[_T]: ...
def fail(result: object = None) -> Deferred[Any]: ...
def maybeDeferred(
    f: Callable[_P, DeferredBase[_T] | Coroutine[Any, Any, _T] | _T],
    *args: _P.args,
    **kwargs: _P.kwargs,
) -> Deferred[_T]: ...
def passthru(arg: _T) -> _T: ...
def _failthru(arg: _T) -> _T: ...
def _is_deferred(obj: object) -> bool: ...
def _configure(
    deferred_type: type,
    continue_marker: object,
    none_kwargs: object,
    twisted_failthru: object,
    twisted_passthru: object,
) -> None: ...
def _register_public(cls: type) -> None: ...
def _own_methods(cls: type, base: type) -> None: ...
def _set_debugging(on: bool) -> None: ...
def ensureDeferred(
    coro: Coroutine[Any, Any, _T] | Generator[Any, Any, _T] | DeferredBase[_T],
) -> Deferred[_T]: ...
def _cancellableInlineCallbacks(
    gen: Generator[Any, Any, _T] | Coroutine[Any, Any, _T],
) -> Deferred[_T]: ...
def _collect(
    list: DeferredBase[Any],
    members: list[Any],
    results: list[Any],
    fire_on_one_callback: bool,
    fire_on_one_errback: bool,
    consume_errors: bool,
    via_python: bool,
) -> _ListCollector: ...
def _start_list(
    list: DeferredBase[Any],
    deferred_list: Iterable[Any],
    fire_on_one_callback: object,
    fire_on_one_errback: object,
    consume_errors: object,
    via_python: bool,
) -> None: ...
def _parseDeferredListResult(
    resultList: list[tuple[bool, _T]], fireOnOneErrback: bool = False, /
) -> list[_T]: ...
def _panic_for_test(message: str) -> None: ...
def _constructs_without_init() -> bool: ...
def _allocates_directly() -> bool: ...
def _recycle_counts() -> tuple[int, int]: ...
