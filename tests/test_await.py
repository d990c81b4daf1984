"""
Coroutines and generators: ``await d``, ``yield from d``, ``ensureDeferred``,
``Deferred.fromCoroutine``, ``inlineCallbacks``, and asyncio futures
(``asFuture``/``fromFuture``).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import subprocess
import sys
import warnings
import weakref
from collections.abc import Generator, Iterator
from typing import Any

import pytest
from twisted.python.failure import Failure

from tests.impls import Impl, fired_with, result_of


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    try:
        yield event_loop
    finally:
        event_loop.close()


# -- __await__ / __iter__ ---------------------------------------------------------------


def test_await_iterator_yields_the_deferred_until_it_has_a_result(impl: Impl) -> None:
    d: Any = impl.Deferred()
    it = d.__await__()
    assert next(it) is d
    assert next(it) is d
    d.callback("value")
    with pytest.raises(StopIteration) as info:
        next(it)
    assert info.value.value == "value"


def test_iter_is_the_same_protocol(impl: Impl) -> None:
    d: Any = impl.Deferred()
    it = iter(d)
    assert next(it) is d
    d.callback(3)
    with pytest.raises(StopIteration) as info:
        next(it)
    assert info.value.value == 3


def test_await_iterator_raises_the_failure(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.errback(KeyError("k"))
    it = d.__await__()
    with pytest.raises(KeyError):
        next(it)


def test_await_iterator_waits_while_paused(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.callback(1)
    d.pause()
    it = d.__await__()
    assert next(it) is d
    d.unpause()
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.parametrize("ending", ["result", "failure", "close"])
def test_await_iterator_once_finished_returns_None(impl: Impl, ending: str) -> None:
    """
    Like Twisted's generator: once it returned the result, raised the failure or was
    closed, the iterator is finished and stepping it returns None.
    """
    d: Any = impl.Deferred()
    it = d.__await__()
    assert next(it) is d
    if ending == "close":
        it.close()
        d.callback("late")
    elif ending == "result":
        d.callback("value")
        with pytest.raises(StopIteration) as first:
            next(it)
        assert first.value.value == "value"
    else:
        d.errback(KeyError("k"))
        with pytest.raises(KeyError):
            next(it)
    for _ in range(2):
        with pytest.raises(StopIteration) as again:
            next(it)
        assert again.value.value is None
    d.addErrback(lambda _: None)


def test_await_iterator_refuses_a_value_before_its_first_step(impl: Impl) -> None:
    """As a just-started generator does; once started, a value sent is ignored."""
    d: Any = impl.succeed("result")
    it = d.__await__()
    with pytest.raises(TypeError, match="can't send non-None value to a just-started generator"):
        it.send("early")
    with pytest.raises(StopIteration) as stop:
        it.send(None)
    assert stop.value.value == "result"
    # Finished: anything may be sent, and it stops with None.
    with pytest.raises(StopIteration) as again:
        it.send("late")
    assert again.value.value is None

    pending: Any = impl.Deferred()
    it = pending.__await__()
    assert next(it) is pending
    assert it.send("ignored") is pending


@pytest.mark.parametrize("when", ["unstarted", "waiting", "fired"])
@pytest.mark.parametrize("form", ["instance", "class", "class_and_value"])
def test_throw_raises_the_exception_and_finishes_the_iterator(impl: Impl, when: str, form: str) -> None:
    """
    Twisted's generator catches nothing: ``throw()`` raises the exception (made from
    the arguments as any generator makes it) and the iterator is finished.
    """
    d: Any = impl.Deferred()
    it = d.__await__()
    if when != "unstarted":
        assert next(it) is d
    if when == "fired":
        d.callback("unused")
    error = KeyError("thrown")
    args = {"instance": (error,), "class": (KeyError,), "class_and_value": (KeyError, "thrown")}[form]
    with warnings.catch_warnings():
        # CPython 3.12+ deprecates the (type, value, traceback) form, for generators too.
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(KeyError) as raised:
            it.throw(*args)
    if form == "instance":
        assert raised.value is error
    elif form == "class_and_value":
        assert raised.value.args == ("thrown",)
    with pytest.raises(StopIteration) as stop:
        next(it)
    assert stop.value.value is None


@pytest.mark.parametrize(
    "args",
    [(), (KeyError, None, None, None), (1,), (KeyError("k"), "value"), (KeyError, None, "not a traceback")],
    ids=["none", "four", "not_an_exception", "instance_and_value", "bad_traceback"],
)
def test_throw_with_arguments_a_generator_refuses_leaves_the_iterator_as_it_was(
    impl: Impl, args: tuple[Any, ...]
) -> None:
    d: Any = impl.Deferred()
    it = d.__await__()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(TypeError):
            it.throw(*args)
    assert next(it) is d


def test_throwing_into_a_coroutine_waiting_on_a_deferred(impl: Impl) -> None:
    d: Any = impl.Deferred()

    async def waiter() -> object:
        try:
            await d
        except KeyError as e:
            return ("caught", e.args)
        return "not reached"

    coro = waiter()
    assert coro.send(None) is d
    with pytest.raises(StopIteration) as stop:
        coro.throw(KeyError("k"))
    assert stop.value.value == ("caught", ("k",))


def _frames(error: BaseException) -> list[tuple[str, str]]:
    import os
    import traceback

    return [(frame.name, os.path.basename(frame.filename)) for frame in traceback.extract_tb(error.__traceback__)]


@pytest.mark.parametrize("how", ["waiting", "unstarted", "coroutine"])
def test_an_exception_thrown_in_has_the_frames_of_Twisted_generator(impl: Impl, twisted: Impl, how: str) -> None:
    """
    ``throw()`` goes through Twisted's own ``Deferred.__iter__`` generator, started
    where the iterator stands, so the traceback ends with the same frame as on
    Twisted: ``__iter__`` at ``yield self``, or at its first line.  That is how a
    failure reaches a coroutine waiting on a Deferred that fails later.
    """

    def frames_on(impl: Impl) -> list[tuple[str, str]]:
        d: Any = impl.Deferred()
        if how == "coroutine":

            async def waiter() -> None:
                await d

            coro = waiter()
            assert coro.send(None) is d
            with pytest.raises(KeyError) as raised:
                coro.throw(KeyError("thrown"))
        else:
            it = d.__await__()
            if how == "waiting":
                next(it)
            with pytest.raises(KeyError) as raised:
                it.throw(KeyError("thrown"))
        return _frames(raised.value)

    ours, theirs = frames_on(impl), frames_on(twisted)
    assert ours == theirs
    assert theirs[-1][0] == "__iter__"


def test_a_deferred_that_had_failed_raises_without_a_generator_frame(impl: Impl, twisted: Impl) -> None:
    """
    Awaiting a Deferred that has already failed raises through the failure's
    ``raiseException`` as on Twisted, without the ``__iter__`` frame Twisted's
    generator adds before it (see the README's traceback row: with it, trial's
    reporter would trim the test's own frame).
    """

    def frames_on(impl: Impl) -> list[tuple[str, str]]:
        d: Any = impl.fail(KeyError("failed"))

        async def waiter() -> None:
            await d

        with pytest.raises(KeyError) as raised:
            waiter().send(None)
        return _frames(raised.value)

    theirs = frames_on(twisted)
    assert [f for f in theirs if f[0] != "__iter__"] == [f for f in frames_on(impl) if f[0] != "__iter__"]
    if not impl.is_twisted:
        assert ("__iter__", "defer.py") not in frames_on(impl)


def test_live_await_iterators_are_distinct(impl: Impl) -> None:
    first: Any = impl.succeed("one")
    second: Any = impl.succeed("two")
    it1, it2 = first.__await__(), second.__await__()
    assert it1 is not it2
    with pytest.raises(StopIteration) as one:
        next(it1)
    del it1
    it3 = impl.succeed("three").__await__()
    with pytest.raises(StopIteration) as two:
        next(it2)
    with pytest.raises(StopIteration) as three:
        next(it3)
    assert (one.value.value, two.value.value, three.value.value) == ("one", "two", "three")


def test_an_abandoned_await_iterator_lets_its_deferred_go(impl: Impl) -> None:
    d: Any = impl.Deferred()
    ref = weakref.ref(d)
    it = d.__await__()
    assert next(it) is d
    del it, d
    gc.collect()
    assert ref() is None


def test_a_finished_iterator_still_held_is_not_handed_out_again(impl: Impl) -> None:
    first = impl.succeed(1).__await__()
    with pytest.raises(StopIteration):
        next(first)
    second = impl.succeed(2).__await__()
    assert second is not first
    with pytest.raises(StopIteration) as two:
        next(second)
    with pytest.raises(StopIteration) as again:
        next(first)
    assert (two.value.value, again.value.value) == (2, None)


def test_a_finished_iterator_still_held_is_let_go_at_once_by_the_next_await(impl: Impl) -> None:
    """
    txdefer keeps a finished iterator as a spare for the next ``await``; if the
    program still holds it, that ``await`` leaves it alone and lets go of the
    spare's reference at once, even from a coroutine stepped by plain Python (no
    txdefer call around it), so the iterator is freed when the program drops it.
    """
    # Whatever spare there is goes to `keep`; the next iterator is new.
    keep = impl.succeed(0).__await__()
    first = impl.succeed(1).__await__()
    with pytest.raises(StopIteration):
        next(first)  # finished: txdefer's spare from here

    # Held here, so that nothing is freed (no txdefer code runs) until the check.
    awaited = impl.succeed(2)

    async def main() -> int:
        return await awaited

    with pytest.raises(StopIteration) as done:
        main().send(None)
    assert done.value.value == 2
    # Only `first` itself and the argument of getrefcount.
    assert sys.getrefcount(first) == 2
    del keep, awaited


def test_await_runs_a_replaced___await___and_the_compiled_one_once_it_is_removed() -> None:
    """
    ``await d`` on a ``txdefer.Deferred`` runs ``Deferred.__await__`` as the class
    has it: a replacement assigned to the class, then, once it is deleted, the
    compiled one again (CPython rewrites the class's slot both times).  In a
    process of its own: the compiled slot CPython restores is PyO3's, slower than
    the one txdefer installs.
    """
    code = """
import txdefer

d = txdefer.succeed(5)

async def main():
    return await d

def result():
    coro = main()
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine did not finish")

assert result() == 5
txdefer.Deferred.__await__ = lambda self: iter(())
assert result() is None
del txdefer.Deferred.__await__
assert result() == 5
assert txdefer.Deferred().__await__().__class__.__name__ == "DeferredIterator"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (out.returncode, out.stdout, out.stderr) == (0, "ok\n", "")


def test_an_awaited_deferred_is_freed_at_once_outside_any_driver(impl: Impl) -> None:
    # The coroutine is stepped from Python, not by ensureDeferred's driver: the
    # iterator's reference to the Deferred must go when the await ends, not at some
    # later call into txdefer.
    refs: list[weakref.ref[Any]] = []

    async def main() -> list[bool]:
        d = impl.succeed(1)
        refs.append(weakref.ref(d))
        assert await d == 1
        del d
        return [ref() is None for ref in refs]

    gc.disable()
    try:
        with pytest.raises(StopIteration) as done:
            main().send(None)
    finally:
        gc.enable()
    assert done.value.value == [True]


def test_a_dropped_coroutine_lets_the_awaited_deferred_go(impl: Impl) -> None:
    def start() -> tuple[Any, weakref.ref[Any]]:
        waiting: Any = impl.Deferred()

        async def main() -> None:
            await waiting

        coro = main()
        coro.send(None)  # suspended in the await
        return coro, weakref.ref(waiting)

    coro, ref = start()
    assert ref() is not None
    del coro
    gc.collect()
    assert ref() is None


def test_awaits_nested_in_callbacks_each_get_their_own_result(impl: Impl) -> None:
    """
    A callback run while a coroutine is inside an ``await`` awaits other Deferreds.
    """
    outer: Any = impl.Deferred()
    seen: list[object] = []

    def nested(result: object) -> object:
        async def inner() -> object:
            return (await impl.succeed("inner"), await impl.succeed(result))

        seen.append(fired_with(impl.ensureDeferred(inner())))
        return result

    outer.addCallback(nested)

    async def main() -> object:
        first = await impl.succeed("first")
        return first, await outer

    d: Any = impl.ensureDeferred(main())
    outer.callback("outer")
    assert seen == [("inner", "outer")]
    assert fired_with(d) == ("first", "outer")


# -- coroutines -------------------------------------------------------------------------


def test_await_already_fired(impl: Impl) -> None:
    async def main() -> int:
        value: int = await impl.succeed(41)
        return value + 1

    d: Any = impl.ensureDeferred(main())
    assert isinstance(d, impl.module.Deferred)
    assert fired_with(d) == 42


# Results that a StopIteration-based return could get wrong: a tuple (taken as the
# exception's arguments), an exception instance (taken as the exception), None.
_AWKWARD_RESULTS = [
    None,
    0,
    (),
    (1, 2),
    ((1, 2),),
    [3],
    StopIteration("stop"),
    ValueError("a value, not raised"),
    KeyError,
]


@pytest.mark.parametrize("value", _AWKWARD_RESULTS, ids=repr)
def test_await_returns_the_result_object_itself(impl: Impl, value: object) -> None:
    """
    ``await d`` (the interpreter's send slot), ``yield from d`` and stepping the
    iterator by hand all give exactly the result object.
    """
    seen: list[object] = []

    async def by_await() -> None:
        seen.append(await impl.succeed(value))

    def by_yield_from() -> Generator[Any, Any, None]:
        seen.append((yield from impl.succeed(value)))

    assert fired_with(impl.ensureDeferred(by_await())) is None
    assert fired_with(impl.inlineCallbacks(by_yield_from)()) is None
    with pytest.raises(StopIteration) as stop:
        next(impl.succeed(value).__await__())
    seen.append(stop.value.value)
    assert len(seen) == 3
    assert all(each is value for each in seen)


def _step(it: Any, how: str) -> object:
    """
    One step of an await iterator, by ``next(it)``, ``it.__next__()`` or
    ``it.send(None)``.
    """
    if how == "next":
        return next(it)
    if how == "__next__":
        return it.__next__()
    return it.send(None)


@pytest.mark.parametrize("step", ["next", "__next__", "send"])
@pytest.mark.parametrize("value", _AWKWARD_RESULTS, ids=repr)
def test_stepping_the_iterator_by_hand_stops_as_a_returning_generator_does(
    impl: Impl, value: object, step: str
) -> None:
    """
    The ``StopIteration`` is the one a generator's ``return value`` raises: it carries
    the result object as ``value`` and ``args[0]``, and is bare for ``None``.
    """
    with pytest.raises(StopIteration) as stop:
        _step(impl.succeed(value).__await__(), step)
    assert stop.value.value is value
    if value is None:
        assert stop.value.args == ()
    else:
        assert len(stop.value.args) == 1
        assert stop.value.args[0] is value


@pytest.mark.parametrize("step", ["next", "__next__", "send"])
@pytest.mark.parametrize("value", [None, 5, (1, 2)], ids=repr)
def test_stepping_the_iterator_inside_an_except_block_chains_the_handled_exception(
    impl: Impl, value: object, step: str
) -> None:
    """
    The ``StopIteration`` raised inside an ``except`` block has the exception being
    handled as its ``__context__``, as a generator's ``return`` there does.
    """
    handled = KeyError("handled")
    it = impl.succeed(value).__await__()
    try:
        raise handled
    except KeyError:
        with pytest.raises(StopIteration) as stop:
            _step(it, step)
    assert stop.value.value is value
    assert stop.value.__context__ is handled
    assert stop.value.__cause__ is None
    assert not stop.value.__suppress_context__


def test_await_fired_later(impl: Impl) -> None:
    waiting: Any = impl.Deferred()
    steps: list[object] = []

    async def main() -> str:
        steps.append("before")
        value = await waiting
        steps.append(("after", value))
        return value * 2

    d: Any = impl.ensureDeferred(main())
    assert steps == ["before"]
    assert not d.called
    waiting.callback("ab")
    assert steps == ["before", ("after", "ab")]
    assert fired_with(d) == "abab"


def test_await_failure_raises_inside_the_coroutine(impl: Impl) -> None:
    async def main() -> object:
        try:
            await impl.fail(ValueError("inside"))
        except ValueError as e:
            return ("caught", str(e))
        return "not raised"

    assert fired_with(impl.ensureDeferred(main())) == ("caught", "inside")


def test_uncaught_exception_fails_the_deferred(impl: Impl) -> None:
    waiting: Any = impl.Deferred()

    async def main() -> None:
        await waiting
        raise OSError("from coroutine")

    d: Any = impl.ensureDeferred(main())
    waiting.callback(None)
    assert fired_with(d) == ("Failure", OSError, "from coroutine")


def test_await_a_deferred_of_a_deferred(impl: Impl) -> None:
    inner: Any = impl.Deferred()
    outer: Any = impl.Deferred()
    outer.addCallback(lambda r: inner)

    async def main() -> object:
        return await outer

    d: Any = impl.ensureDeferred(main())
    outer.callback(None)
    assert not d.called
    inner.callback("deep")
    assert fired_with(d) == "deep"


def test_await_many_in_sequence(impl: Impl) -> None:
    ds = [impl.Deferred() for _ in range(5)]

    async def main() -> list[object]:
        return [await d for d in ds]

    result: Any = impl.Deferred.fromCoroutine(main())
    for i, d in enumerate(ds):
        assert not result.called
        d.callback(i)
    assert fired_with(result) == [0, 1, 2, 3, 4]


def test_ensureDeferred_returns_a_deferred_unchanged(impl: Impl) -> None:
    d: Any = impl.Deferred()
    assert impl.ensureDeferred(d) is d


def test_fromCoroutine_accepts_a_generator(impl: Impl) -> None:
    waiting: Any = impl.Deferred()

    def gen() -> Generator[Any, Any, str]:
        value = yield from waiting
        return f"got {value}"

    d: Any = impl.Deferred.fromCoroutine(gen())
    waiting.callback("x")
    assert fired_with(d) == "got x"


def test_fromCoroutine_on_the_subclass_returns_a_deferred(impl: Impl) -> None:
    async def main() -> int:
        return 1

    d: Any = impl.Deferred.fromCoroutine(main())
    assert isinstance(d, impl.module.Deferred)
    assert fired_with(d) == 1


def test_yield_from_in_inlineCallbacks(impl: Impl) -> None:
    waiting: Any = impl.Deferred()

    @impl.inlineCallbacks
    def gen() -> Any:
        value = yield from waiting
        return value + 1

    d: Any = gen()
    waiting.callback(1)
    assert fired_with(d) == 2


def test_awaiting_a_coroutine_that_awaits(impl: Impl) -> None:
    waiting: Any = impl.Deferred()

    async def inner() -> str:
        return await waiting

    async def outer() -> str:
        return "outer:" + await inner()

    d: Any = impl.ensureDeferred(outer())
    waiting.callback("in")
    assert fired_with(d) == "outer:in"


class _SentValueAwaitable:
    """An awaitable whose iterator yields a Deferred and returns what is sent back."""

    def __init__(self, d: object) -> None:
        self.d = d

    def __await__(self) -> Generator[Any, Any, object]:
        sent = yield self.d
        return ("sent", sent)


def test_an_awaitable_that_yields_a_deferred_is_sent_its_result(impl: Impl) -> None:
    waiting: Any = impl.Deferred()
    direct: Any = impl.Deferred()

    async def main() -> tuple[object, object]:
        first = await _SentValueAwaitable(waiting)
        second = await direct
        return first, second

    d: Any = impl.ensureDeferred(main())
    waiting.callback("w")
    assert not d.called
    direct.callback("d")
    assert fired_with(d) == (("sent", "w"), "d")


def test_each_coroutine_of_an_await_chain_gets_the_result_it_awaited(impl: Impl) -> None:
    ds = [impl.Deferred() for _ in range(3)]

    async def innermost() -> list[object]:
        return [await ds[0], await _SentValueAwaitable(ds[1])]

    async def middle() -> list[object]:
        return [*await innermost(), await ds[2]]

    async def outer() -> object:
        return ("outer", await middle())

    d: Any = impl.ensureDeferred(outer())
    for i, waiting in enumerate(ds):
        assert not d.called
        waiting.callback(i)
    assert fired_with(d) == ("outer", [0, ("sent", 1), 2])


def test_contextvars_are_kept_across_awaits(impl: Impl) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    waiting: Any = impl.Deferred()

    async def main() -> tuple[str, str]:
        var.set("inside")
        before = var.get()
        await waiting
        return before, var.get()

    d: Any = impl.ensureDeferred(main())
    assert var.get() == "unset"
    waiting.callback(None)
    assert fired_with(d) == ("inside", "inside")


def test_each_step_runs_in_the_context_copied_at_the_start(impl: Impl) -> None:
    # The value set outside after the start is not seen inside; the value set inside
    # is seen at every later step, and never outside.
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    ds: list[Any] = [impl.Deferred() for _ in range(3)]
    seen: list[str] = []

    async def main() -> str:
        seen.append(var.get())
        var.set("inside")
        for d in ds:
            await d
            seen.append(var.get())
        return var.get()

    var.set("before")
    d: Any = impl.ensureDeferred(main())
    var.set("after")
    for waiting in ds:
        waiting.callback(None)
        assert var.get() == "after"
    assert fired_with(d) == "inside"
    assert seen == ["before", "inside", "inside", "inside"]


def test_a_failure_is_thrown_into_the_coroutine_inside_its_context(impl: Impl) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    waiting: Any = impl.Deferred()

    async def main() -> tuple[str, str]:
        var.set("inside")
        try:
            await waiting
        except ValueError as e:
            return str(e), var.get()
        return "not raised", var.get()

    d: Any = impl.ensureDeferred(main())
    var.set("outside")
    waiting.errback(ValueError("thrown"))
    assert fired_with(d) == ("thrown", "inside")
    assert var.get() == "outside"


@pytest.mark.parametrize(
    "value", [None, 0, "x", (1, 2), StopIteration("stop"), Failure(ValueError("as a value"))]
)
def test_what_a_coroutine_returns_fires_its_deferred(impl: Impl, value: object) -> None:
    waiting: Any = impl.Deferred()

    async def main() -> object:
        await waiting
        return value

    d: Any = impl.ensureDeferred(main())
    waiting.callback(None)
    outcome = result_of(d)
    if isinstance(value, Failure):
        assert isinstance(outcome, Failure) and outcome.value is value.value
    else:
        assert outcome is value


def test_a_StopIteration_raised_in_a_coroutine_is_a_RuntimeError(impl: Impl) -> None:
    async def main() -> None:
        await impl.succeed(None)
        raise StopIteration("inside")

    d: Any = impl.ensureDeferred(main())
    failure = result_of(d)
    assert isinstance(failure, Failure)
    assert failure.type is RuntimeError
    assert isinstance(failure.value.__cause__, StopIteration)


def test_an_exception_of_a_coroutine_keeps_its_traceback(impl: Impl) -> None:
    waiting: Any = impl.Deferred()

    async def fails_here() -> None:
        await waiting
        raise KeyError("k")

    d: Any = impl.ensureDeferred(fails_here())
    waiting.callback(None)
    failure = result_of(d)
    assert isinstance(failure, Failure) and failure.type is KeyError
    assert "fails_here" in failure.getTraceback()


def test_a_coroutine_of_another_kind_is_stepped_through_its_send(impl: Impl) -> None:
    # An object registered as a Coroutine (not a native one) is driven through its
    # own send method, with the value sent each time.
    from collections.abc import Coroutine

    waiting: Any = impl.Deferred()
    sent: list[object] = []

    class Stepper(Coroutine[Any, Any, str]):
        def __init__(self) -> None:
            self.steps = iter([impl.succeed("a"), waiting])

        def send(self, value: object) -> object:
            sent.append(value)
            try:
                return next(self.steps)
            except StopIteration:
                raise StopIteration("done") from None

        def throw(self, *args: Any) -> Any:
            raise AssertionError(args)

        def close(self) -> None:
            pass

        def __await__(self) -> Any:
            return self

    d: Any = impl.ensureDeferred(Stepper())
    assert not d.called
    waiting.callback("b")
    assert fired_with(d) == "done"
    assert sent == [None, "a", "b"]


# -- inlineCallbacks --------------------------------------------------------------------


def test_inlineCallbacks_yields_deferreds_and_returns(impl: Impl) -> None:
    waiting: Any = impl.Deferred()

    @impl.inlineCallbacks
    def gen(a: int, b: int = 0) -> Any:
        x = yield impl.succeed(a)
        y = yield waiting
        z = yield "not a deferred"
        return (x, y, z, b)

    d: Any = gen(1, b=2)
    assert not d.called
    waiting.callback("w")
    assert fired_with(d) == (1, "w", "not a deferred", 2)


def test_inlineCallbacks_exception_becomes_failure(impl: Impl) -> None:
    @impl.inlineCallbacks
    def gen() -> Any:
        yield impl.succeed(None)
        raise LookupError("gen")

    assert fired_with(gen()) == ("Failure", LookupError, "gen")


def _failing_later(impl: Impl, kind: str, waiting: Any, exc: BaseException) -> Any:
    """The Deferred of a generator or coroutine that raises ``exc`` once ``waiting`` fires."""
    if kind == "inlineCallbacks":

        @impl.inlineCallbacks
        def gen() -> Any:
            yield waiting
            raise exc

        return gen()

    async def coro() -> None:
        await waiting
        raise exc

    if kind == "fromCoroutine":
        return impl.Deferred.fromCoroutine(coro())
    return impl.ensureDeferred(coro())


@pytest.mark.parametrize("kind", ["inlineCallbacks", "fromCoroutine", "ensureDeferred"])
def test_errbacks_of_a_failing_generator_run_while_its_exception_is_handled(
    impl: Impl, kind: str
) -> None:
    """
    Twisted errbacks the Deferred of a generator (or coroutine) that raised inside
    ``except``: the errbacks that runs see that exception as the one being handled
    (``sys.exc_info()``, ``Failure()``), what they raise has it as its ``__context__``,
    and afterwards the exception handled before is back.
    """
    waiting: Any = impl.Deferred()
    exc = LookupError("from the generator")
    d = _failing_later(impl, kind, waiting, exc)
    seen: dict[str, Any] = {}

    def errback(failure: Failure) -> None:
        seen["handled"] = sys.exc_info()[1]
        seen["Failure()"] = Failure()
        raise KeyError("from the errback")

    d.addErrback(errback)
    try:
        raise IndexError("the caller's")
    except IndexError as caller:
        waiting.callback(None)
        assert sys.exc_info()[1] is caller
    assert sys.exc_info() == (None, None, None)
    assert seen["handled"] is exc
    assert seen["Failure()"].value is exc
    failure = result_of(d)
    assert failure.type is KeyError
    assert failure.value.__context__ is exc


def test_AlreadyCalledError_of_a_failing_generator_has_its_exception_as_context(
    impl: Impl,
) -> None:
    # The generator's Deferred was fired by hand: errbacking it raises
    # AlreadyCalledError inside Twisted's except block, into the callback chain of the
    # Deferred the generator waited on.
    from twisted.internet.defer import AlreadyCalledError

    waiting: Any = impl.Deferred()
    d = _failing_later(impl, "inlineCallbacks", waiting, LookupError("from the generator"))
    d.callback("fired by hand")
    waiting.callback(None)
    failure = result_of(waiting)
    assert failure.type is AlreadyCalledError
    assert isinstance(failure.value.__context__, LookupError)


def test_inlineCallbacks_failure_is_thrown_into_the_generator(impl: Impl) -> None:
    @impl.inlineCallbacks
    def gen() -> Any:
        try:
            yield impl.fail(ValueError("thrown"))
        except ValueError as e:
            return f"caught {e}"

    assert fired_with(gen()) == "caught thrown"


def test_inlineCallbacks_returnValue_is_deprecated(impl: Impl) -> None:
    @impl.inlineCallbacks
    def gen() -> Any:
        yield impl.succeed(None)
        impl.returnValue("old style")

    with pytest.warns(DeprecationWarning, match="returnValue was deprecated"):
        d: Any = gen()
    assert fired_with(d) == "old style"


def test_inlineCallbacks_returnValue_from_a_nested_function_warns(impl: Impl) -> None:
    def helper() -> None:
        impl.returnValue("nested")

    @impl.inlineCallbacks
    def gen() -> Any:
        yield None
        helper()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d: Any = gen()
    messages = [str(w.message) for w in caught]
    assert (
        "returnValue() in 'helper' causing 'gen' to exit: returnValue should only be "
        "invoked by functions decorated with inlineCallbacks" in messages
    )
    assert fired_with(d) == "nested"


def test_inlineCallbacks_yielding_a_coroutine(impl: Impl) -> None:
    async def coro() -> str:
        return await impl.succeed("from coroutine")

    @impl.inlineCallbacks
    def gen() -> Any:
        value = yield coro()
        return value

    assert fired_with(gen()) == "from coroutine"


def test_inlineCallbacks_yielding_the_subclass(impl: Impl) -> None:
    d: Any = impl.Deferred()

    @impl.inlineCallbacks
    def gen() -> Any:
        return (yield d)

    result: Any = gen()
    d.callback("sub")
    assert fired_with(result) == "sub"


def test_inlineCallbacks_on_a_non_generator_function(impl: Impl) -> None:
    def not_a_generator() -> int:
        return 1

    with pytest.raises(TypeError) as info:
        impl.inlineCallbacks(not_a_generator)()
    assert str(info.value) == (
        f"inlineCallbacks requires {not_a_generator!r} to produce a generator; "
        "instead got 1"
    )


def test_inlineCallbacks_keeps_the_function_metadata(impl: Impl) -> None:
    def documented() -> Any:
        """Docstring."""
        yield None

    wrapped = impl.inlineCallbacks(documented)
    assert wrapped.__name__ == "documented"
    assert wrapped.__doc__ == "Docstring."
    assert wrapped.__wrapped__ is documented


def test_inlineCallbacks_is_resumed_once_per_yield(impl: Impl) -> None:
    ds = [impl.Deferred() for _ in range(3)]
    log: list[object] = []

    @impl.inlineCallbacks
    def gen() -> Any:
        for d in ds:
            log.append((yield d))
        return "end"

    result: Any = gen()
    ds[2].callback(2)
    ds[0].callback(0)
    assert log == [0]
    ds[1].callback(1)
    assert log == [0, 1, 2]
    assert fired_with(result) == "end"


# -- asyncio futures --------------------------------------------------------------------


def test_asFuture_result(impl: Impl, loop: asyncio.AbstractEventLoop) -> None:
    d: Any = impl.Deferred()
    future = d.asFuture(loop)
    assert isinstance(future, asyncio.Future)
    assert not future.done()
    d.callback(13)
    assert loop.run_until_complete(future) == 13
    # The Deferred's own result is consumed.
    assert d.result is None


def test_asFuture_failure(impl: Impl, loop: asyncio.AbstractEventLoop) -> None:
    d: Any = impl.Deferred()
    future = d.asFuture(loop)
    d.errback(ZeroDivisionError("future"))
    with pytest.raises(ZeroDivisionError, match="future"):
        loop.run_until_complete(future)
    assert d.result is None


def test_asFuture_cancel_cancels_the_deferred(
    impl: Impl, loop: asyncio.AbstractEventLoop
) -> None:
    cancelled: list[object] = []
    d: Any = impl.Deferred(cancelled.append)
    future = d.asFuture(loop)
    future.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    assert cancelled == [d]
    assert d.called
    assert d.result is None


def test_asFuture_of_a_fired_deferred(impl: Impl, loop: asyncio.AbstractEventLoop) -> None:
    future = impl.succeed("already").asFuture(loop)
    assert future.done()
    assert future.result() == "already"


def test_fromFuture_result(impl: Impl, loop: asyncio.AbstractEventLoop) -> None:
    future: asyncio.Future[str] = loop.create_future()
    d: Any = impl.Deferred.fromFuture(future)
    assert type(d) is impl.Deferred
    assert not d.called
    future.set_result("done")
    loop.run_until_complete(asyncio.sleep(0))
    assert fired_with(d) == "done"


def test_fromFuture_exception(impl: Impl, loop: asyncio.AbstractEventLoop) -> None:
    future: asyncio.Future[str] = loop.create_future()
    d: Any = impl.Deferred.fromFuture(future)
    future.set_exception(KeyError("f"))
    loop.run_until_complete(asyncio.sleep(0))
    assert fired_with(d) == ("Failure", KeyError, "'f'")


def test_fromFuture_cancel(impl: Impl, loop: asyncio.AbstractEventLoop) -> None:
    future: asyncio.Future[str] = loop.create_future()
    d: Any = impl.Deferred.fromFuture(future)
    d.cancel()
    assert future.cancelled()
    # The Deferred waits for the future's own (cancelled) outcome.
    assert d._chainedTo is not None
    loop.run_until_complete(asyncio.sleep(0))
    result = result_of(d)
    assert isinstance(result, Failure)
    assert result.type is asyncio.CancelledError


def test_fromFuture_of_a_done_future(impl: Impl, loop: asyncio.AbstractEventLoop) -> None:
    future: asyncio.Future[int] = loop.create_future()
    future.set_result(5)
    d: Any = impl.Deferred.fromFuture(future)
    loop.run_until_complete(asyncio.sleep(0))
    assert fired_with(d) == 5


def test_asyncio_task_awaiting_a_deferred_via_asFuture(
    impl: Impl, loop: asyncio.AbstractEventLoop
) -> None:
    d: Any = impl.Deferred()

    async def task() -> str:
        value = await d.asFuture(loop)
        return f"task got {value}"

    t = loop.create_task(task())
    loop.run_until_complete(asyncio.sleep(0))
    d.callback("v")
    assert loop.run_until_complete(t) == "task got v"


# -- deep generator ---------------------------------------------------------------------


def test_inlineCallbacks_yielding_a_million_fired_deferreds(impl: Impl) -> None:
    count = 1_000_000

    @impl.inlineCallbacks
    def gen() -> Any:
        total = 0
        for _ in range(count):
            total += yield impl.succeed(1)
        return total

    assert fired_with(gen()) == count


def test_coroutine_awaiting_many_fired_deferreds(impl: Impl) -> None:
    count = 200_000

    async def main() -> int:
        total = 0
        for _ in range(count):
            total += await impl.succeed(1)
        return total

    assert fired_with(impl.ensureDeferred(main())) == count
