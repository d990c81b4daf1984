"""
The basic public behaviour of ``Deferred``: adding callbacks, firing, results and
failures, attributes, ``str()``/``repr()``, generics, subclassing, ``succeed``,
``fail``, ``maybeDeferred``, ``execute``, debugging.
"""

from __future__ import annotations

import contextlib
import copyreg
import gc
import pickle
import re
import subprocess
import sys
import traceback
import typing
import warnings
import weakref
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from twisted.internet.defer import AlreadyCalledError, CancelledError
from twisted.python.failure import Failure, NoCurrentExceptionError

from tests.impls import (
    ALL_IMPLS,
    SUBCLASS,
    TWISTED,
    Impl,
    SubDeferred,
    describe,
    fired_with,
    normalize,
    nothing_to_delete,
    outcome,
    result_of,
)

if TYPE_CHECKING:
    # For annotations only: every implementation is typed as Twisted's Deferred.
    from twisted.internet.defer import Deferred

# -- adding callbacks -------------------------------------------------------------------


def test_add_methods_return_self(impl: Impl) -> None:
    d: Any = impl.Deferred()
    assert d.addCallback(lambda r: r) is d
    assert d.addErrback(lambda f: f) is d
    assert d.addBoth(lambda r: r) is d
    assert d.addCallbacks(lambda r: r, lambda f: f) is d
    assert d.chainDeferred(impl.Deferred()) is d
    d.callback(None)
    # ...also when the Deferred has already fired (the callback runs at once).
    assert d.addCallback(lambda r: r) is d
    assert d.addErrback(lambda f: f) is d
    assert d.addBoth(lambda r: r) is d
    assert d.addCallbacks(lambda r: r) is d


def test_callbacks_run_in_order_each_getting_the_previous_result(impl: Impl) -> None:
    calls: list[tuple[str, object]] = []
    d: Any = impl.Deferred()

    def step(name: str) -> Any:
        def run(result: object) -> object:
            calls.append((name, result))
            return f"{result}+{name}"

        return run

    d.addCallback(step("a")).addCallback(step("b")).addBoth(step("c"))
    assert calls == []
    d.callback("r")
    assert calls == [("a", "r"), ("b", "r+a"), ("c", "r+a+b")]
    assert d.result == "r+a+b+c"


def test_callback_added_after_firing_runs_immediately(impl: Impl) -> None:
    d: Deferred[int] = impl.Deferred()
    d.callback(1)
    seen: list[object] = []
    d.addCallback(seen.append)
    assert seen == [1]
    assert d.result is None


