"""
Memory safety: the core tests also pass under CPython's debug memory allocator, with a
debug build of the extension (overflow checks, debug assertions), and under valgrind;
a Rust panic becomes a Python exception instead of aborting the interpreter.

Each of these runs the core test modules (txdefer's implementations only; the depth
tests with ``TXDEFER_DEPTH=100000``) in a subprocess, so that a crash fails the test.

* ``PYTHONMALLOC=debug`` + ``PYTHONDEVMODE=1``: CPython fills freed and fresh memory
  with patterns and checks guard bytes, so a use after free, a double free or a buffer
  overrun in the extension crashes or is reported;
* the debug build is compiled with ``cargo build`` (the ``dev`` profile) into the
  repository's ``target/`` directory and imported from a temporary copy of the
  package; this test checks that it is the one loaded;
* ``scripts/valgrind.sh`` runs a subset under valgrind's memcheck (skipped when
  valgrind is not installed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The core test modules, run with every memory checker.
CORE_TESTS = [
    "tests/test_deferred.py",
    "tests/test_chaining.py",
    "tests/test_reentrancy.py",
    "tests/test_gc.py",
    "tests/test_gc_during_construction.py",
    "tests/test_cancel.py",
    "tests/test_await.py",
    "tests/test_collections.py",
    "tests/test_interop.py",
    "tests/test_bad_input.py",
    "tests/test_depth.py",
    "tests/test_threads.py",
    "tests/test_leaks.py",
    "tests/test_recycle.py",
    "tests/test_memory_safety.py::test_rust_panic_becomes_a_python_exception",
]
#: Twisted's own runs check the tests, not txdefer; the million-deep generator in
#: test_await has no depth knob; RSS measurements mean nothing under these checkers
#: (the reference-count checks in test_leaks do run).
DESELECT = (
    "not twisted] and not test_inlineCallbacks_yielding_a_million_fired_deferreds"
    " and not test_repeated_cycles_do_not_grow_memory"
)


def _run_core_tests(
    env: dict[str, str], timeout: float, deselect: str = DESELECT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         *CORE_TESTS, "-k", deselect],
        cwd=ROOT,
        env={**os.environ, "TXDEFER_DEPTH": "100000", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _passed(proc: subprocess.CompletedProcess[str]) -> bool:
    """Did the pytest run pass, having run the core tests (hundreds of them)?"""
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    passed = re.search(r"\b(\d+) passed\b", last)
    return proc.returncode == 0 and passed is not None and int(passed.group(1)) > 500


# -- panics -------------------------------------------------------------------------------


def test_rust_panic_becomes_a_python_exception() -> None:
    """
    A panic in the extension surfaces as ``pyo3_runtime.PanicException`` (a
    ``BaseException``, so ``except Exception`` does not swallow it) and the interpreter
    carries on.  If the extension were built with ``panic = "abort"`` the subprocess
    would die instead.
    """
    code = """
        import txdefer, txdefer._core
        try:
            txdefer._core._panic_for_test("deliberate")
        except Exception:
            print("caught as Exception")
        except BaseException as e:
            print(type(e).__module__, type(e).__name__, str(e))
        d = txdefer.Deferred()
        d.addCallback(lambda r: r + 1)
        d.callback(41)
        print(d.result)
        """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, "RUST_BACKTRACE": "0"},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == ["pyo3_runtime PanicException deliberate", "42"]
    assert "panicked" in proc.stderr and "deliberate" in proc.stderr


def test_no_profile_aborts_on_panic() -> None:
    """Both Cargo profiles the project builds with unwind on panic (the default)."""
    tomllib = pytest.importorskip("tomllib")
    profiles = tomllib.loads((ROOT / "Cargo.toml").read_text()).get("profile", {})
    for name in ("dev", "release"):
        assert profiles.get(name, {}).get("panic", "unwind") == "unwind", name


# -- PYTHONMALLOC=debug -------------------------------------------------------------------


def test_core_tests_pass_under_the_debug_allocator() -> None:
    """The core tests pass with ``PYTHONMALLOC=debug`` and ``PYTHONDEVMODE=1``."""
    proc = _run_core_tests({"PYTHONMALLOC": "debug", "PYTHONDEVMODE": "1"}, timeout=600)
    assert _passed(proc), proc.stdout[-3000:] + proc.stderr[-3000:]


# -- debug build --------------------------------------------------------------------------


def _build_debug_extension() -> Path:
    """``cargo build`` (dev profile); the path of the compiled extension."""
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed")
    proc = subprocess.run(
        ["cargo", "build", "--lib", "--message-format=json-render-diagnostics"],
        cwd=ROOT,
        env={
            **os.environ,
            "PYO3_PYTHON": sys.executable,
            "PYO3_BUILD_EXTENSION_MODULE": "1",
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in proc.stdout.splitlines():
        message = json.loads(line)
        if (
            message.get("reason") == "compiler-artifact"
            and message["target"]["name"] == "_core"
            and message["profile"]["debug_assertions"]
            and message["profile"]["overflow_checks"]
        ):
            (library,) = [f for f in message["filenames"] if f.endswith(".so")]
            return Path(library)
    raise AssertionError(f"no debug _core library built: {proc.stdout[-2000:]}")


def test_core_tests_pass_with_a_debug_build(tmp_path: Path) -> None:
    """
    The core tests pass with the extension compiled with debug assertions and overflow
    checks, imported from a temporary copy of the package instead of the installed one.
    """
    library = _build_debug_extension()
    package = tmp_path / "txdefer"
    shutil.copytree(
        ROOT / "python" / "txdefer",
        package,
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    target = package / ("_core" + sysconfig.get_config_var("EXT_SUFFIX"))
    shutil.copy2(library, target)
    env = {"PYTHONPATH": str(tmp_path)}
    loaded = subprocess.run(
        [sys.executable, "-c", "import txdefer._core as c; print(c.__file__)"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.stdout.strip() == str(target), loaded.stderr
    proc = _run_core_tests(env, timeout=900)
    assert _passed(proc), proc.stdout[-3000:] + proc.stderr[-3000:]


# -- valgrind -----------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_no_memory_errors_under_valgrind() -> None:
    """
    ``scripts/valgrind.sh`` (its default subset) passes: no invalid read, write or
    free and no use of uninitialised memory in the extension.
    """
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "valgrind.sh")],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "valgrind: errors in txdefer: 0 {}" in proc.stdout
