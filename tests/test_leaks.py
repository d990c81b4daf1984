"""
Leaks: creating, firing and dropping Deferreds, over and over, must not grow the
process.

Each workload below is one "cycle" of something a Twisted program does all day long
(fire a Deferred through its callbacks; drop one that closes over itself; let a failure
go unhandled so that it is logged; run an ``inlineCallbacks`` generator or a coroutine;
gather results).  A fresh interpreter runs a workload many times after a warm-up and
reports how much its resident memory (RSS) and the number of objects tracked by the
garbage collector grew: both must stay flat.  A leak of a single small object per cycle
shows up as hundreds of thousands of extra tracked objects, or tens of MiB of RSS.

Reference counts are checked in this process: after a Deferred has run (or dropped) its
callbacks, every callback, argument, keyword value and result has exactly as many
references as before.  These run on Twisted's ``Deferred`` too, so that the tests
themselves are known to be right.

``TXDEFER_LONG=1`` multiplies the number of cycles by ten.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.python.failure import Failure

from tests.impls import Impl, captured_log, result_of

ROOT = Path(__file__).resolve().parent.parent
LONG = os.environ.get("TXDEFER_LONG") == "1"

# -- the workloads (run in a subprocess) ------------------------------------------------


def _callback(result: object) -> object:
    return result


def _errback(failure: Failure) -> None:
    return None


def _cycle_core(D: Any, i: int) -> None:
    """callback/errback/addCallbacks with arguments/chainDeferred/cancel/pause/returned."""
    d = D()
    d.addCallback(_callback)
    d.addCallbacks(
        lambda r, a, k=None: (r, a, k),
        _errback,
        callbackArgs=(i,),
        callbackKeywords={"k": str(i)},
        errbackArgs=(i,),
        errbackKeywords={"k": i},
    )
    d.callback(i)

    e = D()
    e.addErrback(_errback)
    e.errback(ValueError(i))

    a, b = D(), D()
    a.chainDeferred(b)
    b.addBoth(_callback)
    a.callback([i])

    c = D(lambda d: None)
    c.addErrback(_errback)
    c.cancel()

    p = D()
    p.pause()
    p.callback(i)
    p.addCallback(_callback)
    p.unpause()

    inner = D()
    outer = D()
    outer.addCallback(lambda r: inner)
    outer.callback(None)
    inner.callback(i)
    outer.addCallback(_callback)


def _cycle_self_reference(D: Any, i: int) -> None:
    """Deferreds in reference cycles, left to the garbage collector."""
    d = D()
    d.addCallback(lambda r: d)  # unfired, the callback closes over d
    e = D()
    e.callback([e, i])  # the result refers to the Deferred
    f = D(lambda x: f)  # the canceller closes over f
    f.addErrback(lambda failure: (f, failure))
    f.cancel()


def _cycle_unhandled(D: Any, i: int) -> None:
    """A failure nobody handles: logged when the Deferred is freed."""
    d = D()
    d.errback(ValueError(i))


def _cycle_unhandled_in_cycle(D: Any, i: int) -> None:
    """An unhandled failure in a Deferred that refers to itself: logged by the gc."""
    d = D()
    d.me = d
    d.errback(KeyError(i))


def _cycle_generators(ns: Any, i: int) -> None:
    """inlineCallbacks and Deferred.fromCoroutine, with fired and unfired Deferreds."""
    pending = [ns.Deferred(), ns.Deferred()]

    @ns.inlineCallbacks
    def gen(x: int) -> Any:
        a = yield ns.succeed(x)
        b = yield pending[0]
        try:
            yield ns.fail(ValueError(x))
        except ValueError:
            pass
        return a + b

    async def coro(x: int) -> int:
        a = await ns.succeed(x)
        b = await pending[1]
        try:
            await ns.fail(KeyError(x))
        except KeyError:
            pass
        return a + b

    g = gen(i)
    c = ns.Deferred.fromCoroutine(coro(i))
    pending[0].callback(1)
    pending[1].callback(2)
    g.addCallback(_callback)
    c.addCallback(_callback)


def _cycle_collections(ns: Any, i: int) -> None:
    """gatherResults and DeferredList, succeeding and failing, and cancelled."""
    ds = [ns.Deferred() for _ in range(3)]
    g = ns.gatherResults(ds, consumeErrors=True)
    dl = ns.DeferredList([ns.succeed(i), ns.fail(ValueError(i))], consumeErrors=True)
    ds[0].callback(i)
    ds[1].errback(KeyError(i))
    g.addErrback(_errback)
    dl.addCallback(_callback)
    h = ns.gatherResults([ns.Deferred(), ns.succeed(i)], consumeErrors=True)
    h.addErrback(_errback)
    h.cancel()


def _cycle_failures(ns: Any, i: int) -> None:
    """
    Every way a Failure is made: a raising callback and errback, ``fail(exception)``,
    ``errback()`` inside ``except``, ``errback`` of a non-exception, ``maybeDeferred``
    of a raising function, ``cancel()``.
    """
    _failures_path(ns, Tokens())


def _cycle_primitives(ns: Any, i: int) -> None:
    """DeferredLock, DeferredSemaphore and DeferredQueue: waiters, cancels, run()."""
    _primitives_path(ns, Tokens())


#: name -> (cycle function, takes the namespace rather than the class, cycles,
#: log events per cycle)
WORKLOADS: dict[str, tuple[Callable[[Any, int], None], bool, int, int]] = {
    "core": (_cycle_core, False, 200_000, 0),
    "self_reference": (_cycle_self_reference, False, 1_000_000, 0),
    "unhandled": (_cycle_unhandled, False, 300_000, 2),
    "unhandled_in_cycle": (_cycle_unhandled_in_cycle, False, 100_000, 2),
    "generators": (_cycle_generators, True, 100_000, 0),
    "collections": (_cycle_collections, True, 100_000, 0),
    "failures": (_cycle_failures, True, 50_000, 0),
    "primitives": (_cycle_primitives, True, 100_000, 0),
}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


def measure(impl_name: str, workload: str, cycles: int) -> dict[str, int]:
    """
    Run ``workload`` ``cycles`` times after a warm-up; how much did RSS, the number of
    gc-tracked objects and the logged events grow?  (Called in a fresh interpreter.)
    """
    from twisted.logger import globalLogBeginner

    from tests.impls import ALL_IMPLS

    impl = next(each for each in ALL_IMPLS if each.name == impl_name)
    fn, wants_ns, _, _ = WORKLOADS[workload]
    target: Any = impl if wants_ns else impl.Deferred
    events = [0]

    def count(event: dict[str, Any]) -> None:
        events[0] += 1

    # Count the events instead of printing them (and keep none).
    globalLogBeginner.beginLoggingTo([count], discardBuffer=True, redirectStandardIO=False)
    warm_up = max(cycles // 10, 1000)
    for i in range(warm_up):
        fn(target, i)
    gc.collect()
    rss_before, objects_before, events_before = _rss(), len(gc.get_objects()), events[0]
    for i in range(cycles):
        fn(target, i)
    gc.collect()
    return {
        "rss": _rss() - rss_before,
        "objects": len(gc.get_objects()) - objects_before,
        "events": events[0] - events_before,
    }


def _measure_in_subprocess(impl: Impl, workload: str, cycles: int) -> dict[str, int]:
    code = f"""
        import json
        from tests.test_leaks import measure
        print(json.dumps(measure({impl.name!r}, {workload!r}, {cycles})))
        """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])  # type: ignore[no-any-return]


MIB = 1 << 20


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_repeated_cycles_do_not_grow_memory(ours: Impl, workload: str) -> None:
    """
    Memory and gc-tracked objects stay flat over many cycles of the workload, and
    every unhandled failure is logged (two events each, as Twisted logs them).
    """
    _, _, cycles, events_per_cycle = WORKLOADS[workload]
    if LONG:
        cycles *= 10
    grew = _measure_in_subprocess(ours, workload, cycles)
    assert grew["rss"] < 4 * MIB, grew
    assert grew["objects"] < 100, grew
    assert grew["events"] == events_per_cycle * cycles, grew


# -- reference counts (in this process) -------------------------------------------------


class Token:
    """A fresh object whose reference count only this test changes."""

    def __call__(self, value: object, *args: object, **kwargs: object) -> object:
        return value


def _errback_token(failure: Failure, *args: object, **kwargs: object) -> None:
    return None


class Tokens:
    """The objects one scenario hands to a Deferred: their reference counts are watched."""

    def __init__(self) -> None:
        self.callback = Token()
        self.errback = Token()
        self.arg = Token()
        self.kwarg = Token()
        self.result = Token()
        self.exception = ValueError("watched")
        self.failure = Failure(self.exception)

    def counts(self) -> dict[str, int]:
        gc.collect()
        return {name: sys.getrefcount(value) for name, value in vars(self).items()}


def _handled(failure: Failure) -> None:
    return None


def _callback_path(ns: Impl, t: Tokens) -> None:
    d = ns.Deferred()
    d.addCallback(t.callback, t.arg, k=t.kwarg)
    d.callback(t.result)
    assert result_of(d) is t.result


def _errback_path(ns: Impl, t: Tokens) -> None:
    d = ns.Deferred()
    d.addCallback(t.callback, t.arg, k=t.kwarg)
    d.addErrback(t.errback, t.arg, k=t.kwarg)  # returns the failure: still failed
    d.addErrback(_handled)
    d.errback(t.failure)
    e = ns.Deferred()
    e.addErrback(_handled)
    e.errback(t.exception)


def _addCallbacks_path(ns: Impl, t: Tokens) -> None:
    for fire in ("callback", "errback"):
        d = ns.Deferred()
        d.addCallbacks(
            t.callback,
            t.errback,
            callbackArgs=(t.arg,),
            callbackKeywords={"k": t.kwarg},
            errbackArgs=(t.arg,),
            errbackKeywords={"k": t.kwarg},
        )
        d.addErrback(_handled)
        getattr(d, fire)(t.result if fire == "callback" else t.failure)


def _unfired_then_dropped_path(ns: Impl, t: Tokens) -> None:
    d = ns.Deferred(t.callback)
    d.addCallbacks(
        t.callback,
        t.errback,
        callbackArgs=(t.arg,),
        callbackKeywords={"k": t.kwarg},
        errbackArgs=(t.arg,),
        errbackKeywords={"k": t.kwarg},
    )
    d.addBoth(t.callback, t.arg, k=t.kwarg)


def _chainDeferred_path(ns: Impl, t: Tokens) -> None:
    a, b = ns.Deferred(), ns.Deferred()
    a.chainDeferred(b)
    b.addCallback(t.callback, t.arg, k=t.kwarg)
    a.callback(t.result)
    c, d = ns.Deferred(), ns.Deferred()
    c.chainDeferred(d)
    d.addErrback(t.errback, t.arg, k=t.kwarg)
    d.addErrback(_handled)
    c.errback(t.failure)


def _cancel_path(ns: Impl, t: Tokens) -> None:
    d = ns.Deferred(t.errback)  # the canceller: called with d, returns None
    d.addCallback(t.callback, t.arg, k=t.kwarg)
    d.addErrback(t.errback, t.arg, k=t.kwarg)
    d.addErrback(_handled)
    d.cancel()
    e = ns.Deferred(lambda e: e.callback(t.result))
    e.addCallback(t.callback, t.arg, k=t.kwarg)
    e.cancel()


def _pause_path(ns: Impl, t: Tokens) -> None:
    d = ns.Deferred()
    d.pause()
    d.callback(t.result)
    d.addCallback(t.callback, t.arg, k=t.kwarg)
    d.pause()
    d.unpause()
    d.unpause()
    e = ns.Deferred()
    e.pause()
    e.addCallback(t.callback, t.arg, k=t.kwarg)
    e.callback(t.result)  # dropped paused, with its callback not run


def _returned_deferred_path(ns: Impl, t: Tokens) -> None:
    inner = ns.Deferred()
    outer = ns.Deferred()
    outer.addCallback(lambda r: inner)
    outer.addCallback(t.callback, t.arg, k=t.kwarg)
    outer.callback(None)
    inner.callback(t.result)
    assert result_of(outer) is t.result
    waiting, never = ns.Deferred(), ns.Deferred()
    waiting.addCallback(lambda r: never)
    waiting.addCallback(t.callback, t.arg, k=t.kwarg)
    waiting.callback(t.result)  # dropped while waiting


def _inlineCallbacks_path(ns: Impl, t: Tokens) -> None:
    pending = ns.Deferred()

    @ns.inlineCallbacks
    def gen(arg: object, k: object) -> Any:
        first = yield ns.succeed(t.result)
        second = yield pending
        try:
            yield ns.fail(t.failure)
        except ValueError:
            pass
        return (first, second, arg, k)

    d = gen(t.arg, k=t.kwarg)
    pending.callback(t.result)
    assert result_of(d) == (t.result, t.result, t.arg, t.kwarg)
    never = ns.Deferred()

    @ns.inlineCallbacks
    def stuck(arg: object) -> Any:
        yield never
        return arg

    e = stuck(t.arg)
    e.addErrback(_handled)
    e.cancel()


def _fromCoroutine_path(ns: Impl, t: Tokens) -> None:
    pending = ns.Deferred()

    async def coro(arg: object, k: object) -> object:
        first = await ns.succeed(t.result)
        second = await pending
        try:
            await ns.fail(t.failure)
        except ValueError:
            pass
        return (first, second, arg, k)

    d = ns.Deferred.fromCoroutine(coro(t.arg, k=t.kwarg))
    pending.callback(t.result)
    assert result_of(d) == (t.result, t.result, t.arg, t.kwarg)
    never = ns.Deferred()

    async def stuck(arg: object) -> object:
        await never
        return arg

    e = ns.Deferred.fromCoroutine(stuck(t.arg))
    e.addErrback(_handled)
    e.cancel()


def _gatherResults_path(ns: Impl, t: Tokens) -> None:
    ds = [ns.Deferred(), ns.succeed(t.arg)]
    g = ns.gatherResults(ds)
    ds[0].callback(t.result)
    assert result_of(g) == [t.result, t.arg]
    failing = [ns.fail(t.failure), ns.Deferred()]
    h = ns.gatherResults(failing, consumeErrors=True)
    h.addErrback(_handled)
    failing[1].callback(t.result)


def _DeferredList_path(ns: Impl, t: Tokens) -> None:
    ds = [ns.Deferred(), ns.fail(t.failure)]
    dl = ns.DeferredList(ds, consumeErrors=True)
    ds[0].callback(t.result)
    assert result_of(dl)[0] == (True, t.result)
    pending = ns.DeferredList([ns.Deferred(), ns.succeed(t.arg)], fireOnOneCallback=True)
    pending.addCallback(t.callback, t.arg, k=t.kwarg)
    empty = ns.DeferredList([])  # fired while it was made
    empty.addCallback(t.callback, t.arg, k=t.kwarg)


def _failures_path(ns: Impl, t: Tokens) -> None:
    # A fresh exception for each raise: raising one instance again would chain each
    # new traceback onto the last (the frames, and their arguments, would stay).
    def raising(result: object, *args: object, **kwargs: object) -> None:
        raise ValueError(t.arg)

    for d in (ns.Deferred(), ns.succeed(t.result)):  # fired after, or before, its callbacks
        d.addCallback(raising, t.arg, k=t.kwarg)
        d.addErrback(t.errback, t.arg, k=t.kwarg)  # returns the failure: still failed
        d.addErrback(raising, t.arg, k=t.kwarg)  # fails again, with a new exception
        d.addErrback(_handled)
        if not d.called:
            d.callback(t.result)
    ns.fail(t.exception).addErrback(_handled)
    e = ns.Deferred()
    try:
        raising(t.result, t.arg, k=t.kwarg)
    except ValueError:
        e.errback()
    e.addErrback(_handled)
    n = ns.Deferred()
    n.errback(t.arg)  # not an exception: wrapped all the same
    n.addErrback(_handled)
    ns.maybeDeferred(raising, t.arg, k=t.kwarg).addErrback(_handled)
    c = ns.Deferred(t.errback)
    c.addErrback(_handled)
    c.cancel()


def _primitives_path(ns: Impl, t: Tokens) -> None:
    lock = ns.DeferredLock()
    lock.acquire()
    waiter = lock.acquire()
    waiter.addCallback(t.callback, t.arg, k=t.kwarg)
    gone = lock.acquire()
    gone.addErrback(_handled)
    gone.cancel()
    lock.release()
    lock.release()
    assert result_of(lock.run(t.callback, t.result, k=t.kwarg)) is t.result
    sem = ns.DeferredSemaphore(1)
    assert result_of(sem.run(t.callback, t.result, t.arg)) is t.result
    sem.acquire()
    queued = sem.acquire()
    queued.addErrback(_handled)
    queued.cancel()
    sem.release()
    queue = ns.DeferredQueue(size=2, backlog=2)
    queue.put(t.result)
    assert result_of(queue.get()) is t.result
    getter = queue.get()
    getter.addCallback(t.callback, t.arg, k=t.kwarg)
    queue.put(t.arg)
    assert result_of(getter) is t.arg
    cancelled = queue.get()
    cancelled.addErrback(_handled)
    cancelled.cancel()
    queue.put(t.kwarg)  # left pending: released with the queue


REFCOUNT_PATHS: dict[str, Callable[[Impl, Tokens], None]] = {
    "callback": _callback_path,
    "errback": _errback_path,
    "addCallbacks_with_args": _addCallbacks_path,
    "unfired_then_dropped": _unfired_then_dropped_path,
    "chainDeferred": _chainDeferred_path,
    "cancel": _cancel_path,
    "pause": _pause_path,
    "returned_deferred": _returned_deferred_path,
    "inlineCallbacks": _inlineCallbacks_path,
    "fromCoroutine": _fromCoroutine_path,
    "gatherResults": _gatherResults_path,
    "DeferredList": _DeferredList_path,
    "failures": _failures_path,
    "primitives": _primitives_path,
}


@pytest.mark.parametrize("path", sorted(REFCOUNT_PATHS))
def test_reference_counts_return_to_where_they_were(impl: Impl, path: str) -> None:
    """
    Callbacks, their arguments and keyword values, results and failures are released
    once a Deferred has used them: a hundred runs leave every reference count where it
    was (a missed decref would leave it a hundred higher).
    """
    scenario = REFCOUNT_PATHS[path]
    tokens = Tokens()
    with captured_log() as events:
        scenario(impl, tokens)  # warm-up: caches, interned names
        before = tokens.counts()
        for _ in range(100):
            scenario(impl, tokens)
        after = tokens.counts()
    assert after == before
    assert events == []
