"""
Every workload of the suite, in report order.
"""

from __future__ import annotations

from txdefer.bench import macro, memory, workloads
from txdefer.bench.spec import AnyWorkload

REGISTRY: tuple[AnyWorkload, ...] = (
    *workloads.WORKLOADS,
    *macro.WORKLOADS,
    *memory.WORKLOADS,
)

_BY_NAME = {each.name: each for each in REGISTRY}
if len(_BY_NAME) != len(REGISTRY):
    raise RuntimeError("two workloads share a name")


def get(name: str) -> AnyWorkload:
    """
    The workload called ``name``.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no workload called {name!r}") from None


def select(substring: str | None = None) -> list[AnyWorkload]:
    """
    The workloads whose name contains ``substring`` (all of them for ``None``).
    """
    return [each for each in REGISTRY if substring is None or substring in each.name]
