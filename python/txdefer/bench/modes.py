"""
How much measuring a run does: ``full`` (the default), ``quick`` and ``smoke``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Mode:
    """
    :ivar rounds: timings per implementation per workload; the two implementations
        alternate, round by round.
    :ivar target_seconds: each timing loops the workload enough times to last at
        least this long (calibrated once per workload and implementation).
    :ivar fixed_loops: if set, loop this many times instead of calibrating.
    :ivar memory_items: objects built per memory measurement.
    :ivar memory_rounds: fresh-interpreter measurements per implementation.
    """

    name: str
    rounds: int
    target_seconds: float
    fixed_loops: int | None
    memory_items: int
    memory_rounds: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


FULL = Mode(
    "full",
    rounds=7,
    target_seconds=0.05,
    fixed_loops=None,
    memory_items=200_000,
    memory_rounds=3,
)
QUICK = Mode(
    "quick",
    rounds=3,
    target_seconds=0.02,
    fixed_loops=None,
    memory_items=100_000,
    memory_rounds=1,
)
#: Only checks that every workload runs and agrees across implementations.
SMOKE = Mode(
    "smoke",
    rounds=1,
    target_seconds=0.0,
    fixed_loops=2,
    memory_items=2_000,
    memory_rounds=1,
)

MODES = {mode.name: mode for mode in (FULL, QUICK, SMOKE)}
