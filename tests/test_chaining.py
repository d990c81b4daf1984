"""
Deferreds waiting on Deferreds: a callback returning a Deferred, ``chainDeferred``,
``pause``/``unpause``, ``addTimeout``.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import AlreadyCalledError, CancelledError, TimeoutError
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from tests.impls import (
    Impl,
    captured_log,
    describe,
    fired_with,
    no_result,
    outcome,
    result_of,
    unhandled,
    unhandled_error_events,
)

# -- a callback returning a Deferred ----------------------------------------------------


def test_returning_an_unfired_deferred_waits_for_it(impl: Impl) -> None:
    outer: Any = impl.Deferred()
    inner: Any = impl.Deferred()
    after: list[object] = []
    outer.addCallback(lambda r: inner)
    outer.addCallback(after.append)
    outer.callback("ignored")
    assert after == []
    assert outer.paused == 1
    assert outer.result is inner
    assert outer._chainedTo is inner
    inner.callback("inner result")
    assert after == ["inner result"]
    assert outer.paused == 0
    assert outer._chainedTo is None
    # The inner Deferred's result was handed over.
    assert inner.result is None


def test_returning_an_already_fired_deferred_takes_its_result(impl: Impl) -> None:
    outer: Any = impl.Deferred()
    inner: Any = impl.succeed("ready")
    outer.addCallback(lambda r: inner)
    outer.callback(None)
    assert outer.result == "ready"
    assert outer.paused == 0
    assert outer._chainedTo is None
    assert inner.result is None


def test_returning_a_failed_deferred_hands_over_the_failure(impl: Impl) -> None:
    with captured_log() as events:
        outer: Any = impl.Deferred()
        inner: Any = impl.Deferred()
        inner.errback(ValueError("inner"))
        outer.addCallback(lambda r: inner)
        outer.callback(None)
        assert fired_with(outer) == ("Failure", ValueError, "inner")
        assert inner.result is None
        del inner, outer
    # Handled once, by the outer Deferred's errback: nothing is unhandled.
    assert unhandled_error_events(events) == []


def test_returning_a_deferred_that_fails_later(impl: Impl) -> None:
    with captured_log() as events:
        outer: Any = impl.Deferred()
        inner: Any = impl.Deferred()
        outer.addCallback(lambda r: inner)
        outer.callback(None)
        inner.errback(KeyError("later"))
        assert fired_with(outer) == ("Failure", KeyError, "'later'")
        del inner, outer
    assert unhandled_error_events(events) == []


def test_unhandled_failure_passed_up_a_chain_is_logged_once(impl: Impl) -> None:
    with captured_log() as events:
        outer: Any = impl.Deferred()
        inner: Any = impl.Deferred()
        outer.addCallback(lambda r: inner)
        outer.callback(None)
        inner.errback(KeyError("once"))
        del inner, outer
    assert unhandled_error_events(events) == unhandled(KeyError, "'once'")


def test_returning_a_paused_fired_deferred_waits_for_unpause(impl: Impl) -> None:
    outer: Any = impl.Deferred()
    inner: Any = impl.Deferred()
    inner.callback("x")
    inner.pause()
    outer.addCallback(lambda r: inner)
    outer.callback(None)
    assert outer._chainedTo is inner
    assert no_result(outer)
    inner.unpause()
    assert fired_with(outer) == "x"


def test_errback_returning_a_deferred_also_chains(impl: Impl) -> None:
    outer: Any = impl.Deferred()
    inner: Any = impl.Deferred()
    outer.addErrback(lambda f: inner)
    outer.errback(ValueError())
    assert outer._chainedTo is inner
    inner.callback("recovered")
    assert fired_with(outer) == "recovered"


def test_nested_chains_three_levels(impl: Impl) -> None:
    a: Any = impl.Deferred()
    b: Any = impl.Deferred()
    c: Any = impl.Deferred()
    order: list[str] = []
    a.addCallback(lambda r: b)
    a.addCallback(lambda r: (order.append(f"a:{r}"), r)[1])
    b.addCallback(lambda r: c)
    b.addCallback(lambda r: (order.append(f"b:{r}"), r + "!")[1])
    a.callback(None)
    b.callback(None)
    assert a._chainedTo is b
    assert b._chainedTo is c
    c.callback("c")
    assert order == ["b:c", "a:c!"]
    assert a.result == "c!"
    assert (a._chainedTo, b._chainedTo) == (None, None)


def test_result_flows_through_a_deferred_returned_twice(impl: Impl) -> None:
    # Two Deferreds wait on the same one: the first to be attached gets the result,
    # the second gets None (the result is handed over, then it is None).
    shared: Any = impl.Deferred()
    first: Any = impl.Deferred()
    second: Any = impl.Deferred()
    first.addCallback(lambda r: shared)
    second.addCallback(lambda r: shared)
    first.callback(None)
    second.callback(None)
    shared.callback("value")
    assert (fired_with(first), fired_with(second)) == ("value", None)


def test_chaining_matches_twisted(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> list[object]:
        log: list[object] = []
        ds = [ns.Deferred() for _ in range(4)]
        ds[0].addCallback(lambda r: ds[1])
        ds[0].addBoth(lambda r: (log.append(("0", describe(r))), r)[1])
        ds[1].addCallback(lambda r: ds[2])
        ds[1].addErrback(lambda f: (log.append(("1", describe(f))), "fixed")[1])
        ds[2].addCallback(lambda r: 1 / 0)
        ds[3].addCallback(lambda r: ds[0])
        ds[3].callback("start3")
        ds[0].callback("start0")
        ds[1].callback("start1")
        log.append([d.paused for d in ds])
        ds[2].callback("start2")
        log.append([d.paused for d in ds])
        log.append([fired_with(d) for d in ds])
        return log

    assert scenario(impl) == scenario(twisted)


# -- callback(aDeferred) ----------------------------------------------------------------


def test_callback_with_a_deferred_as_result(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> list[object]:
        observed: list[object] = []
        d: Any = ns.Deferred()
        other: Any = ns.Deferred()
        observed.append(outcome(d.callback, other))
        observed.append(d.result is other)
        observed.append(d.paused)
        # The first callback is called with the Deferred itself.
        d.addCallback(lambda r: ("got it", r is other))
        observed.append(d.result)
        return observed

    assert scenario(impl) == scenario(twisted)
    assert scenario(twisted) == [("ok", None), True, 0, ("got it", True)]


def test_callback_with_a_deferred_then_a_pass_through_chains_on_it(
    impl: Impl, twisted: Impl
) -> None:
    def scenario(ns: Impl) -> list[object]:
        observed: list[object] = []
        d: Any = ns.Deferred()
        other: Any = ns.Deferred()
        d.callback(other)
        d.addErrback(lambda f: "not called")
        observed.append((d.paused, d._chainedTo is other))
        other.callback("later")
        observed.append(fired_with(d))
        return observed

    assert scenario(impl) == scenario(twisted)
    assert scenario(twisted) == [(1, True), "later"]


# -- chainDeferred ----------------------------------------------------------------------


def test_chainDeferred_fires_the_other_with_the_result(impl: Impl) -> None:
    d1: Any = impl.Deferred()
    d2: Any = impl.Deferred()
    d1.addCallback(lambda r: r * 2)
    assert d1.chainDeferred(d2) is d1
    assert d2._chainedTo is d1
    d1.callback(21)
    assert d2.result == 42
    assert d1.result is None
    assert d2._chainedTo is None


def test_chainDeferred_passes_failures(impl: Impl) -> None:
    d1: Any = impl.Deferred()
    d2: Any = impl.Deferred()
    d1.chainDeferred(d2)
    d1.errback(ValueError("chained"))
    assert fired_with(d2) == ("Failure", ValueError, "chained")
    assert d1.result is None


def test_chainDeferred_after_firing(impl: Impl) -> None:
    d1: Any = impl.succeed("early")
    d2: Any = impl.Deferred()
    d1.chainDeferred(d2)
    assert d2.result == "early"


def test_chainDeferred_to_an_already_fired_deferred(impl: Impl) -> None:
    d1: Any = impl.Deferred()
    d2: Any = impl.succeed("taken")
    d1.chainDeferred(d2)
    d1.callback("new")
    assert fired_with(d1) == ("Failure", AlreadyCalledError, "")
    assert d2.result == "taken"


def test_chainDeferred_does_not_fire_backwards(impl: Impl) -> None:
    d1: Any = impl.Deferred()
    d2: Any = impl.Deferred()
    d1.chainDeferred(d2)
    d2.callback("d2")
    assert d1.called is False
    d1.callback("d1")
    assert fired_with(d1) == ("Failure", AlreadyCalledError, "")


def test_chaining_deferred_keeps_its_result_while_the_chained_one_runs(
    impl: Impl,
) -> None:
    # chainDeferred is addCallbacks(d2.callback, d2.errback): while d2's callbacks
    # run (inside d2.callback), d1's result is still the value it is passing on.
    d1: Any = impl.Deferred()
    d2: Any = impl.Deferred()
    d1.chainDeferred(d2)
    seen: list[object] = []
    d2.addCallback(lambda r: seen.append((r, d1.result)))
    d1.callback("v")
    assert seen == [("v", "v")]
    assert d1.result is None


def test_chained_deferred_returning_the_deferred_that_fires_it(impl: Impl) -> None:
    # d2's callback returns d1, which is still in the middle of firing d2 and holds
    # the result: d2 takes that result at once, as any fired Deferred's.
    d1: Any = impl.Deferred()
    d2: Any = impl.Deferred()
    d1.chainDeferred(d2)
    d2.addCallback(lambda r: d1)
    d1.callback("v")
    assert (d2.paused, d2._chainedTo) == (0, None)
    assert d2.result == "v"
    assert d1.result is None


def test_chainDeferred_runs_callbacks_in_twisted_order(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> list[object]:
        log: list[object] = []
        a: Any = ns.Deferred()
        b: Any = ns.Deferred()
        c: Any = ns.Deferred()
        a.addCallback(lambda r: (log.append(("a1", r)), r)[1])
        a.chainDeferred(b)
        a.addBoth(lambda r: (log.append(("a2", describe(r))), r)[1])
        b.addCallback(lambda r: (log.append(("b1", r)), r + 1)[1])
        b.chainDeferred(c)
        b.addBoth(lambda r: (log.append(("b2", describe(r))), r)[1])
        c.addCallback(lambda r: (log.append(("c1", r)), r)[1])
        a.callback(1)
        log.append([fired_with(x) for x in (a, b, c)])
        return log

    assert scenario(impl) == scenario(twisted)


def test_chainDeferred_into_a_paused_deferred(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> list[object]:
        log: list[object] = []
        a: Any = ns.Deferred()
        b: Any = ns.Deferred()
        b.pause()
        a.chainDeferred(b)
        a.addBoth(lambda r: (log.append(("a", describe(r))), r)[1])
        b.addBoth(lambda r: (log.append(("b", describe(r))), r)[1])
        a.callback("x")
        log.append("unpause")
        b.unpause()
        log.append([fired_with(x) for x in (a, b)])
        return log

    assert scenario(impl) == scenario(twisted)


# -- pause / unpause --------------------------------------------------------------------


def test_pause_before_firing_holds_callbacks(impl: Impl) -> None:
    d: Any = impl.Deferred()
    seen: list[object] = []
    d.addCallback(seen.append)
    d.pause()
    d.callback(1)
    assert seen == []
    d.addCallback(lambda r: seen.append("second"))
    assert seen == []
    d.unpause()
    assert seen == [1, "second"]


def test_pause_is_counted(impl: Impl) -> None:
    d: Any = impl.Deferred()
    seen: list[object] = []
    d.pause()
    d.pause()
    d.callback(1)
    d.addCallback(seen.append)
    d.unpause()
    assert seen == []
    assert d.paused == 1
    d.unpause()
    assert seen == [1]


def test_pause_after_firing_holds_new_callbacks(impl: Impl) -> None:
    d: Any = impl.succeed(1)
    d.pause()
    seen: list[object] = []
    d.addCallback(seen.append)
    assert seen == []
    d.unpause()
    assert seen == [1]


def test_unpause_before_firing_runs_nothing(impl: Impl) -> None:
    d: Any = impl.Deferred()
    seen: list[object] = []
    d.addCallback(seen.append)
    d.pause()
    d.unpause()
    assert seen == []
    d.callback(2)
    assert seen == [2]


def test_unpause_without_pause(impl: Impl, twisted: Impl) -> None:
    # paused goes to -1, which counts as paused: the callbacks never run...
    def scenario(ns: Impl) -> list[object]:
        seen: list[object] = []
        d: Any = ns.Deferred()
        d.addCallback(seen.append)
        observed: list[object] = [outcome(d.unpause), d.paused]
        d.callback(1)
        observed += [list(seen), d.called, d.paused]
        # ...until a pause() brings the count back to zero, which does not run them
        # either (pause never runs callbacks), but the next callback added does.
        d.pause()
        observed.append(list(seen))
        d.addCallback(lambda r: seen.append("added"))
        observed.append(list(seen))
        return observed

    assert scenario(impl) == scenario(twisted)
    assert scenario(twisted) == [("ok", None), -1, [], True, -1, [], [1, "added"]]


def test_paused_deferred_is_not_ready_to_be_taken(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.callback("v")
    d.pause()
    assert no_result(d)
    d.unpause()
    assert fired_with(d) == "v"


# -- addTimeout -------------------------------------------------------------------------


def test_addTimeout_returns_self_and_passes_results_through(impl: Impl) -> None:
    clock = Clock()
    d: Any = impl.Deferred()
    assert d.addTimeout(10, clock) is d
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(5)
    d.callback("in time")
    assert fired_with(d) == "in time"
    assert clock.getDelayedCalls() == []


def test_addTimeout_times_out_with_TimeoutError(impl: Impl) -> None:
    clock = Clock()
    d: Any = impl.Deferred()
    d.addTimeout(10, clock)
    clock.advance(9.9)
    assert not d.called
    clock.advance(0.1)
    failure = result_of(d)
    assert isinstance(failure, Failure)
    assert failure.type is TimeoutError
    assert failure.value.args == (10, "Deferred")
    assert clock.getDelayedCalls() == []


def test_addTimeout_late_callback_is_ignored(impl: Impl) -> None:
    clock = Clock()
    d: Any = impl.Deferred()
    d.addTimeout(1, clock)
    clock.advance(1)
    d.callback("too late")  # silently ignored: no canceller was given
    assert fired_with(d) == ("Failure", TimeoutError, "(1, 'Deferred')")


def test_addTimeout_with_canceller_that_fires(impl: Impl) -> None:
    clock = Clock()
    d: Any = impl.Deferred(lambda d: d.callback("cancelled nicely"))
    d.addTimeout(1, clock)
    clock.advance(1)
    assert fired_with(d) == "cancelled nicely"


def test_addTimeout_onTimeoutCancel(impl: Impl) -> None:
    clock = Clock()
    d: Any = impl.Deferred()
    seen: list[object] = []

    def on_timeout(result: object, timeout: float) -> object:
        seen.append((describe(result), timeout))
        return "converted"

    d.addTimeout(2.5, clock, onTimeoutCancel=on_timeout)
    clock.advance(3)
    assert seen == [(("Failure", CancelledError, ""), 2.5)]
    assert fired_with(d) == "converted"


def test_addTimeout_onTimeoutCancel_not_called_when_not_timed_out(impl: Impl) -> None:
    clock = Clock()
    d: Any = impl.Deferred()
    seen: list[object] = []
    d.addTimeout(5, clock, onTimeoutCancel=lambda r, t: seen.append(r))
    d.cancel()
    assert seen == []
    assert fired_with(d) == ("Failure", CancelledError, "")
    assert clock.getDelayedCalls() == []


def test_addTimeout_covers_only_earlier_callbacks(impl: Impl) -> None:
    clock = Clock()
    d: Any = impl.Deferred()
    order: list[str] = []
    d.addBoth(lambda r: (order.append("before"), r)[1])
    d.addTimeout(1, clock)
    d.addBoth(lambda r: (order.append("after:" + describe(r)[1].__name__), r)[1])
    clock.advance(1)
    assert order == ["before", "after:TimeoutError"]
    result_of(d)


def test_addTimeout_on_an_already_fired_deferred(impl: Impl) -> None:
    clock = Clock()
    d: Any = impl.succeed("done")
    d.addTimeout(1, clock)
    assert clock.getDelayedCalls() == []
    assert fired_with(d) == "done"


@pytest.mark.parametrize("timeout", [0, 0.5])
def test_addTimeout_short_timeouts(impl: Impl, timeout: float) -> None:
    clock = Clock()
    d: Any = impl.Deferred()
    d.addTimeout(timeout, clock)
    clock.advance(timeout)
    assert fired_with(d) == ("Failure", TimeoutError, f"({timeout}, 'Deferred')")


def test_result_class_whose_bases_change_is_recognised_afresh(impl: Impl) -> None:
    # txdefer remembers, per class version, whether a result's class is a Failure
    # or a Deferred; assigning __bases__ gives the class a new version.
    class NotFailure(BaseException):
        pass

    class Odd(NotFailure):
        pass

    failure = Failure(ValueError("boom"))
    odd: Any = Odd.__new__(Odd)
    odd.__dict__.update(failure.__dict__)

    def run() -> Any:
        d = impl.Deferred()
        d.addCallback(lambda _: odd)
        d.addErrback(lambda f: ("errback", f.type))
        d.callback(None)
        return result_of(d)

    for _ in range(3):
        assert run() is odd
        Odd.__bases__ = (Failure,)
        assert run() == ("errback", ValueError)
        assert run() == ("errback", ValueError)
        Odd.__bases__ = (NotFailure,)


def test_exception_class_with_its_own_metaclass_sees_the_lookups_Twisted_makes(
    impl: Impl,
) -> None:
    # txdefer gives a class on which nothing was looked up a version tag by a lookup
    # of its own, but only when the metaclass is exactly ``type``: a metaclass's
    # ``__getattribute__`` sees the same names as under Twisted.
    seen: list[str] = []

    class Recording(type):
        def __getattribute__(cls, name: str) -> Any:
            seen.append(name)
            return super().__getattribute__(name)

    class Odd(Exception, metaclass=Recording):
        pass

    def raiser(_: object) -> None:
        raise Odd("x")

    got: list[object] = []
    for _ in range(2):
        d = impl.Deferred()
        d.addCallback(raiser)
        d.addErrback(lambda f: got.append((f.type, f.check(Odd))))
        d.callback(None)
    assert got == [(Odd, Odd), (Odd, Odd)]
    # Twisted's Failure reads the class's name and MRO; check() reads the name.
    once = ["__module__", "__name__", "__mro__", "__module__", "__name__"]
    assert seen == once + once


def test_many_result_classes_in_turn_are_each_recognised(impl: Impl) -> None:
    # More classes than txdefer remembers at once, met in turn and again: each
    # result is still a Failure, a Deferred or a plain value as its class says.
    failures = [type(f"F{i}", (Failure,), {}) for i in range(40)]
    plains = [type(f"E{i}", (Exception,), {}) for i in range(40)]
    deferreds = [type(f"D{i}", (impl.Deferred,), {}) for i in range(40)]
    for _ in range(3):
        for fcls, ecls, dcls in zip(failures, plains, deferreds):
            failed = fcls(ValueError("boom"))
            plain = ecls("plain")
            inner = dcls()
            inner.callback("inner")
            for value, expected in [
                (failed, ("errback", ValueError)),
                (plain, ("callback", plain)),
                (inner, ("callback", "inner")),
            ]:
                d = impl.Deferred()
                d.addCallback(lambda _, v=value: v)
                d.addCallbacks(lambda r: ("callback", r), lambda f: ("errback", f.type))
                d.callback(None)
                assert result_of(d) == expected
