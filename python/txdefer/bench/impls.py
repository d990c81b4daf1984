"""
The two implementations under comparison.

An implementation is a namespace with the names of ``twisted.internet.defer``:
Twisted's own module, or the ``txdefer`` package.  Workloads only ever reach
Deferred machinery through such a namespace (``ns.Deferred``, ``ns.succeed``, ...),
so that each one is written once and runs on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import twisted.internet.defer as twisted_defer

import txdefer


@dataclass(frozen=True)
class Implementation:
    """
    One side of the comparison.

    :ivar key: short stable identifier, used in JSON output and on the command line.
    :ivar label: how tables and charts name it.
    :ivar ns: the namespace workloads take their Deferred machinery from.
    """

    key: str
    label: str
    ns: ModuleType


TWISTED = Implementation("twisted", "Twisted", twisted_defer)
TXDEFER = Implementation("txdefer", "txdefer", txdefer)

#: Both sides, reference first.
BOTH = (TWISTED, TXDEFER)

#: Every Deferred class a workload can hand back (subclasses included).
DEFERRED_TYPES = (twisted_defer.Deferred, txdefer.Deferred)


def by_key(key: str) -> Implementation:
    """
    The implementation called ``key`` ("twisted" or "txdefer").
    """
    for each in BOTH:
        if each.key == key:
            return each
    raise KeyError(f"no implementation called {key!r}; choose from twisted, txdefer")


def ensure_distinct() -> None:
    """
    Refuse to compare txdefer with itself.

    After ``txdefer.install()``, ``twisted.internet.defer`` hands out txdefer's
    classes and the "Twisted" side would measure txdefer.  The benchmark process
    must never call ``install()``.
    """
    if txdefer.installed() or twisted_defer.Deferred is not DEFERRED_TYPES[0]:
        raise RuntimeError(
            "txdefer.install() is in effect in this process: twisted.internet.defer "
            "is txdefer, so there is nothing to compare against. Run the benchmark "
            "in a process that does not call install()."
        )
