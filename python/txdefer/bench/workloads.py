"""
The timed micro-benchmarks.

* ``twisted``: Twisted's own Deferred benchmarks (``benchmarks/test_deferred.py`` in
  Twisted's repository), same shapes, same code in the timed function; the only
  change is that the timed function returns what it built so the outcome can be
  compared.
* ``micro``: the basic Deferred operations, ``inlineCallbacks`` and coroutines.
* ``collections``: the helpers built on Deferred: ``DeferredList``,
  ``gatherResults``, ``DeferredLock``, ``DeferredQueue``, and a deep chain.

Every workload is a setup function of an implementation namespace ``ns``; see
:mod:`txdefer.bench.spec`.  Everything a workload needs is built in setup, once per
implementation; the timed ``go()`` only does the operation being measured.
"""

from __future__ import annotations

from itertools import pairwise
from types import ModuleType
from typing import Any

from txdefer.bench.spec import Case, Workload, collector

WORKLOADS: list[Workload] = []
twisted_shape = collector(WORKLOADS, "twisted")
micro = collector(WORKLOADS, "micro")
collection = collector(WORKLOADS, "collections")


def f(x: int, a: int) -> int:
    """
    The callback of Twisted's callback-chain benchmarks.
    """
    return x + a


def _add_one(x: int) -> int:
    return x + 1


def _record(result: Any, into: list[Any], value: Any) -> Any:
    into.append(value)
    return result


def _return(_: Any, value: Any) -> Any:
    return value


# --- Twisted's benchmarks/test_deferred.py -------------------------------------------


@twisted_shape("await_succeed_1000")
def await_succeed_1000(ns: ModuleType) -> Case:
    """
    A coroutine awaits 1000 already-fired Deferreds (``succeed(x)``), driven by
    ``ensureDeferred``: Twisted's ``test_deferred_await``.
    """
    succeed, ensureDeferred = ns.succeed, ns.ensureDeferred

    async def _run():
        for x in range(1000):
            await succeed(x)

    def go():
        return ensureDeferred(_run())

    return Case(go)


@twisted_shape("await_unfired_20")
def await_unfired_20(ns: ModuleType) -> Case:
    """
    A coroutine awaits 20 Deferreds that have not fired yet, which are then fired
    one by one, each resuming the coroutine: Twisted's ``test_deferred_await_unfired``.
    """
    Deferred, ensureDeferred = ns.Deferred, ns.ensureDeferred

    async def _run(deferreds):
        results = []
        for d in deferreds:
            results.append(await d)
        return sum(results)

    def go():
        deferreds = [Deferred() for _ in range(20)]
        result = ensureDeferred(_run(deferreds))
        for i, d in enumerate(deferreds):
            d.callback(i)
        return result

    return Case(go)


@twisted_shape("chain_fires_at_start")
def chain_fires_at_start(ns: ModuleType) -> Case:
    """
    Four callbacks added to a Deferred that has already fired, each running at once:
    Twisted's ``test_deferred_callback_chain_fires_at_start``.
    """
    Deferred = ns.Deferred

    def go():
        d = Deferred()
        d.callback(2)
        d.addCallback(f, 1)
        d.addCallback(f, 2)
        d.addCallback(f, 3)
        d.addCallback(f, 4)
        return d

    return Case(go)


@twisted_shape("chain_fires_at_end")
def chain_fires_at_end(ns: ModuleType) -> Case:
    """
    Four callbacks added to a pending Deferred, then run in one go when it fires:
    Twisted's ``test_deferred_callback_chain_fires_at_end``.
    """
    Deferred = ns.Deferred

    def go():
        d = Deferred()
        d.addCallback(f, 1)
        d.addCallback(f, 2)
        d.addCallback(f, 3)
        d.addCallback(f, 4)
        d.callback(2)
        return d

    return Case(go)