def test_addCallback_passes_extra_args_and_kwargs(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.addCallback(lambda r, a, b, *, k: (r, a, b, k), 1, 2, k=3)
    d.callback(0)
    assert d.result == (0, 1, 2, 3)


def test_addErrback_passes_extra_args_and_kwargs(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.addErrback(lambda f, a, k=None: (f.type, a, k), "x", k="y")
    d.errback(ValueError())
    assert d.result == (ValueError, "x", "y")


def test_addBoth_passes_extra_args_and_kwargs_to_both_paths(impl: Impl) -> None:
    ok: Any = impl.Deferred()
    ok.addBoth(lambda r, a, k: (describe(r), a, k), 1, k=2)
    ok.callback("v")
    assert ok.result == ("v", 1, 2)

    bad: Any = impl.Deferred()
    bad.addBoth(lambda r, a, k: (describe(r), a, k), 1, k=2)
    bad.errback(KeyError("z"))
    assert bad.result == (("Failure", KeyError, "'z'"), 1, 2)


def test_addCallbacks_with_all_arguments(impl: Impl) -> None:
    def cb(r: object, *a: object, **k: object) -> object:
        return ("cb", r, a, k)

    def eb(f: Failure, *a: object, **k: object) -> object:
        return ("eb", f.type, a, k)

    ok: Any = impl.Deferred()
    ok.addCallbacks(
        cb,
        eb,
        callbackArgs=(1, 2),
        callbackKeywords={"x": 3},
        errbackArgs=(4,),
        errbackKeywords={"y": 5},
    )
    ok.callback("v")
    assert ok.result == ("cb", "v", (1, 2), {"x": 3})

    bad: Any = impl.Deferred()
    bad.addCallbacks(
        cb,
        eb,
        callbackArgs=(1, 2),
        callbackKeywords={"x": 3},
        errbackArgs=(4,),
        errbackKeywords={"y": 5},
    )
    bad.errback(ZeroDivisionError())
    assert bad.result == ("eb", ZeroDivisionError, (4,), {"y": 5})


def test_addCallbacks_positional_arguments(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.addCallbacks(
        lambda r, *a, **k: (r, a, k), lambda f: "eb", (1,), {"k": 2}, (), {}
    )
    d.callback(0)
    assert d.result == (0, (1,), {"k": 2})


def test_addCallbacks_accepts_None_for_args_and_keywords(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.addCallbacks(
        lambda r, *a, **k: (r, a, k),
        None,
        callbackArgs=None,
        callbackKeywords=None,
        errbackArgs=None,
        errbackKeywords=None,
    )
    d.callback(0)
    assert d.result == (0, (), {})


def test_addCallbacks_errback_None_passes_failures_through(impl: Impl) -> None:
    d: Any = impl.Deferred()
    called: list[object] = []
    d.addCallbacks(called.append, None)
    d.addCallbacks(called.append)
    d.errback(RuntimeError("x"))
    assert called == []
    assert fired_with(d) == ("Failure", RuntimeError, "x")


def test_addCallbacks_callback_args_may_be_a_list(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.addCallbacks(lambda r, *a: (r, a), callbackArgs=[1, 2])
    d.callback(0)
    assert d.result == (0, (1, 2))


def test_addCallbacks_keywords_are_read_when_the_callback_runs(impl: Impl) -> None:
    # Twisted stores the mapping as given and unpacks it when the callback runs.
    keywords: dict[str, object] = {}
    d: Any = impl.Deferred()
    d.addCallbacks(lambda r, **k: (r, k), callbackKeywords=keywords)
    keywords["late"] = True
    d.callback(0)
    assert d.result == (0, {"late": True})


def test_addCallbacks_args_are_read_when_the_callback_runs(impl: Impl) -> None:
    args: list[object] = []
    d: Any = impl.Deferred()
    d.addCallbacks(lambda r, *a: (r, a), callbackArgs=args)
    args.append("late")
    d.callback(0)
    assert d.result == (0, ("late",))


def test_addCallbacks_keywords_may_be_any_mapping(impl: Impl) -> None:
    class Keys:
        # Enough for ``**``: keys() and __getitem__, no __len__, not a registered
        # collections.abc.Mapping.
        def keys(self) -> list[str]:
            return ["k"]

        def __getitem__(self, key: str) -> object:
            return key.upper()

    d: Any = impl.Deferred()
    d.addCallbacks(lambda r, **k: (r, k), callbackKeywords=Keys())
    d.callback(0)
    assert fired_with(d) == (0, {"k": "K"})


# -- firing -----------------------------------------------------------------------------


def test_callback_with_value(impl: Impl) -> None:
    d: Deferred[str] = impl.Deferred()
    assert d.called is False
    assert d.callback("v") is None
    assert d.called is True
    assert d.result == "v"


def test_errback_with_failure_passes_that_failure(impl: Impl) -> None:
    failure = Failure(ValueError("x"))
    d: Any = impl.Deferred()
    seen: list[Failure] = []
    d.addErrback(seen.append)
    d.errback(failure)
    assert seen == [failure]
    assert seen[0] is failure


def test_errback_with_exception_wraps_it_in_a_failure(impl: Impl) -> None:
    exc = ValueError("x")
    d: Any = impl.Deferred()
    seen: list[Failure] = []
    d.addErrback(seen.append)
    d.errback(exc)
    assert len(seen) == 1
    assert type(seen[0]) is Failure
    assert seen[0].value is exc
    assert seen[0].type is ValueError


def test_errback_without_argument_uses_the_current_exception(impl: Impl) -> None:
    d: Any = impl.Deferred()
    seen: list[Failure] = []
    d.addErrback(seen.append)
    try:
        raise KeyError("current")
    except KeyError as e:
        caught = e
        d.errback()
    assert seen[0].value is caught
    assert seen[0].getTracebackObject() is not None


def test_errback_with_a_non_exception_object(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> list[object]:
        observed: list[object] = []
        for value in ["a string", 5, ValueError]:
            d: Any = ns.Deferred()
            observed.append(outcome(d.errback, value))
            observed.append(fired_with(d))
        return observed

    assert scenario(impl) == scenario(twisted)
    assert scenario(twisted)[1] == ("Failure", str, "a string")


def test_errback_with_no_argument_and_no_current_exception(impl: Impl) -> None:
    d: Any = impl.Deferred()
    with pytest.raises(NoCurrentExceptionError):
        d.errback()
    assert d.called is False


def test_callback_with_a_failure_takes_the_errback_path(impl: Impl) -> None:
    d: Any = impl.Deferred()
    path: list[str] = []
    d.addCallbacks(lambda r: path.append("cb"), lambda f: path.append("eb"))
    d.callback(Failure(ValueError()))
    assert path == ["eb"]


def test_callback_twice_raises_AlreadyCalledError(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.callback(1)
    with pytest.raises(AlreadyCalledError) as info:
        d.callback(2)
    assert info.value.args == ()
    with pytest.raises(AlreadyCalledError):
        d.errback(ValueError())
    assert d.result == 1


def test_errback_then_callback_raises_AlreadyCalledError(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.errback(ValueError())
    with pytest.raises(AlreadyCalledError):
        d.callback(2)
    with pytest.raises(AlreadyCalledError):
        d.errback(ValueError())
    assert fired_with(d) == ("Failure", ValueError, "")


def test_raising_callback_switches_to_errback_path(impl: Impl) -> None:
    d: Any = impl.Deferred()
    path: list[object] = []

    def explode(r: object) -> object:
        raise ZeroDivisionError("cb")

    d.addCallback(explode)
    d.addCallback(lambda r: path.append("skipped cb"))
    d.addErrback(lambda f: (path.append(f.type), "recovered")[1])
    d.addCallback(lambda r: (path.append(r), r)[1])
    d.callback(1)
    assert path == [ZeroDivisionError, "recovered"]
    assert d.result == "recovered"


def test_callback_returning_failure_switches_to_errback_path(impl: Impl) -> None:
    d: Any = impl.Deferred()
    failure = Failure(ValueError("returned"))
    seen: list[object] = []
    d.addCallback(lambda r: failure)
    d.addCallback(lambda r: seen.append("no"))
    d.addErrback(seen.append)
    d.callback(1)
    assert seen == [failure]


def test_errback_returning_failure_stays_on_errback_path(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.addErrback(lambda f: Failure(KeyError("other")))
    d.errback(ValueError())
    assert fired_with(d) == ("Failure", KeyError, "'other'")


def test_raising_callback_failure_has_its_traceback(impl: Impl) -> None:
    def the_callback(r: object) -> object:
        raise ValueError("in callback")

    d: Any = impl.Deferred()
    d.addCallback(the_callback)
    d.callback(1)
    failure = result_of(d)
    assert isinstance(failure, Failure)
    assert failure.frames[-1][0] == "the_callback"
    assert failure.getTracebackObject() is not None


def _failed_by_raising(impl: Impl, path: str, exc: BaseException) -> Any:
    """A Deferred that failed because ``exc`` was raised by ``raising``, along ``path``."""

    def raising(*args: object) -> None:
        raise exc

    if path == "callback":
        d: Any = impl.Deferred()
        d.addCallback(raising)
        d.callback(None)
    elif path == "errback":
        d = impl.fail(KeyError("first"))
        d.addErrback(raising)
    elif path == "already_fired":
        d = impl.succeed(None)
        d.addCallback(raising)
    elif path == "maybeDeferred":
        d = impl.maybeDeferred(raising)
    elif path == "inlineCallbacks":

        @impl.inlineCallbacks
        def generator() -> Any:
            yield impl.succeed(None)
            raising()

        d = generator()
    elif path == "inlineCallbacks_unfired":
        waiting: Any = impl.Deferred()

        @impl.inlineCallbacks
        def waits() -> Any:
            yield waiting
            raising()

        d = waits()
        waiting.callback(None)
    elif path == "coroutine":

        async def coroutine() -> None:
            await impl.succeed(None)
            raising()

        d = impl.Deferred.fromCoroutine(coroutine())
    else:
        assert path == "except"
        d = impl.Deferred()
        try:
            raising()
        except type(exc):
            d.errback()
    return d


@pytest.mark.parametrize(
    "path",
    [
        "callback",
        "errback",
        "already_fired",
        "maybeDeferred",
        "inlineCallbacks",
        "inlineCallbacks_unfired",
        "coroutine",
        "except",
    ],
)
def test_a_raised_exception_carries_its_failures_traceback(impl: Impl, path: str) -> None:
    """
    The exception of a ``Failure`` made from a raise has the Failure's traceback as its
    ``__traceback__``, as after ``except`` (so ``raise failure.value`` and
    ``traceback.print_exception(failure.value)`` show where it was raised), on every
    supported CPython: 3.10 and 3.11 hand a C caller the traceback beside the
    exception, not on it.
    """
    exc = ValueError("raised")
    d = _failed_by_raising(impl, path, exc)
    failure = result_of(d)
    assert isinstance(failure, Failure) and failure.value is exc
    assert exc.__traceback__ is not None
    assert exc.__traceback__ is failure.tb is failure.getTracebackObject()
    last = exc.__traceback__
    while last.tb_next is not None:
        last = last.tb_next
    assert last.tb_frame.f_code.co_name == "raising"
    assert "raising" in "".join(traceback.format_exception(exc))


@pytest.mark.parametrize(
    "exc_type", [KeyboardInterrupt, SystemExit, GeneratorExit, BaseException]
)
def test_base_exception_in_callback_becomes_failure(
    impl: Impl, exc_type: type[BaseException]
) -> None:
    d: Any = impl.Deferred()

    def raise_it(r: object) -> None:
        raise exc_type("base")

    d.addCallback(raise_it)
    d.callback(None)
    result = result_of(d)
    assert isinstance(result, Failure)
    assert result.type is exc_type


def test_failure_subclass_result_takes_errback_path(impl: Impl) -> None:
    class MyFailure(Failure):
        pass

    d: Any = impl.Deferred()
    path: list[str] = []
    d.addCallback(lambda r: MyFailure(ValueError()))
    d.addCallbacks(lambda r: path.append("cb"), lambda f: path.append("eb"))
    d.callback(1)
    assert path == ["eb"]


# -- attributes -------------------------------------------------------------------------


def test_result_is_missing_before_firing(impl: Impl) -> None:
    d: Any = impl.Deferred()
    with pytest.raises(AttributeError) as info:
        d.result  # noqa: B018
    assert str(info.value) == (
        f"'{impl.Deferred.__name__}' object has no attribute 'result'"
    )
    assert not hasattr(d, "result")
    d.callback(None)
    assert d.result is None


def test_called_and_paused(impl: Impl) -> None:
    d: Any = impl.Deferred()
    assert (d.called, d.paused) == (False, 0)
    d.pause()
    d.pause()
    assert d.paused == 2
    d.callback(1)
    assert (d.called, d.paused) == (True, 2)
    d.unpause()
    d.unpause()
    assert d.paused == 0


def test_chainedTo(impl: Impl) -> None:
    outer: Any = impl.Deferred()
    inner: Any = impl.Deferred()
    assert outer._chainedTo is None
    outer.addCallback(lambda r: inner)
    outer.callback(None)
    assert outer._chainedTo is inner
    inner.callback("x")
    assert outer._chainedTo is None
    assert outer.result == "x"


def test_canceller_is_dropped_once_fired(impl: Impl) -> None:
    def canceller(d: object) -> None:
        pass

    d: Any = impl.Deferred(canceller)
    assert d._canceller is canceller
    d.callback(None)
    assert d._canceller is None


def test_debug_is_a_class_attribute_defaulting_to_false(impl: Impl) -> None:
    assert impl.Deferred.debug is False
    d: Any = impl.Deferred()
    assert d.debug is False
    d.debug = True
    assert d.debug is True
    assert impl.Deferred.debug is False


def test_instance_dict_attributes(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.custom = "value"
    d.__dict__["other"] = 2
    assert d.custom == "value"
    assert vars(d)["custom"] == "value"
    assert d.other == 2
    del d.custom
    assert not hasattr(d, "custom")


def test_weakref_to_a_deferred(impl: Impl) -> None:
    d: Any = impl.Deferred()
    ref = weakref.ref(d)
    assert ref() is d
    proxy = weakref.proxy(d)
    proxy.callback(5)
    assert d.result == 5
    del d
    assert ref() is None


def test_weakref_attribute_is_the_first_weak_reference(impl: Impl) -> None:
    d: Any = impl.Deferred()
    assert d.__weakref__ is None
    proxy = weakref.proxy(d)
    assert d.__weakref__ is proxy
    ref = weakref.ref(d)
    # CPython keeps a plain reference at the head of the list.
    assert d.__weakref__ is ref
    del ref
    assert d.__weakref__ is proxy
    with pytest.raises(AttributeError):
        d.__weakref__ = None
    assert impl.DeferredList([]).__weakref__ is None


def _made_by(impl: Impl, maker: str) -> Any:
    """
    A Deferred made by ``maker``, one of the ways a program gets a Deferred it did
    not subclass.
    """
    if maker == "Deferred()":
        return impl.Deferred()
    if maker == "Deferred(canceller)":
        return impl.Deferred(lambda d: None)
    if maker == "succeed":
        return impl.succeed(1)
    if maker == "fail":
        d = impl.fail(ValueError("x"))
        d.addErrback(lambda _: None)
        return d
    if maker == "lock waiter":
        lock = impl.DeferredLock()
        lock.acquire()
        return lock.acquire()
    if maker == "queue get":
        return impl.DeferredQueue().get()
    if maker == "inlineCallbacks":
        return impl.inlineCallbacks(lambda: (yield impl.Deferred()))()
    assert maker == "ensureDeferred"

    async def waits() -> object:
        return await impl.Deferred()

    return impl.ensureDeferred(waits())


MAKERS = [
    "Deferred()",
    "Deferred(canceller)",
    "succeed",
    "fail",
    "lock waiter",
    "queue get",
    "inlineCallbacks",
    "ensureDeferred",
]


def _assert_allocated_directly_where_the_build_can() -> None:
    """
    New Deferreds are allocated directly (without ``object.__new__``) on CPython
    with the GIL, unless the extension is built for the stable ABI.
    """
    import sysconfig

    import txdefer._core

    can = (
        sys.implementation.name == "cpython"
        and not sysconfig.get_config_var("Py_GIL_DISABLED")
        and ".abi3." not in (txdefer._core.__file__ or "")
    )
    if can:
        assert txdefer._core._allocates_directly(), "the direct allocation is off on a build that supports it"


@pytest.mark.parametrize("maker", MAKERS)
def test_a_made_deferred_takes_attributes_and_weak_references_and_is_collected(
    impl: Impl, maker: str
) -> None:
    """
    Whichever way a Deferred is made (txdefer allocates most without
    ``object.__new__``, so a new one has no attribute storage until it needs some),
    it takes instance attributes, shows them in ``vars()``, takes weak references,
    and is collected once only a cycle through its attributes holds it.
    """
    if not impl.is_twisted:
        _assert_allocated_directly_where_the_build_can()
    d = _made_by(impl, maker)
    assert "custom" not in vars(d)
    d.custom = "value"
    d.me = d
    d.__dict__["other"] = [d]
    assert (d.custom, d.me, d.other) == ("value", d, [d])
    assert {"custom", "me", "other"} <= set(vars(d))
    del d.custom
    assert not hasattr(d, "custom")
    ref = weakref.ref(d)
    assert ref() is d
    del d
    gc.collect()
    assert ref() is None


def test_a_made_deferred_without_attributes_is_collected_through_a_cycle(impl: Impl) -> None:
    """
    A new Deferred with no attribute of its own, held only by a cycle through its
    callbacks, is collected (the collector visits it though it has no attribute
    storage yet).
    """
    for maker in MAKERS:
        d = _made_by(impl, maker)
        d.addBoth(lambda result, d=d: result)
        ref = weakref.ref(d)
        del d
        gc.collect()
        assert ref() is None, maker


@contextlib.contextmanager
def _abstract(cls: Any) -> Iterator[None]:
    """
    ``cls`` made abstract (as ``abc`` marks a class with an abstract method) for the
    duration, then restored.
    """
    own = vars(cls).get("__abstractmethods__")
    cls.__abstractmethods__ = frozenset({"must_override"})
    try:
        yield
    finally:
        if own is None:
            del cls.__abstractmethods__
        else:
            cls.__abstractmethods__ = own


def test_an_abstract_Deferred_class_is_refused_by_its_makers(impl: Impl) -> None:
    """
    A Deferred class marked abstract cannot be instantiated: ``Deferred()`` raises
    ``TypeError``, as ``object.__new__`` refuses any abstract class, and so do
    ``succeed`` and ``fail`` where they make that class.  Once it is no longer
    abstract, they make Deferreds again.
    """
    makes_the_class = impl.succeed(1).__class__ is impl.Deferred
    with _abstract(impl.Deferred):
        for make in (impl.Deferred, lambda: impl.Deferred(lambda d: None)):
            with pytest.raises(TypeError, match="Can't instantiate abstract class .*must_override"):
                make()
        if makes_the_class:
            with pytest.raises(TypeError, match="Can't instantiate abstract class"):
                impl.succeed(1)
            with pytest.raises(TypeError, match="Can't instantiate abstract class"):
                impl.fail(ValueError("x"))
    assert impl.Deferred().called is False
    assert impl.succeed(2).result == 2


def test_internal_startRunCallbacks_fires_without_the_argument_checks(impl: Impl) -> None:
    seen: list[Any] = []
    d: Any = impl.Deferred()
    d.addBoth(seen.append)
    d._startRunCallbacks(3)
    failed: Any = impl.Deferred()
    failed.addErrback(lambda f: seen.append(f.value.args))
    failed._startRunCallbacks(Failure(ValueError("v")))
    assert seen == [3, ("v",)]
    with pytest.raises(AlreadyCalledError):
        d._startRunCallbacks(4)
    d._suppressAlreadyCalled = True
    d._startRunCallbacks(5)
    assert (d._suppressAlreadyCalled, d.result) == (False, None)


def test_internal_continuation_hands_a_result_on(impl: Impl) -> None:
    waiting: Any = impl.Deferred()
    pair = waiting._continuation()
    assert len(pair) == 2
    assert pair[0] == pair[1]
    assert pair[0][1] == (waiting,)
    source: Any = impl.Deferred()
    source._callbacks.append(pair)
    waiting.paused = 1  # as chaining leaves the waiting Deferred
    waiting.called = True
    waiting.addCallback(lambda r: ("continued", r))
    source.callback(9)
    assert waiting.result == ("continued", 9)
    assert source.result is None


def test_signature_of_the_class_names_the_canceller(impl: Impl) -> None:
    import inspect

    (param,) = inspect.signature(impl.Deferred).parameters.values()
    assert (param.name, param.default, param.kind) == ("canceller", None, param.POSITIONAL_OR_KEYWORD)


def test_is_an_awaitable(impl: Impl) -> None:
    d: Any = impl.Deferred()
    assert isinstance(d, Awaitable)
    assert isinstance(d, impl.Deferred)


def test_callbacks_property_is_deprecated(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.addCallback(str)
    with pytest.warns(DeprecationWarning) as record:
        chain = d.callbacks
    assert [str(w.message) for w in record] == [
        "twisted.internet.defer.Deferred.callbacks was deprecated in Twisted 25.5.0"
    ]
    assert record[0].filename == __file__
    assert len(chain) == 1
    (callback, args, kwargs), (errback, eargs, ekwargs) = chain[0]
    assert (callback, args, dict(kwargs)) == (str, (), {})
    assert (errback.__name__, eargs, dict(ekwargs)) == ("_failthru", (), {})


def test_private_callbacks_list_shape(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.addCallbacks(str, repr, callbackArgs=(1,), errbackKeywords={"k": 2})
    d.addErrback(repr, 3)
    d.addBoth(len)
    shape = [
        tuple((getattr(f, "__name__", f), tuple(a), dict(k)) for f, a, k in pair)
        for pair in d._callbacks
    ]
    assert shape == [
        (("str", (1,), {}), ("repr", (), {"k": 2})),
        (("passthru", (), {}), ("repr", (3,), {})),
        (("len", (), {}), ("len", (), {})),
    ]
    assert len(d._callbacks) == 3


def _tagged(ran: list[int], tag: int) -> Any:
    def callback(result: object) -> object:
        ran.append(tag)
        return result

    callback.tag = tag  # type: ignore[attr-defined]
    return callback


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_private_callbacks_list_pop_at_each_index_keeps_the_rest_in_order(impl: Impl, count: int) -> None:
    """
    One or two callbacks are stored differently from three or more: removing any one
    of them through ``_callbacks`` leaves the others, in order, and a callback added
    afterwards runs last.
    """
    for index in range(-count, count):
        ran: list[int] = []
        d: Any = impl.Deferred()
        for tag in range(count):
            d.addCallback(_tagged(ran, tag))
        assert [pair[0][0].tag for pair in d._callbacks] == list(range(count))
        assert d._callbacks[index][0][0].tag == list(range(count))[index]
        removed = d._callbacks.pop(index)
        remaining = list(range(count))
        expected_removed = remaining.pop(index)
        assert removed[0][0].tag == expected_removed
        assert len(d._callbacks) == count - 1
        d.addCallback(_tagged(ran, 99))
        assert [pair[0][0].tag for pair in d._callbacks] == [*remaining, 99]
        d.callback("r")
        assert ran == [*remaining, 99]
        assert len(d._callbacks) == 0
        assert result_of(d) == "r"


# -- str / repr -------------------------------------------------------------------------


def _addr(obj: object) -> str:
    return f"0x{id(obj):x}"


def test_str_and_repr_unfired(impl: Impl) -> None:
    d: Any = impl.Deferred()
    name = impl.Deferred.__name__
    assert str(d) == f"<{name} at {_addr(d)}>"
    assert repr(d) == str(d)


def test_str_and_repr_with_result(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.callback("text")
    name = impl.Deferred.__name__
    assert str(d) == f"<{name} at {_addr(d)} current result: 'text'>"
    assert repr(d) == str(d)


def test_str_with_failure_result(impl: Impl) -> None:
    d: Any = impl.Deferred()
    failure = Failure(ValueError("bad"))
    d.errback(failure)
    name = impl.Deferred.__name__
    assert str(d) == f"<{name} at {_addr(d)} current result: {failure!r}>"
    result_of(d)


def test_str_waiting_on_another_deferred(impl: Impl) -> None:
    outer: Any = impl.Deferred()
    inner: Any = impl.Deferred()
    outer.addCallback(lambda r: inner)
    outer.callback(None)
    name = impl.Deferred.__name__
    assert str(outer) == f"<{name} at {_addr(outer)} waiting on Deferred at {_addr(inner)}>"
    assert repr(outer) == str(outer)


def test_str_uses_the_repr_of_the_result(impl: Impl) -> None:
    class Odd:
        def __repr__(self) -> str:
            return "ODD!"

        def __str__(self) -> str:
            return "never used"

    d: Any = impl.Deferred()
    d.callback(Odd())
    assert str(d).endswith(" current result: ODD!>")


def test_str_is_the_same_as_twisted(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> list[str]:
        out = []
        d: Any = ns.Deferred()
        out.append(str(d))
        d.callback([1, "two"])
        out.append(repr(d))
        e: Any = ns.Deferred()
        f: Any = ns.Deferred()
        e.chainDeferred(f)
        out.append(str(f))
        return [normalize(s, ns) for s in out]

    assert scenario(impl) == scenario(twisted)


# -- generics and subclassing -----------------------------------------------------------


def test_deferred_of_int_at_runtime(impl: Impl) -> None:
    alias = impl.Deferred[int]
    assert typing.get_origin(alias) is impl.Deferred
    assert typing.get_args(alias) == (int,)
    d: Any = alias()
    assert type(d) is impl.Deferred
    d.callback(3)
    assert d.result == 3
    annotated: Any = impl.Deferred()
    annotated.callback(1)
    assert annotated.result == 1


class _IntDeferreds:
    """Subclasses of ``Deferred[int]``, one per implementation, created once."""

    classes: dict[str, type] = {}


for _impl in ALL_IMPLS:

    class IntDeferred(_impl.Deferred[int]):  # type: ignore[name-defined,misc]
        pass

    _IntDeferreds.classes[_impl.name] = IntDeferred


def test_deferred_of_int_as_a_base_class(impl: Impl) -> None:
    cls = _IntDeferreds.classes[impl.name]
    assert impl.Deferred in cls.__mro__
    assert cls in impl.subclasses
    d: Any = cls()
    outer: Any = impl.Deferred()
    outer.addCallback(lambda r: d)
    outer.callback(None)
    d.callback(42)
    assert outer.result == 42
    assert str(d).startswith("<IntDeferred at 0x")


def test_the_subclass_is_recorded_as_a_deferred_subclass() -> None:
    assert SubDeferred in SUBCLASS.subclasses
    assert SUBCLASS.subclasses.count(SubDeferred) == 1
    assert TWISTED.Deferred in TWISTED.subclasses


def _make_subclasses_with_init() -> dict[str, type]:
    def make(base: Any) -> type:
        class WithInit(base):  # type: ignore[valid-type,misc]
            def __init__(self, label: str, canceller: Any = None) -> None:
                self.label = label
                base.__init__(self, canceller)

        return WithInit

    return {each.name: make(each.Deferred) for each in ALL_IMPLS}


_WITH_INIT = _make_subclasses_with_init()


def test_subclass_with_init_calling_deferred_init(impl: Impl) -> None:
    cls = _WITH_INIT[impl.name]
    cancelled: list[object] = []
    d: Any = cls("mine", cancelled.append)
    assert d.label == "mine"
    d.addCallback(lambda r: (d.label, r))
    d.cancel()
    assert cancelled == [d]
    assert fired_with(d) == ("Failure", CancelledError, "")

    e: Any = cls("other")
    e.addCallback(lambda r: (e.label, r))
    e.callback(1)
    assert e.result == ("other", 1)
    assert str(e) == f"<WithInit at {_addr(e)} current result: ('other', 1)>"


def test_calling_init_again_resets_the_callbacks(impl: Impl) -> None:
    d: Any = impl.Deferred()
    called: list[object] = []
    d.addCallback(called.append)
    impl.Deferred.__init__(d)
    d.callback(1)
    assert called == []
    assert d.result == 1


# -- succeed / fail / execute / maybeDeferred ------------------------------------------


def test_succeed(impl: Impl) -> None:
    d: Any = impl.succeed("v")
    assert isinstance(d, impl.module.Deferred)
    assert d.called is True
    assert d.result == "v"
    assert d._chainedTo is None
    seen: list[object] = []
    d.addCallback(seen.append)
    assert seen == ["v"]


def test_succeed_with_a_failure_is_not_logged_as_unhandled(impl: Impl) -> None:
    from tests.impls import captured_log

    with captured_log() as events:
        d: Any = impl.succeed(Failure(ValueError("quiet")))
        assert d.called
        del d
    assert events == []


def test_fail_with_exception_and_failure(impl: Impl) -> None:
    d: Any = impl.fail(ValueError("v"))
    assert d.called
    assert fired_with(d) == ("Failure", ValueError, "v")
    failure = Failure(KeyError("k"))
    e: Any = impl.fail(failure)
    assert result_of(e) is failure


def test_fail_without_argument_inside_except(impl: Impl) -> None:
    try:
        1 / 0
    except ZeroDivisionError:
        d: Any = impl.fail()
    assert fired_with(d) == ("Failure", ZeroDivisionError, "division by zero")


def test_fail_without_argument_and_no_exception(impl: Impl) -> None:
    with pytest.raises(NoCurrentExceptionError):
        impl.fail()


def test_execute(impl: Impl) -> None:
    assert fired_with(impl.execute(lambda a, b=0: a + b, 1, b=2)) == 3

    def boom() -> None:
        raise OSError("nope")

    assert fired_with(impl.execute(boom)) == ("Failure", OSError, "nope")


def test_maybeDeferred_with_a_value(impl: Impl) -> None:
    d: Any = impl.maybeDeferred(lambda x, y=1: x * y, 3, y=4)
    assert fired_with(d) == 12


def test_maybeDeferred_returns_a_returned_deferred_unchanged(impl: Impl) -> None:
    inner: Any = impl.Deferred()
    assert impl.maybeDeferred(lambda: inner) is inner


def test_maybeDeferred_with_a_failure(impl: Impl) -> None:
    failure = Failure(ValueError("f"))
    d: Any = impl.maybeDeferred(lambda: failure)
    assert result_of(d) is failure


def test_maybeDeferred_with_a_coroutine(impl: Impl) -> None:
    waiting: Any = impl.Deferred()

    async def coro(x: int) -> int:
        y = await waiting
        return x + y

    d: Any = impl.maybeDeferred(coro, 1)
    assert isinstance(d, impl.module.Deferred)
    assert not d.called
    waiting.callback(2)
    assert fired_with(d) == 3


def test_maybeDeferred_with_a_raising_function(impl: Impl) -> None:
    def boom() -> None:
        raise KeyboardInterrupt("kb")

    assert fired_with(impl.maybeDeferred(boom)) == ("Failure", KeyboardInterrupt, "kb")


def test_maybeDeferred_does_not_drive_generators(impl: Impl) -> None:
    def gen() -> Any:
        yield 1

    generator = gen()
    d: Any = impl.maybeDeferred(lambda: generator)
    assert result_of(d) is generator


# -- debugging --------------------------------------------------------------------------


def test_set_and_get_debugging(impl: Impl) -> None:
    assert impl.getDebugging() is False
    impl.setDebugging(1)
    assert impl.getDebugging() is True
    assert impl.module.Deferred.debug is True
    impl.setDebugging(0)
    assert impl.getDebugging() is False


def test_already_called_error_in_debug_mode_names_both_invokers(impl: Impl) -> None:
    impl.setDebugging(True)
    d: Any = impl.Deferred()
    d.callback(1)  # first invoker: this line
    with pytest.raises(AlreadyCalledError) as info:
        d.callback(2)
    message = info.value.args[0]
    assert message.startswith("\n C: Deferred was created:\n C:")
    assert " I: First Invoker was:\n I:" in message
    creator, invoker = message.split(" I: First Invoker was:")
    assert "test_already_called_error_in_debug_mode_names_both_invokers" in creator
    # The last frame of each stack is this test's own line.
    assert creator.rstrip().splitlines()[-1].strip().startswith("C:    d: Any = impl.Deferred()")
    assert invoker.rstrip().splitlines()[-1].strip().startswith("I:    d.callback(1)")


def test_debug_on_one_instance(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.debug = True
    d.errback(ValueError())
    with pytest.raises(AlreadyCalledError) as info:
        d.callback(2)
    message = info.value.args[0]
    assert message.startswith("\n I: First Invoker was:\n I:")
    assert "C: Deferred was created" not in message
    result_of(d)


def test_debug_assigned_on_an_instance_is_in_its_dict_and_can_be_deleted(impl: Impl) -> None:
    d: Any = impl.Deferred()
    other: Any = impl.Deferred()
    d.debug = 1
    assert d.debug == 1
    assert vars(d)["debug"] == 1
    assert other.debug is False
    del d.debug
    assert "debug" not in vars(d)
    assert d.debug is False
    with pytest.raises(AttributeError) as info:
        del d.debug
    assert str(info.value) == nothing_to_delete(type(d).__name__, "debug")


def test_instance_debug_value_overrides_set_debugging(impl: Impl) -> None:
    impl.setDebugging(True)
    d: Any = impl.Deferred()
    d.debug = False
    d.callback(1)
    # Created in debug mode (creator recorded), fired with debugging off for it.
    assert d._debugInfo.creator
    assert d._debugInfo.invoker is None
    with pytest.raises(AlreadyCalledError) as info:
        d.callback(2)
    assert info.value.args == ()


def test_debug_assigned_directly_on_the_class_switches_debugging(impl: Impl) -> None:
    cls = impl.module.Deferred
    cls.debug = True
    try:
        assert impl.getDebugging() is True
        d: Any = impl.Deferred()
        assert d._debugInfo is not None
        assert d._debugInfo.creator
    finally:
        cls.debug = False
    assert impl.Deferred().debug is False
    impl.setDebugging(True)
    assert cls.debug is True
    assert impl.Deferred()._debugInfo is not None


@pytest.mark.parametrize("module", ["twisted.internet.defer", "txdefer"])
def test_debugging_follows_the_class_when_nothing_was_looked_up_on_it(module: str) -> None:
    # In a fresh interpreter, where nothing has looked an attribute up on the class yet
    # (so CPython has not given it a version tag): Deferreds made by ``succeed`` alone,
    # then ``debug`` assigned on the class, then ``setDebugging``.
    code = f"""
import {module} as m
before = [m.succeed(i)._debugInfo for i in range(3)]
m.Deferred.debug = True
during = m.succeed(3)._debugInfo
m.Deferred.debug = False
after = m.succeed(4)._debugInfo
m.setDebugging(True)
switched = m.succeed(5)._debugInfo
print(before == [None] * 3, bool(during and during.creator), after is None,
      bool(switched and switched.creator))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True"] * 4


def test_debugging_follows_every_change_to_the_class(impl: Impl) -> None:
    cls = impl.module.Deferred
    cls.unrelated_marker = 1
    try:
        assert impl.Deferred()._debugInfo is None
        impl.setDebugging(True)
        assert impl.Deferred()._debugInfo is not None
        impl.setDebugging(False)
        assert impl.Deferred()._debugInfo is None
        cls.debug = True
        assert impl.Deferred()._debugInfo is not None
        cls.debug = False
        assert impl.Deferred()._debugInfo is None
        cls.debug = "yes"
        d: Any = impl.Deferred()
        assert d.debug == "yes"
        assert d._debugInfo is not None
    finally:
        del cls.unrelated_marker
        impl.setDebugging(False)
    assert impl.Deferred()._debugInfo is None


def test_a_subclass_reads_debug_as_its_own_lookup_gives_it(impl: Impl) -> None:
    """
    A subclass's ``debug`` is what looking it up on an instance gives: the switch
    through the inherited attribute, a class attribute of its own (set at once or
    later), or what its ``__getattribute__`` returns.
    """

    class Inheriting(impl.Deferred):  # type: ignore[name-defined, misc]
        pass

    class Own(impl.Deferred):  # type: ignore[name-defined, misc]
        debug = True

    class Looking(impl.Deferred):  # type: ignore[name-defined, misc]
        def __getattribute__(self, name: str) -> Any:
            if name == "debug":
                return True
            return super().__getattribute__(name)

    def recorded(d: Any) -> bool:
        d.callback(None)
        return d._debugInfo is not None and d._debugInfo.invoker is not None

    assert [recorded(cls()) for cls in (Inheriting, Own, Looking)] == [False, True, True]
    assert Own()._debugInfo.creator
    Inheriting.debug = True
    try:
        assert recorded(Inheriting())
    finally:
        del Inheriting.debug
    assert not recorded(Inheriting())
    Own.debug = False
    assert not recorded(Own())
    impl.setDebugging(True)
    try:
        assert [recorded(cls()) for cls in (Inheriting, Own, Looking)] == [True, False, True]
    finally:
        impl.setDebugging(False)


def test_copy_keeps_an_instance_debug_value(impl: Impl) -> None:
    import copy

    d: Any = impl.Deferred()
    d.debug = True
    clone = copy.copy(d)
    assert clone.debug is True
    d.callback(1)
    clone.callback(1)
    with pytest.raises(AlreadyCalledError) as info:
        clone.callback(2)
    assert "I: First Invoker was" in info.value.args[0]


def test_debug_info_records_creator_stack(impl: Impl) -> None:
    impl.setDebugging(True)
    d: Any = impl.Deferred()
    info = d._debugInfo
    assert info is not None
    assert info.creator[-1].strip().endswith("d: Any = impl.Deferred()")
    assert info.invoker is None
    d.callback(None)
    assert info.invoker[-1].strip().endswith("d.callback(None)")


def test_failure_captures_vars_in_debug_mode(impl: Impl) -> None:
    impl.setDebugging(True)

    def the_callback(r: object) -> None:
        local_marker = "here"  # noqa: F841
        raise ValueError()

    d: Any = impl.Deferred()
    d.addCallback(the_callback)
    d.callback(None)
    failure = result_of(d)
    frame = failure.frames[-1]
    assert frame[0] == "the_callback"
    assert dict(frame[3])["local_marker"] == "here"


def test_failure_does_not_capture_vars_outside_debug_mode(impl: Impl) -> None:
    def the_callback(r: object) -> None:
        local_marker = "here"  # noqa: F841
        raise ValueError()

    d: Any = impl.Deferred()
    d.addCallback(the_callback)
    d.callback(None)
    failure = result_of(d)
    assert failure.frames[-1][0] == "the_callback"
    assert list(failure.frames[-1][3]) == []


def test_no_debug_info_unless_needed(impl: Impl) -> None:
    d: Any = impl.Deferred()
    assert d._debugInfo is None
    d.callback(1)
    assert d._debugInfo is None


def test_module_exports(impl: Impl) -> None:
    for name in [
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
    ]:
        assert hasattr(impl.module, name), name
    assert (impl.SUCCESS, impl.FAILURE) == (True, False)
    # Exceptions are Twisted's own classes.
    assert impl.AlreadyCalledError is AlreadyCalledError
    assert impl.CancelledError is CancelledError


def test_passthru(impl: Impl) -> None:
    marker = object()
    assert impl.passthru(marker) is marker


def test_logError_logs_and_returns_the_failure(impl: Impl) -> None:
    from tests.impls import captured_log

    failure = Failure(ValueError("logged"))
    with captured_log() as events:
        d: Any = impl.Deferred()
        d.addErrback(impl.logError)
        d.errback(failure)
        assert result_of(d) is failure
    assert [(e["log_format"], e["log_failure"]) for e in events] == [("", failure)]


def test_no_warning_is_emitted_by_normal_use(impl: Impl) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d: Any = impl.Deferred()
        d.addCallback(lambda r: r + 1)
        d.callback(1)
        assert d.result == 2
        assert re.match(r"<\w+ at 0x[0-9a-f]+ current result: 2>", str(d))


def test_subclass_keyword_arguments_are_accepted(impl: Impl) -> None:
    class WithKeywords(impl.Deferred, option=True):  # type: ignore[call-arg,misc,name-defined]
        pass

    assert WithKeywords in impl.subclasses
    d: Any = WithKeywords()
    d.callback(1)
    assert d.result == 1


def test_debug_info_tracks_the_unhandled_failure(impl: Impl) -> None:
    d: Any = impl.Deferred()
    failure = Failure(ValueError())
    d.errback(failure)
    assert d._debugInfo is not None
    assert d._debugInfo.failResult is failure
    d.addErrback(lambda f: None)
    assert d._debugInfo.failResult is None
    d.addCallback(lambda r: failure)
    assert d._debugInfo.failResult is failure
    result_of(d)
    assert d._debugInfo.failResult is None


def test_copy_of_a_deferred(impl: Impl) -> None:
    import copy

    d: Any = impl.Deferred()
    d.callback(3)
    d.label = "copied"
    c: Any = copy.copy(d)
    assert type(c) is impl.Deferred
    assert c is not d
    assert (c.called, c.result, c.label) == (True, 3, "copied")
    fresh: Any = copy.deepcopy(impl.Deferred())
    assert type(fresh) is impl.Deferred
    assert fresh.called is False
    fresh.callback("deep")
    assert fresh.result == "deep"


def test_copy_shares_the_callback_list_only_on_Twisted(impl: Impl) -> None:
    """The README's ``copy.copy(d)`` row."""
    import copy

    d: Any = impl.Deferred()
    d.addCallback(str)
    clone: Any = copy.copy(d)
    clone.callback(1)
    assert clone.result == "1"
    assert len(d._callbacks) == (0 if impl.is_twisted else 1)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_keeps_callbacks_result_pause_and_attributes(impl: Impl, protocol: int) -> None:
    pending: Any = impl.Deferred()
    pending.addCallback(str)
    pending.label = "pickled"
    clone: Any = pickle.loads(pickle.dumps(pending, protocol))
    assert type(clone) is type(pending)
    assert (clone.called, clone.label, len(clone._callbacks)) == (False, "pickled", 1)
    clone.callback(7)
    assert clone.result == "7"
    assert pending.called is False  # the clone's chain is its own

    paused: Any = impl.succeed(3)
    paused.pause()
    clone = pickle.loads(pickle.dumps(paused, protocol))
    assert (clone.called, clone.paused, clone.result) == (True, 1, 3)
    clone.addCallback(str)
    assert clone.result == 3
    clone.unpause()
    assert (clone.paused, clone.result) == (0, "3")

    failed: Any = impl.fail(ValueError("pickled"))
    clone = pickle.loads(pickle.dumps(failed, protocol))
    assert isinstance(clone.result, Failure)
    assert clone.result.value.args == ("pickled",)
    result_of(clone)  # handled: nothing is logged for the clone...
    result_of(failed)  # ...nor for the original


def _pickled_state(d: Any) -> dict[str, Any]:
    """The state ``pickle`` saves for ``d`` (protocol 2 and later)."""
    return dict(d.__reduce_ex__(2)[2])


def _comparable(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with each callback named (``_failthru`` is compiled on txdefer)."""
    return {
        **state,
        "_callbacks": [
            tuple((f.__name__, args, dict(kwargs)) for f, args, kwargs in pair)
            for pair in state["_callbacks"]
        ],
    }


def _unpickled(cls: type, state: dict[str, Any]) -> Any:
    """An instance of ``cls`` made and given ``state`` as unpickling does it."""
    new = copyreg.__newobj__(cls)  # type: ignore[attr-defined]
    setstate = getattr(new, "__setstate__", None)
    if setstate is not None:
        setstate(state)
    else:
        vars(new).update(state)
    return new


def test_pickle_state_is_what_Twisted_instance_dict_holds(impl: Impl, twisted: Impl) -> None:
    """
    The state ``pickle`` saves is what Twisted's instance ``__dict__`` holds after
    the same calls, and either class loads the other's: pickles made with protocol
    2 or later load across the two.
    """

    def made_by(impl: Impl) -> list[Any]:
        pending: Any = impl.Deferred()
        pending.addCallback(str)
        pending.label = "pending"
        fired: Any = impl.Deferred()
        fired.addCallback(str)
        fired.callback(5)
        fired.pause()
        return [pending, fired]

    for ours, theirs in zip(made_by(impl), made_by(twisted)):
        mine, expected = _comparable(_pickled_state(ours)), _comparable(_pickled_state(theirs))
        assert mine == expected
        loaded_across = [
            (_unpickled(type(ours), _pickled_state(theirs)), theirs),
            (_unpickled(type(theirs), _pickled_state(ours)), ours),
        ]
        for clone, model in loaded_across:
            assert (clone.called, clone.paused) == (model.called, model.paused)
            assert len(clone._callbacks) == len(model._callbacks)
            assert getattr(clone, "result", None) == getattr(model, "result", None)


@pytest.mark.parametrize("how", ["copy", "deepcopy"])
def test_copy_of_a_subclass_with_slots_keeps_them(impl: Impl, how: str) -> None:
    import copy

    class Slotted(impl.Deferred):  # type: ignore[name-defined,misc]
        __slots__ = ("slot",)

    d: Any = Slotted()
    d.slot = "in a slot"
    d.label = "in the dict"
    d.callback(1)
    clone: Any = getattr(copy, how)(d)
    assert (clone.slot, clone.label, clone.result) == ("in a slot", "in the dict", 1)


def test_pickle_uses_a_reduce_defined_by_a_subclass(impl: Impl) -> None:
    class Reduced(impl.Deferred):  # type: ignore[name-defined,misc]
        def __reduce__(self) -> Any:
            return (str, ("reduced",))

    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(Reduced(), protocol)) == "reduced"


def test_failure_from_a_raising_callback_is_built_as_Twisted_builds_it(impl: Impl) -> None:
    """
    The ``Failure`` a raising callback leaves behind has Twisted's attributes, in
    Twisted's order, its constructor arguments as ``args``, and a fresh ``count``.
    """
    from twisted.python import failure as failure_module

    def boom(_: object) -> None:
        raise ValueError("boom")

    d: Any = impl.Deferred()
    d.addCallback(boom)
    before = failure_module.count
    d.callback(None)
    f = d.result
    d.addErrback(lambda _: None)
    assert list(vars(f)) == ["count", "type", "value", "captureVars", "tb"]
    assert f.count == before + 1 == failure_module.count
    assert f.type is ValueError and str(f.value) == "boom"
    assert f.args == ()
    assert f.tb is not None and f.frames[-1][0] == "boom"
    assert f.check(ValueError) is ValueError


class _ClassSaysOtherwise(Exception):
    """An exception whose ``__class__`` names another class."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return KeyError


def _raised() -> Exception:
    try:
        raise ValueError("raised")
    except ValueError as e:
        return e


_FAILURE_VALUES = {
    "exception": lambda: ValueError("x"),
    "exception_with_traceback": _raised,
    "base_exception": lambda: KeyboardInterrupt(),
    "exception_class": lambda: ValueError,
    "not_an_exception": lambda: 42,
    "class_attribute_says_otherwise": lambda: _ClassSaysOtherwise(),
}


def _assert_same_failure(f: Any, expected: Any) -> None:
    """``f`` is a ``Failure`` like ``expected``: its attributes, their order, ``args``."""
    from twisted.python.failure import Failure

    assert type(f) is Failure
    assert list(vars(f)) == list(vars(expected))
    assert vars(f) == vars(expected)
    assert f.args == expected.args


def _assert_built_as_Twisted_builds_it(f: Any, given: object, count_before: int) -> None:
    """``f`` is what Twisted's ``Failure(given)`` makes, ``count`` included."""
    from twisted.python import failure as failure_module
    from twisted.python.failure import Failure

    assert f.count == count_before + 1 == failure_module.count
    expected = Failure(given)
    expected.count = f.count
    _assert_same_failure(f, expected)
    assert f.args == (given,)


@pytest.mark.parametrize("how", ["errback", "fail"])
@pytest.mark.parametrize("value", sorted(_FAILURE_VALUES))
def test_failure_wrapping_a_value_is_built_as_Twisted_builds_it(
    impl: Impl, value: str, how: str
) -> None:
    """
    ``d.errback(value)`` and ``fail(value)`` wrap the value in a ``Failure`` with the
    attributes, their order, ``args`` (the value) and ``count`` that Twisted's
    ``Failure(value)`` gives it.
    """
    from twisted.python import failure as failure_module

    given = _FAILURE_VALUES[value]()
    before = failure_module.count
    if how == "errback":
        d: Any = impl.Deferred()
        d.errback(given)
    else:
        d = impl.fail(given)
    f = d.result
    d.addErrback(lambda _: None)
    _assert_built_as_Twisted_builds_it(f, given, before)


def test_failure_is_made_by_a_replaced_Failure___new__(impl: Impl) -> None:
    """
    The ``Failure`` of a raising callback and of ``fail(value)`` is made by
    ``Failure.__new__`` as it is at that moment, as Twisted's ``Failure(...)`` makes it,
    with the arguments Twisted's call gives it.
    """
    from twisted.python.failure import Failure

    seen: list[tuple[object, ...]] = []
    original = Failure.__dict__.get("__new__")

    def recording_new(cls: type, *args: object, **kwargs: object) -> Any:
        seen.append(args)
        return BaseException.__new__(cls, *args)  # type: ignore[type-var]

    def boom(_: object) -> None:
        raise ValueError("boom")

    value = KeyError("k")
    Failure.__new__ = recording_new  # type: ignore[method-assign, assignment]
    try:
        d: Any = impl.Deferred()
        d.addCallback(boom)
        d.callback(None)
        failed = impl.fail(value)
    finally:
        if original is None:
            del Failure.__new__
        else:
            Failure.__new__ = original  # type: ignore[method-assign]
    assert seen == [(), (value,)]
    assert type(d.result) is Failure and d.result.type is ValueError
    assert failed.result.value is value and failed.result.args == (value,)
    d.addErrback(lambda _: None)
    failed.addErrback(lambda _: None)


def test_failure_of_cancel_is_built_as_Twisted_builds_it(impl: Impl) -> None:
    """``cancel()`` fails the Deferred with Twisted's ``Failure(CancelledError())``."""
    from twisted.python import failure as failure_module

    before = failure_module.count
    d: Any = impl.Deferred()
    d.cancel()
    f = d.result
    d.addErrback(lambda _: None)
    assert type(f.value) is impl.CancelledError
    _assert_built_as_Twisted_builds_it(f, f.value, before)


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize(
    "handled", ["exception", "base_exception", "traceback_cleared", "a_failure_raised"]
)
def test_errback_inside_except_builds_the_Failure_Twisted_builds(
    impl: Impl, handled: str, debug: bool
) -> None:
    """
    ``d.errback()`` inside ``except`` makes what Twisted's ``Failure(captureVars=
    d.debug)`` makes there: the same attributes in the same order, ``args`` and
    ``count``, for the exception being handled.
    """
    from twisted.python import failure as failure_module
    from twisted.python.failure import Failure

    d: Any = impl.Deferred()
    if debug:
        d.debug = True
    try:
        if handled == "a_failure_raised":
            raise Failure(ValueError("inside"))
        if handled == "base_exception":
            raise KeyboardInterrupt
        raise ValueError("x")
    except BaseException as e:
        if handled == "traceback_cleared":
            e.__traceback__ = None
        before = failure_module.count
        d.errback()
        expected = Failure(captureVars=debug)
    f = d.result
    d.addErrback(lambda _: None)
    if handled != "a_failure_raised":  # else both take the raised one's count
        assert f.count == before + 1
        expected.count = f.count
    _assert_same_failure(f, expected)


# -- Deferreds made by succeed, fail and inlineCallbacks ----------------------------------


@contextlib.contextmanager
def _init_replaced(cls: Any, calls: list[object]) -> Iterator[None]:
    """
    ``cls.__init__`` replaced by a function that records its calls (how many
    positional arguments, and the names of the keyword ones), then restored.
    """
    own = vars(cls).get("__init__")
    original = cls.__init__

    def init(self: Any, *args: object, **kwargs: object) -> None:
        calls.append((len(args), sorted(kwargs)))
        original(self, *args, **kwargs)

    cls.__init__ = init
    try:
        yield
    finally:
        if own is None:
            del cls.__init__
        else:
            cls.__init__ = own


@pytest.mark.parametrize(
    "maker",
    [
        "Deferred()",
        "Deferred(canceller)",
        "Deferred(canceller=canceller)",
        "Deferred(None)",
        "succeed",
        "fail",
        "inlineCallbacks",
        "lock.acquire() free",
        "lock.acquire() waiting",
        "semaphore.acquire() free",
        "queue.get() waiting",
    ],
)
def test_a_replaced_init_runs_for_every_new_deferred(maker: str) -> None:
    """
    ``Deferred()``, ``succeed``, ``fail``, ``inlineCallbacks`` and the primitives
    run a replaced ``Deferred.__init__`` as often as on Twisted, with the canceller
    passed as Twisted passes it (by position or by keyword), and it is the
    Deferred's canceller (txdefer otherwise skips the compiled ``__init__``, which
    has nothing to do, and makes a free acquire already fired).
    """
    from tests.impls import TWISTED, TXDEFER

    seen: dict[str, list[object]] = {}
    for impl in (TWISTED, TXDEFER):
        calls: list[object] = []
        with _init_replaced(impl.Deferred, calls):
            if maker == "Deferred()":
                d: Any = impl.Deferred()
                assert (d.called, d._canceller) == (False, None)
            elif maker == "Deferred(canceller)":
                d = impl.Deferred(print)
                assert (d.called, d._canceller) == (False, print)
            elif maker == "Deferred(canceller=canceller)":
                d = impl.Deferred(canceller=print)
                assert (d.called, d._canceller) == (False, print)
            elif maker == "Deferred(None)":
                d = impl.Deferred(None)
                assert (d.called, d._canceller) == (False, None)
            elif maker.startswith(("lock", "semaphore")):
                primitive = impl.DeferredLock() if maker.startswith("lock") else impl.DeferredSemaphore(1)
                if maker.endswith("waiting"):
                    primitive.acquire()
                    calls.clear()
                d = primitive.acquire()
                if maker.endswith("free"):
                    assert fired_with(d) is primitive
                    assert d._canceller is None  # dropped when it fired
                else:
                    assert primitive.waiting == [d]
                    assert d._canceller == primitive._cancelAcquire
            elif maker == "queue.get() waiting":
                queue = impl.DeferredQueue()
                d = queue.get()
                assert (queue.waiting, d._canceller) == ([d], queue._cancelGet)
            elif maker == "succeed":
                d = impl.succeed(1)
                assert fired_with(d) == 1
            elif maker == "fail":
                d = impl.fail(ValueError("x"))
                assert fired_with(d) == ("Failure", ValueError, "x")
            else:
                # A generator lambda returns the value sent for its yield: 2.
                d = impl.inlineCallbacks(lambda impl=impl: (yield impl.succeed(2)))()
                assert fired_with(d) == 2
        seen[impl.name] = calls
    assert seen["txdefer"] == seen["twisted"] != []


def test_helpers_skip_init_only_while_nothing_would_differ() -> None:
    import txdefer

    assert txdefer._core._constructs_without_init()
    txdefer.setDebugging(True)
    assert not txdefer._core._constructs_without_init()
    d: Any = txdefer.succeed(1)
    assert d._debugInfo is not None and d._debugInfo.creator
    txdefer.setDebugging(False)
    assert txdefer._core._constructs_without_init()
    assert txdefer.succeed(1)._debugInfo is None
    with _init_replaced(txdefer.Deferred, []):
        assert not txdefer._core._constructs_without_init()
    assert txdefer._core._constructs_without_init()


def test_a_replaced_new_runs_for_every_new_deferred_until_it_is_removed() -> None:
    """
    While ``Deferred.__new__`` is replaced, ``Deferred()``, ``succeed`` and ``fail``
    call it (the direct construction is off); once it is removed, they no longer do.
    CPython then keeps the class's generic ``tp_new`` slot, which finds the compiled
    ``__new__`` by lookup, so the direct construction stays off for the rest of the
    process (slower, the same): hence a process of its own.
    """
    code = """
import txdefer

compiled_new = txdefer.Deferred.__new__
calls = []

def new(cls, *args, **kwargs):
    calls.append(cls)
    return compiled_new(cls, *args, **kwargs)

assert txdefer._core._constructs_without_init()
txdefer.Deferred.__new__ = new
assert not txdefer._core._constructs_without_init()
made = [txdefer.Deferred(), txdefer.succeed(1), txdefer.fail(ValueError("x"))]
made[2].addErrback(lambda _: None)
assert calls == [txdefer.Deferred] * 3, calls
del txdefer.Deferred.__new__
assert txdefer.succeed(2).result == 2
assert txdefer.Deferred().called is False
assert len(calls) == 3, calls
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_inlineCallbacks_deferred_keeps_its_canceller(impl: Impl) -> None:
    waiting: Any = impl.Deferred()

    @impl.inlineCallbacks
    def work() -> Any:
        yield waiting

    d: Any = work()
    assert d._canceller is not None
    d.cancel()
    assert waiting.called
    assert fired_with(d) == ("Failure", impl.CancelledError, "")


@pytest.mark.parametrize(
    "call",
    ["Deferred()", "Deferred(None)", "Deferred(f)", "Deferred(canceller=f)", "Deferred(canceller=None)"],
)
def test_construction_leaves_the_state_Twisted_leaves(impl: Impl, call: str) -> None:
    def f(d: object) -> None:
        pass

    d: Any = eval(call, {"Deferred": impl.Deferred, "f": f})
    assert type(d) is impl.Deferred
    assert (d.called, d.paused, d._chainedTo, d._debugInfo) == (False, 0, None, None)
    assert d._canceller is (f if call.endswith("f)") else None)
    assert list(d._callbacks) == []
    assert not hasattr(d, "result")
    assert vars(d) == {} or impl.is_twisted


def test_a_subclass_is_made_by_its_own_init(impl: Impl) -> None:
    class Sub(impl.Deferred):  # type: ignore[name-defined,misc]
        def __init__(self, label: str) -> None:
            super().__init__(canceller=None)
            self.label = label

    d: Any = Sub("mine")
    assert (type(d), d.label, d.called, d._canceller) == (Sub, "mine", False, None)


@pytest.mark.parametrize(
    ("name", "signature"),
    [
        ("addCallback", "(self, /, callback, *args, **kwargs)"),
        ("addErrback", "(self, /, errback, *args, **kwargs)"),
        ("addBoth", "(self, /, callback, *args, **kwargs)"),
        ("callback", "(self, /, result)"),
        ("errback", "(self, /, fail=None)"),
    ],
)
def test_the_hot_methods_keep_their_name_signature_and_docstring(
    name: str, signature: str
) -> None:
    import inspect

    import txdefer
    from twisted.internet import defer

    public = getattr(txdefer.Deferred, name)
    base = getattr(txdefer._core.DeferredBase, name)
    assert public.__qualname__ == getattr(defer.Deferred, name).__qualname__
    assert public.__qualname__ == f"Deferred.{name}"
    assert base.__qualname__ == f"DeferredBase.{name}"
    for method in (public, base):
        assert method.__name__ == name
        assert str(inspect.signature(method)) == signature
        assert method.__doc__
        assert method.__doc__ == inspect.getdoc(method)
    d = txdefer.Deferred()
    assert getattr(d, name).__self__ is d


@pytest.mark.parametrize(
    "call",
    [
        lambda d, f: d.addCallback(f),
        lambda d, f: d.addCallback(f, 2),
        lambda d, f: d.addCallback(f, 2, k=3),
        lambda d, f: d.addCallback(callback=f),
        lambda d, f: type(d).addCallback(d, f),
        lambda d, f: type(d).addCallback(d, callback=f),
        lambda d, f: d.addCallback(*(f, 2)),
        lambda d, f: d.addCallback(f, **{}),  # noqa: PIE804  (an empty mapping, on purpose)
    ],
)
def test_addCallback_is_the_same_however_it_is_called(impl: Impl, call: Any) -> None:
    seen: list[object] = []

    def f(r: object, *args: object, **kwargs: object) -> str:
        seen.append((r, args, kwargs))
        return "done"

    d: Any = impl.Deferred()
    assert call(d, f) is d
    d.callback(1)
    assert fired_with(d) == "done"
    assert len(seen) == 1 and seen[0][0] == 1


def test_a_tuple_as_the_only_callback_is_kept_as_given(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.addCallback((1, 2))
    (callbacks,) = d._callbacks
    assert callbacks[0] == ((1, 2), (), {})


def test_calling_a_method_through_the_base_class_on_a_non_deferred_is_a_TypeError() -> None:
    import txdefer

    for name in ("addCallback", "addErrback", "addBoth", "callback", "errback"):
        with pytest.raises(TypeError):
            getattr(txdefer._core.DeferredBase, name)(object(), lambda r: r)


def test_a_method_the_public_class_defines_itself_is_not_replaced() -> None:
    # In a separate interpreter: registering a public class is done once, for good.
    code = """
import txdefer._core as core

class Public(core.DeferredBase):
    def callback(self, result):
        return ("own", result)

core._register_public(Public)
assert Public.callback(Public(), 1) == ("own", 1), Public.callback
assert type(vars(Public)["addCallback"]).__name__ == "method_descriptor"
d = Public()
d.addCallback(lambda r: r + 1)
core.DeferredBase.callback(d, 1)
assert d.result == 2
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_only_a_subclass_of_the_compiled_class_can_be_registered_as_public() -> None:
    # Deferreds of the public class are made directly in its memory layout: a class
    # of another layout is refused, and the registered class stays the one it was.
    import txdefer

    class Unrelated:
        pass

    for cls in (Unrelated, int, txdefer.DeferredLock):
        with pytest.raises(TypeError):
            txdefer._core._register_public(cls)
    assert type(txdefer.succeed(1)) is txdefer.Deferred
    assert type(txdefer.Deferred()) is txdefer.Deferred


def test_succeed_keeps_its_name_signature_and_docstring() -> None:
    import inspect

    import txdefer
    from twisted.internet import defer

    assert txdefer.succeed.__name__ == txdefer.succeed.__qualname__ == "succeed"
    assert str(inspect.signature(txdefer.succeed)) == "(result)"
    assert list(inspect.signature(defer.succeed).parameters) == ["result"]
    assert txdefer.succeed.__doc__ and txdefer.succeed.__doc__.startswith("Return a Deferred that has already")
    assert txdefer.succeed.__module__ == "txdefer._core"


@pytest.mark.parametrize(
    "call",
    [
        lambda succeed, value: succeed(value),
        lambda succeed, value: succeed(result=value),
        lambda succeed, value: succeed(*(value,)),
        lambda succeed, value: succeed(value, **{}),  # noqa: PIE804  (an empty mapping, on purpose)
    ],
)
@pytest.mark.parametrize("value", [1, None, (1, 2), "x"])
def test_succeed_is_the_same_however_it_is_called(impl: Impl, call: Any, value: object) -> None:
    d: Any = call(impl.succeed, value)
    assert type(d) is impl.module.Deferred
    assert (d.called, fired_with(d)) == (True, value)


@pytest.mark.parametrize(
    "call",
    [
        lambda succeed: succeed(),
        lambda succeed: succeed(1, 2),
        lambda succeed: succeed(value=1),
        lambda succeed: succeed(1, result=2),
    ],
)
def test_succeed_with_wrong_arguments_is_a_TypeError(impl: Impl, call: Any) -> None:
    with pytest.raises(TypeError):
        call(impl.succeed)


@pytest.mark.parametrize(
    "name",
    ["called", "paused", "_callbacks", "_canceller", "_chainedTo", "_debugInfo", "_suppressAlreadyCalled", "_runningCallbacks"],
)
def test_deleting_a_state_attribute_raises_and_changes_nothing(ours: Impl, name: str) -> None:
    """The README's ``vars(d)`` row: unlike Twisted's instance attributes, these cannot be deleted."""
    d: Any = ours.succeed("kept")
    d.pause()
    before = getattr(d, name)
    with pytest.raises(AttributeError):
        delattr(d, name)
    after = getattr(d, name)
    assert after == before or name == "_callbacks"  # a fresh view of the same chain
    assert (d.called, d.paused, d.result) == (True, 1, "kept")
