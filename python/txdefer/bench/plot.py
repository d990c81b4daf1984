"""
The chart: speed-up per workload as horizontal bars, on a log scale, with a line at
1x (no change).  Needs ``matplotlib`` (the ``bench`` extra); the format follows the
file name's extension (``.png``, ``.svg``, anything matplotlib can write).
"""

from __future__ import annotations

from pathlib import Path

from txdefer.bench.results import SuiteResult

_TICKS = (0.1, 0.2, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 50, 100)


class PlottingUnavailable(RuntimeError):
    """
    ``matplotlib`` is not installed.
    """


def save_chart(result: SuiteResult, path: str | Path) -> None:
    """
    Draw the speed-up of every timed workload (median over rounds, with the
    min–max range as an error bar) and the memory ratio, and save it to ``path``.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    except ImportError as e:
        raise PlottingUnavailable(
            "--plot needs matplotlib: pip install 'txdefer[bench]'"
        ) from e

    labels, medians, lows, highs = [], [], [], []
    for r in result.timed:
        ratios = r.ratios
        labels.append(r.name)
        medians.append(r.speedup)
        lows.append(r.speedup - min(ratios))
        highs.append(max(ratios) - r.speedup)
    for m in result.memory:
        labels.append(f"{m.name} (memory)")
        medians.append(m.ratio)
        lows.append(0.0)
        highs.append(0.0)

    # Top to bottom in registry order.
    labels.reverse()
    for values in (medians, lows, highs):
        values.reverse()
    colours = ["#2e7d32" if value >= 1 else "#c62828" for value in medians]

    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * len(labels)))
    positions = list(range(len(labels)))
    # Bars grow from the 1x line: right when txdefer is faster, left when slower.
    ax.barh(
        positions,
        [value - 1 for value in medians],
        left=1,
        xerr=[lows, highs],
        color=colours,
        ecolor="#555555",
        capsize=2,
        height=0.7,
    )
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(positions, labels, fontsize=8)
    ax.set_ylim(-0.7, len(labels) - 0.3)

    smallest = min([*(m - lo for m, lo in zip(medians, lows)), 1.0])
    largest = max([*(m + hi for m, hi in zip(medians, highs)), 1.0])
    ax.set_xlim(smallest / 1.6, largest * 1.6)
    ticks = [t for t in _TICKS if smallest / 1.6 <= t <= largest * 1.6]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(
        "speed-up = Twisted time / txdefer time (log scale); "
        "memory: Twisted bytes / txdefer bytes"
    )
    env = result.environment
    ax.set_title(
        f"txdefer vs Twisted {env['twisted']}: right of 1x, txdefer is faster "
        f"(Python {env['python']}, {result.mode.name} run)",
        fontsize=10,
    )
    for y, value, low, high in zip(positions, medians, lows, highs):
        if value >= 1:
            where, offset, align = value + high, 4, "left"
        else:
            where, offset, align = value - low, -4, "right"
        ax.annotate(
            f"{value:.2f}x",
            (where, y),
            xytext=(offset, 0),
            textcoords="offset points",
            va="center",
            ha=align,
            fontsize=7,
        )
    ax.grid(axis="x", alpha=0.25)
    fig.tight_layout()
    fig.savefig(Path(path))
    plt.close(fig)
