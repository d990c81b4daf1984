"""
Reusing the memory of freed Deferreds (``src/recycle.rs``): on CPython 3.10 to 3.12
with the GIL, a freed ``txdefer.Deferred`` that held nothing but a result is kept
(at most 16 at a time) and its memory reused for the next one.  Nothing of a
Deferred's past life may show in the next: not its result, attributes, weak
references or collector state; and freeing one must release what it held at once,
exactly as before.

Every behaviour test runs on all three implementations (Twisted's is the
reference); on a build that reuses memory, it also checks that reuse happened, so
that it cannot pass without exercising the path it is about.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import sysconfig
import weakref
from collections.abc import Callable
from typing import Any

import pytest

import txdefer
import txdefer._core
from tests.impls import Impl

#: The most freed Deferreds kept (``CAPACITY`` in ``src/recycle.rs``).
CAPACITY = 16


def _recycles() -> bool:
    """
    Is memory reuse compiled into this build?  CPython 3.10 to 3.12 with the GIL,
    not the stable ABI, not a reference-debugging build.
    """
    return (
        sys.implementation.name == "cpython"
        and (3, 10) <= sys.version_info[:2] < (3, 13)
        and not sysconfig.get_config_var("Py_GIL_DISABLED")
        and not hasattr(sys, "gettotalrefcount")
        and ".abi3." not in (txdefer._core.__file__ or "")
    )


def _reused() -> int:
    return int(txdefer._core._recycle_counts()[0])


def _kept() -> int:
    return int(txdefer._core._recycle_counts()[1])


def _empty_the_pool() -> list[Any]:
    """
    Take every kept Deferred out of the pool (returned, to be held meanwhile).
    """
    return [txdefer.Deferred() for _ in range(_kept())]


def _fresh_state(d: Any) -> tuple[Any, ...]:
    return (d.called, d.paused, getattr(d, "result", "no result"), vars(d))


class Marker:
    """
    A result that can be weakly referenced.
    """


def test_the_reuse_is_compiled_where_the_build_supports_it() -> None:
    """
    A freed ``succeed(x)`` is kept and the next Deferred reuses it, on the builds
    that reuse memory; elsewhere nothing is ever kept.
    """
    gc.collect()
    d = txdefer.succeed(1)
    address = id(d)
    before = _reused()
    del d
    again: Any = txdefer.Deferred()
    if _recycles():
        assert _reused() == before + 1
        assert id(again) == address
    else:
        assert txdefer._core._recycle_counts() == (0, 0)


def test_a_deferred_made_from_a_freed_one_shows_nothing_of_it(impl: Impl) -> None:
    """
    A Deferred that had a result, attributes (set directly and through ``vars()``)
    and a weak reference with a callback is freed; the next one made starts as
    new: no result, no attributes, no callbacks, tracked by the collector, and the
    old weak reference is dead, its callback run once.
    """
    expected = _fresh_state(impl.Deferred())
    died: list[object] = []
    makers: list[Callable[[], Any]] = [impl.Deferred, lambda: impl.succeed(7)]
    for make_next in makers:
        d = impl.succeed(Marker())
        d.custom = "value"
        vars(d)["other"] = 1
        ref = weakref.ref(d, died.append)
        before = _reused()
        del d
        assert ref() is None
        again: Any = make_next()
        if not impl.is_twisted and impl.Deferred is txdefer.Deferred and _recycles():
            assert _reused() == before + 1
        assert not hasattr(again, "custom") and not hasattr(again, "other")
        assert vars(again) == vars(make_next())
        assert gc.is_tracked(again)
        assert id(weakref.ref(again)()) == id(again)
        if make_next is impl.Deferred:
            assert _fresh_state(again) == expected
        else:
            assert (again.called, again.result) == (True, 7)
        again.addCallback(lambda r: r)
    assert len(died) == 2


def test_freeing_a_deferred_releases_its_result_at_once(impl: Impl) -> None:
    """
    The result of a freed Deferred is let go of as the Deferred goes (no collection
    needed), whether the Deferred is kept for reuse or not.
    """
    marker = Marker()
    ref = weakref.ref(marker)
    d = impl.succeed(marker)
    del marker
    assert ref() is not None
    del d
    assert ref() is None


def test_kept_deferreds_are_few_and_unseen_by_the_collector(impl: Impl) -> None:
    """
    Freeing many Deferreds at once keeps at most 16, and none of them shows up in
    ``gc.get_objects()``: only live Deferreds do.
    """
    gc.collect()

    def live() -> int:
        return sum(1 for o in gc.get_objects() if type(o) is impl.Deferred)

    at_start = live()
    many = [impl.Deferred() for i in range(200)]
    for i, d in enumerate(many):
        d.callback(i)
    del d
    assert live() == at_start + 200
    del many
    assert live() == at_start
    if not impl.is_twisted and impl.Deferred is txdefer.Deferred and _recycles():
        assert _kept() == CAPACITY
    assert _kept() <= CAPACITY


def test_only_deferreds_holding_nothing_but_a_result_are_kept(ours: Impl) -> None:
    """
    A Deferred of a subclass, or one still holding callbacks, a canceller or a
    chained Deferred, is freed as before, never kept.
    """
    hold = _empty_the_pool()
    kept = _kept()

    class Sub(txdefer.Deferred):  # type: ignore[type-arg]
        pass

    def handled() -> Any:
        d = ours.Deferred()
        d.errback(ValueError("handled"))
        return d.addErrback(lambda f: None)

    makers = [
        Sub,
        lambda: ours.Deferred().addCallback(lambda r: r),
        lambda: ours.Deferred(lambda d: None),
        handled,
    ]
    for make in makers:
        d = make()
        ref = weakref.ref(d)
        del d
        assert ref() is None
    assert _kept() == kept
    del hold


def test_a_finaliser_given_to_the_class_runs_for_every_deferred() -> None:
    """
    While ``txdefer.Deferred`` has a ``__del__``, every Deferred freed runs it once
    (none is kept, each is freed); once it is removed, Deferreds are kept again.
    Changing the class for good: a process of its own.
    """
    code = """
