"""
Garbage collection: "Unhandled error in Deferred:" is logged (through Twisted's
logger) when a Deferred holding a failure is freed, by reference counting or by the
cycle collector; handled failures are not logged; reference cycles through a
Deferred's callbacks, canceller, result or attributes are collected.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from twisted.python.failure import Failure

from tests.impls import (
    Impl,
    captured_log,
    result_of,
    unhandled,
    unhandled_error_events,
)

# -- unhandled errors -------------------------------------------------------------------


def test_unhandled_failure_is_logged_when_freed(impl: Impl) -> None:
    failure = Failure(ValueError("boom"))
    with captured_log() as events:
        d: Any = impl.Deferred()
        d.errback(failure)
        assert events == []
        del d
    assert unhandled_error_events(events) == unhandled(ValueError, "boom")
    assert events[0]["log_format"] == "Unhandled error in Deferred:"
    assert events[0]["isError"] is True
    assert events[1]["log_failure"] is failure
    assert events[1]["debugInfo"] == ""


def test_unhandled_failure_from_a_raising_callback_is_logged(impl: Impl) -> None:
    with captured_log() as events:
        d: Any = impl.Deferred()
        d.addCallback(lambda r: {}["missing"])
        d.callback(None)
        del d
        gc.collect()  # Twisted's failure traceback refers to the running frame
    assert unhandled_error_events(events) == unhandled(KeyError, "'missing'")


def test_unhandled_failure_in_a_reference_cycle_is_logged_by_gc(impl: Impl) -> None:
    with captured_log() as events:
        d: Any = impl.Deferred()
        d.addErrback(lambda f: f)
        d.errback(RuntimeError("cyclic"))
        d.pause()
        d.addCallback(lambda r, me: me, d)  # a cycle through the callbacks
        ref = weakref.ref(d)
        del d
        assert ref() is not None
        assert events == []
        gc.collect()
        assert ref() is None
    assert unhandled_error_events(events) == unhandled(RuntimeError, "cyclic")


def test_unhandled_failure_in_a_self_referencing_deferred(impl: Impl) -> None:
    with captured_log() as events:
        d: Any = impl.Deferred()
        d.me = d
        d.errback(RuntimeError("self"))
        del d
        gc.collect()
    assert unhandled_error_events(events) == unhandled(RuntimeError, "self")


def test_failure_of_a_succeed_is_not_logged(impl: Impl) -> None:
    with captured_log() as events:
        d: Any = impl.succeed(Failure(ValueError()))
        del d
    assert events == []


def test_handled_failure_is_not_logged(impl: Impl) -> None:
    with captured_log() as events:
        d: Any = impl.Deferred()
        d.addErrback(lambda f: None)
        d.errback(ValueError())
        del d
        e: Any = impl.Deferred()
        e.errback(ValueError())
        e.addErrback(lambda f: "handled later")
        del e
    assert events == []


def test_failure_returned_by_the_last_errback_is_logged(impl: Impl) -> None:
    with captured_log() as events:
        d: Any = impl.Deferred()
        d.addErrback(lambda f: f)
        d.addErrback(lambda f: Failure(OSError("replaced")))
        d.errback(ValueError())
        del d
    assert unhandled_error_events(events) == unhandled(OSError, "replaced")


def test_failure_then_recovered_then_failed_again(impl: Impl) -> None:
    with captured_log() as events:
        d: Any = impl.Deferred()
        d.errback(ValueError("first"))
        d.addErrback(lambda f: "ok")
        d.addCallback(lambda r: 1 / 0)
        del d
        gc.collect()
    assert unhandled_error_events(events) == unhandled(
        ZeroDivisionError, "division by zero"
    )


def test_failure_awaited_by_a_coroutine_is_not_logged(impl: Impl) -> None:
    async def catch(d: Any) -> str:
        try:
            await d
        except ValueError:
            return "caught"
        return "no"

    with captured_log() as events:
        d: Any = impl.Deferred()
        d.errback(ValueError())
        outer: Any = impl.ensureDeferred(catch(d))
        assert result_of(outer) == "caught"
        del d, outer
    assert events == []


def test_failure_yielded_to_inlineCallbacks_is_not_logged(impl: Impl) -> None:
    @impl.inlineCallbacks
    def catch(d: Any) -> Any:
        try:
            yield d
        except ValueError:
            return "caught"

    with captured_log() as events:
        d: Any = impl.Deferred()
        outer: Any = catch(d)
        d.errback(ValueError())
        assert result_of(outer) == "caught"
        del d, outer
    assert events == []


def test_unhandled_failure_in_debug_mode_logs_the_stacks(impl: Impl) -> None:
    with captured_log() as events:
        impl.setDebugging(True)
        d: Any = impl.Deferred()
        d.errback(ValueError("debugged"))
        impl.setDebugging(False)
        del d
    assert [e["log_format"] for e in events] == [
        "Unhandled error in Deferred:",
        "(debug: {debugInfo})",
    ]
    info = events[1]["debugInfo"]
    assert info.startswith(" C: Deferred was created:\n C:")
    assert " I: First Invoker was:\n I:" in info
    assert "test_unhandled_failure_in_debug_mode_logs_the_stacks" in info


def test_DeferredList_consumeErrors(impl: Impl) -> None:
    with captured_log() as events:
        ds = [impl.Deferred(), impl.Deferred()]
        dl: Any = impl.DeferredList(ds, consumeErrors=True)
        ds[0].errback(ValueError("consumed"))
        ds[1].callback(1)
        result_of(dl)
        del ds, dl
    assert events == []


def test_DeferredList_without_consumeErrors_leaves_the_failure(impl: Impl) -> None:
    with captured_log() as events:
        ds = [impl.Deferred(), impl.Deferred()]
        dl: Any = impl.DeferredList(ds)
        ds[0].errback(ValueError("left"))
        ds[1].callback(1)
        result_of(dl)
        del ds, dl
    assert unhandled_error_events(events) == unhandled(ValueError, "left")


def test_gatherResults_consumeErrors(impl: Impl) -> None:
    with captured_log() as events:
        ds = [impl.Deferred(), impl.Deferred()]
        g: Any = impl.gatherResults(ds, consumeErrors=True)
        ds[0].errback(ValueError("consumed"))
        failure = result_of(g)
        assert failure.type is impl.FirstError
        del ds, g, failure
    assert events == []


def test_gatherResults_without_consumeErrors(impl: Impl) -> None:
    with captured_log() as events:
        ds = [impl.Deferred(), impl.Deferred()]
        g: Any = impl.gatherResults(ds)
        ds[0].errback(ValueError("not consumed"))
        result_of(g)
        del ds, g
        gc.collect()  # ds[1] and the list refer to each other
    assert unhandled_error_events(events) == unhandled(ValueError, "not consumed")


# -- reference cycles -------------------------------------------------------------------


def _collected(make: Any) -> bool:
    """
    ``make()`` builds a reference cycle and returns a weak reference into it: is it
    alive until, and only until, the cycle collector runs?
    """
    gc.disable()
    try:
        ref = make()
        assert ref() is not None, "not kept alive by a reference cycle"
    finally:
        gc.enable()
    gc.collect()
    return ref() is None


def test_cycle_through_callbacks_is_collected(impl: Impl) -> None:
    def make() -> Any:
        d: Any = impl.Deferred()
        d.addCallback(lambda r: d)
        return weakref.ref(d)

    assert _collected(make)


def test_cycle_through_callback_args_is_collected(impl: Impl) -> None:
    def make() -> Any:
        d: Any = impl.Deferred()
        d.addCallback(lambda r, other: other, d)
        d.addCallbacks(lambda r, **k: r, callbackKeywords={"me": d})
        return weakref.ref(d)

    assert _collected(make)


def test_cycle_through_canceller_is_collected(impl: Impl) -> None:
    def make() -> Any:
        d: Any = impl.Deferred(lambda x: d)
        return weakref.ref(d)

    assert _collected(make)


def test_cycle_through_result_is_collected(impl: Impl) -> None:
    def make() -> Any:
        d: Any = impl.Deferred()
        d.callback([d])
        return weakref.ref(d)

    assert _collected(make)


def test_cycle_through_instance_dict_is_collected(impl: Impl) -> None:
    def make() -> Any:
        d: Any = impl.Deferred()
        d.me = d
        return weakref.ref(d)

    assert _collected(make)


def test_waiting_pair_is_collected(impl: Impl) -> None:
    def make() -> Any:
        outer: Any = impl.Deferred()
        inner: Any = impl.Deferred()
        outer.addCallback(lambda r: inner)
        outer.callback(None)
        assert outer._chainedTo is inner
        return weakref.ref(outer)

    assert _collected(make)


def test_chainDeferred_pair_is_collected(impl: Impl) -> None:
    def make() -> Any:
        a: Any = impl.Deferred()
        b: Any = impl.Deferred()
        a.chainDeferred(b)
        b.addCallback(lambda r: a)
        return weakref.ref(a)

    assert _collected(make)


def test_unreferenced_deferred_is_freed_without_gc(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.addCallback(lambda r: r)
    d.callback(1)
    ref = weakref.ref(d)
    del d
    assert ref() is None


def test_callbacks_are_released_after_running(impl: Impl) -> None:
    class Marker:
        pass

    marker = Marker()
    ref = weakref.ref(marker)
    d: Any = impl.Deferred()
    d.addCallback(lambda r, m: None, marker)
    del marker
    assert ref() is not None
    d.callback(None)
    assert ref() is None


def test_canceller_is_released_after_firing(impl: Impl) -> None:
    class Canceller:
        def __call__(self, d: object) -> None:
            pass

    canceller = Canceller()
    ref = weakref.ref(canceller)
    d: Any = impl.Deferred(canceller)
    del canceller
    d.callback(None)
    assert ref() is None


def test_gc_tracks_deferreds(impl: Impl) -> None:
    d: Any = impl.Deferred()
    assert gc.is_tracked(d)


def _reachable(start: object, target: object, limit: int = 6) -> bool:
    """Is ``target`` reachable from ``start`` through gc.get_referents()?"""
    frontier = [start]
    seen = {id(start)}
    for _ in range(limit):
        following = []
        for obj in frontier:
            for ref in gc.get_referents(obj):
                if ref is target:
                    return True
                if id(ref) not in seen:
                    seen.add(id(ref))
                    following.append(ref)
        frontier = following
    return False


def test_gc_sees_callbacks_canceller_and_result(impl: Impl) -> None:
    def callback(r: object) -> None:
        pass

    def canceller(d: object) -> None:
        pass

    class Result:
        pass

    d: Any = impl.Deferred(canceller)
    d.addCallback(callback)
    assert _reachable(d, callback)
    assert _reachable(d, canceller)
    e: Any = impl.Deferred()
    result = Result()
    e.callback(result)
    assert _reachable(e, result)


class _Marker:
    pass


def _released_at_once(impl: Impl, step: str) -> bool:
    """
    Run one call to a method of a Deferred that lets go of a marker object, from
    plain Python code (no compiled frame below it), and tell whether the marker
    is gone as the call returns, before any other call is made.
    """
    marker = _Marker()
    ref = weakref.ref(marker)
    d: Any = impl.Deferred()
    if step == "addCallback replacing the result":
        d.callback(marker)
        del marker
        d.addCallback(lambda r: None)
    elif step == "addErrback replacing the failure":
        d.errback(Failure(ValueError(marker)))
        del marker
        d.addErrback(lambda f: None)
    elif step == "addBoth replacing the result":
        d.callback(marker)
        del marker
        d.addBoth(lambda r: None)
    elif step == "callback running a callback that held it":
        d.addCallback(lambda r, m: None, marker)
        del marker
        d.callback(None)
    elif step == "errback running an errback that held it":
        d.addErrback(lambda f, m: None, marker)
        del marker
        d.errback(Failure(ValueError("x")))
    elif step == "callback letting go of the canceller":
        d = impl.Deferred(lambda d, m=marker: None)
        del marker
        d.callback(None)
    elif step == "errback letting go of the canceller":
        d = impl.Deferred(lambda d, m=marker: None)
        del marker
        d.addErrback(lambda f: None)
        d.errback(Failure(ValueError("x")))
    return ref() is None


@pytest.mark.parametrize(
    "step",
    [
        "addCallback replacing the result",
        "addErrback replacing the failure",
        "addBoth replacing the result",
        "callback running a callback that held it",
        "errback running an errback that held it",
        "callback letting go of the canceller",
        "errback letting go of the canceller",
    ],
)
def test_what_a_method_lets_go_of_is_freed_before_it_returns(impl: Impl, step: str) -> None:
    assert _released_at_once(impl, step)
