#!/usr/bin/env python3
"""
Instructions per call of a workload, for Twisted and txdefer:
``python benches/instructions.py chained_already_fired create_callback_fire``.

Timings on a shared machine move by 5-15% between runs; instruction counts do not.
For each workload and implementation this runs the workload under valgrind's
callgrind twice, 0 and ``--calls`` times (with ``PYTHONHASHSEED=0``), and divides
the difference by the number of calls: what one call costs, start-up excluded.  It
also reports how much of txdefer's count is spent in the extension itself
(``_core``, self cost), the most any change to txdefer's Rust code could remove.

Needs ``valgrind`` (with ``callgrind_annotate``).  ``--run IMPL WORKLOAD N`` is the
inner mode callgrind executes: it calls the workload N times and exits.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

IMPLS = {"twisted": "twisted.internet.defer", "txdefer": "txdefer"}


def run(impl: str, workload: str, calls: int) -> None:
    """
    Call ``workload`` of ``impl`` ``calls`` times (the inner mode).
    """
    import importlib

    from txdefer.bench.registry import get

    ns = importlib.import_module(IMPLS[impl])
    go = get(workload).setup(ns).run
    for _ in range(calls):
        go()


def _profile(impl: str, workload: str, calls: int, out: Path) -> dict[str, int]:
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--run",
            impl,
            workload,
            str(calls),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    report = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(out)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    total = re.search(r"([\d,]+) \([ \d.]+%\)\s+PROGRAM TOTALS", report)
    counts = {"total": int(total.group(1).replace(",", "")) if total else 0, "_core": 0}
    for line in report.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+.*\[(.*)\]\s*$", line)
        if m and "_core" in m.group(2).rsplit("/", 1)[-1]:
            counts["_core"] += int(m.group(1).replace(",", ""))
    return counts


def per_call(impl: str, workload: str, calls: int) -> dict[str, int]:
    """
    Instructions per call of ``workload`` on ``impl``: in total and in ``_core``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        base = _profile(impl, workload, 0, Path(tmp) / "base.out")
        full = _profile(impl, workload, calls, Path(tmp) / "full.out")
    return {key: round((full[key] - base[key]) / calls) for key in base}


def calls_for(workload: str) -> int:
    """
    How many calls to measure: about 0.2 s of Twisted's time (some 10 s under
    callgrind), between 10 and 20,000.
    """
    import importlib
    import timeit

    from txdefer.bench.registry import get

    go = get(workload).setup(importlib.import_module(IMPLS["twisted"])).run
    number, seconds = timeit.Timer(go).autorange()
    return max(10, min(20_000, int(0.2 / (seconds / number))))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workloads", nargs="*", help="workload names (see --list)")
    parser.add_argument("--calls", type=int, help="calls measured (default: about 0.2 s of Twisted's)")
    parser.add_argument("--run", nargs=3, metavar=("IMPL", "WORKLOAD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        impl, workload, n = args.run
        run(impl, workload, int(n))
        return 0
    if not args.workloads:
        parser.error("name at least one workload")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 2
    print("| workload | Twisted | txdefer | of which `_core` | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for workload in args.workloads:
        calls = args.calls or calls_for(workload)
        twisted = per_call("twisted", workload, calls)
        ours = per_call("txdefer", workload, calls)
        print(
            f"| {workload} | {twisted['total']:,} | {ours['total']:,} | {ours['_core']:,} "
            f"| {twisted['total'] / ours['total']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    try:
        import txdefer  # noqa: F401
    except ImportError:  # from a checkout, with the extension built in place
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    sys.exit(main(sys.argv[1:]))
