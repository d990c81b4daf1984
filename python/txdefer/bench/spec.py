"""
What a workload is.

A *timed workload* is a setup function of an implementation namespace ``ns`` (the
module ``twisted.internet.defer`` or the package ``txdefer``).  Setup runs once per
implementation, builds whatever the workload needs (classes, locks, queues, an event
loop) and returns a :class:`Case`: the callable to time, and how to turn what it
returns into an implementation-neutral outcome that can be compared across the two
implementations.

A *memory workload* fills a list with N objects built from ``ns``; the runner
measures how much memory each object costs (see :mod:`txdefer.bench.memory`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from txdefer.bench.outcome import outcome

Setup = Callable[[ModuleType], "Case"]
Fill = Callable[[ModuleType, list], None]


@dataclass(frozen=True)
class Case:
    """
    A workload made concrete for one implementation.

    :ivar run: one operation; this is what is timed.  It must leave no state behind
        that changes what the next call does.
    :ivar check: turns what ``run()`` returned into plain data.  Not timed.
    """

    run: Callable[[], Any]
    check: Callable[[Any], Any] = outcome


@dataclass(frozen=True)
class Workload:
    """
    A timed workload: see the module docstring.

    :ivar name: short, stable identifier (``await_succeed_1000``).
    :ivar group: ``twisted`` (Twisted's own benchmark shapes), ``micro``,
        ``collections`` or ``macro``.
    :ivar setup: builds the :class:`Case` for a namespace.
    """

    name: str
    group: str
    setup: Setup = field(repr=False)

    @property
    def summary(self) -> str:
        """
        The first line of the setup function's docstring: what the workload models.
        """
        return _first_paragraph(self.setup.__doc__)


@dataclass(frozen=True)
class MemoryWorkload:
    """
    A memory workload: ``fill(ns, slots)`` replaces every item of the list
    ``slots`` with a new object built from ``ns``, and keeps it alive there.

    :ivar fire: ``fire(slots)`` settles the objects of a small filled list and
        returns what they produced; used to check both implementations agree.
    """

    name: str
    group: str
    fill: Fill = field(repr=False)
    fire: Callable[[list], Any] = field(repr=False)

    @property
    def summary(self) -> str:
        return _first_paragraph(self.fill.__doc__)


AnyWorkload = Workload | MemoryWorkload


def collector(
    into: list[Workload], group: str
) -> Callable[[str], Callable[[Setup], Workload]]:
    """
    A decorator factory that turns setup functions into :class:`Workload` objects of
    ``group`` and appends them to ``into``::

        WORKLOADS = []
        workload = collector(WORKLOADS, "micro")

        @workload("deferred_create")
        def deferred_create(ns): ...
    """

    def workload(name: str) -> Callable[[Setup], Workload]:
        def register(setup: Setup) -> Workload:
            made = Workload(name=name, group=group, setup=setup)
            into.append(made)
            return made

        return register

    return workload


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())
