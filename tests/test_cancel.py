"""
``Deferred.cancel()``: with and without a canceller, forwarding to the Deferred being
waited on, and the cancellation of ``DeferredList``, ``gatherResults``, ``race``,
``inlineCallbacks``, coroutines, locks, semaphores and queues.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import AlreadyCalledError, CancelledError
from twisted.python.failure import Failure

from tests.impls import (
    Impl,
    captured_log,
    describe,
    fired_with,
    outcome,
    result_of,
)


def test_cancel_without_canceller_errbacks_with_CancelledError(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.cancel()
    assert d.called
    failure = result_of(d)
    assert isinstance(failure, Failure)
    assert failure.type is CancelledError
    assert failure.value.args == ()


def test_the_CancelledError_is_made_not_raised(impl: Impl) -> None:
    # Twisted errbacks with Failure(CancelledError()): cancelling inside an except
    # block does not make the handled exception its context.
    d: Any = impl.Deferred()
    try:
        raise IndexError("being handled")
    except IndexError:
        d.cancel()
    failure = result_of(d)
    assert failure.type is CancelledError
    assert failure.value.__context__ is None and failure.value.__traceback__ is None


def test_no_canceller_fired_later_is_silently_ignored(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.cancel()
    d.callback("late")  # does not raise
    assert fired_with(d) == ("Failure", CancelledError, "")
    # Only once: the next call is an error again.
    with pytest.raises(AlreadyCalledError):
        d.callback("later still")


def test_no_canceller_errback_later_is_silently_ignored(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.cancel()
    d.errback(ValueError("late"))
    assert fired_with(d) == ("Failure", CancelledError, "")
    with pytest.raises(AlreadyCalledError):
        d.errback(ValueError("later still"))


def test_suppressAlreadyCalled_flag(impl: Impl) -> None:
    d: Any = impl.Deferred()
    assert d._suppressAlreadyCalled is False
    d.cancel()
    assert d._suppressAlreadyCalled is True
    d.callback(None)
    assert d._suppressAlreadyCalled is False
    result_of(d)


def test_canceller_is_called_with_the_deferred(impl: Impl) -> None:
    calls: list[object] = []
    d: Any = impl.Deferred(calls.append)
    d.cancel()
    assert calls == [d]
    assert fired_with(d) == ("Failure", CancelledError, "")


def test_with_canceller_fired_later_raises(impl: Impl) -> None:
    d: Any = impl.Deferred(lambda d: None)
    d.cancel()
    with pytest.raises(AlreadyCalledError):
        d.callback("late")
    result_of(d)


def test_canceller_that_calls_back(impl: Impl) -> None:
    d: Any = impl.Deferred(lambda d: d.callback("from canceller"))
    d.cancel()
    assert fired_with(d) == "from canceller"


def test_canceller_that_errbacks_with_its_own_error(impl: Impl) -> None:
    d: Any = impl.Deferred(lambda d: d.errback(KeyError("mine")))
    d.cancel()
    assert fired_with(d) == ("Failure", KeyError, "'mine'")


def test_canceller_that_raises(impl: Impl) -> None:
    def canceller(d: object) -> None:
        raise RuntimeError("canceller broke")

    d: Any = impl.Deferred(canceller)
    with pytest.raises(RuntimeError, match="canceller broke"):
        d.cancel()
    assert d.called is False


def test_falsy_canceller_counts_as_no_canceller(impl: Impl, twisted: Impl) -> None:
    class FalsyCanceller:
        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, d: object) -> None:
            self.calls += 1

        def __bool__(self) -> bool:
            return False

    def scenario(ns: Impl) -> list[object]:
        canceller = FalsyCanceller()
        d: Any = ns.Deferred(canceller)
        d.cancel()
        return [canceller.calls, outcome(d.callback, "late"), fired_with(d)]

    assert scenario(impl) == scenario(twisted)
    assert scenario(twisted) == [0, ("ok", None), ("Failure", CancelledError, "")]


def test_cancel_after_firing_does_nothing(impl: Impl) -> None:
    calls: list[object] = []
    d: Any = impl.Deferred(calls.append)
    d.callback("done")
    d.cancel()
    assert calls == []
    assert fired_with(d) == "done"


def test_cancel_twice(impl: Impl) -> None:
    calls: list[object] = []
    d: Any = impl.Deferred(calls.append)
    d.cancel()
    d.cancel()
    assert calls == [d]
    assert fired_with(d) == ("Failure", CancelledError, "")


def test_cancel_runs_the_errbacks(impl: Impl) -> None:
    d: Any = impl.Deferred()
    seen: list[object] = []
    d.addCallbacks(lambda r: seen.append("cb"), lambda f: seen.append(f.type))
    d.cancel()
    assert seen == [CancelledError]


def test_cancel_forwards_to_the_deferred_being_waited_on(impl: Impl) -> None:
    inner_cancelled: list[object] = []
    inner: Any = impl.Deferred(inner_cancelled.append)
    outer: Any = impl.Deferred(lambda d: pytest.fail("outer canceller called"))
    outer.addCallback(lambda r: inner)
    outer.callback(None)
    outer.cancel()
    assert inner_cancelled == [inner]
    assert fired_with(outer) == ("Failure", CancelledError, "")
    assert outer._chainedTo is None


def test_cancel_forwards_down_several_levels(impl: Impl) -> None:
    a: Any = impl.Deferred()
    b: Any = impl.Deferred()
    c: Any = impl.Deferred()
    a.addCallback(lambda r: b)
    b.addCallback(lambda r: c)
    a.callback(None)
    b.callback(None)
    a.cancel()
    assert c.called
    assert fired_with(a) == ("Failure", CancelledError, "")


def test_cancel_of_a_deferred_waiting_on_a_canceller_that_succeeds(impl: Impl) -> None:
    inner: Any = impl.Deferred(lambda d: d.callback("inner stopped"))
    outer: Any = impl.Deferred()
    outer.addCallback(lambda r: inner)
    outer.addCallback(lambda r: r.upper())
    outer.callback(None)
    outer.cancel()
    assert fired_with(outer) == "INNER STOPPED"


def test_cancel_inside_the_canceller(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> list[object]:
        calls: list[int] = []

        def canceller(d: Any) -> None:
            calls.append(len(calls))
            if len(calls) < 3:
                d.cancel()

        d: Any = ns.Deferred(canceller)
        return [outcome(d.cancel), calls, fired_with(d)]

    assert scenario(impl) == scenario(twisted)


# -- cancelling the helpers -------------------------------------------------------------


def test_DeferredList_cancel_cancels_every_deferred(impl: Impl) -> None:
    ds = [impl.Deferred() for _ in range(3)]
    ds[1].callback("done")
    dl: Any = impl.DeferredList(ds, consumeErrors=True)
    dl.cancel()
    assert [d.called for d in ds] == [True, True, True]
    result = result_of(dl)
    assert [(ok, describe(r)) for ok, r in result] == [
        (False, ("Failure", CancelledError, "")),
        (True, "done"),
        (False, ("Failure", CancelledError, "")),
    ]


def test_DeferredList_cancel_after_firing_does_nothing(impl: Impl) -> None:
    ds = [impl.Deferred(), impl.Deferred()]
    dl: Any = impl.DeferredList(ds, fireOnOneCallback=True)
    ds[0].callback("first")
    dl.cancel()
    assert ds[1].called is False
    assert fired_with(dl) == ("first", 0)


def test_DeferredList_cancel_logs_a_raising_canceller(impl: Impl) -> None:
    def broken(d: object) -> None:
        raise ZeroDivisionError("broken canceller")

    ds = [impl.Deferred(broken), impl.Deferred()]
    dl: Any = impl.DeferredList(ds, consumeErrors=True)
    with captured_log() as events:
        dl.cancel()
    assert [(e["log_format"], e["log_failure"].type) for e in events] == [
        ("Exception raised from user supplied canceller", ZeroDivisionError)
    ]
    assert ds[1].called is True
    assert ds[0].called is False


def test_gatherResults_cancel(impl: Impl) -> None:
    ds = [impl.Deferred(), impl.Deferred()]
    g: Any = impl.gatherResults(ds, consumeErrors=True)
    g.cancel()
    failure = result_of(g)
    assert failure.type is impl.FirstError
    assert failure.value.index == 0
    assert failure.value.subFailure.type is CancelledError
    assert all(d.called for d in ds)


def test_race_cancel_cancels_all(impl: Impl) -> None:
    ds = [impl.Deferred(), impl.Deferred()]
    r: Any = impl.race(ds)
    r.cancel()
    assert [d.called for d in ds] == [True, True]
    failure = result_of(r)
    assert failure.type is impl.FailureGroup
    assert [f.type for f in failure.value.failures] == [CancelledError, CancelledError]


def test_inlineCallbacks_cancel_forwards_to_the_awaited_deferred(impl: Impl) -> None:
    awaited: Any = impl.Deferred()
    seen: list[object] = []

    @impl.inlineCallbacks
    def gen() -> Any:
        try:
            yield awaited
        except CancelledError:
            seen.append("cancelled inside")
            raise

    d: Any = gen()
    d.cancel()
    assert awaited.called
    assert seen == ["cancelled inside"]
    assert fired_with(d) == ("Failure", CancelledError, "")


def test_inlineCallbacks_cancel_can_be_recovered_from(impl: Impl) -> None:
    awaited: Any = impl.Deferred()

    @impl.inlineCallbacks
    def gen() -> Any:
        try:
            yield awaited
        except CancelledError:
            return "recovered"
        return "not cancelled"

    d: Any = gen()
    d.cancel()
    assert fired_with(d) == "recovered"


def test_inlineCallbacks_cancel_when_awaited_canceller_succeeds(impl: Impl) -> None:
    awaited: Any = impl.Deferred(lambda d: d.callback("soft"))

    @impl.inlineCallbacks
    def gen() -> Any:
        value = yield awaited
        return ("carried on", value)

    d: Any = gen()
    d.cancel()
    assert fired_with(d) == ("carried on", "soft")


def test_coroutine_cancel(impl: Impl) -> None:
    awaited: Any = impl.Deferred()

    async def coro() -> str:
        try:
            await awaited
        except CancelledError:
            return "caught"
        return "no"

    d: Any = impl.Deferred.fromCoroutine(coro())
    d.cancel()
    assert fired_with(d) == "caught"


def test_DeferredLock_cancel_waiting_acquire(impl: Impl) -> None:
    lock = impl.DeferredLock()
    first: Any = lock.acquire()
    assert fired_with(first) is lock
    waiting: Any = lock.acquire()
    assert lock.waiting == [waiting]
    waiting.cancel()
    assert lock.waiting == []
    assert fired_with(waiting) == ("Failure", CancelledError, "")
    lock.release()
    assert lock.locked is False


def test_DeferredSemaphore_cancel_waiting_acquire(impl: Impl) -> None:
    sem = impl.DeferredSemaphore(1)
    sem.acquire()
    waiting: Any = sem.acquire()
    waiting.cancel()
    assert sem.waiting == []
    assert fired_with(waiting) == ("Failure", CancelledError, "")
    sem.release()
    assert sem.tokens == 1


def test_DeferredQueue_cancel_waiting_get(impl: Impl) -> None:
    queue = impl.DeferredQueue()
    get: Any = queue.get()
    assert queue.waiting == [get]
    get.cancel()
    assert queue.waiting == []
    assert fired_with(get) == ("Failure", CancelledError, "")
    queue.put("x")
    assert queue.pending == ["x"]


def test_cancel_forwarded_to_a_waited_on_deferred_calls_its_own_cancel(impl: Impl) -> None:
    calls: list[str] = []

    class Mine(impl.Deferred):  # type: ignore[misc,name-defined]
        def cancel(self) -> None:
            calls.append("subclass")
            super().cancel()

    inner = Mine()
    outer: Any = impl.Deferred()
    outer.addCallback(lambda _: inner)
    outer.callback(1)
    outer.cancel()
    assert calls == ["subclass"]
    outer.addErrback(lambda f: f.trap(CancelledError))

    inner2: Any = impl.Deferred()
    inner2.cancel = lambda: calls.append("instance")
    outer2: Any = impl.Deferred()
    outer2.addCallback(lambda _: inner2)
    outer2.callback(1)
    outer2.cancel()
    assert calls == ["subclass", "instance"]
    inner2.callback(None)
