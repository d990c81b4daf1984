"""
The benchmark suite's smoke test: every workload runs on both implementations and
produces the same outcome, and a ``--smoke`` run reports every workload.  Nothing
here asserts anything about timings.

The ``bench`` extra (rich, matplotlib) is hidden from these tests: the smoke run
must work without it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from txdefer.bench import REGISTRY, SMOKE
from txdefer.bench.cli import main
from txdefer.bench.impls import BOTH
from txdefer.bench.runner import run_timed
from txdefer.bench.spec import MemoryWorkload, Workload

TIMED = [w for w in REGISTRY if isinstance(w, Workload)]
MEMORY = [w for w in REGISTRY if isinstance(w, MemoryWorkload)]


@pytest.fixture
def without_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Make ``import rich`` and ``import matplotlib`` fail, as without the extra.
    """
    for name in list(sys.modules):
        if name.split(".")[0] in ("rich", "matplotlib"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.mark.parametrize("workload", TIMED, ids=lambda w: w.name)
def test_timed_workload_same_outcome(workload: Workload) -> None:
    """
    Twisted and txdefer produce the same outcome, twice in a row, and still do after
    a smoke timing.
    """
    outcomes = {}
    for impl in BOTH:
        case = workload.setup(impl.ns)
        outcomes[impl.key] = [case.check(case.run()), case.check(case.run())]
    assert outcomes["twisted"][0] == outcomes["twisted"][1]
    assert outcomes["txdefer"] == outcomes["twisted"]
    assert run_timed(workload, SMOKE).outcome == outcomes["twisted"][0]


@pytest.mark.parametrize("workload", MEMORY, ids=lambda w: w.name)
def test_memory_workload_same_outcome(workload: MemoryWorkload) -> None:
    """
    The objects a memory workload builds behave the same once fired.
    """
    outcomes = {}
    for impl in BOTH:
        slots: list[object] = [None] * 10
        workload.fill(impl.ns, slots)
        outcomes[impl.key] = workload.fire(slots)
    assert outcomes["txdefer"] == outcomes["twisted"]


def test_smoke_run_reports_every_workload(
    without_extra: None, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """
    ``--smoke`` runs every workload of the registry, prints each in the table and
    writes each to the JSON report, marked as giving identical results.  Without
    matplotlib it skips the chart instead of failing.
    """
    report, chart = tmp_path / "smoke.json", tmp_path / "smoke.png"
    assert main(["--smoke", "--json", str(report), "--plot", str(chart)]) == 0
    assert not chart.exists()

    data = json.loads(report.read_text(encoding="utf-8"))
    entries = data["timed"] + data["memory"]
    assert [e["name"] for e in entries] == [w.name for w in REGISTRY]
    assert all(e["results_identical"] for e in entries)
    assert data["mode"]["name"] == "smoke"

    printed = capsys.readouterr()
    for workload in REGISTRY:
        assert workload.name in printed.out
        assert workload.name in printed.err  # the progress lines


def test_plot_without_matplotlib_fails_before_measuring(
    without_extra: None, tmp_path
) -> None:
    """
    Asking for a chart without the extra stops at once, with the install hint.
    """
    with pytest.raises(SystemExit, match="matplotlib"):
        main(["--quick", "--plot", str(tmp_path / "chart.png")])


def test_floors_script_reports_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    """
    ``benches/floors.py --quick`` measures Twisted, txdefer and the floor of each of
    its cases, and the three agree on what each case computes.
    """
    path = Path(__file__).resolve().parent / "floors.py"
    spec = importlib.util.spec_from_file_location("floors", path)
    assert spec is not None and spec.loader is not None
    floors = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floors)
    for name, variants in floors.CASES.items():
        twisted_result = variants["Twisted"]()
        ours = variants["txdefer"]()
        outcomes = []
        for d in (twisted_result, ours):
            seen: list[object] = []
            d.addBoth(seen.append)
            outcomes.append(seen)
        assert outcomes[0] == outcomes[1], name
    assert floors.main(["--quick"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0][2:] for row in rows[2:]] == list(floors.CASES)


@pytest.mark.parametrize("impl", ["twisted", "txdefer"])
def test_instructions_script_runs_a_workload(impl: str) -> None:
    """
    ``benches/instructions.py --run`` (what it runs under callgrind) calls a workload
    of either implementation; and the number of calls it measures stays in range.
    (The counting itself needs valgrind and is not run here.)
    """
    path = Path(__file__).resolve().parent / "instructions.py"
    spec = importlib.util.spec_from_file_location("instructions", path)
    assert spec is not None and spec.loader is not None
    instructions = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(instructions)
    assert instructions.main(["--run", impl, "chained_already_fired", "3"]) == 0
    assert 10 <= instructions.calls_for("lock_waiters_1000") <= 20_000
