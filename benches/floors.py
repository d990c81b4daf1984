#!/usr/bin/env python3
"""
What bounds the speed-up of three workloads: ``python benches/floors.py``.

For each, Twisted's ``Deferred``, txdefer and a *floor* run side by side in one
process, alternately, 7 rounds (medians).  The floor is the work the workload does
that no ``Deferred`` implementation can remove; Twisted's time over the floor's is
the speed-up txdefer would reach if its own work cost nothing.

* ``errback_chain`` (Twisted's shape): the floor defines the same three functions,
  raises and catches the same two exceptions, calls ``Failure.trap`` on a fresh
  ``Failure`` and the swallowing function.  It builds no ``Failure`` for the raises
  (txdefer must build two): a generous floor.
* ``await_succeed_1000``: the floor is the same coroutine calling ``succeed(x)``
  without awaiting it, on txdefer: making the 1000 Deferreds the workload awaits.
* ``coroutine_succeed_10``: likewise, ten ``succeed(i)`` added up without ``await``,
  the coroutine still run by ``Deferred.fromCoroutine``.

``--quick`` runs one short round (the smoke test uses it).  Nothing here is timed
by the test suite.
"""

from __future__ import annotations

import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

try:
    import txdefer
except ImportError:  # from a checkout, with the extension built in place
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    import txdefer

from twisted.internet import defer as twisted_defer
from twisted.python.failure import Failure


def errback_chain(ns: ModuleType) -> Callable[[], Any]:
    succeed = ns.succeed

    def go() -> Any:
        d = succeed("result")

        def cbRaiseErr(_: object) -> None:
            raise Exception("boom!")  # noqa: TRY002  (Twisted's code)

        d.addCallback(cbRaiseErr)

        def ebHandleErr(failure: Failure) -> None:
            failure.trap(Exception)
            raise Exception("lesser boom!")  # noqa: TRY002

        d.addErrback(ebHandleErr)

        def swallowErr(_: object) -> None:
            return None

        d.addBoth(swallowErr)
        return d

    return go


def errback_chain_floor() -> Callable[[], Any]:
    trapped = Failure(Exception("boom!"))

    def go() -> Any:
        def cbRaiseErr(_: object) -> None:
            raise Exception("boom!")  # noqa: TRY002

        try:
            cbRaiseErr("result")
        except Exception:  # noqa: BLE001, S110  (caught, as the Deferred catches it)
            pass

        def ebHandleErr(failure: Failure) -> None:
            failure.trap(Exception)
            raise Exception("lesser boom!")  # noqa: TRY002

        trapped.parents = None  # computed afresh, as for a new Failure
        try:
            ebHandleErr(trapped)
        except Exception:  # noqa: BLE001, S110  (caught, as the Deferred catches it)
            pass

        def swallowErr(_: object) -> None:
            return None

        return swallowErr(trapped)

    return go


def await_succeed_1000(ns: ModuleType, awaiting: bool = True) -> Callable[[], Any]:
    succeed, ensureDeferred = ns.succeed, ns.ensureDeferred

    async def run() -> None:
        for x in range(1000):
            await succeed(x)

    async def run_without_await() -> None:
        for x in range(1000):
            succeed(x)

    coroutine = run if awaiting else run_without_await
    return lambda: ensureDeferred(coroutine())


def coroutine_succeed_10(ns: ModuleType, awaiting: bool = True) -> Callable[[], Any]:
    succeed, fromCoroutine = ns.succeed, ns.Deferred.fromCoroutine

    async def add_up() -> int:
        total = 0
        for i in range(10):
            total += await succeed(i)
        return total

    async def add_up_without_await() -> int:
        total = 0
        for i in range(10):
            succeed(i)
            total += i
        return total

    coroutine = add_up if awaiting else add_up_without_await
    return lambda: fromCoroutine(coroutine())


CASES: dict[str, dict[str, Callable[[], Any]]] = {
    "errback_chain": {
        "Twisted": errback_chain(twisted_defer),
        "txdefer": errback_chain(txdefer),
        "floor": errback_chain_floor(),
    },
    "await_succeed_1000": {
        "Twisted": await_succeed_1000(twisted_defer),
        "txdefer": await_succeed_1000(txdefer),
        "floor": await_succeed_1000(txdefer, awaiting=False),
    },
    "coroutine_succeed_10": {
        "Twisted": coroutine_succeed_10(twisted_defer),
        "txdefer": coroutine_succeed_10(txdefer),
        "floor": coroutine_succeed_10(txdefer, awaiting=False),
    },
}


def median_ns(fn: Callable[[], Any], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e9


def measure(rounds: int, seconds: float) -> dict[str, dict[str, float]]:
    """
    Median time per call of every variant of every case, in ns.
    """
    medians: dict[str, dict[str, float]] = {}
    for name, variants in CASES.items():
        number = max(1, int(seconds / (median_ns(variants["Twisted"], 1) * 1e-9)))
        times: dict[str, list[float]] = {variant: [] for variant in variants}
        for r in range(rounds):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for variant in order:
                times[variant].append(median_ns(variants[variant], number))
        medians[name] = {variant: statistics.median(t) for variant, t in times.items()}
    return medians


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    medians = measure(rounds=1 if quick else 7, seconds=0.001 if quick else 0.05)
    print("| workload | Twisted | txdefer | floor | speed-up | bound (Twisted / floor) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, m in medians.items():
        print(
            f"| {name} | {m['Twisted']:.0f} ns | {m['txdefer']:.0f} ns | {m['floor']:.0f} ns "
            f"| {m['Twisted'] / m['txdefer']:.2f}x | {m['Twisted'] / m['floor']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
