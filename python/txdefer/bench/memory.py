"""
Memory per object: what one pending Deferred with one callback costs.

Each measurement runs in a fresh interpreter (:mod:`txdefer.bench._probe`) so that
neither implementation inherits the other's freed memory.  In it, N objects are built
and kept alive in a list allocated beforehand, and the growth is measured twice:

* **RSS** (resident set size, from ``/proc/self/statm``, or peak RSS from
  ``getrusage`` where there is no ``/proc``): everything, including what the Rust
  side allocates with the system allocator.  This is the headline number.
* **tracemalloc**: only what goes through Python's allocators.  txdefer's Rust-side
  allocations are invisible to it, so it undercounts txdefer; it is reported for
  comparison with the RSS figure.

The RSS pass runs first, without tracemalloc (which allocates its own bookkeeping),
then the list is dropped and refilled under tracemalloc.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tracemalloc
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import txdefer
from txdefer.bench.spec import MemoryWorkload

WORKLOADS: list[MemoryWorkload] = []


def _callback(result: Any) -> Any:
    return result * 2


def fill_pending_callback(ns: ModuleType, slots: list[Any]) -> None:
    """
    Pending ``Deferred()`` objects, each with one ``addCallback(f)``, kept alive in
    a list: what a server holding many outstanding requests carries.
    """
    Deferred = ns.Deferred
    for i in range(len(slots)):
        d = Deferred()
        d.addCallback(_callback)
        slots[i] = d


def fire_with_index(slots: list[Any]) -> list[Any]:
    """
    Fire every Deferred of ``slots`` with its index; return their results.
    """
    from txdefer.bench.outcome import outcome

    for i, d in enumerate(slots):
        d.callback(i)
    return [outcome(d) for d in slots]


WORKLOADS.append(
    MemoryWorkload(
        name="mem_pending_callback",
        group="memory",
        fill=fill_pending_callback,
        fire=fire_with_index,
    )
)


@dataclass(frozen=True)
class MemoryUsage:
    """
    Bytes per object, by both methods, for one implementation.
    """

    rss_bytes: float
    tracemalloc_bytes: float
    items: int

    def as_dict(self) -> dict[str, float]:
        return {
            "rss_bytes_per_item": self.rss_bytes,
            "tracemalloc_bytes_per_item": self.tracemalloc_bytes,
            "items": self.items,
        }


def _rss() -> int:
    """
    The current resident set size in bytes; the peak one where ``/proc`` is missing.
    """
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def measure_here(workload: MemoryWorkload, ns: ModuleType, items: int) -> MemoryUsage:
    """
    Measure ``workload`` in this process.  Meaningful only in a fresh interpreter:
    use :func:`measure` from anywhere else.
    """
    workload.fill(ns, [None] * 1000)  # warm up: lazy imports, type caches
    slots: list[Any] = [None] * items
    gc.collect()
    before = _rss()
    workload.fill(ns, slots)
    gc.collect()
    rss = _rss() - before

    del slots
    gc.collect()
    slots = [None] * items
    tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    workload.fill(ns, slots)
    traced = tracemalloc.get_traced_memory()[0] - traced_before
    tracemalloc.stop()
    return MemoryUsage(rss / items, traced / items, items)


def measure(workload: MemoryWorkload, impl_key: str, items: int) -> MemoryUsage:
    """
    Measure ``workload`` on the implementation ``impl_key`` in a fresh interpreter
    (this Python, importing the same txdefer as this process).
    """
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(txdefer.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [package_root, env.get("PYTHONPATH")])
    )
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "txdefer.bench._probe",
            workload.name,
            impl_key,
            str(items),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"memory measurement {workload.name} on {impl_key} failed "
            f"(exit {completed.returncode}):\n{completed.stderr}"
        )
    data = json.loads(completed.stdout)
    return MemoryUsage(
        data["rss_bytes_per_item"], data["tracemalloc_bytes_per_item"], items
    )
