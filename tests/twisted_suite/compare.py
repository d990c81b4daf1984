#!/usr/bin/env python3
"""
Run any of Twisted's tests twice, on txdefer and on Twisted's own ``Deferred``,
and show every test whose outcome differs.

Usage: python tests/twisted_suite/compare.py PACKAGE_OR_MODULE...

For example, most of Twisted (about 10,000 tests; some minutes)::

    python tests/twisted_suite/compare.py twisted.test twisted.internet twisted.web \\
        twisted.protocols twisted.python twisted.trial twisted.spread twisted.names \\
        twisted.mail twisted.words twisted.application twisted.cred twisted.logger

Both runs go through ``run_trial.py`` (``--stock`` for the baseline), each in its
own interpreter and working directory, in parallel.  Tests that use shared system
resources (a TUN device, fixed ports) can fail when the two runs collide: run the
modules concerned again alone before reading anything into them.  Not part of the
test suite, which runs Twisted's Deferred test modules (``test_twisted_suite.py``).
Exit status: 0 when every outcome is the same, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("modules", nargs="+")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for side in ("stock", "txdefer"):
            workdir = Path(tmp) / side
            workdir.mkdir()
            report = workdir / "outcomes.json"
            command = [sys.executable, str(HERE / "run_trial.py"), "--json", str(report)]
            if side == "stock":
                command.append("--stock")
            runs[side] = (
                subprocess.Popen(
                    [*command, *options.modules],
                    cwd=workdir,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ),
                report,
            )
        outcomes = {}
        for side, (proc, report) in runs.items():
            proc.wait()
            if not report.exists():
                print(f"the {side} run did not report (exit status {proc.returncode})")
                return 2
            data = json.loads(report.read_text())
            assert data["installed"] is (side == "txdefer")
            outcomes[side] = data["outcomes"]

    stock, ours = outcomes["stock"], outcomes["txdefer"]
    differing = sorted(
        test for test in stock.keys() | ours.keys() if stock.get(test) != ours.get(test)
    )
    for test in differing:
        print(f"{test}: Twisted {stock.get(test, 'not run')}, txdefer {ours.get(test, 'not run')}")
    counts = {}
    for outcome in ours.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    print(f"{len(ours)} tests on txdefer ({summary}); {len(differing)} differ from Twisted's own Deferred")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
