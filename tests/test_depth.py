"""
Depth: long chains of Deferreds must neither recurse nor crash.

Twisted itself handles a chain of Deferreds returned from callbacks iteratively, so the
million-deep chain runs on all three implementations (about 7 s on Twisted's, 2 s on
txdefer's), as does a coroutine awaiting a million fired Deferreds (an
``inlineCallbacks`` generator yielding a million is in ``test_await.py``).
``chainDeferred`` recurses in Twisted (a documented difference, pinned below): the deep
``chainDeferred`` tests run on txdefer only.

``TXDEFER_DEPTH`` overrides the depth (the memory-safety runs use a smaller one).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from tests.impls import (
    TWISTED,
    TXDEFER,
    Impl,
    captured_log,
    fired_with,
    unhandled_error_events,
)

MILLION = int(os.environ.get("TXDEFER_DEPTH", 1_000_000))


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


def test_coroutine_awaiting_a_million_fired_deferreds(impl: Impl) -> None:
    """
    ``Deferred.fromCoroutine`` runs an ``async def`` that awaits a million
    already-fired Deferreds one after the other without growing the stack.
    """

    async def main() -> int:
        total = 0
        for _ in range(MILLION):
            total += await impl.succeed(1)
        return total

    assert fired_with(impl.Deferred.fromCoroutine(main())) == MILLION


def test_chainDeferred_recurses_in_Twisted_but_not_in_txdefer() -> None:
    """
    Ten thousand Deferreds linked by ``chainDeferred``: Twisted's recursion runs out
    of stack, logs the ``RecursionError`` as an unhandled error and never fires the
    last one; txdefer's fires it.  (If Twisted stops recursing, this test says so and
    the README's compatibility table must change.)
    """

    def chain_and_fire(impl: Impl) -> tuple[object, list[type]]:
        with captured_log() as events:
            ds = [impl.Deferred() for _ in range(10_000)]
            for a, b in zip(ds, ds[1:]):
                a.chainDeferred(b)
            ds[0].callback("top")
            last = fired_with(ds[-1])
            del ds
            gc.collect()
        errors = [e[3][0] for e in unhandled_error_events(events) if e[3] is not None]
        return last, errors

    assert chain_and_fire(TWISTED) == ("<no result>", [RecursionError])
    assert chain_and_fire(TXDEFER) == ("top", [])


def _run(code: str, impl: Impl | None = None) -> subprocess.CompletedProcess[str]:
    """
    Run ``code`` in a fresh interpreter.  With ``impl``, ``D`` is bound first to that
    implementation's Deferred class (the subclass is a fresh ``SubDeferred``).
    """
    preamble = ""
    if impl is not None:
        module = "twisted.internet.defer" if impl.name == "twisted" else "txdefer"
        cls = "SubDeferred" if impl.name == "subclass" else f"{module}.Deferred"
        preamble = f"import {module}\nclass SubDeferred({module}.Deferred):\n    pass\nD = {cls}\n"
    return subprocess.run(
        [sys.executable, "-c", preamble + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dropping_a_million_deep_unfired_chain(ours: Impl) -> None:
    # In a subprocess: a recursive deallocation would crash the interpreter.
    proc = _run(
        f"""
        import gc
        first = d = D()
        for _ in range({MILLION}):
            following = D()
            d.addCallback(lambda r, following=following: following)
            d = following
        del d, following
        del first
        gc.collect()
        print("survived")
        """,
        ours,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "survived"


def test_dropping_a_million_deep_result_chain(ours: Impl) -> None:
    proc = _run(
        f"""
        first = d = D()
        for _ in range({MILLION}):
            following = D()
            d.callback(following)
            d = following
        del d, following
        del first
        print("survived")
        """,
        ours,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "survived"


def test_dropping_a_million_deep_unfired_chainDeferred_chain(ours: Impl) -> None:
    """
    A million Deferreds linked by ``chainDeferred`` and never fired refer to each
    other in both directions (callbacks one way, ``_chainedTo`` the other): the
    garbage collector frees them without recursing.
    """
    proc = _run(
        f"""
        import gc
        first = d = D()
        for _ in range({MILLION}):
            following = D()
            d.chainDeferred(following)
            d = following
        del d, following, first
        print("freed", gc.collect() >= {MILLION})
        """,
        ours,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "freed True"


_LINKS = {
    "result": "d.callback(following)",
    "assigned_result": "d.result = following",
    "callback": "d.addCallback(lambda r, following=following: following)",
}


@pytest.mark.parametrize("link", sorted(_LINKS))
def test_dropping_a_million_deep_chain_in_a_thread_with_a_small_stack(ours: Impl, link: str) -> None:
    """
    A chain of a million Deferreds, each holding the next (as its result, or through a
    callback), is freed by nested deallocations.  They stay shallow enough for a thread
    with 1 MiB of stack, on every CPython: up to 3.12 and from 3.14 on, CPython's own
    trashcan bounds them; on 3.13, whose trashcan steps in only near its C recursion
    limit (10,000 levels, too deep for such a stack: Twisted's own chain of results
    needs 2 MiB there), txdefer bounds its own.
    """
    proc = _run(
        f"""
        import threading
        first = d = D()
        for _ in range({MILLION}):
            following = D()
            {_LINKS[link]}
            d = following
        del d, following
        chain = [first]
        del first
        threading.stack_size(1024 * 1024)
        t = threading.Thread(target=chain.clear)
        t.start()
        t.join()
        print("survived", len(chain))
        """,
        ours,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "survived 0"


def test_str_of_a_result_chain_deeper_than_the_recursion_limit(impl: Impl) -> None:
    """
    ``str()`` shows the result's ``repr()``: through a chain of Deferreds each holding
    the next as its result, deeper than the recursion limit, it raises
    ``RecursionError`` (Twisted recurses in Python; txdefer counts its own nesting, which
    CPython 3.12 and later would otherwise let go ten times deeper in C), and the next
    ``str()`` works again.
    """
    depth = min(MILLION, 20_000)
    first = d = impl.Deferred()
    for _ in range(depth):
        following = impl.Deferred()
        d.result = following
        d = following
    d.result = "bottom"
    with pytest.raises(RecursionError):
        str(first)
    shallow: Any = impl.Deferred()
    shallow.result = d
    assert str(shallow).endswith("current result: " + str(d) + ">")
    assert str(d).endswith("current result: 'bottom'>")
    # Unlinked from the bottom up: freeing the chain is not what this test is about
    # (test_dropping_a_million_deep_result_chain is).
    links = []
    d = first
    while not isinstance(d, str):
        links.append(d)
        d = d.result
    for link in reversed(links):
        link.result = None


def test_cancelling_a_long_chain_of_waiting_deferreds(impl: Impl) -> None:
    # In a subprocess: with the recursion limit raised, a cancel() that recursed in
    # C down the chain would overflow the C stack (Twisted's pure-Python recursion
    # keeps its frames on the heap and gets to the end).
    if impl is TWISTED and sys.version_info < (3, 11):
        pytest.skip("before CPython 3.11, Python calls recurse in C: Twisted's cancel() overflows the stack")
    depth = min(MILLION, 200_000)
    proc = _run(
        f"""
        import sys
        sys.setrecursionlimit({depth} * 5)
        ds = [D() for _ in range({depth})]
        for d, following in zip(ds, ds[1:]):
            d.addCallback(lambda r, following=following: following)
        for d in ds[:-1]:
            d.callback(0)
        ds[0].cancel()
        ds[0].addErrback(lambda f: print(f.type.__name__))
        print(ds[-1].called)
        """,
        impl,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["CancelledError", "True"]


def test_cancelling_deferreds_that_wait_on_each_other_raises_recursion_error(impl: Impl) -> None:
    d1, d2 = impl.Deferred(), impl.Deferred()
    d1.addCallback(lambda _: d2)
    d2.addCallback(lambda _: d1)
    d1.callback(1)
    d2.callback(2)
    with pytest.raises(RecursionError):
        d1.cancel()
    assert d1.paused == 1 and d2.paused == 1