@twisted_shape("errback_chain")
def errback_chain(ns: ModuleType) -> Case:
    """
    A callback raises, an errback traps the Failure and raises again, a last
    callback swallows it: error handling, Twisted's ``test_deferred_errback_chain``.
    """
    succeed = ns.succeed

    def go():
        d = succeed("result")

        def cbRaiseErr(_):
            raise Exception("boom!")  # noqa: TRY002  (Twisted's code)

        d.addCallback(cbRaiseErr)

        def ebHandleErr(failure):
            failure.trap(Exception)
            raise Exception("lesser boom!")  # noqa: TRY002

        d.addErrback(ebHandleErr)

        def swallowErr(_):
            return None

        d.addBoth(swallowErr)
        return d

    return Case(go)


@twisted_shape("chained_already_fired")
def chained_already_fired(ns: ModuleType) -> Case:
    """
    Callbacks return Deferreds that have already fired, whose results are taken
    over: Twisted's ``test_deferred_chained_already_fired``.
    """
    Deferred = ns.Deferred

    def go():
        d = Deferred()
        d2 = Deferred()
        d3 = Deferred()
        d2.callback(123)
        d3.callback(456)
        d.addCallback(lambda _: d2)
        d.addCallback(lambda _: d3)
        d.callback(123)
        return d, d2, d3

    return Case(go)


@twisted_shape("chained_not_fired")
def chained_not_fired(ns: ModuleType) -> Case:
    """
    Callbacks return Deferreds that fire later, one of which itself waits on
    another: Twisted's ``test_deferred_chained_not_fired``.
    """
    Deferred = ns.Deferred

    def go():
        d = Deferred()
        d2 = Deferred()
        # d3 has its own chained result:
        d3 = Deferred()
        d4 = Deferred()
        d3.addCallback(lambda _: d4)
        d3.callback(123)
        d.addCallback(lambda _: d2)
        d.addCallback(lambda _: d3)
        d2.callback(123)
        d4.callback(57)
        d.callback(7)
        return d, d2, d3, d4

    return Case(go)


# --- The basic operations ------------------------------------------------------------


@micro("deferred_create")
def deferred_create(ns: ModuleType) -> Case:
    """
    ``Deferred()`` alone: the cost of allocating and initialising one, and of
    freeing it.
    """
    return Case(ns.Deferred)


@micro("create_callback_fire")
def create_callback_fire(ns: ModuleType) -> Case:
    """
    The basic life of a Deferred: create it, add one callback, fire it.
    """
    Deferred = ns.Deferred

    def go():
        d = Deferred()
        d.addCallback(_add_one)
        d.callback(1)
        return d

    return Case(go)


@micro("succeed_callback")
def succeed_callback(ns: ModuleType) -> Case:
    """
    ``succeed(1)`` then ``addCallback``: a synchronous result handed to code that
    expects a Deferred, the callback running at once.
    """
    succeed = ns.succeed

    def go():
        d = succeed(1)
        d.addCallback(_add_one)
        return d

    return Case(go)


@micro("inlinecb_fired_10")
def inlinecb_fired_10(ns: ModuleType) -> Case:
    """
    An ``inlineCallbacks`` generator yielding 10 already-fired Deferreds: the
    trampoline's fast path.
    """
    succeed = ns.succeed

    @ns.inlineCallbacks
    def add_up():
        total = 0
        for i in range(10):
            total += yield succeed(i)
        return total

    return Case(add_up)


@micro("inlinecb_unfired_10")
def inlinecb_unfired_10(ns: ModuleType) -> Case:
    """
    An ``inlineCallbacks`` generator yielding 10 pending Deferreds, fired afterwards
    one by one, each resuming the generator.
    """
    Deferred = ns.Deferred

    @ns.inlineCallbacks
    def add_up(deferreds):
        total = 0
        for d in deferreds:
            total += yield d
        return total

    def go():
        deferreds = [Deferred() for _ in range(10)]
        result = add_up(deferreds)
        for i, d in enumerate(deferreds):
            d.callback(i)
        return result

    return Case(go)


@micro("coroutine_succeed_10")
def coroutine_succeed_10(ns: ModuleType) -> Case:
    """
    An ``async def`` awaiting 10 ``succeed()`` results, run with
    ``Deferred.fromCoroutine``.
    """
    succeed, fromCoroutine = ns.succeed, ns.Deferred.fromCoroutine

    async def add_up():
        total = 0
        for i in range(10):
            total += await succeed(i)
        return total

    def go():
        return fromCoroutine(add_up())

    return Case(go)


