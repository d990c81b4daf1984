"""
Twisted's own Deferred test modules, run with ``txdefer.install()`` in effect.

Each module runs under trial in a fresh interpreter (``run_trial.py`` installs txdefer
before any other Twisted import and checks it took effect).  Every test must pass,
except those in ``tests.known_differences.TWISTED_SUITE``, which must fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.known_differences import TWISTED_SUITE as KNOWN_DIFFERENCES

HERE = Path(__file__).parent

#: Twisted's test modules run here and how many tests each holds in Twisted 26.10.0.
MODULES = {
    "twisted.test.test_defer": 181,
    "twisted.internet.test.test_defer_await": 10,
    "twisted.internet.test.test_defer_yieldfrom": 7,
    "twisted.internet.test.test_inlinecb": 60,
    "twisted.test.test_task": 66,
    # How trial's reporter trims the frames of Twisted's Deferred from the
    # tracebacks of failing tests (the rest of that module tests the reporter alone).
    "twisted.trial.test.test_reporter.TracebackHandlingTests": 6,
}


def test_module_counts_add_up() -> None:
    assert sum(MODULES.values()) == 330


@pytest.mark.parametrize("module", sorted(MODULES))
def test_twisted_module_passes_on_txdefer(module: str, tmp_path: Path) -> None:
    report = tmp_path / "outcomes.json"
    proc = subprocess.run(
        [sys.executable, str(HERE / "run_trial.py"), "--json", str(report), module],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert report.exists(), f"trial did not report:\n{proc.stdout}\n{proc.stderr}"
    data = json.loads(report.read_text())
    assert data["installed"] is True
    outcomes: dict[str, str] = data["outcomes"]
    assert len(outcomes) == MODULES[module], proc.stdout[-3000:]

    known = {k: v for k, v in KNOWN_DIFFERENCES.items() if k.startswith(module + ".")}
    unexpected = {t: o for t, o in outcomes.items() if o != "pass" and t not in known}
    fixed = [t for t in known if outcomes.get(t) == "pass"]
    assert not unexpected, f"{unexpected}\n{proc.stdout[-6000:]}"
    assert not fixed, f"listed as known differences but now passing: {fixed}"
    assert proc.returncode == (1 if known else 0), proc.stdout[-3000:]


def test_compare_runs_both_sides_and_reports_differences(tmp_path: Path) -> None:
    """
    ``compare.py`` (the tool for the rest of Twisted's tests) runs a module on
    Twisted's Deferred and on txdefer and lists the tests whose outcomes differ.
    """
    same = subprocess.run(
        [sys.executable, str(HERE / "compare.py"), "twisted.internet.test.test_defer_yieldfrom"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.strip().endswith("7 tests on txdefer (7 pass); 0 differ from Twisted's own Deferred")
    trimming = "twisted.trial.test.test_reporter.TracebackHandlingTests"
    differing = subprocess.run(
        [sys.executable, str(HERE / "compare.py"), trimming],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert differing.returncode == 1, differing.stdout + differing.stderr
    listed = [line.split(":")[0] for line in differing.stdout.splitlines()[:-1]]
    assert sorted(listed) == sorted(k for k in KNOWN_DIFFERENCES if k.startswith(trimming + "."))
