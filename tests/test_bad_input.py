"""
Bad input: every operation here is run on Twisted's Deferred and on the
implementation under test, and must have the same outcome, down to the exception type
and message (or the failure the Deferred ends up with).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.defer import AlreadyCalledError, CancelledError
from twisted.python.failure import Failure

from tests.impls import Impl, fired_with, normalize, outcome

BAD_INPUTS: dict[str, Callable[[Impl], object]] = {}


def bad_input(fn: Callable[[Impl], object]) -> Callable[[Impl], object]:
    BAD_INPUTS[fn.__name__] = fn
    return fn


def _failed_run(ns: Impl, add: Callable[[Any], object], fire: str = "callback") -> object:
    """Outcome of adding a callback with ``add(d)``, then of firing ``d``."""
    d: Any = ns.Deferred()
    added = outcome(add, d)
    fired = outcome(getattr(d, fire), ValueError("fired") if fire == "errback" else 0)
    return [added, fired, fired_with(d)]


# -- callbacks that cannot be called ----------------------------------------------------


@bad_input
def non_callable_callback(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallback(5) is d)


@bad_input
def non_callable_errback(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addErrback("nope") is d, "errback")


@bad_input
def non_callable_both(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addBoth(None) is d)


@bad_input
def none_as_callback(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallback(None) is d)


@bad_input
def non_callable_errback_in_addCallbacks(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallbacks(str, 7) is d, "errback")


@bad_input
def callback_with_wrong_arity(ns: Impl) -> object:
    def takes_nothing() -> None:
        pass

    return _failed_run(ns, lambda d: d.addCallback(takes_nothing) is d)


@bad_input
def callback_with_unexpected_keyword(ns: Impl) -> object:
    def cb(result: object) -> object:
        return result

    return _failed_run(ns, lambda d: d.addCallback(cb, extra=1) is d)


@bad_input
def tuple_as_callback(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallback((str, 1)) is d)


@bad_input
def tuple_as_callback_with_arguments(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addBoth((str, 1), 2, k=3) is d)


@bad_input
def callback_given_twice(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallback(str, callback=repr) is d)


@bad_input
def errback_given_twice(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addErrback(str, errback=repr) is d, "errback")


@bad_input
def self_as_callback_keyword(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addBoth(str, self=1) is d)


@bad_input
def keywords_only_without_callback(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallback(extra=1) is d)


# -- callbacks given by keyword (valid, and must still work) ---------------------------


@bad_input
def callback_by_keyword(ns: Impl) -> object:
    def cb(result: object, extra: object = None) -> object:
        return (result, extra)

    return _failed_run(ns, lambda d: d.addCallback(callback=cb, extra=1) is d)


@bad_input
def errback_by_keyword(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addErrback(errback=lambda f: f.type.__name__) is d, "errback")


@bad_input
def callback_with_many_arguments(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallback(lambda *a, **k: (a, k), 1, 2, 3, 4, 5, z=6) is d)


@bad_input
def none_as_callback_in_addCallbacks(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallbacks(None) is d)


@bad_input
def a_deferred_as_its_own_callback(ns: Impl) -> object:
    d: Any = ns.Deferred()
    observed = [outcome(lambda: d.addCallback(d) is d), outcome(d.callback, 1)]
    return [normalize(str(observed + [fired_with(d)]), ns)]


@bad_input
def addCallback_with_callback_as_keyword(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallback(callback=lambda r: r + 1) is d)


# -- addCallbacks with arguments of the wrong type --------------------------------------


@bad_input
def callbackArgs_a_list(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallbacks(lambda r, *a: a, callbackArgs=[1, 2]) is d)


@bad_input
def callbackArgs_a_string(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallbacks(lambda r, *a: a, callbackArgs="ab") is d)


@bad_input
def callbackArgs_not_iterable(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallbacks(lambda r, *a: a, callbackArgs=5) is d)


@bad_input
def callbackKeywords_not_a_mapping(ns: Impl) -> object:
    return _failed_run(
        ns, lambda d: d.addCallbacks(lambda r, **k: k, callbackKeywords=5) is d
    )


@bad_input
def callbackKeywords_a_list(ns: Impl) -> object:
    return _failed_run(
        ns, lambda d: d.addCallbacks(lambda r, **k: k, callbackKeywords=[1]) is d
    )


@bad_input
def callbackKeywords_non_string_keys(ns: Impl) -> object:
    return _failed_run(
        ns, lambda d: d.addCallbacks(lambda r, **k: k, callbackKeywords={1: 2}) is d
    )


@bad_input
def errbackArgs_not_iterable(ns: Impl) -> object:
    return _failed_run(
        ns, lambda d: d.addCallbacks(str, lambda f, *a: a, errbackArgs=5) is d, "errback"
    )


@bad_input
def errbackKeywords_not_a_mapping(ns: Impl) -> object:
    return _failed_run(
        ns,
        lambda d: d.addCallbacks(str, lambda f, **k: k, errbackKeywords=5) is d,
        "errback",
    )


@bad_input
def errbackArgs_without_errback(ns: Impl) -> object:
    # The failure goes through Twisted's _failthru, which takes one argument.
    return _failed_run(
        ns, lambda d: d.addCallbacks(str, None, errbackArgs=(1,)) is d, "errback"
    )


@bad_input
def errbackKeywords_without_errback(ns: Impl) -> object:
    return _failed_run(
        ns, lambda d: d.addCallbacks(str, None, errbackKeywords={"k": 1}) is d, "errback"
    )


@bad_input
def addCallbacks_all_positional_garbage(ns: Impl) -> object:
    return _failed_run(ns, lambda d: d.addCallbacks(str, 5, 6, 7, 8, 9) is d)


@bad_input
def addCallbacks_unknown_keyword(ns: Impl) -> object:
    return [outcome(lambda: ns.Deferred().addCallbacks(str, bogus=1))]


@bad_input
def addCallback_without_callback(ns: Impl) -> object:
    return [outcome(lambda: ns.Deferred().addCallback())]


@bad_input
def addErrback_without_errback(ns: Impl) -> object:
    return [outcome(lambda: ns.Deferred().addErrback())]


@bad_input
def addBoth_without_callback(ns: Impl) -> object:
    return [outcome(lambda: ns.Deferred().addBoth())]


@bad_input
def addCallbacks_without_callback(ns: Impl) -> object:
    return [outcome(lambda: ns.Deferred().addCallbacks())]


# -- firing -----------------------------------------------------------------------------


@bad_input
def callback_twice(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(d.callback, 1), outcome(d.callback, 2), fired_with(d)]


@bad_input
def errback_after_callback(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(d.callback, 1), outcome(d.errback, ValueError()), fired_with(d)]


@bad_input
def callback_with_result_as_keyword(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(lambda: d.callback(result=1)), fired_with(d)]


@bad_input
def errback_with_fail_as_keyword(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(lambda: d.errback(fail=ValueError("kw"))), fired_with(d)]


@bad_input
def callback_with_a_failure(ns: Impl) -> object:
    # Twisted runs the errbacks: the result is a Failure, however it got there.
    d: Any = ns.Deferred()
    return [outcome(d.callback, Failure(KeyError("as a result"))), fired_with(d)]


@bad_input
def errback_with_an_int(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(d.errback, 5), fired_with(d)]


@bad_input
def result_set_before_firing(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(setattr, d, "result", 5), outcome(d.callback, 1), fired_with(d)]


@bad_input
def paused_assigned_a_string(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(setattr, d, "paused", "x"), outcome(getattr, d, "paused")]


@bad_input
def called_assigned_a_string(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(setattr, d, "called", "yes"), outcome(getattr, d, "called")]


@bad_input
def callback_without_argument(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(d.callback), d.called]


@bad_input
def callback_with_two_arguments(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(d.callback, 1, 2), d.called]


@bad_input
def errback_with_two_arguments(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(d.errback, ValueError(), 2), d.called]


@bad_input
def errback_without_current_exception(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(d.errback), d.called]


@bad_input
def errback_with_a_string(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(d.errback, "a string"), fired_with(d)]


@bad_input
def errback_with_an_exception_class(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(d.errback, KeyError), fired_with(d)]


@bad_input
def callback_with_a_deferred(ns: Impl) -> object:
    d: Any = ns.Deferred()
    other: Any = ns.succeed("other's")
    observed: list[object] = [outcome(d.callback, other)]
    observed.append(d.result is other)
    d.addCallback(lambda r: r)  # a Deferred returned by a callback: chained
    observed.append(fired_with(d))
    return observed


@bad_input
def callback_with_itself(ns: Impl) -> object:
    d: Any = ns.Deferred()
    observed = [outcome(d.callback, d), d.result is d, d.paused]
    # str() recurses into the result's repr, which is the Deferred's own str().
    observed.append(outcome(str, d)[:2])
    return observed


# -- pause / unpause / cancel -----------------------------------------------------------


@bad_input
def unpause_without_pause(ns: Impl) -> object:
    d: Any = ns.Deferred()
    observed: list[object] = [outcome(d.unpause), d.paused]
    observed += [outcome(d.callback, 1), d.paused, fired_with(d)]
    return observed


@bad_input
def unpause_twice_after_firing(ns: Impl) -> object:
    d: Any = ns.Deferred()
    d.callback(1)
    return [outcome(d.unpause), outcome(d.unpause), d.paused, fired_with(d)]


@bad_input
def pause_with_an_argument(ns: Impl) -> object:
    return [outcome(ns.Deferred().pause, 1)]


@bad_input
def unpause_with_an_argument(ns: Impl) -> object:
    return [outcome(ns.Deferred().unpause, 1)]


@bad_input
def cancel_with_an_argument(ns: Impl) -> object:
    return [outcome(ns.Deferred().cancel, 1)]


@bad_input
def non_callable_canceller(ns: Impl) -> object:
    d: Any = ns.Deferred(5)
    return [outcome(d.cancel), d.called, outcome(d.callback, "later"), fired_with(d)]


@bad_input
def canceller_with_wrong_arity(ns: Impl) -> object:
    d: Any = ns.Deferred(lambda: None)
    return [outcome(d.cancel), d.called]


# -- construction -----------------------------------------------------------------------


@bad_input
def too_many_constructor_arguments(ns: Impl) -> object:
    return [outcome(ns.Deferred, None, None)]


@bad_input
def unknown_constructor_keyword(ns: Impl) -> object:
    return [outcome(lambda: ns.Deferred(cancel=None))]


@bad_input
def canceller_keyword(ns: Impl) -> object:
    d: Any = ns.Deferred(canceller=lambda d: d.callback("kw"))
    d.cancel()
    return [fired_with(d)]


# -- chainDeferred ----------------------------------------------------------------------


@bad_input
def chainDeferred_to_a_non_deferred(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(d.chainDeferred, 5), outcome(d.chainDeferred, None), d.called]


@bad_input
def chainDeferred_to_itself(ns: Impl) -> object:
    d: Any = ns.Deferred()
    observed = [outcome(lambda: d.chainDeferred(d) is d), d._chainedTo is d]
    observed += [outcome(d.callback, "x"), fired_with(d)]
    return observed


@bad_input
def chainDeferred_to_an_object_with_callback_methods(ns: Impl) -> object:
    class Lookalike:
        def __init__(self) -> None:
            self.got: list[object] = []

        def callback(self, result: object) -> str:
            self.got.append(("cb", result))
            return "returned by callback"

        def errback(self, failure: object) -> None:
            self.got.append("eb")

    d: Any = ns.Deferred()
    other = Lookalike()
    d.chainDeferred(other)
    d.callback("v")
    return [other.got, fired_with(d), getattr(other, "_chainedTo") is d]


# -- helpers ----------------------------------------------------------------------------


@bad_input
def semaphore_with_zero_tokens(ns: Impl) -> object:
    return [outcome(ns.DeferredSemaphore, 0), outcome(ns.DeferredSemaphore, -1)]


@bad_input
def semaphore_released_too_often(ns: Impl) -> object:
    sem = ns.DeferredSemaphore(2)
    return [outcome(sem.release), sem.tokens]


@bad_input
def lock_released_when_unlocked(ns: Impl) -> object:
    lock = ns.DeferredLock()
    return [outcome(lock.release), lock.locked]


@bad_input
def queue_overflow(ns: Impl) -> object:
    queue = ns.DeferredQueue(size=1)
    return [outcome(queue.put, 1), outcome(queue.put, 2), queue.pending]


@bad_input
def queue_underflow(ns: Impl) -> object:
    queue = ns.DeferredQueue(backlog=1)
    first = queue.get()
    observed = [outcome(queue.get), len(queue.waiting)]
    queue.put("x")
    observed.append(fired_with(first))
    return observed


@bad_input
def queue_with_zero_size_and_backlog(ns: Impl) -> object:
    queue = ns.DeferredQueue(size=0, backlog=0)
    return [outcome(queue.put, 1), outcome(queue.get)]


@bad_input
def succeed_without_argument(ns: Impl) -> object:
    return [outcome(ns.succeed)]


@bad_input
def fail_without_current_exception(ns: Impl) -> object:
    return [outcome(ns.fail)]


@bad_input
def setDebugging_with_a_string(ns: Impl) -> object:
    observed = [outcome(ns.setDebugging, "yes"), ns.getDebugging()]
    ns.setDebugging(False)
    return observed


@bad_input
def gatherResults_of_None(ns: Impl) -> object:
    return [outcome(ns.gatherResults, None)]


@bad_input
def DeferredList_of_a_non_iterable(ns: Impl) -> object:
    return [outcome(ns.DeferredList, 5)]


@bad_input
def DeferredList_of_non_deferreds(ns: Impl) -> object:
    return [outcome(ns.DeferredList, [1, 2])]


@bad_input
def gatherResults_of_non_deferreds(ns: Impl) -> object:
    return [outcome(ns.gatherResults, ["x"])]


@bad_input
def race_of_non_deferreds(ns: Impl) -> object:
    return [outcome(ns.race, [None])]


@bad_input
def race_of_nothing(ns: Impl) -> object:
    r: Any = ns.race([])
    return [r.called]


@bad_input
def ensureDeferred_of_a_value(ns: Impl) -> object:
    return [outcome(ns.ensureDeferred, 5), outcome(ns.ensureDeferred, None)]


@bad_input
def fromCoroutine_of_a_value(ns: Impl) -> object:
    return [outcome(ns.Deferred.fromCoroutine, 5)]


@bad_input
def fromCoroutine_of_a_generator(ns: Impl) -> object:
    # Twisted accepts a generator here (it is run like a coroutine).
    def gen() -> Any:
        yield 1

    return [normalize(str(outcome(ns.Deferred.fromCoroutine, gen())), ns)]


@bad_input
def fromCoroutine_of_a_coroutine_function(ns: Impl) -> object:
    async def coro() -> None:
        pass

    return [normalize(str(outcome(ns.Deferred.fromCoroutine, coro)))]


_plain_function = lambda: 5  # noqa: E731  # the same object for both, in messages


def _returnValue_function() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from twisted.internet.defer import returnValue

        returnValue(1)


@bad_input
def inlineCallbacks_on_a_plain_function(ns: Impl) -> object:
    return [outcome(ns.inlineCallbacks(_plain_function))]


@bad_input
def inlineCallbacks_on_a_function_calling_returnValue(ns: Impl) -> object:
    return [outcome(ns.inlineCallbacks(_returnValue_function))]


@bad_input
def maybeDeferred_of_a_non_callable(ns: Impl) -> object:
    return [fired_with(ns.maybeDeferred(5))]


@bad_input
def execute_of_a_non_callable(ns: Impl) -> object:
    return [fired_with(ns.execute(None))]


@bad_input
def fail_with_a_non_exception(ns: Impl) -> object:
    return [fired_with(ns.fail("text"))]


@bad_input
def addTimeout_with_a_non_clock(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [outcome(d.addTimeout, 1, object()), len(d._callbacks)]


@bad_input
def result_read_before_firing(ns: Impl) -> object:
    d: Any = ns.Deferred()
    return [normalize(str(outcome(lambda: d.result)), ns)]


@bad_input
def delete_result(ns: Impl) -> object:
    d: Any = ns.Deferred()
    observed: list[object] = [normalize(str(outcome(lambda: delattr(d, "result"))), ns)]
    d.callback(1)
    observed += [outcome(lambda: delattr(d, "result")), hasattr(d, "result")]
    return observed


@bad_input
def deferred_of_two_types(ns: Impl) -> object:
    return [outcome(lambda: ns.Deferred[int, str] is not None)]


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_same_as_twisted(impl: Impl, twisted: Impl, name: str) -> None:
    scenario = BAD_INPUTS[name]
    expected = scenario(twisted)
    assert scenario(impl) == expected


# Spot checks of what Twisted does (so that a scenario above cannot be vacuous).


def test_non_callable_callback_fails_with_TypeError(impl: Impl) -> None:
    observed = non_callable_callback(impl)
    assert observed == [
        ("ok", True),
        ("ok", None),
        ("Failure", TypeError, "'int' object is not callable"),
    ]


def test_firing_twice_raises(impl: Impl) -> None:
    assert callback_twice(impl) == [
        ("ok", None),
        ("raise", AlreadyCalledError, ""),
        1,
    ]


def test_semaphore_needs_a_token(impl: Impl) -> None:
    assert semaphore_with_zero_tokens(impl) == [
        ("raise", ValueError, "DeferredSemaphore requires tokens >= 1"),
    ] * 2


def test_queue_limits(impl: Impl) -> None:
    assert queue_overflow(impl) == [("ok", None), ("raise", impl.QueueOverflow, ""), [1]]
    assert queue_underflow(impl) == [("raise", impl.QueueUnderflow, ""), 1, "x"]


def test_non_callable_canceller(impl: Impl) -> None:
    assert non_callable_canceller(impl) == [
        ("raise", TypeError, "'int' object is not callable"),
        False,
        ("ok", None),
        "later",
    ]


def test_lock_and_semaphore_assertions(impl: Impl) -> None:
    assert lock_released_when_unlocked(impl) == [
        ("raise", AssertionError, "Tried to release an unlocked lock"),
        False,
    ]
    assert semaphore_released_too_often(impl) == [
        ("raise", AssertionError, "Someone released me too many times: too many tokens!"),
        2,
    ]


def test_not_a_coroutine(impl: Impl) -> None:
    assert ensureDeferred_of_a_value(impl) == [
        ("raise", impl.NotACoroutineError, "5 is not a coroutine or a Deferred"),
        ("raise", impl.NotACoroutineError, "None is not a coroutine or a Deferred"),
    ]
    assert fromCoroutine_of_a_value(impl) == [
        ("raise", impl.NotACoroutineError, "5 is not a coroutine"),
    ]


@pytest.mark.parametrize("inside_except", [False, True])
def test_not_a_coroutine_error_is_chained_as_twisted_chains_it(impl: Impl, inside_except: bool) -> None:
    """
    ``ensureDeferred`` raises its error while handling ``fromCoroutine``'s, which is
    its ``__context__``; raised inside an ``except`` block, the first of the chain has
    the exception being handled as its own.
    """
    handled = KeyError("handled")
    errors: list[BaseException] = []
    for call in (impl.ensureDeferred, impl.Deferred.fromCoroutine):
        try:
            if inside_except:
                try:
                    raise handled
                except KeyError:
                    call(5)
            else:
                call(5)
        except impl.NotACoroutineError as error:
            errors.append(error)
    from_ensure, from_coroutine = errors
    first = handled if inside_except else None
    inner = from_ensure.__context__
    assert isinstance(inner, impl.NotACoroutineError)
    assert str(inner) == "5 is not a coroutine"
    assert inner.__context__ is first
    assert from_coroutine.__context__ is first
    assert not from_ensure.__suppress_context__


def test_cancel_of_a_deferred_fired_with_a_deferred_cancels_that_one(impl: Impl) -> None:
    d: Any = impl.Deferred()
    other: Any = impl.Deferred()
    d.callback(other)
    d.cancel()
    assert fired_with(other) == ("Failure", CancelledError, "")


def test_readme_bad_input_table_lists_every_case() -> None:
    """
    The README's "Bad input" table names every scenario above, and only those: each of
    its rows is backed by a comparison with Twisted.
    """
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("\n## Bad input\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    named = [re.findall(r"`(\w+)`", row.rsplit("|", 2)[1]) for row in rows]
    assert all(named), "a row without cases"
    listed = [name for names in named for name in names]
    assert sorted(listed) == sorted(BAD_INPUTS)
