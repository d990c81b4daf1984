"""
txdefer lives in the main interpreter only: its compiled module keeps Python objects
in process-wide statics and its state locks rely on one GIL (``src/gil_lock.rs``).
Importing it in a subinterpreter raises ``ImportError`` and leaves the main
interpreter able to import and use it.  Each case runs in a fresh interpreter
process, since a failure here could crash it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import txdefer

SCRIPT = textwrap.dedent(
    """
    import sys
    path = sys.argv[1]
    try:
        import _interpreters as I  # CPython 3.13 and later

        def make(isolated):
            return I.create("isolated" if isolated else "legacy")

        def run(interp, code):
            err = I.run_string(interp, code)
            if err is not None:
                raise RuntimeError(f"{err.type.__name__}: {err.msg}")
    except ImportError:
        import _xxsubinterpreters as I  # CPython 3.11, 3.12

        def make(isolated):
            if sys.version_info >= (3, 12):
                return I.create(isolated=isolated)
            return I.create()

        def run(interp, code):
            I.run_string(interp, code)

    # A subinterpreter sharing the main GIL, and (3.12+) one with a GIL of its own.
    configs = [False, True] if sys.version_info >= (3, 12) else [False]
    for attempt in ("before", "after"):
        for isolated in configs:
            interp = make(isolated)
            try:
                run(interp, f"import sys; sys.path.insert(0, {path!r}); import txdefer")
                print("imported in a subinterpreter", attempt, isolated)
            except Exception as e:
                print("refused", attempt, isolated, "ImportError" in str(e))
            finally:
                I.destroy(interp)
        if attempt == "before":
            sys.path.insert(0, path)
            import gc
            import txdefer
            d = txdefer.Deferred()
            d.addCallback(lambda r: r + 1)
            d.callback(1)
            async def twice(x):
                return 2 * await txdefer.succeed(x)
            print("main interpreter", d.result, txdefer.Deferred.fromCoroutine(twice(21)).result)
            gc.collect()
    print("done")
    """
)


def _has_subinterpreters() -> bool:
    return any(importlib.util.find_spec(m) for m in ("_interpreters", "_xxsubinterpreters"))


@pytest.mark.skipif(not _has_subinterpreters(), reason="no subinterpreter module in this Python")
def test_import_in_a_subinterpreter_is_refused_before_and_after_the_main_interpreter_imports() -> None:
    package_root = str(Path(txdefer.__file__).resolve().parent.parent)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, package_root],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    configs = ["False", "True"] if sys.version_info >= (3, 12) else ["False"]
    expected = [f"refused before {c} True" for c in configs]
    expected.append("main interpreter 2 42")
    expected += [f"refused after {c} True" for c in configs]
    expected.append("done")
    assert lines == expected, proc.stdout + proc.stderr
