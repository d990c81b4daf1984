"""
Minimal reproductions of differences the differential programs
(``tests/test_differential.py``) found, now fixed: each runs one snippet on the
implementation under test and on Twisted and compares what is observable.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable
from typing import Any

from twisted.python.failure import Failure

from tests.impls import TWISTED, Impl, captured_log, result_of, unhandled_error_events


def _self_chained_then_unpaused(impl: Impl) -> tuple[object, ...]:
    d: Any = impl.Deferred()
    d.callback(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        d.addCallback(lambda result: d)  # returns its own Deferred: chained to itself
    before = (d.paused, d._chainedTo is d, d.result is d)
    d.unpause()
    after = (d.paused, d._chainedTo, "itself" if d.result is d else d.result)
    return before, after


def test_unpausing_a_deferred_chained_to_itself_leaves_result_none(impl: Impl) -> None:
    """
    A callback returning its own Deferred chains it to itself (paused, waiting on
    itself); ``unpause()`` then runs the continuation, which hands the result to
    itself and clears it: ``paused`` is -1 and ``result`` is ``None`` on Twisted.
    """
    assert _self_chained_then_unpaused(impl) == _self_chained_then_unpaused(TWISTED)


def _awaited_from_its_own_errback(impl: Impl) -> list[tuple[str, str]]:
    d: Any = impl.Deferred()
    raised: list[tuple[str, str]] = []

    def errback(failure: Failure) -> None:
        try:
            next(iter(d))  # what ``await d`` does first
        except BaseException as e:  # noqa: BLE001 - observing everything is the point
            raised.append((type(e).__name__, str(e)))

    d.addErrback(errback)
    d.errback(OSError("boom"))
    return raised


def test_awaiting_a_deferred_from_its_own_errback_raises_as_twisted(impl: Impl) -> None:
    """
    Iterating (awaiting) a Deferred from inside its own errback, while its failure
    has not yet been recorded for unhandled-error reporting: Twisted fails the
    ``assert self._debugInfo is not None`` in ``__iter__`` (``AssertionError``).
    """
    assert _awaited_from_its_own_errback(impl) == _awaited_from_its_own_errback(TWISTED)


def _coroutine_awaiting_twice(impl: Impl) -> tuple[object, ...]:
    d: Any = impl.Deferred()

    async def twice() -> str:
        try:
            await d
        except OSError:
            pass
        try:
            await d  # d is still delivering its failure to this coroutine
        except BaseException as e:  # noqa: BLE001 - observing everything is the point
            return type(e).__name__
        return "no exception"

    coroutine = impl.Deferred.fromCoroutine(twice())
    d.errback(OSError("boom"))
    return (result_of(coroutine), result_of(d))


def test_coroutine_awaiting_a_failing_deferred_again_sees_what_twisted_raises(
    impl: Impl,
) -> None:
    """
    A coroutine catches the failure of ``await d`` and awaits ``d`` again, still
    inside ``d``'s callback chain: the second await raises ``AssertionError`` on
    Twisted (see the test above).
    """
    assert _coroutine_awaiting_twice(impl) == _coroutine_awaiting_twice(TWISTED)


def _called_back_with_itself_through_an_errback(impl: Impl) -> tuple[object, ...]:
    d: Any = impl.Deferred()
    d.addErrback(lambda failure: failure)  # the success side passes the result through
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d.callback(d)
    chained = (d.paused, d._chainedTo is d)
    return [(w.category, str(w.message)) for w in caught], chained


def test_pass_through_returning_the_deferred_itself_warns_as_twisted(impl: Impl) -> None:
    """
    ``d.callback(d)`` with only an errback added: the success side's pass-through
    "returns" ``d`` itself, for which Twisted warns "Callback returned the Deferred
    it was attached to" (an error, and so a failure result, under -W error).
    """
    expected = _called_back_with_itself_through_an_errback(TWISTED)
    assert _called_back_with_itself_through_an_errback(impl) == expected


def _failure_after_abandoned_iterator(impl: Impl) -> list[tuple[Any, ...]]:
    with captured_log() as events:
        d: Any = impl.Deferred()
        it = d.__await__()
        assert next(it) is d
        del it  # abandoned unfinished
        d.errback(ValueError("abandoned"))
        del d
        gc.collect()
        return unhandled_error_events(events)


def test_failure_in_a_deferred_whose_await_iterator_was_abandoned_is_logged(
    impl: Impl,
) -> None:
    """
    An ``await`` iterator dropped before it finished must not keep its Deferred
    alive (a reused spare iterator once did): the Deferred is collected when
    dropped and its unhandled failure logged then, as on Twisted.  (Found at the
    end of a program, ``TXDEFER_DIFF_SEED=20261130``.)
    """
    logged = _failure_after_abandoned_iterator(impl)
    assert logged == _failure_after_abandoned_iterator(TWISTED)
    assert logged == [
        ("Unhandled error in Deferred:", True, "critical", None),
        ("", None, "critical", (ValueError, "abandoned")),
    ]



def _logged_after_a_frozen_spare(
    impl: Impl, make_cycle: Callable[[Impl], None]
) -> list[tuple[Any, ...]]:
    """
    The unhandled errors logged when what ``make_cycle(impl)`` makes is dropped and
    collected, after txdefer's spare ``await`` iterator (if any) has been frozen.
    """

    async def prime() -> None:
        await impl.succeed(1)  # leaves a finished iterator behind (txdefer's spare)

    impl.ensureDeferred(prime())
    gc.collect()
    gc.freeze()  # everything so far, the spare too, in the permanent generation
    try:
        with captured_log() as events:
            make_cycle(impl)  # everything it made is dropped on return
            gc.collect()
            return unhandled_error_events(events)
    finally:
        gc.unfreeze()


def _await_through_the_spare(impl: Impl) -> None:
    waiting: Any = impl.Deferred()
    waiting.chainDeferred(impl.fail(ValueError("chained")))

    async def body() -> None:
        await waiting  # through the reused spare, if any

    impl.Deferred.fromCoroutine(body())


def test_a_cycle_through_a_reused_await_iterator_is_collected(impl: Impl) -> None:
    """
    A coroutine waiting on a Deferred, in a cycle with it, is collected when dropped
    even when its ``await`` iterator is a reused one that had been frozen: the
    iterator re-enters the collector's youngest generation when reused.  (Found by
    the differential programs: ``TXDEFER_DIFF_SEED=20261130``, whose harness freezes
    what exists before each program.)
    """
    logged = _logged_after_a_frozen_spare(impl, _await_through_the_spare)
    assert logged == _logged_after_a_frozen_spare(TWISTED, _await_through_the_spare)
    assert ("", None, "critical", (ValueError, "chained")) in logged


def _iterator_asked_for_by_name(impl: Impl) -> None:
    waiting: Any = impl.Deferred()
    waiting.chainDeferred(impl.fail(ValueError("held")))
    # Asked for by name, not stepped: a cycle through the iterator.
    waiting.iterator = waiting.__await__()


def test_a_cycle_through_an_iterator_asked_for_by_name_is_collected(impl: Impl) -> None:
    """
    ``d.__await__()`` called by name may hand out the reused spare iterator, which
    the program can keep without stepping it: it re-enters the collector's youngest
    generation at once (an ``await`` defers that until the iterator suspends), so a
    cycle through it and its Deferred is collected, and the failure logged, even
    when the spare had been frozen.
    """
    logged = _logged_after_a_frozen_spare(impl, _iterator_asked_for_by_name)
    assert logged == _logged_after_a_frozen_spare(TWISTED, _iterator_asked_for_by_name)
    assert ("", None, "critical", (ValueError, "held")) in logged
