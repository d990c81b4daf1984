"""
Running the suite: check, then time, both implementations side by side.

For every timed workload:

1. *Setup* runs once per implementation (:mod:`txdefer.bench.spec`).
2. *Check*: each implementation runs the workload twice; both runs must give the
   same outcome, and the outcome must be the same on both implementations
   (:mod:`txdefer.bench.outcome`).  Otherwise :class:`ResultMismatch` is raised and
   nothing is timed.
3. *Calibrate*: per implementation, the loop count for which one timing lasts at
   least the mode's target (:mod:`txdefer.bench.timing`).
4. *Time*: the mode's number of rounds; in each round both implementations are
   timed, one after the other, in the same process, the order alternating from
   round to round.  Every timing starts from the same collector state.
5. *Re-check*: one more run per implementation must still give the checked outcome
   (catches state that drifts over many iterations).

Memory workloads are checked the same way, then measured in fresh interpreters
(:mod:`txdefer.bench.memory`).
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from importlib import metadata
from typing import Any

from txdefer.bench import memory as memory_module
from txdefer.bench.impls import BOTH, TWISTED, TXDEFER, Implementation, ensure_distinct
from txdefer.bench.modes import Mode
from txdefer.bench.progress import Progress, SilentProgress
from txdefer.bench.registry import select
from txdefer.bench.results import MemoryResult, SideTiming, SuiteResult, TimedResult
from txdefer.bench.spec import AnyWorkload, Case, MemoryWorkload, Workload
from txdefer.bench.timing import calibrate, time_loops


class ResultMismatch(AssertionError):
    """
    A workload's outcome differs between Twisted and txdefer (a txdefer bug, if the
    workload is deterministic), or between two runs on one implementation.
    """


class WorkloadFailed(RuntimeError):
    """
    A workload raised instead of returning.
    """


def run_suite(
    mode: Mode,
    workloads: Sequence[AnyWorkload] | None = None,
    progress: Progress | None = None,
    disable_gc: bool = False,
) -> SuiteResult:
    """
    Check and measure ``workloads`` (default: the whole registry) in ``mode``.
    """
    ensure_distinct()
    chosen = list(select() if workloads is None else workloads)
    result = SuiteResult(mode=mode, disable_gc=disable_gc, environment=environment())
    started = time.perf_counter()
    with progress or SilentProgress() as bar:
        bar.start(len(chosen))
        for workload in chosen:
            bar.advance(workload.name)
            if isinstance(workload, MemoryWorkload):
                result.memory.append(run_memory(workload, mode))
            else:
                result.timed.append(run_timed(workload, mode, disable_gc))
        bar.done()
    result.seconds = time.perf_counter() - started
    return result


def run_timed(workload: Workload, mode: Mode, disable_gc: bool = False) -> TimedResult:
    """
    Check, calibrate, time and re-check one timed workload; see the module docstring.
    """
    cases = {impl.key: workload.setup(impl.ns) for impl in BOTH}
    expected = check(workload, cases)

    sides = {}
    for impl in BOTH:
        run = cases[impl.key].run
        loops = mode.fixed_loops or calibrate(run, mode.target_seconds, disable_gc)
        sides[impl.key] = SideTiming(loops)

    for round_ in range(mode.rounds):
        for impl in BOTH if round_ % 2 == 0 else BOTH[::-1]:
            side = sides[impl.key]
            elapsed = time_loops(cases[impl.key].run, side.loops, disable_gc)
            side.seconds_per_op.append(elapsed / side.loops)

    for impl in BOTH:
        again = _attempt(workload, impl, cases[impl.key])
        if again != expected:
            raise ResultMismatch(
                f"{workload.name} on {impl.label}: after timing, the outcome changed "
                f"({difference(expected, again)})"
            )
    return TimedResult(workload.name, workload.group, workload.summary, sides, expected)


def check(workload: Workload, cases: dict[str, Case]) -> Any:
    """
    Run ``workload`` twice on each implementation; return the outcome, which must be
    the same for all four runs, or raise :class:`ResultMismatch`.
    """
    outcomes: dict[str, Any] = {}
    for impl in BOTH:
        first = _attempt(workload, impl, cases[impl.key])
        second = _attempt(workload, impl, cases[impl.key])
        if first != second:
            raise ResultMismatch(
                f"{workload.name} on {impl.label}: two runs gave different outcomes "
                f"({difference(first, second)})"
            )
        outcomes[impl.key] = first
    return _agree(workload.name, outcomes)


def check_memory(workload: MemoryWorkload, items: int = 10) -> Any:
    """
    Fill a small list on each implementation, fire what is in it, and return the
    outcome, which must be the same on both, or raise :class:`ResultMismatch`.
    """
    outcomes = {
        impl.key: _guarded(
            workload, impl, partial(_fill_and_fire, workload, impl, items)
        )
        for impl in BOTH
    }
    return _agree(workload.name, outcomes)


def run_memory(workload: MemoryWorkload, mode: Mode) -> MemoryResult:
    """
    Check one memory workload, then measure it ``mode.memory_rounds`` times per
    implementation, alternating, each in a fresh interpreter.
    """
    check_memory(workload)
    usage: dict[str, list[memory_module.MemoryUsage]] = {impl.key: [] for impl in BOTH}
    for round_ in range(mode.memory_rounds):
        for impl in BOTH if round_ % 2 == 0 else BOTH[::-1]:
            usage[impl.key].append(
                memory_module.measure(workload, impl.key, mode.memory_items)
            )
    return MemoryResult(workload.name, workload.group, workload.summary, usage)


def difference(expected: Any, got: Any, path: str = "outcome") -> str:
    """
    Where two outcomes first differ, e.g. ``outcome[1][0]: 456 != None``.
    """
    if type(expected) is type(got) and isinstance(expected, (list, tuple)):
        if len(expected) != len(got):
            return f"{path}: length {len(expected)} != {len(got)}"
        for index, (a, b) in enumerate(zip(expected, got)):
            if a != b:
                return difference(a, b, f"{path}[{index}]")
    if type(expected) is type(got) and isinstance(expected, dict):
        for key in sorted(set(expected) | set(got), key=repr):
            if expected.get(key) != got.get(key):
                return difference(expected.get(key), got.get(key), f"{path}[{key!r}]")
    return f"{path}: {_short(expected)} != {_short(got)}"


def environment() -> dict[str, Any]:
    """
    What the numbers depend on: interpreter, machine, versions.
    """
    import twisted

    try:
        ours = metadata.version("txdefer")
    except metadata.PackageNotFoundError:
        ours = "unknown"
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "twisted": twisted.__version__,
        "txdefer": ours,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _agree(name: str, outcomes: dict[str, Any]) -> Any:
    theirs, ours = outcomes[TWISTED.key], outcomes[TXDEFER.key]
    if theirs != ours:
        raise ResultMismatch(
            f"{name}: Twisted and txdefer disagree ({difference(theirs, ours)}; "
            f"left is Twisted, right is txdefer)"
        )
    return theirs


def _attempt(workload: Workload, impl: Implementation, case: Case) -> Any:
    return _guarded(workload, impl, lambda: case.check(case.run()))


def _guarded(
    workload: AnyWorkload, impl: Implementation, call: Callable[[], Any]
) -> Any:
    try:
        return call()
    except Exception as e:
        raise WorkloadFailed(f"{workload.name} on {impl.label} raised {e!r}") from e


def _fill_and_fire(workload: MemoryWorkload, impl: Implementation, items: int) -> Any:
    slots: list[Any] = [None] * items
    workload.fill(impl.ns, slots)
    return workload.fire(slots)


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