import txdefer, txdefer._core, gc
calls = []
txdefer.Deferred.__del__ = lambda self: calls.append(1)
for i in range(50):
    d = txdefer.succeed(i)
    del d
assert len(calls) == 50, len(calls)
del txdefer.Deferred.__del__
before = txdefer._core._recycle_counts()[0]
for i in range(50):
    assert txdefer.succeed(i).result == i
assert len(calls) == 50, len(calls)
print(txdefer._core._recycle_counts()[0] - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    reused = int(out.stdout)
    assert reused == (49 if _recycles() else 0)


def test_a_result_that_frees_many_deferreds_as_it_goes(impl: Impl) -> None:
    """
    Freeing a Deferred whose result (a list) holds 40 more frees all of them, in
    one go, though the 16 places for reuse fill up meanwhile; the weak-reference
    callbacks of all 41 run; Deferreds made afterwards behave as new.
    """
    hold = _empty_the_pool()
    died: list[object] = []
    inner = [impl.succeed(i) for i in range(40)]
    refs = [weakref.ref(d, died.append) for d in inner]
    outer = impl.succeed(inner)
    refs.append(weakref.ref(outer, died.append))
    del inner
    del outer
    assert len(died) == 41
    assert all(ref() is None for ref in refs)
    results: list[int] = []
    made = [impl.Deferred() for _ in range(50)]
    for i, d in enumerate(made):
        d.addCallback(results.append)
        d.callback(i)
    assert results == list(range(50))
    assert _kept() <= CAPACITY
    del hold


def test_code_run_while_a_deferred_is_freed_can_make_and_free_deferreds(impl: Impl) -> None:
    """
    The result's ``__del__`` and a weak-reference callback, both run as a Deferred
    is freed, make, fire and free Deferreds and run a collection: each sees
    Deferreds that behave as new, and nothing is lost.
    """
    seen: list[Any] = []

    class Noisy:
        def __del__(self) -> None:
            for i in range(20):
                d = impl.Deferred()
                d.addCallback(lambda r: r * 2)
                d.callback(i)
                seen.append(d.result)
            gc.collect()

    def on_death(_: object) -> None:
        seen.append(impl.succeed("from callback").result)

    for _ in range(3):
        d = impl.succeed(Noisy())
        ref = weakref.ref(d, on_death)
        del d
        assert ref() is None
    # (Twisted runs the weak-reference callback before it lets go of the result,
    # txdefer after: the order in which each frees an object's parts.)
    assert sorted(seen, key=repr) == sorted(([i * 2 for i in range(20)] + ["from callback"]) * 3, key=repr)


def test_a_deferred_in_a_reference_cycle_is_collected_and_its_memory_reused(impl: Impl) -> None:
    """
    A Deferred held only by a cycle through its own attributes and result is
    collected, and the Deferreds made after it start as new.
    """
    gc.collect()
    d = impl.succeed([])
    d.result.append(d)
    d.me = d
    ref = weakref.ref(d)
    del d
    gc.collect()
    assert ref() is None
    again = impl.Deferred()
    assert _fresh_state(again) == _fresh_state(impl.Deferred())


def test_a_reused_deferred_is_young_even_after_gc_freeze(impl: Impl) -> None:
    """
    After ``gc.freeze()``, a Deferred made from a freed one starts in the
    collector's youngest generation, as any new object does, so that a young
    collection can free a cycle through it.
    """
    d = impl.succeed(1)
    gc.freeze()
    try:
        del d
        again = impl.Deferred()
        assert any(o is again for o in gc.get_objects(generation=0))
        again.me = again
        ref = weakref.ref(again)
        del again
        gc.collect(0)
        assert ref() is None
    finally:
        gc.unfreeze()


def test_awaiting_many_fired_deferreds_reuses_one_place(impl: Impl) -> None:
    """
    ``await succeed(x)`` in a loop: the same results as Twisted, and (on builds that
    reuse memory) every Deferred after the first reuses a freed one.
    """

    async def run() -> int:
        total = 0
        for i in range(500):
            total += await impl.succeed(i)
        return total

    before = _reused()
    results: list[int] = []
    impl.Deferred.fromCoroutine(run()).addCallback(results.append)
    assert results == [sum(range(500))]
    if impl.Deferred is txdefer.Deferred and _recycles():
        assert _reused() - before >= 499


@pytest.mark.parametrize("n", [1, 15, 16, 17, 100])
def test_freed_and_made_in_any_order(impl: Impl, n: int) -> None:
    """
    Batches of Deferreds around the number kept, freed in both orders and made
    again: each new one behaves as new and fires as Twisted's does.
    """
    for order in (1, -1):
        batch = [impl.succeed(object()) for _ in range(n)][::order]
        del batch[: n // 2]
        del batch
        again = [impl.Deferred() for _ in range(n)]
        out: list[int] = []
        for i, d in enumerate(again):
            assert _fresh_state(d) == _fresh_state(impl.Deferred())
            d.addCallback(out.append)
            d.callback(i)
        assert out == list(range(n))
