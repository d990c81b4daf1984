"""
The type stubs: they match the compiled module (mypy's stubtest), and
``Deferred[int]`` type-checks as Twisted users write it; the package itself
type-checks.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy")

ROOT = Path(__file__).resolve().parent.parent


def test_stub_matches_the_compiled_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "txdefer._core"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_package_type_checks(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
        + ["-p", "txdefer"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout


def test_deferred_of_int_type_checks(tmp_path: Path) -> None:
    stdout = _mypy_strict(
        tmp_path,
        """
        from txdefer import Deferred, succeed

        def add_one(x: int) -> int:
            return x + 1

        d: Deferred[int] = Deferred()
        d2: Deferred[int] = d.addCallback(add_one)
        reveal_type(d2)
        s: Deferred[str] = succeed("x")

        class Sub(Deferred[int]):
            pass
        """,
    )
    assert 'Revealed type is "txdefer._deferred.Deferred[int]"' in stdout


def test_primitives_type_check(tmp_path: Path) -> None:
    stdout = _mypy_strict(
        tmp_path,
        """
        from txdefer import Deferred, DeferredLock, DeferredQueue, DeferredSemaphore

        lock = DeferredLock()
        locked: bool = lock.locked
        acquired: Deferred[DeferredLock] = lock.acquire()
        queue: DeferredQueue[int] = DeferredQueue()
        queue.put(1)
        reveal_type(queue.get())
        tokens: int = DeferredSemaphore(2).tokens
        """,
    )
    assert 'Revealed type is "txdefer._deferred.Deferred[int]"' in stdout


def _mypy_strict(tmp_path: Path, source: str) -> str:
    """
    ``mypy --strict`` on ``source``; asserts it passes and returns its output.
    """
    sample = tmp_path / "sample.py"
    sample.write_text(textwrap.dedent(source))
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(sample)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout
    return proc.stdout