# --- Helpers built on Deferred -------------------------------------------------------


@collection("deferredlist_1000")
def deferredlist_1000(ns: ModuleType) -> Case:
    """
    ``DeferredList`` over 1000 already-fired Deferreds (created once, in setup):
    collecting many results.
    """
    fired = [ns.succeed(i) for i in range(1000)]
    DeferredList = ns.DeferredList

    def go():
        return DeferredList(fired)

    return Case(go)


@collection("gather_1000")
def gather_1000(ns: ModuleType) -> Case:
    """
    ``gatherResults`` over 1000 already-fired Deferreds (created once, in setup).
    """
    fired = [ns.succeed(i) for i in range(1000)]
    gatherResults = ns.gatherResults

    def go():
        return gatherResults(fired)

    return Case(go)


@collection("gather_3")
def gather_3(ns: ModuleType) -> Case:
    """
    ``gatherResults`` over 3 new Deferreds, then each fired: a small fan-out, where
    setting the list up costs as much as collecting the results.
    """
    Deferred, gatherResults = ns.Deferred, ns.gatherResults

    def go():
        ds = [Deferred(), Deferred(), Deferred()]
        gathered = gatherResults(ds)
        for i, d in enumerate(ds):
            d.callback(i)
        return gathered

    return Case(go)


@collection("lock_uncontended_1000")
def lock_uncontended_1000(ns: ModuleType) -> Case:
    """
    1000 ``acquire()``/``release()`` pairs on a free ``DeferredLock``: each acquire
    returns an already-fired Deferred.
    """
    lock = ns.DeferredLock()

    def go():
        acquired = 0
        for _ in range(1000):
            d = lock.acquire()
            if d.called:
                acquired += 1
            lock.release()
        return acquired, lock.locked

    return Case(go)


@collection("lock_waiters_1000")
def lock_waiters_1000(ns: ModuleType) -> Case:
    """
    A held ``DeferredLock`` with 1000 waiters queued, each with a callback; then 1000
    releases hand the lock on in FIFO order.
    """
    lock = ns.DeferredLock()

    def go():
        order: list[int] = []
        lock.acquire()
        for i in range(1000):
            lock.acquire().addCallback(_record, order, i)
        for _ in range(1000):
            lock.release()
        lock.release()
        return order, lock.locked

    return Case(go)


@collection("queue_put_get_1000")
def queue_put_get_1000(ns: ModuleType) -> Case:
    """
    1000 ``put()`` into a ``DeferredQueue``, then 1000 ``get()`` each answered at
    once from the backlog.
    """
    queue = ns.DeferredQueue()

    def go():
        got: list[int] = []
        for i in range(1000):
            queue.put(i)
        for _ in range(1000):
            queue.get().addCallback(got.append)
        return got, len(queue.pending), len(queue.waiting)

    return Case(go)


@collection("queue_get_put_1000")
def queue_get_put_1000(ns: ModuleType) -> Case:
    """
    1000 ``get()`` on an empty ``DeferredQueue`` (1000 waiting Deferreds), then 1000
    ``put()`` each firing the oldest waiter.
    """
    queue = ns.DeferredQueue()

    def go():
        got: list[int] = []
        for _ in range(1000):
            queue.get().addCallback(got.append)
        for i in range(1000):
            queue.put(i)
        return got, len(queue.pending), len(queue.waiting)

    return Case(go)


@collection("chain_depth_1000")
def chain_depth_1000(ns: ModuleType) -> Case:
    """
    A 1000-deep chain of returned Deferreds: each Deferred's callback returns the
    next one; all are fired top-down (each pausing on the next), then the bottom one
    fires and its result travels back up to the top.
    """
    Deferred = ns.Deferred
    depth = 1000

    def go():
        ds = [Deferred() for _ in range(depth)]
        for d, below in pairwise(ds):
            d.addCallback(_return, below)
        for i in range(depth - 1):
            ds[i].callback(i)
        ds[-1].callback("bottom")
        return ds[0], ds[depth // 2]

    return Case(go)
