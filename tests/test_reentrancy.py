"""
Re-entrancy ("evil") tests: callbacks that act on the Deferred running them, or on
Deferreds chained to it, while its callback chain runs.  Each scenario is run on
Twisted's own Deferred too, and the observations must be the same.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import AlreadyCalledError, CancelledError
from twisted.python.failure import Failure

from tests.impls import Impl, describe, fired_with, no_result, outcome

Scenario = Callable[[Impl], object]


def same_as_twisted(scenario: Scenario, impl: Impl, twisted: Impl) -> object:
    """
    Run ``scenario`` on ``impl`` and on Twisted; they must observe the same things.
    Returns Twisted's observations, for further checks.
    """
    expected = scenario(twisted)
    assert scenario(impl) == expected
    return expected


def recorder(log: list[object], name: str, returns: Any = "same") -> Any:
    def record(result: object) -> object:
        log.append((name, describe(result)))
        return result if returns == "same" else returns

    return record


def test_callback_adding_callbacks_to_its_own_deferred(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.Deferred()

        def add_more(result: object) -> object:
            log.append(("first", result))
            d.addCallback(recorder(log, "added 1"))
            d.addCallback(recorder(log, "added 2", "changed"))
            log.append("after adding")
            return "from first"

        d.addCallback(add_more)
        d.addCallback(recorder(log, "second"))
        d.callback("start")
        log.append(fired_with(d))
        return log

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == [
        ("first", "start"),
        "after adding",
        ("second", "from first"),
        ("added 1", "from first"),
        ("added 2", "from first"),
        "changed",
    ]


def test_callback_firing_its_own_deferred_again(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        d: Any = ns.Deferred()
        d.addCallback(lambda r: d.callback("again"))
        d.callback("once")
        return fired_with(d)

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == ("Failure", AlreadyCalledError, "")


def test_errback_firing_its_own_deferred_again(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        d: Any = ns.Deferred()
        d.addErrback(lambda f: d.errback(f))
        d.errback(ValueError())
        return fired_with(d)

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == ("Failure", AlreadyCalledError, "")


def test_callback_cancelling_its_own_deferred(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.Deferred(lambda d: log.append("canceller"))
        d.addCallback(lambda r: (d.cancel(), r)[1])
        d.addBoth(recorder(log, "after"))
        d.callback("x")
        log.append(fired_with(d))
        return log

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == [("after", "x"), "x"]


def test_callback_cancelling_its_own_deferred_whose_result_is_a_deferred(
    impl: Impl, twisted: Impl
) -> None:
    def scenario(ns: Impl) -> object:
        other: Any = ns.Deferred()
        d: Any = ns.Deferred()
        d.addCallback(lambda r: (d.cancel(), "replaced")[1])
        d.callback(other)
        return [fired_with(d), fired_with(other)]

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == ["replaced", ("Failure", CancelledError, "")]


def test_callback_pausing_its_own_deferred(impl: Impl, twisted: Impl) -> None:
    # Twisted checks `paused` only before it starts on a Deferred's callbacks: a
    # pause() from inside a callback does not stop the ones already queued.
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.Deferred()
        d.addCallback(lambda r: (d.pause(), r + 1)[1])
        d.addCallback(recorder(log, "queued", 10))
        d.callback(1)
        log.append(("paused", d.paused))
        d.addCallback(recorder(log, "added while paused"))
        log.append("unpause")
        d.unpause()
        log.append(fired_with(d))
        return log

    same_as_twisted(scenario, impl, twisted)


def test_callback_pausing_and_unpausing_its_own_deferred(
    impl: Impl, twisted: Impl
) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.Deferred()

        def toggle(result: object) -> object:
            d.pause()
            d.addCallback(recorder(log, "added while paused"))
            d.unpause()
            log.append(("unpaused", d.paused))
            return result

        d.addCallback(toggle)
        d.addCallback(recorder(log, "next"))
        d.callback("v")
        log.append(fired_with(d))
        return log

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == [
        ("unpaused", 0),
        ("next", "v"),
        ("added while paused", "v"),
        "v",
    ]


def test_callback_unpausing_its_own_unpaused_deferred(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.Deferred()
        d.addCallback(lambda r: (d.unpause(), r)[1])
        d.addCallback(recorder(log, "queued"))
        d.callback("v")
        log.append(d.paused)
        d.addCallback(recorder(log, "added later"))
        log.append(d.paused)
        return log

    same_as_twisted(scenario, impl, twisted)


def test_callback_chaining_its_own_deferred_to_another(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.Deferred()
        target: Any = ns.Deferred()
        target.addBoth(recorder(log, "target"))
        d.addCallback(lambda r: (d.chainDeferred(target), r + "!")[1])
        d.addBoth(recorder(log, "after chain"))
        d.callback("v")
        log.append([fired_with(d), fired_with(target)])
        return log

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == [("after chain", "v!"), ("target", "v!"), [None, "v!"]]


def test_callback_chaining_another_into_its_own_deferred(
    impl: Impl, twisted: Impl
) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.Deferred()
        source: Any = ns.Deferred()
        d.addCallback(lambda r: (source.chainDeferred(d), r)[1])
        d.callback("v")
        log.append(d._chainedTo is source)
        source.callback("from source")
        log.append([fired_with(d), fired_with(source)])
        return log

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == [True, ["v", ("Failure", AlreadyCalledError, "")]]


def test_callback_returning_its_own_deferred_warns(impl: Impl, twisted: Impl) -> None:
    def returns_self(result: object) -> object:
        return holder[0]

    holder: list[Any] = []

    def scenario(ns: Impl) -> object:
        d: Any = ns.Deferred()
        holder[:] = [d]
        d.addCallback(returns_self)
        after: list[object] = []
        d.addCallback(after.append)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            d.callback("x")
        holder.clear()
        return [
            [(w.category, str(w.message), w.filename, w.lineno) for w in caught],
            d.paused,
            d._chainedTo is d,
            after,
        ]

    # The warning points at the callback (the same line as Twisted's, compared above).
    observed: Any = same_as_twisted(scenario, impl, twisted)
    [(category, message, filename, lineno)] = observed[0]
    assert (category, message, filename) == (
        DeprecationWarning,
        "Callback returned the Deferred it was attached to; this breaks the "
        "callback chain and will raise an exception in the future.",
        returns_self.__code__.co_filename,
    )
    assert lineno in (returns_self.__code__.co_firstlineno, returns_self.__code__.co_firstlineno + 1)
    # The Deferred now waits on itself, forever.
    assert observed[1:] == [1, True, []]


def test_callback_returning_its_own_deferred_when_warnings_are_errors(
    impl: Impl, twisted: Impl
) -> None:
    # The warning is raised inside the callback's try block: it becomes the result.
    def scenario(ns: Impl) -> object:
        d: Any = ns.Deferred()
        d.addCallback(lambda r: d)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            d.callback("x")
        return [d.paused, fired_with(d)]

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed[0] == 0
    assert observed[1][0:2] == ("Failure", DeprecationWarning)


def test_callback_reinitialising_its_own_deferred(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.Deferred()

        def reinit(result: object) -> object:
            ns.Deferred.__init__(d)
            return "after init"

        d.addCallback(reinit)
        d.addCallback(recorder(log, "dropped by __init__"))
        d.callback("v")
        log.append((d.called, d.paused))
        log.append(fired_with(d))
        return log

    same_as_twisted(scenario, impl, twisted)


def test_callback_of_inner_adding_callbacks_to_waiting_outer(
    impl: Impl, twisted: Impl
) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        outer: Any = ns.Deferred()
        inner: Any = ns.Deferred()
        outer.addCallback(lambda r: inner)
        outer.callback(None)

        def poke(result: object) -> object:
            outer.addCallback(recorder(log, "added to outer"))
            log.append(("outer paused", outer.paused))
            return result

        inner.addCallback(poke)
        inner.callback("inner")
        log.append([fired_with(outer), fired_with(inner)])
        return log

    same_as_twisted(scenario, impl, twisted)


def test_outer_callback_adding_callbacks_to_the_inner_it_came_from(
    impl: Impl, twisted: Impl
) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        outer: Any = ns.Deferred()
        inner: Any = ns.Deferred()
        outer.addCallback(lambda r: inner)

        def poke(result: object) -> object:
            inner.addBoth(recorder(log, "added to inner"))
            log.append(("inner has", describe(inner.result)))
            return result

        outer.addCallback(poke)
        outer.addCallback(recorder(log, "outer after"))
        outer.callback(None)
        inner.addCallback(recorder(log, "inner before continue"))
        inner.callback("inner")
        log.append([fired_with(outer), fired_with(inner)])
        return log

    same_as_twisted(scenario, impl, twisted)


def test_inner_callback_cancelling_the_waiting_outer(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        outer: Any = ns.Deferred()
        inner: Any = ns.Deferred()
        outer.addCallback(lambda r: inner)
        outer.callback(None)
        inner.addCallback(lambda r: (outer.cancel(), r)[1])
        inner.addBoth(recorder(log, "inner after"))
        inner.callback("inner")
        log.append([fired_with(outer), fired_with(inner)])
        return log

    same_as_twisted(scenario, impl, twisted)


def test_inner_callback_pausing_the_waiting_outer(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        outer: Any = ns.Deferred()
        inner: Any = ns.Deferred()
        outer.addCallback(lambda r: inner)
        outer.addBoth(recorder(log, "outer after"))
        outer.callback(None)
        inner.addCallback(lambda r: (outer.pause(), r)[1])
        inner.callback("inner")
        log.append(("paused", outer.paused))
        outer.unpause()
        log.append([fired_with(outer), fired_with(inner)])
        return log

    same_as_twisted(scenario, impl, twisted)


def test_inner_callback_firing_the_waiting_outer(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        outer: Any = ns.Deferred()
        inner: Any = ns.Deferred()
        outer.addCallback(lambda r: inner)
        outer.callback(None)
        inner.addCallback(lambda r: outer.callback("again"))
        inner.callback("inner")
        return [fired_with(outer), fired_with(inner)]

    # The outer Deferred's continuation was queued first: it gets the result, then
    # the new callback fails to fire it again.
    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == ["inner", ("Failure", AlreadyCalledError, "")]


def test_callback_firing_another_deferred_that_waits_on_this_one(
    impl: Impl, twisted: Impl
) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        a: Any = ns.Deferred()
        b: Any = ns.Deferred()
        b.addCallback(lambda r: a)
        b.addBoth(recorder(log, "b after"))
        a.addCallback(lambda r: (b.callback("b fired by a"), r)[1])
        a.addBoth(recorder(log, "a after"))
        a.callback("a")
        log.append([fired_with(a), fired_with(b)])
        return log

    same_as_twisted(scenario, impl, twisted)


def test_callback_dropping_the_last_reference_to_its_deferred(
    impl: Impl, twisted: Impl
) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        holder: list[Any] = [ns.Deferred()]
        holder[0].addCallback(lambda r: (holder.clear(), gc.collect(), r)[2])
        holder[0].addCallback(recorder(log, "still running"))
        holder[0].callback("v")
        log.append(holder)
        return log

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == [("still running", "v"), []]


def test_callback_setting_attributes_directly(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.Deferred()

        def meddle(result: object) -> object:
            d.paused = 1
            d.result = "overwritten"  # replaced by our return value anyway
            return "returned"

        d.addCallback(meddle)
        d.addCallback(recorder(log, "next"))
        d.callback("v")
        log.append((d.paused, d.called))
        d.addCallback(recorder(log, "added while paused"))
        d.paused = 0
        d.addCallback(recorder(log, "added after"))
        log.append(fired_with(d))
        return log

    same_as_twisted(scenario, impl, twisted)


# -- garbage collection during callbacks ------------------------------------------------


class CollectsOnDel:
    """An object whose finaliser runs a full garbage collection (and records it)."""

    def __init__(self, log: list[object], name: str) -> None:
        self.log = log
        self.name = name
        self.cycle = self  # so that gc has something to do

    def __del__(self) -> None:
        self.log.append(("del", self.name))
        gc.collect()


def test_del_running_gc_collect_while_callbacks_run(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.Deferred()
        for i in range(3):
            garbage = CollectsOnDel(log, f"arg{i}")
            garbage.cycle = None
            d.addCallback(lambda r, g: r + 1, garbage)
            del garbage
        d.addCallback(lambda r: (gc.collect(), r)[1])
        d.callback(0)
        result = fired_with(d)
        gc.collect()
        return [result, sorted(x for x in log if isinstance(x, tuple))]

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == [3, [("del", f"arg{i}") for i in range(3)]]


def test_del_running_gc_collect_when_a_chain_is_dropped(
    impl: Impl, twisted: Impl
) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        outer: Any = ns.Deferred()
        inner: Any = ns.Deferred(lambda d, g=CollectsOnDel(log, "canceller"): None)
        outer.addCallback(lambda r, g=CollectsOnDel(log, "outer cb"): inner)
        outer.callback(None)
        inner.addCallback(lambda r, g=CollectsOnDel(log, "inner cb"): r)
        del outer, inner
        gc.collect()
        return sorted(x for x in log if isinstance(x, tuple))

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == [("del", "canceller"), ("del", "inner cb"), ("del", "outer cb")]


def test_del_touching_the_deferred_while_its_callbacks_are_dropped(
    impl: Impl, twisted: Impl
) -> None:
    class AddsOnDel:
        def __init__(self, d: Any, log: list[object]) -> None:
            self.d = d
            self.log = log

        def __del__(self) -> None:
            self.log.append(("del, called:", self.d.called))
            # A pass-through: when exactly the finaliser runs (before or after the
            # next callback) is up to reference counting, not part of the contract.
            self.d.addCallback(lambda r: (self.log.append("late"), r)[1])
            gc.collect()

    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.Deferred()
        d.addCallback(lambda r, obj: "first", AddsOnDel(d, log))
        d.addCallback(lambda r: "second")
        d.callback(None)
        gc.collect()
        log.append(fired_with(d))
        return log

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == [("del, called:", True), "late", "second"]


def test_del_during_cancel_dropping_the_canceller(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.Deferred(lambda d, g=CollectsOnDel(log, "canceller"): None)
        d.cancel()
        gc.collect()
        return [fired_with(d), [x for x in log if isinstance(x, tuple)]]

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == [("Failure", CancelledError, ""), [("del", "canceller")]]


# -- hostile results --------------------------------------------------------------------


class Hostile:
    """A result that refuses comparison, hashing and truth-testing."""

    def __eq__(self, other: object) -> bool:
        raise AssertionError("__eq__ must not be called")

    def __ne__(self, other: object) -> bool:
        raise AssertionError("__ne__ must not be called")

    def __hash__(self) -> int:
        raise AssertionError("__hash__ must not be called")

    def __bool__(self) -> bool:
        raise AssertionError("__bool__ must not be called")

    def __repr__(self) -> str:
        return "<Hostile>"


def test_hostile_result_passes_through_callbacks(impl: Impl) -> None:
    hostile = Hostile()
    d: Any = impl.Deferred()
    d.addCallback(lambda r: r)
    d.addErrback(lambda f: "no")
    d.addBoth(lambda r: r)
    d.callback(hostile)
    assert d.result is hostile
    assert str(d).endswith("current result: <Hostile>>")


def test_hostile_result_through_chained_deferreds(impl: Impl) -> None:
    hostile = Hostile()
    outer: Any = impl.Deferred()
    inner: Any = impl.Deferred()
    target: Any = impl.Deferred()
    outer.addCallback(lambda r: inner)
    outer.chainDeferred(target)
    outer.callback(None)
    inner.callback(hostile)
    assert target.result is hostile


def test_hostile_result_in_helpers(impl: Impl) -> None:
    hostile = Hostile()
    dl: Any = impl.DeferredList([impl.succeed(hostile), impl.Deferred()])
    dl._deferredList[1].callback(hostile)
    assert [r for ok, r in dl.result] == [hostile, hostile]
    g: Any = impl.gatherResults([impl.succeed(hostile)])
    assert g.result[0] is hostile
    assert impl.maybeDeferred(lambda: hostile).result is hostile
    assert impl.race([impl.succeed(hostile)]).result[1] is hostile

    @impl.inlineCallbacks
    def gen() -> Any:
        value = yield impl.succeed(hostile)
        plain = yield hostile
        return (value, plain)

    value, plain = gen().result
    assert value is hostile and plain is hostile


def test_hostile_exception_in_a_failure(impl: Impl) -> None:
    class HostileError(Exception):
        def __eq__(self, other: object) -> bool:
            raise AssertionError("__eq__ must not be called")

        __hash__ = None  # type: ignore[assignment]

    d: Any = impl.Deferred()
    d.addCallback(lambda r: "no")
    d.errback(HostileError("h"))
    failure = fired_with(d)
    assert failure[0:2] == ("Failure", HostileError)


def test_raising_repr_in_str(impl: Impl, twisted: Impl) -> None:
    class BadRepr:
        def __repr__(self) -> str:
            raise ValueError("no repr")

    def scenario(ns: Impl) -> object:
        d: Any = ns.Deferred()
        d.callback(BadRepr())
        return [outcome(str, d), outcome(repr, d)]

    observed = same_as_twisted(scenario, impl, twisted)
    assert observed == [("raise", ValueError, "no repr")] * 2


def test_result_that_is_a_failure_class_not_instance(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.addCallback(lambda r: Failure)
    path: list[str] = []
    d.addCallbacks(lambda r: path.append("cb"), lambda f: path.append("eb"))
    d.callback(None)
    assert path == ["cb"]


@pytest.mark.parametrize("depth", [1, 50])
def test_nested_callback_calls_of_other_deferreds(
    impl: Impl, twisted: Impl, depth: int
) -> None:
    # Each callback fires the next Deferred from inside its own callback.
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        ds = [ns.Deferred() for _ in range(depth + 1)]
        for i in range(depth):
            ds[i].addCallback(
                lambda r, i=i: (ds[i + 1].callback(r + 1), log.append(i), r)[2]
            )
        ds[0].callback(0)
        return [log, [fired_with(d) for d in ds]]

    same_as_twisted(scenario, impl, twisted)


# --- A callback added to a Deferred that has fired runs inside ``addCallback`` --------
#
# The same acts as above, from a callback added to a Deferred that already has a plain
# result and nothing else to run: Twisted appends it and runs it at once (txdefer calls
# it directly, without queueing it).  Everything the callback sees and leaves behind
# must be as on Twisted.


def _state(d: Any) -> tuple[Any, ...]:
    return (d.called, d.paused, d._runningCallbacks, d._chainedTo is None, describe(d.result))


def test_callback_added_after_firing_sees_its_deferred_running(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.succeed("start")

        def look(result: object, *args: object) -> object:
            log.append(("inside", result, args, _state(d)))
            return "new"

        log.append(("returned d", d.addCallback(look, 1, 2) is d))
        log.append(("after", _state(d)))
        log.append(fired_with(d))
        return log

    assert same_as_twisted(scenario, impl, twisted) == [
        ("inside", "start", (1, 2), (True, 0, True, True, "start")),
        ("returned d", True),
        ("after", (True, 0, False, True, "new")),
        "new",
    ]


def test_callback_added_after_firing_adds_callbacks_that_run_after_it(
    impl: Impl, twisted: Impl
) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.succeed("start")

        def added_2(result: object, arg: object) -> object:
            log.append(("added 2", result, arg))
            return "end"

        def add_more(result: object) -> object:
            d.addCallback(recorder(log, "added 1"))
            d.addBoth(added_2, "arg")
            log.append(("after adding", _state(d)))
            return "from first"

        d.addCallback(add_more)
        log.append(fired_with(d))
        return log

    assert same_as_twisted(scenario, impl, twisted) == [
        ("after adding", (True, 0, True, True, "start")),
        ("added 1", "from first"),
        ("added 2", "from first", "arg"),
        "end",
    ]


def test_callback_added_after_firing_pausing_then_adding(impl: Impl, twisted: Impl) -> None:
    # Twisted's loop runs a callback added by the one running, paused or not.
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        d: Any = ns.succeed("start")

        def pause_and_add(result: object) -> object:
            d.pause()
            d.addCallback(recorder(log, "added while paused", "changed"))
            return "paused"

        d.addCallback(pause_and_add)
        log.append(("paused", _state(d)))
        d.addCallback(recorder(log, "added after"))
        log.append(("still paused", _state(d)))
        d.unpause()
        log.append(fired_with(d))
        return log

    same_as_twisted(scenario, impl, twisted)


def test_callback_added_after_firing_returning_deferreds(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        log: list[object] = []
        fired: Any = ns.succeed("inner")
        d: Any = ns.succeed("start")
        d.addCallback(lambda r: fired)
        log.append(("took a fired one's result", _state(d), describe(fired.result)))
        waiting: Any = ns.Deferred()
        d.addCallback(lambda r: waiting)
        log.append(("waits", d.paused, d._chainedTo is waiting, no_result(d)))
        waiting.callback("late")
        log.append(("went on", _state(d)))
        log.append(fired_with(d))
        return log

    assert same_as_twisted(scenario, impl, twisted) == [
        ("took a fired one's result", (True, 0, False, True, "inner"), None),
        ("waits", 1, True, True),
        ("went on", (True, 0, False, True, "late")),
        "late",
    ]


def test_callback_added_after_firing_raising(impl: Impl, twisted: Impl) -> None:
    def raising(result: object) -> object:
        raise ValueError(f"bad {result}")

    def scenario(ns: Impl) -> object:
        d: Any = ns.succeed("start")
        d.addCallback(raising)
        failure = d.result
        observed = [
            _state(d),
            failure.frames[-1][0],
            "raising" in failure.getTraceback(),
            d._debugInfo is not None and d._debugInfo.failResult is failure,
        ]
        observed.append(fired_with(d))
        return observed

    assert same_as_twisted(scenario, impl, twisted) == [
        (True, 0, False, True, ("Failure", ValueError, "bad start")),
        "raising",
        True,
        True,
        ("Failure", ValueError, "bad start"),
    ]


def test_callback_added_after_firing_firing_it_again(impl: Impl, twisted: Impl) -> None:
    def scenario(ns: Impl) -> object:
        d: Any = ns.succeed("start")
        seen: list[object] = []

        def fire_again(result: object) -> object:
            seen.append(outcome(d.callback, "again"))
            return "kept"

        d.addCallback(fire_again)
        return [seen, fired_with(d)]

    observed: Any = same_as_twisted(scenario, impl, twisted)
    assert observed[0][0][:2] == ("raise", AlreadyCalledError)
    assert observed[1] == "kept"


def test_callback_added_after_firing_returning_its_deferred_warns(
    impl: Impl, twisted: Impl
) -> None:
    def scenario(ns: Impl) -> object:
        d: Any = ns.succeed("start")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            d.addCallback(lambda r: d)
        return [[(w.category, str(w.message)) for w in caught], d.paused, d._chainedTo is d]

    observed: Any = same_as_twisted(scenario, impl, twisted)
    assert observed[0][0][0] is DeprecationWarning
    assert observed[1:] == [1, True]


@pytest.mark.parametrize("extra", [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), (1, 2, 3, 4, 5)])
@pytest.mark.parametrize("method", ["addCallback", "addBoth", "addErrback"])
def test_added_after_firing_with_extra_arguments(
    impl: Impl, twisted: Impl, method: str, extra: tuple[int, ...]
) -> None:
    def scenario(ns: Impl) -> object:
        d: Any = ns.succeed("start")
        getattr(d, method)(lambda r, *args: (r, args), *extra)
        return _state(d)

    expected = same_as_twisted(scenario, impl, twisted)
    if method == "addErrback":
        assert expected == (True, 0, False, True, "start")
    else:
        assert expected == (True, 0, False, True, ("start", extra))
