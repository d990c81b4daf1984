"""
Presenting a run: the printed tables and the JSON file.

The timed table has, per workload, the median time per call on each implementation
and the speed-up (Twisted's time over txdefer's: above 1x, txdefer is faster) as the
median over rounds, with the smallest and largest round ratio.  The memory table has
bytes per object from RSS growth (the headline) and from tracemalloc.

Tables are drawn with ``rich`` when it is installed and the output is a terminal, as
plain text otherwise (or as Markdown, on request).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from txdefer.bench.results import MemoryResult, SuiteResult, TimedResult

TIMED_HEADER = ("Workload", "Twisted", "txdefer", "Speed-up", "Range")
MEMORY_HEADER = (
    "Workload",
    "Twisted",
    "txdefer",
    "Ratio",
    "Twisted (tracemalloc)",
    "txdefer (tracemalloc)",
)


def format_seconds(seconds: float) -> str:
    """
    ``1.23 µs``-style, three significant digits.
    """
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_bytes(count: float) -> str:
    return f"{count:,.0f} B"


def timed_rows(result: SuiteResult) -> list[tuple[str, ...]]:
    return [_timed_row(r) for r in result.timed]


def memory_rows(result: SuiteResult) -> list[tuple[str, ...]]:
    return [_memory_row(r) for r in result.memory]


def _timed_row(r: TimedResult) -> tuple[str, ...]:
    ratios = r.ratios
    return (
        r.name,
        format_seconds(r.sides["twisted"].median),
        format_seconds(r.sides["txdefer"].median),
        f"{r.speedup:.2f}x",
        f"{min(ratios):.2f}–{max(ratios):.2f}",
    )


def _memory_row(r: MemoryResult) -> tuple[str, ...]:
    return (
        r.name,
        format_bytes(r.rss("twisted")),
        format_bytes(r.rss("txdefer")),
        f"{r.ratio:.2f}x",
        format_bytes(r.traced("twisted")),
        format_bytes(r.traced("txdefer")),
    )


def summary_lines(result: SuiteResult) -> list[str]:
    mode = result.mode
    lines = [
        f"{mode.name} run: {mode.rounds} round(s) per workload, "
        + (
            f"{mode.fixed_loops} loop(s) per timing"
            if mode.fixed_loops
            else f"timings >= {mode.target_seconds * 1000:g} ms"
        )
        + f", garbage collector {'off' if result.disable_gc else 'on'} while timing; "
        f"took {result.seconds:.1f} s.",
        (
            "Times are per call of the workload (median over rounds). Speed-up = "
            "Twisted time / txdefer time, median over rounds; range = min–max round."
        ),
    ]
    mean = result.geometric_mean_speedup
    if mean is not None:
        slower = [r.name for r in result.timed if r.speedup < 1]
        lines.append(
            f"Geometric mean speed-up: {mean:.2f}x over {len(result.timed)} workloads"
            + (
                f"; txdefer slower on: {', '.join(slower)}."
                if slower
                else "; txdefer faster on all."
            )
        )
    if mode.fixed_loops:
        lines.append(
            "Smoke mode: the times are not meaningful, only that results are identical."
        )
    env = result.environment
    lines.append(
        f"Python {env['python']} ({env['implementation']}), {env['platform']}; "
        f"Twisted {env['twisted']}, txdefer {env['txdefer']}."
    )
    return lines


def plain_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """
    A fixed-width text table: first column left-aligned, the others right-aligned.
    """
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """
    The same table as GitHub-flavoured Markdown.
    """
    align = ["---"] + ["---:"] * (len(header) - 1)
    return "\n".join(
        "| " + " | ".join(cells) + " |" for cells in [header, tuple(align), *rows]
    )


def print_report(
    result: SuiteResult, stream: TextIO | None = None, style: str = "auto"
) -> None:
    """
    Print the tables and the summary.  ``style`` is ``rich`` (if installed),
    ``plain``, ``markdown``, or ``auto``: rich when it is installed and ``stream``
    is a terminal, plain otherwise.
    """
    stream = stream or sys.stdout
    if style == "rich" or (style == "auto" and stream.isatty()):
        try:
            _print_rich(result, stream)
            return
        except ImportError:
            style = "plain"
    table = markdown_table if style == "markdown" else plain_table
    blocks = []
    if result.timed:
        blocks.append(table(TIMED_HEADER, timed_rows(result)))
    if result.memory:
        blocks.append(
            "Memory, bytes per object (RSS growth is the headline):\n\n"
            + table(MEMORY_HEADER, memory_rows(result))
        )
    blocks.append("\n".join(summary_lines(result)))
    print("\n\n".join(blocks), file=stream)


def _print_rich(result: SuiteResult, stream: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream)
    if result.timed:
        table = Table(title="Time per call: Twisted vs txdefer")
        for i, name in enumerate(TIMED_HEADER):
            table.add_column(name, justify="left" if i == 0 else "right")
        for r, row in zip(result.timed, timed_rows(result)):
            colour = "green" if r.speedup >= 1 else "red"
            table.add_row(*row[:3], f"[{colour}]{row[3]}[/]", row[4])
        console.print(table)
    if result.memory:
        table = Table(title="Memory per object (RSS growth is the headline)")
        for i, name in enumerate(MEMORY_HEADER):
            table.add_column(name, justify="left" if i == 0 else "right")
        for row in memory_rows(result):
            table.add_row(*row)
        console.print(table)
    for line in summary_lines(result):
        console.print(line, highlight=False)


def write_json(result: SuiteResult, path: str | Path) -> None:
    """
    Write the whole run (settings, environment, every round's timings) as JSON.
    """
    Path(path).write_text(
        json.dumps(result.as_dict(), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
