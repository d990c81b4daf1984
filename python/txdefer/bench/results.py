"""
What a benchmark run found, and its JSON form.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from txdefer.bench.memory import MemoryUsage
from txdefer.bench.modes import Mode

#: The JSON layout's version; bump it when the layout changes.
SCHEMA = 1


@dataclass
class SideTiming:
    """
    One implementation's timings of one workload.

    :ivar loops: calls of the workload per timing.
    :ivar seconds_per_op: seconds per call, one entry per round.
    """

    loops: int
    seconds_per_op: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds_per_op)

    def as_dict(self) -> dict[str, Any]:
        return {
            "loops": self.loops,
            "median_s": self.median,
            "rounds_s": self.seconds_per_op,
        }


@dataclass
class TimedResult:
    """
    One timed workload, both implementations.

    :ivar sides: ``SideTiming`` by implementation key (``twisted``, ``txdefer``).
    :ivar outcome: what the workload produced, identical on both implementations
        (checked before timing); kept in memory, not written to JSON.
    """

    name: str
    group: str
    summary: str
    sides: dict[str, SideTiming]
    outcome: Any = field(repr=False)

    @property
    def ratios(self) -> list[float]:
        """
        Twisted's time over txdefer's, round by round: above 1, txdefer is faster.
        """
        return [
            twisted / ours
            for twisted, ours in zip(
                self.sides["twisted"].seconds_per_op,
                self.sides["txdefer"].seconds_per_op,
            )
        ]

    @property
    def speedup(self) -> float:
        return statistics.median(self.ratios)

    def as_dict(self) -> dict[str, Any]:
        ratios = self.ratios
        return {
            "name": self.name,
            "group": self.group,
            "summary": self.summary,
            "unit": "seconds per call of the workload",
            **{key: side.as_dict() for key, side in self.sides.items()},
            "speedup": {
                "median": statistics.median(ratios),
                "min": min(ratios),
                "max": max(ratios),
            },
            "results_identical": True,
        }


@dataclass
class MemoryResult:
    """
    One memory workload: per implementation, the median over the measurements.
    """

    name: str
    group: str
    summary: str
    usage: dict[str, list[MemoryUsage]]

    def rss(self, key: str) -> float:
        return statistics.median(u.rss_bytes for u in self.usage[key])

    def traced(self, key: str) -> float:
        return statistics.median(u.tracemalloc_bytes for u in self.usage[key])

    @property
    def ratio(self) -> float:
        """
        Twisted's RSS bytes per object over txdefer's: above 1, txdefer is smaller.
        """
        ours = self.rss("txdefer")
        return self.rss("twisted") / ours if ours > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "summary": self.summary,
            "unit": "bytes per object",
            **{
                key: {
                    "rss_bytes_per_item": self.rss(key),
                    "tracemalloc_bytes_per_item": self.traced(key),
                    "items": usages[0].items,
                    "measurements": [u.as_dict() for u in usages],
                }
                for key, usages in self.usage.items()
            },
            "rss_ratio": self.ratio,
            "results_identical": True,
        }


@dataclass
class SuiteResult:
    """
    A whole run: settings, environment, and every workload's result in order.
    """

    mode: Mode
    disable_gc: bool
    environment: dict[str, Any]
    timed: list[TimedResult] = field(default_factory=list)
    memory: list[MemoryResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.timed] + [r.name for r in self.memory]

    @property
    def geometric_mean_speedup(self) -> float | None:
        if not self.timed:
            return None
        return math.exp(statistics.fmean(math.log(r.speedup) for r in self.timed))

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "mode": self.mode.as_dict(),
            "gc_disabled_while_timing": self.disable_gc,
            "environment": self.environment,
            "duration_s": self.seconds,
            "geometric_mean_speedup": self.geometric_mean_speedup,
            "timed": [r.as_dict() for r in self.timed],
            "memory": [r.as_dict() for r in self.memory],
        }
