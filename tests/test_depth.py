"""
Depth: long chains of Deferreds must neither recurse nor crash.

Twisted itself handles a chain of Deferreds returned from callbacks iteratively, so the
million-deep chain runs on all three implementations (about 7 s on Twisted's, 2 s on
txdefer's).  ``chainDeferred`` recurses in Twisted (a documented difference): the deep
``chainDeferred`` test runs on txdefer only.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

from tests.impls import TXDEFER, Impl, captured_log, fired_with, unhandled_error_events

MILLION = 1_000_000


def _waiting_chain(impl: Impl, n: int) -> list[Any]:
    """
    ``n`` Deferreds, each one's callback returning the next; all but the last fired,
    so each waits on the next one.
    """
    ds = [impl.Deferred() for _ in range(n)]
    for i in range(n - 1):
        ds[i].addCallback(lambda _, following=ds[i + 1]: following)
    for d in ds[:-1]:
        d.callback(None)
    return ds


def test_million_deep_chain_of_returned_deferreds(impl: Impl) -> None:
    ds = _waiting_chain(impl, MILLION)
    assert ds[0]._chainedTo is ds[1]
    assert ds[-2]._chainedTo is ds[-1]
    assert ds[0].paused == 1
    ds[-1].callback("bottom")
    assert ds[0].paused == 0
    assert fired_with(ds[0]) == "bottom"
    assert ds[MILLION // 2].result is None


def test_deep_chain_passes_a_failure_up_once(impl: Impl) -> None:
    with captured_log() as events:
        ds = _waiting_chain(impl, 100_000)
        ds[-1].errback(ValueError("bottom"))
        assert fired_with(ds[0]) == ("Failure", ValueError, "bottom")
        del ds
    assert unhandled_error_events(events) == []


def test_deep_chain_with_callbacks_at_every_level(impl: Impl) -> None:
    n = 100_000
    ds = [impl.Deferred() for _ in range(n)]
    for i in range(n - 1):
        ds[i].addCallback(lambda _, following=ds[i + 1]: following)
        ds[i].addCallback(lambda r: r + 1)
    for d in ds[:-1]:
        d.callback(None)
    ds[-1].callback(0)
    assert fired_with(ds[0]) == n - 1


def test_deep_chain_fired_from_the_top_down(impl: Impl) -> None:
    # Each Deferred is fired after the one it returns: every callback returns an
    # already-fired Deferred, whose result is taken at once.
    n = 100_000
    ds = [impl.Deferred() for _ in range(n)]
    for i in range(n - 1):
        ds[i].addCallback(lambda _, following=ds[i + 1]: following)
    ds[-1].callback("bottom")
    for d in reversed(ds[:-1]):
        d.callback(None)
    assert fired_with(ds[0]) == "bottom"


def test_million_deep_chainDeferred() -> None:
    # txdefer.Deferred only: for a subclass (whose callback/errback methods may be
    # overridden) chainDeferred calls them, and recurses as Twisted does.
    ds = [TXDEFER.Deferred() for _ in range(MILLION)]
    for a, b in zip(ds, ds[1:]):
        a.chainDeferred(b)
    ds[0].callback("top")
    assert fired_with(ds[-1]) == "top"
    assert ds[0].result is None


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dropping_a_million_deep_unfired_chain(ours: Impl) -> None:
    # In a subprocess: a recursive deallocation would crash the interpreter.
    proc = _run(
        f"""
        import gc, txdefer
        class SubDeferred(txdefer.Deferred):
            pass
        D = {"SubDeferred" if ours.name == "subclass" else "txdefer.Deferred"}
        first = d = D()
        for _ in range({MILLION}):
            following = D()
            d.addCallback(lambda r, following=following: following)
            d = following
        del d, following
        del first
        gc.collect()
        print("survived")
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "survived"


def test_dropping_a_million_deep_result_chain(ours: Impl) -> None:
    proc = _run(
        f"""
        import txdefer
        class SubDeferred(txdefer.Deferred):
            pass
        D = {"SubDeferred" if ours.name == "subclass" else "txdefer.Deferred"}
        first = d = D()
        for _ in range({MILLION}):
            following = D()
            d.callback(following)
            d = following
        del d, following
        del first
        print("survived")
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "survived"
