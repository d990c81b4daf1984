"""
Interoperation with Twisted's own pure-Python ``Deferred``, and ``txdefer.install()``.

Without ``install()`` a txdefer callback may return a Twisted Deferred and waits on it.
The other direction (a Twisted Deferred's callback returning a txdefer Deferred) needs
``install()`` (Twisted's run loop only recognises the classes in its
``_DEFERRED_SUBCLASSES``), so it is tested in a subprocess, as is ``install()`` itself:
this test process keeps Twisted's originals.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import twisted.internet.defer as tdefer

import txdefer
from tests.impls import Impl, captured_log, fired_with, no_result, unhandled_error_events


def test_install_was_not_called_in_this_process() -> None:
    assert txdefer.installed() is False
    assert tdefer.Deferred is not txdefer.Deferred
    assert tdefer.Deferred.__module__ == "twisted.internet.defer"


def test_twisted_deferred_already_fired_returned_from_our_callback(ours: Impl) -> None:
    theirs: Any = tdefer.succeed("from twisted")
    d: Any = ours.Deferred()
    d.addCallback(lambda r: theirs)
    d.addCallback(lambda r: r.upper())
    d.callback(None)
    assert fired_with(d) == "FROM TWISTED"
    assert theirs.result is None


def test_twisted_deferred_fired_later_returned_from_our_callback(ours: Impl) -> None:
    theirs: Any = tdefer.Deferred()
    d: Any = ours.Deferred()
    d.addCallback(lambda r: theirs)
    d.addCallback(lambda r: ("after", r))
    d.callback(None)
    assert d._chainedTo is theirs
    assert d.paused == 1
    assert no_result(d)
    theirs.callback("later")
    assert d.paused == 0
    assert d._chainedTo is None
    assert fired_with(d) == ("after", "later")


def test_twisted_deferred_failing_later_returned_from_our_callback(ours: Impl) -> None:
    with captured_log() as events:
        theirs: Any = tdefer.Deferred()
        d: Any = ours.Deferred()
        d.addCallback(lambda r: theirs)
        d.callback(None)
        theirs.errback(ValueError("twisted failed"))
        assert fired_with(d) == ("Failure", ValueError, "twisted failed")
        del theirs, d
    assert unhandled_error_events(events) == []


def test_twisted_deferred_paused_and_fired_returned_from_our_callback(
    ours: Impl,
) -> None:
    theirs: Any = tdefer.succeed("paused result")
    theirs.pause()
    d: Any = ours.Deferred()
    d.addCallback(lambda r: theirs)
    d.callback(None)
    assert d._chainedTo is theirs
    theirs.unpause()
    assert fired_with(d) == "paused result"


def test_cancel_forwards_to_a_twisted_deferred_being_waited_on(ours: Impl) -> None:
    cancelled: list[object] = []
    theirs: Any = tdefer.Deferred(cancelled.append)
    d: Any = ours.Deferred()
    d.addCallback(lambda r: theirs)
    d.callback(None)
    d.cancel()
    assert cancelled == [theirs]
    assert fired_with(d) == ("Failure", tdefer.CancelledError, "")


def test_our_deferred_awaits_twisted_deferred_in_a_coroutine(ours: Impl) -> None:
    theirs: Any = tdefer.Deferred()

    async def main() -> str:
        return await theirs

    d: Any = ours.ensureDeferred(main())
    assert isinstance(d, txdefer.Deferred)
    theirs.callback("awaited")
    assert fired_with(d) == "awaited"


def test_inlineCallbacks_yielding_a_twisted_deferred(ours: Impl) -> None:
    theirs: Any = tdefer.Deferred()

    @ours.inlineCallbacks
    def gen() -> Any:
        return (yield theirs)

    d: Any = gen()
    theirs.callback("yielded")
    assert fired_with(d) == "yielded"


def test_maybeDeferred_returns_a_twisted_deferred_unchanged(ours: Impl) -> None:
    theirs: Any = tdefer.Deferred()
    assert ours.maybeDeferred(lambda: theirs) is theirs
    assert ours.ensureDeferred(theirs) is theirs


def test_DeferredList_of_mixed_deferreds(ours: Impl) -> None:
    theirs: Any = tdefer.Deferred()
    mine: Any = ours.Deferred()
    dl: Any = ours.DeferredList([theirs, mine])
    mine.callback("ours")
    theirs.callback("theirs")
    assert fired_with(dl) == [(True, "theirs"), (True, "ours")]


def test_twisted_chained_to_our_deferred(ours: Impl) -> None:
    theirs: Any = tdefer.Deferred()
    d: Any = ours.Deferred()
    d.chainDeferred(theirs)
    d.callback("chained")
    assert fired_with(theirs) == "chained"


def _run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_our_deferred_returned_from_a_twisted_callback_after_install() -> None:
    out = _run(
        """
        import twisted.internet.defer as d
        Orig = d.Deferred          # Twisted's own class, captured before install()
        import txdefer
        txdefer.install()
        assert d.Deferred is txdefer.Deferred

        ours = txdefer.Deferred()
        theirs = Orig()
        assert type(theirs).__module__ == "twisted.internet.defer"
        theirs.addCallback(lambda r: ours)
        theirs.addCallback(lambda r: ("after", r))
        results = []
        theirs.callback(None)
        print("waiting", theirs._chainedTo is ours, theirs.paused)
        ours.callback("ours, later")
        theirs.addCallback(results.append)
        print(results)

        # Already fired when returned.
        early = txdefer.succeed("early")
        theirs2 = Orig()
        theirs2.addCallback(lambda r: early)
        theirs2.callback(None)
        print(theirs2.result)
        """
    )
    assert out.splitlines() == [
        "waiting True 1",
        "[('after', 'ours, later')]",
        "early",
    ]


def test_install_twice_is_a_no_op_and_installed_is_true() -> None:
    out = _run(
        """
        import twisted.internet.defer as d
        import txdefer
        print(txdefer.installed())
        txdefer.install()
        first = {name: getattr(d, name) for name in dir(d)}
        txdefer.install()
        second = {name: getattr(d, name) for name in dir(d)}
        print(txdefer.installed())
        print(first == second)
        print(d.Deferred is txdefer.Deferred, d.succeed is txdefer.succeed)
        print(d.inlineCallbacks is txdefer.inlineCallbacks)
        print(d.AlreadyCalledError is txdefer.AlreadyCalledError)
        import twisted.internet.task as task
        print(type(task.deferLater(task.Clock(), 1, lambda: None)) is txdefer.Deferred)
        """
    )
    assert out.splitlines() == ["False", "True", "True", "True True", "True", "True", "True"]


def test_install_after_twisted_modules_captured_names() -> None:
    out = _run(
        """
        import twisted.internet.task   # captures Deferred & co. with `from ... import`
        import txdefer
        txdefer.install()
        import twisted.internet.task as task
        print(task.Deferred is txdefer.Deferred)
        d = task.deferLater(task.Clock(), 0, lambda: "x")
        print(type(d).__name__, type(d).__module__)
        """
    )
    assert out.splitlines() == ["True", "Deferred txdefer"]
