"""
``python -m txdefer bench``: the command line of the benchmark suite.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

from txdefer.bench.modes import FULL, QUICK, SMOKE
from txdefer.bench.progress import SilentProgress, make_progress
from txdefer.bench.registry import select
from txdefer.bench.report import print_report, write_json
from txdefer.bench.runner import ResultMismatch, WorkloadFailed, run_suite


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Time txdefer against Twisted's own twisted.internet.defer, workload by "
            "workload, alternating the two in the same process; check first that "
            "both give identical results."
        ),
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--quick", action="store_true", help="fewer, shorter rounds (under a minute)"
    )
    how.add_argument(
        "--smoke",
        action="store_true",
        help="tiny loop counts and one round: only check that every workload runs "
        "and gives identical results on both implementations",
    )
    p.add_argument(
        "--filter",
        metavar="SUBSTRING",
        help="only workloads whose name contains SUBSTRING",
    )
    p.add_argument(
        "--json", metavar="PATH", help="write every measurement to PATH as JSON"
    )
    p.add_argument(
        "--plot",
        metavar="PATH",
        help="draw the speed-up chart to PATH (.png or .svg; needs matplotlib, "
        "skipped in a --smoke run without it)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="timing rounds per workload (default: 7; 3 with --quick)",
    )
    p.add_argument(
        "--no-gc",
        action="store_true",
        help="switch the garbage collector off while timing (as timeit does); "
        "by default it stays on, as in a real program",
    )
    p.add_argument(
        "--format",
        choices=("auto", "rich", "plain", "markdown"),
        default="auto",
        help="table style; auto: rich if installed and printing to a terminal, "
        "plain otherwise",
    )
    p.add_argument("--quiet", action="store_true", help="no progress indicator")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    return p


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    args = parser(prog).parse_args(argv)
    workloads = select(args.filter)

    if args.list:
        for workload in workloads:
            print(f"{workload.name:<24} {workload.group:<12} {workload.summary}")
        return 0
    if not workloads:
        print(f"no workload name contains {args.filter!r}; see --list", file=sys.stderr)
        return 2

    mode = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.rounds:
        mode = replace(mode, rounds=args.rounds)

    plot = args.plot
    if plot and not _have_matplotlib():
        if not args.smoke:
            raise SystemExit("--plot needs matplotlib: pip install 'txdefer[bench]'")
        print("smoke run without matplotlib: no chart", file=sys.stderr)
        plot = None

    progress = SilentProgress() if args.quiet else make_progress()
    try:
        result = run_suite(mode, workloads, progress=progress, disable_gc=args.no_gc)
    except (ResultMismatch, WorkloadFailed) as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1

    print_report(result, style=args.format)
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if plot:
        from txdefer.bench.plot import save_chart

        save_chart(result, plot)
        print(f"wrote {plot}", file=sys.stderr)
    return 0


def _have_matplotlib() -> bool:
    """
    Whether the chart can be drawn; checked before measuring, not after.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True
