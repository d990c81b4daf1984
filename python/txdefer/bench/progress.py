"""
Progress indicators: one line per workload, or a ``rich`` progress bar.

``rich`` is optional (the ``bench`` extra); without it, or when the stream is not a
terminal, progress is plain text lines.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from typing_extensions import Self


class Progress:
    """
    The protocol: used as a context manager; ``start(total)`` once, ``advance(label)``
    when each workload starts, ``done()`` at the end.  This base class shows nothing.
    """

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def start(self, total: int) -> None:
        pass

    def advance(self, label: str) -> None:
        pass

    def done(self) -> None:
        pass


SilentProgress = Progress


class PlainProgress(Progress):
    """
    ``[ 3/28] chain_fires_at_end`` lines, then the elapsed time.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._total = 0
        self._count = 0
        self._started = 0.0

    def start(self, total: int) -> None:
        self._total = total
        self._started = time.perf_counter()

    def advance(self, label: str) -> None:
        self._count += 1
        width = len(str(self._total))
        print(
            f"[{self._count:>{width}}/{self._total}] {label}",
            file=self._stream,
            flush=True,
        )

    def done(self) -> None:
        elapsed = time.perf_counter() - self._started
        print(f"done in {elapsed:.1f} s", file=self._stream, flush=True)


class RichProgress(Progress):
    """
    A ``rich`` progress bar naming the workload being measured.
    """

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import (
            Progress as Bar,
        )

        self._bar = Bar(
            SpinnerColumn(),
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self._task: Any = None
        self._begun = False

    def __enter__(self) -> Self:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:  # noqa: PYI036
        self._bar.__exit__(*exc_info)

    def start(self, total: int) -> None:
        self._task = self._bar.add_task("", total=total)

    def advance(self, label: str) -> None:
        if self._begun:
            self._bar.advance(self._task)
        self._begun = True
        self._bar.update(self._task, description=label)

    def done(self) -> None:
        if self._begun:
            self._bar.advance(self._task)
        self._bar.update(self._task, description="done")


def make_progress(stream: TextIO | None = None, fancy: bool | None = None) -> Progress:
    """
    A rich progress bar if ``rich`` is installed and ``stream`` (default: stderr) is a
    terminal, plain lines otherwise.  ``fancy`` forces the choice (``True`` still
    falls back to plain lines without ``rich``).
    """
    stream = stream or sys.stderr
    if fancy is None:
        fancy = stream.isatty()
    if fancy:
        try:
            return RichProgress(stream)
        except ImportError:
            pass
    return PlainProgress(stream)
