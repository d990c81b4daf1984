"""
Helpers built on ``Deferred``: ``DeferredList`` (every flag), ``gatherResults``,
``race``, ``DeferredLock``, ``DeferredSemaphore``, ``DeferredQueue``.
"""

from __future__ import annotations

import copy
import gc
import pickle
import weakref
from typing import Any

import pytest
from twisted.python.failure import Failure

from tests.impls import SUBCLASS, Impl, describe, fired_with, result_of


def _results(result: list[tuple[bool, object]]) -> list[tuple[bool, object]]:
    return [(ok, describe(value)) for ok, value in result]


# -- DeferredList -----------------------------------------------------------------------


def test_DeferredList_is_a_deferred(impl: Impl) -> None:
    dl: Any = impl.DeferredList([])
    assert isinstance(dl, impl.module.Deferred)
    assert type(dl) in impl.subclasses


def test_DeferredList_empty_fires_at_once(impl: Impl) -> None:
    assert fired_with(impl.DeferredList([])) == []


def test_DeferredList_empty_with_fireOnOneCallback_never_fires(impl: Impl) -> None:
    dl: Any = impl.DeferredList([], fireOnOneCallback=True)
    assert dl.called is False


def test_DeferredList_waits_for_all(impl: Impl) -> None:
    ds = [impl.Deferred() for _ in range(3)]
    dl: Any = impl.DeferredList(ds)
    ds[2].callback("c")
    ds[0].errback(ValueError("a"))
    assert not dl.called
    ds[1].callback("b")
    assert _results(result_of(dl)) == [
        (False, ("Failure", ValueError, "a")),
        (True, "b"),
        (True, "c"),
    ]
    # Without consumeErrors the failure stays in the Deferred it came from.
    assert fired_with(ds[0]) == ("Failure", ValueError, "a")
    assert fired_with(ds[1]) == "b"


def test_DeferredList_of_already_fired_deferreds(impl: Impl) -> None:
    dl: Any = impl.DeferredList([impl.succeed(1), impl.succeed(2)])
    assert fired_with(dl) == [(True, 1), (True, 2)]


def test_DeferredList_takes_any_iterable(impl: Impl) -> None:
    ds = (impl.succeed(i) for i in range(3))
    assert fired_with(impl.DeferredList(ds)) == [(True, 0), (True, 1), (True, 2)]


def test_DeferredList_refuses_what_is_not_iterable_as_list_does(impl: Impl) -> None:
    with pytest.raises(TypeError) as raised:
        impl.DeferredList(5)
    assert str(raised.value) == "'int' object is not iterable"


def test_DeferredList_copies_the_list_it_is_given(impl: Impl) -> None:
    ds = [impl.Deferred()]
    dl: Any = impl.DeferredList(ds)
    ds.append(impl.Deferred())
    assert dl._deferredList == ds[:1]
    assert dl._deferredList is not ds
    assert dl.resultList == [None]


