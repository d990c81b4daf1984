"""
Timing one callable: loop-count calibration and a consistent garbage-collector state.

Every timing, on either side, starts from the same collector state: a full
collection, then ``gc.freeze()`` so that objects which existed before the timing
(both implementations' setup, the interpreter's own) are not traversed again by
collections triggered while timing.  The collector stays enabled while timing, as in
a real program, so each implementation pays for the cyclic garbage it creates; with
``disable_gc=True`` it is switched off instead, as ``timeit`` does.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import repeat
from time import perf_counter
from typing import Any


@contextmanager
def gc_state(disable_gc: bool = False) -> Iterator[None]:
    """
    The collector state every timing runs in; see the module docstring.
    """
    gc.collect()
    gc.freeze()
    was_enabled = gc.isenabled()
    if disable_gc:
        gc.disable()
    try:
        yield
    finally:
        if disable_gc and was_enabled:
            gc.enable()
        gc.unfreeze()


def time_loops(run: Callable[[], Any], loops: int, disable_gc: bool = False) -> float:
    """
    Seconds taken by ``loops`` calls of ``run``.
    """
    with gc_state(disable_gc):
        started = perf_counter()
        for _ in repeat(None, loops):
            run()
        return perf_counter() - started


def calibrate(run: Callable[[], Any], target: float, disable_gc: bool = False) -> int:
    """
    A loop count for which ``time_loops(run, loops)`` takes at least ``target``
    seconds.  Starts at one loop and grows (by at least 2x, at most 10x per step),
    so calibrating also warms ``run`` up.
    """
    loops = 1
    while True:
        elapsed = time_loops(run, loops, disable_gc)
        if elapsed >= target:
            return loops
        wanted = math.ceil(loops * target * 1.2 / max(elapsed, 1e-9))
        loops = max(loops * 2, min(loops * 10, wanted))
