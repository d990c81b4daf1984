"""
txdefer's benchmark suite: txdefer against Twisted's own ``twisted.internet.defer``.

Run it with ``python -m txdefer bench`` (``--help`` for the options).  The parts:

* :mod:`~txdefer.bench.spec`: what a workload is; :mod:`~txdefer.bench.outcome`:
  comparing what workloads produce across implementations;
* :mod:`~txdefer.bench.workloads` (Twisted's benchmark shapes, micro-benchmarks,
  Deferred helpers), :mod:`~txdefer.bench.macro` (request handlers),
  :mod:`~txdefer.bench.memory` (bytes per Deferred); :mod:`~txdefer.bench.registry`
  lists them all;
* :mod:`~txdefer.bench.timing`, :mod:`~txdefer.bench.runner`: checking and timing;
* :mod:`~txdefer.bench.report`, :mod:`~txdefer.bench.plot`,
  :mod:`~txdefer.bench.progress`, :mod:`~txdefer.bench.cli`: presenting.

Nothing here calls ``txdefer.install()``: both implementations live side by side in
one process.  ``rich`` and ``matplotlib`` (the ``bench`` extra) are optional.
"""

from __future__ import annotations

from txdefer.bench.cli import main
from txdefer.bench.modes import FULL, QUICK, SMOKE, Mode
from txdefer.bench.registry import REGISTRY, get, select
from txdefer.bench.runner import ResultMismatch, WorkloadFailed, run_suite

__all__ = [
    "FULL",
    "QUICK",
    "REGISTRY",
    "SMOKE",
    "Mode",
    "ResultMismatch",
    "WorkloadFailed",
    "get",
    "main",
    "run_suite",
    "select",
]