def test_DeferredList_runs_Deferred_init_and_callback_as_Twisted_does(
    impl: Impl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    ``DeferredList.__init__`` calls ``Deferred.__init__(self)`` (whatever it is
    now), and fires an empty list through ``self.callback``, which a subclass can
    override.
    """
    calls: list[object] = []
    original = impl.module.Deferred.__init__

    def recording_init(self: Any, *args: Any) -> None:
        calls.append(("__init__", args))
        original(self, *args)

    class Overriding(impl.DeferredList):  # type: ignore[name-defined, misc]
        def callback(self, result: Any) -> None:
            calls.append(("callback", result))
            super().callback(result)

    monkeypatch.setattr(impl.module.Deferred, "__init__", recording_init)
    dl = Overriding([])
    assert calls == [("__init__", ()), ("callback", [])]
    assert fired_with(dl) == []
    monkeypatch.undo()
    calls.clear()
    assert fired_with(Overriding([])) == []
    assert calls == [("callback", [])]


@pytest.mark.parametrize("members", [0, 1], ids=["empty", "one_fired"])
def test_DeferredList_that_has_fired_is_freed_without_the_cycle_collector(
    impl: Impl, members: int
) -> None:
    """
    A list that fired while it was made (empty, or every member fired) is no
    reference cycle: it goes as soon as the program lets go of it.
    """
    gc.disable()
    try:
        dl: Any = impl.DeferredList([impl.succeed(i) for i in range(members)])
        assert dl.called
        ref = weakref.ref(dl)
        del dl
        assert ref() is None
    finally:
        gc.enable()


def test_DeferredList_fireOnOneCallback(impl: Impl) -> None:
    ds = [impl.Deferred() for _ in range(3)]
    dl: Any = impl.DeferredList(ds, fireOnOneCallback=True)
    ds[0].errback(ValueError())
    assert not dl.called
    ds[2].callback("third")
    assert fired_with(dl) == ("third", 2)
    ds[1].callback("ignored")
    assert dl.resultList[1] == (True, "ignored")
    result_of(ds[0])


def test_DeferredList_fireOnOneErrback(impl: Impl) -> None:
    ds = [impl.Deferred() for _ in range(2)]
    dl: Any = impl.DeferredList(ds, fireOnOneErrback=True)
    ds[0].callback(1)
    ds[1].errback(KeyError("second"))
    failure = result_of(dl)
    assert isinstance(failure, Failure)
    assert failure.type is impl.FirstError
    first_error = failure.value
    assert first_error.index == 1
    assert first_error.subFailure.type is KeyError
    assert repr(first_error) == "FirstError[#1, KeyError('second')]"
    result_of(ds[1])


def test_DeferredList_consumeErrors(impl: Impl) -> None:
    ds = [impl.Deferred(), impl.Deferred()]
    dl: Any = impl.DeferredList(ds, consumeErrors=True)
    ds[0].errback(ValueError("consumed"))
    ds[1].callback(2)
    assert _results(result_of(dl)) == [
        (False, ("Failure", ValueError, "consumed")),
        (True, 2),
    ]
    assert fired_with(ds[0]) is None


def test_DeferredList_all_flags(impl: Impl) -> None:
    ds = [impl.Deferred(), impl.Deferred()]
    dl: Any = impl.DeferredList(
        ds, fireOnOneCallback=True, fireOnOneErrback=True, consumeErrors=True
    )
    assert (dl.fireOnOneCallback, dl.fireOnOneErrback, dl.consumeErrors) == (
        True,
        True,
        True,
    )
    ds[1].errback(ValueError("first"))
    failure = result_of(dl)
    assert failure.value.index == 1
    assert fired_with(ds[1]) is None
    ds[0].callback("late")
    assert dl.finishedCount == 2


def test_DeferredList_positional_flags(impl: Impl) -> None:
    ds = [impl.Deferred(), impl.Deferred()]
    dl: Any = impl.DeferredList(ds, True)
    ds[1].callback("one")
    assert fired_with(dl) == ("one", 1)


def test_DeferredList_attributes(impl: Impl) -> None:
    ds = [impl.Deferred(), impl.Deferred()]
    dl: Any = impl.DeferredList(ds)
    assert dl._deferredList == ds
    assert dl.resultList == [None, None]
    assert dl.finishedCount == 0
    ds[0].callback("x")
    assert dl.resultList == [(True, "x"), None]
    assert dl.finishedCount == 1


def test_DeferredList_callbacks_added_before_affect_results(impl: Impl) -> None:
    d: Any = impl.Deferred()
    d.addCallback(lambda r: r * 10)
    dl: Any = impl.DeferredList([d])
    d.addCallback(lambda r: ("after", r))
    d.callback(4)
    assert fired_with(dl) == [(True, 40)]
    assert fired_with(d) == ("after", 40)


def test_DeferredList_with_duplicate_deferred(impl: Impl) -> None:
    d: Any = impl.Deferred()
    dl: Any = impl.DeferredList([d, d])
    d.callback("same")
    assert fired_with(dl) == [(True, "same"), (True, "same")]


# -- gatherResults ----------------------------------------------------------------------


def test_DeferredList_member_callbacks_look_as_in_Twisted(impl: Impl) -> None:
    """
    While the list waits, a member's entry is Twisted's: the list's bound
    ``_cbDeferred`` with ``(index, True)`` / ``(index, False)`` and Twisted's empty
    keyword mapping; calling it collects the result.
    """
    from types import MappingProxyType

    members = [impl.Deferred(), impl.Deferred()]
    dl: Any = impl.DeferredList(members)
    ((callback, cargs, ckwargs), (errback, eargs, ekwargs)), = members[1]._callbacks
    assert callback == errback == dl._cbDeferred
    assert (cargs, eargs) == ((1, True), (1, False))
    assert dict(ckwargs) == dict(ekwargs) == {}
    if impl is not SUBCLASS:
        # A subclass's members go through ``addCallbacks``, whose missing keywords
        # show as a dict (the README's ``_callbacks`` row).
        assert type(ckwargs) is type(ekwargs) is MappingProxyType
    members[0].callback("first")
    assert callback("second", *cargs) == "second"
    assert fired_with(dl) == [(True, "first"), (True, "second")]


def test_chainDeferred_entry_has_Twisted_keyword_mapping(impl: Impl) -> None:
    from types import MappingProxyType

    d: Any = impl.Deferred()
    target: Any = impl.Deferred()
    d.chainDeferred(target)
    ((callback, cargs, ckwargs), (errback, eargs, ekwargs)), = d._callbacks
    assert (callback.__name__, errback.__name__) == ("callback", "errback")
    assert (cargs, eargs) == ((), ())
    assert dict(ckwargs) == dict(ekwargs) == {}
    if impl is not SUBCLASS:
        # A subclass may override ``callback``: chaining goes through ``addCallbacks``.
        assert type(ckwargs) is type(ekwargs) is MappingProxyType


def test_DeferredList_flags_read_as_the_objects_given(impl: Impl) -> None:
    dl: Any = impl.DeferredList([impl.Deferred()], fireOnOneCallback=1, consumeErrors="yes")
    assert (dl.fireOnOneCallback, dl.fireOnOneErrback, dl.consumeErrors) == (1, False, "yes")
    assert dl.fireOnOneCallback is not True
    dl.fireOnOneErrback = 0
    assert dl.fireOnOneErrback == 0
    assert dl.fireOnOneErrback is not False
    assert {"fireOnOneCallback", "fireOnOneErrback", "consumeErrors"} <= set(vars(dl))
    # What they are given still acts by its truth value.
    dl._deferredList[0].callback("first")
    assert fired_with(dl) == ("first", 0)


def test_DeferredList_deleting_a_fireOnOne_flag_goes_back_to_the_default(impl: Impl) -> None:
    dl: Any = impl.DeferredList([impl.Deferred(), impl.Deferred()], fireOnOneCallback=True)
    del dl.fireOnOneCallback
    assert dl.fireOnOneCallback is False
    dl._deferredList[0].callback(1)
    assert dl.called is False  # no longer fires on the first result
    dl._deferredList[1].callback(2)
    assert fired_with(dl) == [(True, 1), (True, 2)]


@pytest.mark.parametrize("how", ["pickle", "copy", "deepcopy"])
def test_DeferredList_copy_and_pickle_keep_the_flags(impl: Impl, how: str) -> None:
    copier = {
        "pickle": lambda dl: pickle.loads(pickle.dumps(dl)),
        "copy": copy.copy,
        "deepcopy": copy.deepcopy,
    }[how]
    fired: Any = impl.DeferredList([impl.succeed(1)], fireOnOneCallback=True)
    clone: Any = copier(fired)
    assert type(clone) is type(fired)
    assert (clone.called, clone.result, clone.finishedCount) == (True, (1, 0), 1)
    assert (clone.fireOnOneCallback, clone.fireOnOneErrback, clone.consumeErrors) == (True, False, False)
    # The clone's attributes are its own.
    clone.finishedCount = 5
    assert fired.finishedCount == 1


def test_DeferredList_copy_collects_for_the_original_only(impl: Impl) -> None:
    member: Any = impl.Deferred()
    dl: Any = impl.DeferredList([member, impl.Deferred()], consumeErrors=True)
    clone: Any = copy.copy(dl)
    member.callback(3)
    assert (dl.finishedCount, clone.finishedCount) == (1, 0)
    assert clone.resultList is dl.resultList  # a shallow copy shares it, in Twisted too
    assert clone.consumeErrors is True


def test_gatherResults(impl: Impl) -> None:
    ds = [impl.Deferred() for _ in range(3)]
    g: Any = impl.gatherResults(ds)
    for i, d in reversed(list(enumerate(ds))):
        d.callback(i * 2)
    assert fired_with(g) == [0, 2, 4]


def test_gatherResults_empty(impl: Impl) -> None:
    assert fired_with(impl.gatherResults([])) == []


def test_gatherResults_fails_on_first_failure(impl: Impl) -> None:
    ds = [impl.Deferred() for _ in range(2)]
    g: Any = impl.gatherResults(ds, consumeErrors=True)
    ds[1].errback(OSError("io"))
    failure = result_of(g)
    assert failure.type is impl.FirstError
    assert (failure.value.index, failure.value.subFailure.type) == (1, OSError)
    ds[0].callback(None)
    assert fired_with(ds[1]) is None


def test_gatherResults_without_consumeErrors_leaves_failures(impl: Impl) -> None:
    ds = [impl.Deferred()]
    g: Any = impl.gatherResults(ds)
    ds[0].errback(OSError("left"))
    result_of(g)
    assert fired_with(ds[0]) == ("Failure", OSError, "left")


# -- race -------------------------------------------------------------------------------


def test_race_first_success_wins_and_cancels_the_rest(impl: Impl) -> None:
    cancelled: list[object] = []
    ds = [impl.Deferred(cancelled.append) for _ in range(3)]
    r: Any = impl.race(ds)
    ds[1].callback("second wins")
    assert fired_with(r) == (1, "second wins")
    # The losers were cancelled; race's own errback consumed their CancelledError.
    assert cancelled == [ds[0], ds[2]]
    assert (fired_with(ds[0]), fired_with(ds[2])) == (None, None)
    # The winner itself is not cancelled and keeps its result.
    assert fired_with(ds[1]) is None


def test_race_failures_are_skipped(impl: Impl) -> None:
    ds = [impl.Deferred() for _ in range(2)]
    r: Any = impl.race(ds)
    ds[0].errback(ValueError())
    assert not r.called
    ds[1].callback("ok")
    assert fired_with(r) == (1, "ok")


def test_race_all_fail(impl: Impl) -> None:
    ds = [impl.Deferred() for _ in range(2)]
    r: Any = impl.race(ds)
    ds[1].errback(KeyError("b"))
    ds[0].errback(ValueError("a"))
    failure = result_of(r)
    assert failure.type is impl.FailureGroup
    assert [describe(f) for f in failure.value.failures] == [
        ("Failure", ValueError, "a"),
        ("Failure", KeyError, "'b'"),
    ]


def test_race_with_a_canceller_that_succeeds(impl: Impl) -> None:
    ds = [impl.Deferred(lambda d: d.callback("soft")), impl.Deferred()]
    r: Any = impl.race(ds)
    ds[1].callback("winner")
    assert fired_with(r) == (1, "winner")
    assert fired_with(ds[0]) is None


# -- DeferredLock -----------------------------------------------------------------------


def test_DeferredLock_acquire_release(impl: Impl) -> None:
    lock = impl.DeferredLock()
    assert lock.locked is False
    first: Any = lock.acquire()
    assert fired_with(first) is lock
    assert lock.locked is True
    second: Any = lock.acquire()
    assert not second.called
    lock.release()
    assert fired_with(second) is lock
    assert lock.locked is True
    lock.release()
    assert lock.locked is False


def _state(d: Any) -> dict[str, object]:
    """
    Everything a Deferred from ``acquire()`` shows: the attributes Twisted sets.
    """
    return {
        "called": d.called,
        "paused": d.paused,
        "canceller": d._canceller,
        "chainedTo": d._chainedTo,
        "suppressAlreadyCalled": d._suppressAlreadyCalled,
        "callbacks": list(d._callbacks),
        "result": getattr(d, "result", "<unset>"),
    }


@pytest.mark.parametrize("make", ["lock", "semaphore"])
def test_acquire_leaves_the_state_Twisted_leaves(impl: Impl, make: str) -> None:
    primitive = impl.DeferredLock() if make == "lock" else impl.DeferredSemaphore(1)
    free: Any = primitive.acquire()
    assert _state(free) == {
        "called": True,
        "paused": 0,
        "canceller": None,
        "chainedTo": None,
        "suppressAlreadyCalled": False,
        "callbacks": [],
        "result": primitive,
    }
    waiting: Any = primitive.acquire()
    state = _state(waiting)
    assert state.pop("canceller") == primitive._cancelAcquire
    assert state == {
        "called": False,
        "paused": 0,
        "chainedTo": None,
        "suppressAlreadyCalled": False,
        "callbacks": [],
        "result": "<unset>",
    }
    assert primitive.waiting == [waiting]
    waiting.cancel()
    assert primitive.waiting == []
    assert fired_with(waiting) == ("Failure", impl.CancelledError, "")
    primitive.release()
    again: Any = primitive.acquire()
    assert fired_with(again) is primitive


def test_DeferredLock_run(impl: Impl) -> None:
    lock = impl.DeferredLock()
    waiting: Any = impl.Deferred()
    seen: list[object] = []

    def work(x: int, y: int = 0) -> Any:
        seen.append(("run", x, y, lock.locked))
        return waiting

    result: Any = lock.run(work, 1, y=2)
    assert seen == [("run", 1, 2, True)]
    assert lock.locked
    waiting.callback("work done")
    assert fired_with(result) == "work done"
    assert lock.locked is False


def test_DeferredLock_run_releases_on_failure(impl: Impl) -> None:
    lock = impl.DeferredLock()

    def boom() -> None:
        raise RuntimeError("work failed")

    result: Any = lock.run(boom)
    assert fired_with(result) == ("Failure", RuntimeError, "work failed")
    assert lock.locked is False


def test_DeferredLock_as_async_context_manager(impl: Impl) -> None:
    lock = impl.DeferredLock()
    states: list[bool] = []

    async def main() -> None:
        async with lock:
            states.append(lock.locked)
        states.append(lock.locked)

    d: Any = impl.ensureDeferred(main())
    assert fired_with(d) is None
    assert states == [True, False]


# -- DeferredSemaphore ------------------------------------------------------------------


def test_DeferredSemaphore_tokens(impl: Impl) -> None:
    sem = impl.DeferredSemaphore(2)
    assert (sem.tokens, sem.limit) == (2, 2)
    a: Any = sem.acquire()
    b: Any = sem.acquire()
    c: Any = sem.acquire()
    assert (a.called, b.called, c.called) == (True, True, False)
    assert sem.tokens == 0
    sem.release()
    assert fired_with(c) is sem
    assert sem.tokens == 0
    sem.release()
    sem.release()
    assert sem.tokens == 2


def test_DeferredSemaphore_run(impl: Impl) -> None:
    sem = impl.DeferredSemaphore(1)
    assert fired_with(sem.run(lambda x: x + 1, 1)) == 2
    assert sem.tokens == 1


def test_DeferredSemaphore_run_a_coroutine_function(impl: Impl) -> None:
    sem = impl.DeferredSemaphore(1)
    waiting: Any = impl.Deferred()

    async def work() -> str:
        return await waiting

    result: Any = sem.run(work)
    assert sem.tokens == 0
    waiting.callback("async work")
    assert fired_with(result) == "async work"
    assert sem.tokens == 1


# -- DeferredQueue ----------------------------------------------------------------------


def test_DeferredQueue_put_then_get(impl: Impl) -> None:
    queue = impl.DeferredQueue()
    queue.put(1)
    queue.put(2)
    assert queue.pending == [1, 2]
    assert fired_with(queue.get()) == 1
    assert fired_with(queue.get()) == 2
    assert queue.pending == []


def test_DeferredQueue_get_then_put(impl: Impl) -> None:
    queue = impl.DeferredQueue()
    first: Any = queue.get()
    second: Any = queue.get()
    assert len(queue.waiting) == 2
    queue.put("a")
    queue.put("b")
    assert (fired_with(first), fired_with(second)) == ("a", "b")
    assert queue.waiting == []


def test_DeferredQueue_size_and_backlog(impl: Impl) -> None:
    queue = impl.DeferredQueue(size=2, backlog=1)
    assert (queue.size, queue.backlog) == (2, 1)
    queue.put(1)
    queue.put(2)
    with pytest.raises(impl.QueueOverflow):
        queue.put(3)
    assert queue.pending == [1, 2]
    queue.get()
    queue.get()
    queue.get()
    with pytest.raises(impl.QueueUnderflow):
        queue.get()
    assert len(queue.waiting) == 1


def test_DeferredQueue_is_generic(impl: Impl) -> None:
    import typing

    alias = impl.DeferredQueue[int]
    assert typing.get_origin(alias) is impl.DeferredQueue
    assert typing.get_args(alias) == (int,)
    queue = alias()
    queue.put(1)
    assert fired_with(queue.get()) == 1


# -- DeferredFilesystemLock -------------------------------------------------------------


def test_DeferredFilesystemLock(impl: Impl, tmp_path: Any) -> None:
    from twisted.internet.task import Clock

    clock = Clock()
    path = str(tmp_path / "lock")
    first = impl.DeferredFilesystemLock(path, scheduler=clock)
    assert fired_with(first.deferUntilLocked()) is None
    assert first.locked

    second = impl.DeferredFilesystemLock(path, scheduler=clock)
    waiting: Any = second.deferUntilLocked(timeout=5)
    assert not waiting.called
    again: Any = second.deferUntilLocked()
    failure = result_of(again)
    assert failure.type is impl.AlreadyTryingToLockError
    first.unlock()
    clock.advance(1)
    assert fired_with(waiting) is None
    assert second.locked
    second.unlock()


def test_DeferredFilesystemLock_timeout(impl: Impl, tmp_path: Any) -> None:
    from twisted.internet.task import Clock

    clock = Clock()
    path = str(tmp_path / "lock")
    holder = impl.DeferredFilesystemLock(path, scheduler=clock)
    holder.deferUntilLocked()
    other = impl.DeferredFilesystemLock(path, scheduler=clock)
    waiting: Any = other.deferUntilLocked(timeout=2.5)
    clock.advance(3)
    failure = result_of(waiting)
    assert failure.type is impl.TimeoutError
    assert str(failure.value) == f"Timed out acquiring lock: {path} after 2.500000s"
    holder.unlock()


def test_DeferredList_subclass_overriding_cbDeferred_sees_every_member(impl: Impl) -> None:
    """
    A ``DeferredList`` subclass that overrides ``_cbDeferred`` has it called for each
    member, fired before or after the list was made, and can change what the list
    collects.
    """
    seen: list[object] = []

    class Recording(impl.DeferredList):  # type: ignore[name-defined, misc]
        def _cbDeferred(self, result: Any, index: int, succeeded: bool) -> Any:
            seen.append((index, succeeded, result))
            return super()._cbDeferred(result * 10, index, succeeded)

    ds = [impl.succeed(1), impl.Deferred()]
    dl = Recording(ds)
    results: list[object] = []
    dl.addCallback(results.append)
    ds[1].callback(2)
    assert seen == [(0, True, 1), (1, True, 2)]
    assert results == [[(True, 10), (True, 20)]]
    assert dl.finishedCount == 2


def test_DeferredList_flags_read_on_the_class_as_in_Twisted(impl: Impl) -> None:
    """The class-level defaults of ``DeferredList`` are Twisted's."""
    assert impl.DeferredList.fireOnOneCallback is False
    assert impl.DeferredList.fireOnOneErrback is False
    assert not hasattr(impl.DeferredList, "consumeErrors")
    assert not hasattr(impl.DeferredList, "finishedCount")
