"""
``DeferredLock``, ``DeferredSemaphore`` and ``DeferredQueue`` as objects: their
attributes (kept in Rust on txdefer) read, assign, delete, copy and pickle as
Twisted's instance attributes do; subclasses and odd attribute values are honoured;
abandoned primitives are collected; and random sequences of operations give what
Twisted gives (a differential property test).
"""

from __future__ import annotations

import copy
import gc
import pickle
import re
import subprocess
import sys
import weakref
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.impls import ALL_IMPLS, TWISTED, Impl, fired_with, nothing_to_delete

# -- attributes -------------------------------------------------------------------------


def test_lock_locked_reads_False_on_the_class_and_a_new_instance(impl: Impl) -> None:
    assert impl.DeferredLock.locked is False
    lock = impl.DeferredLock()
    assert lock.locked is False
    assert lock.waiting == []


@pytest.mark.parametrize(
    ("make", "name"),
    [
        ("DeferredLock", "waiting"),
        ("DeferredSemaphore", "tokens"),
        ("DeferredSemaphore", "limit"),
        ("DeferredQueue", "pending"),
        ("DeferredQueue", "size"),
        ("DeferredQueue", "backlog"),
    ],
)
def test_instance_only_attributes_are_missing_on_the_class(
    impl: Impl, make: str, name: str
) -> None:
    cls = getattr(impl, make)
    assert not hasattr(cls, name)
    with pytest.raises(AttributeError, match=f"type object '{make}' has no attribute '{name}'"):
        getattr(cls, name)


def test_attributes_hold_whatever_is_assigned(impl: Impl) -> None:
    lock = impl.DeferredLock()
    marker = object()
    lock.locked = marker
    assert lock.locked is marker
    lock.waiting = marker
    assert lock.waiting is marker
    queue = impl.DeferredQueue(size="big", backlog=3.5)
    assert (queue.size, queue.backlog) == ("big", 3.5)


def test_deleting_locked_falls_back_to_the_class_value(impl: Impl) -> None:
    lock = impl.DeferredLock()
    lock.acquire()
    del lock.locked
    assert lock.locked is False
    with pytest.raises(AttributeError, match=re.escape(nothing_to_delete("DeferredLock", "locked"))):
        del lock.locked


def test_deleting_waiting_leaves_it_missing(impl: Impl) -> None:
    lock = impl.DeferredLock()
    del lock.waiting
    with pytest.raises(AttributeError, match="'DeferredLock' object has no attribute 'waiting'"):
        lock.waiting  # noqa: B018
    lock.acquire()
    with pytest.raises(AttributeError, match="waiting"):
        lock.acquire()


def test_other_instance_attributes_are_kept(impl: Impl) -> None:
    queue = impl.DeferredQueue()
    queue.label = "jobs"
    assert queue.label == "jobs"
    assert weakref.ref(queue)() is queue


def _lock_with_a_waiter(impl: Impl) -> Any:
    lock = impl.DeferredLock()
    lock.acquire()
    lock.acquire()
    return lock


@pytest.mark.parametrize("how", ["copy", "pickle"])
def test_copy_and_pickle_keep_the_attributes(impl: Impl, how: str) -> None:
    semaphore = impl.DeferredSemaphore(3)
    semaphore.acquire()
    semaphore.label = "workers"
    queue = impl.DeferredQueue(size=5)
    queue.put("a")
    lock = impl.DeferredLock()
    lock.acquire()
    if how == "copy":
        clones = [copy.copy(semaphore), copy.copy(queue), copy.copy(lock)]
        assert clones[1].pending is queue.pending  # shallow, as for Twisted's
    else:
        clones = [pickle.loads(pickle.dumps(p)) for p in (semaphore, queue, lock)]
    s, q, k = clones
    assert (s.tokens, s.limit, s.waiting, s.label) == (2, 3, [], "workers")
    assert (q.pending, q.waiting, q.size, q.backlog) == (["a"], [], 5, None)
    assert (k.locked, k.waiting) == (True, [])
    assert fired_with(q.get()) == "a"


@pytest.mark.parametrize("how", ["copy", "deepcopy"])
@pytest.mark.parametrize("kind", ["DeferredLock", "DeferredSemaphore", "DeferredQueue"])
def test_copy_of_a_subclass_with_slots_keeps_them(impl: Impl, kind: str, how: str) -> None:
    base = getattr(impl, kind)
    slotted = type("Slotted", (base,), {"__slots__": ("slot",)})
    primitive = slotted(2) if kind == "DeferredSemaphore" else slotted()
    primitive.slot = "in a slot"
    clone = getattr(copy, how)(primitive)
    assert clone.slot == "in a slot"


# -- subclasses and unusual values ------------------------------------------------------


def test_subclass_canceller_override_is_used(impl: Impl) -> None:
    cancelled: list[Any] = []

    class Lock(impl.DeferredLock):  # type: ignore[name-defined, misc]
        def _cancelAcquire(self, d: Any) -> None:
            cancelled.append(d)
            super()._cancelAcquire(d)

    class Queue(impl.DeferredQueue):  # type: ignore[name-defined, misc]
        def _cancelGet(self, d: Any) -> None:
            cancelled.append(d)
            super()._cancelGet(d)

    lock = Lock()
    lock.acquire()
    waiting = lock.acquire()
    waiting.cancel()
    queue = Queue()
    get = queue.get()
    get.cancel()
    assert cancelled == [waiting, get]
    assert lock.waiting == [] and queue.waiting == []
    assert fired_with(waiting) == ("Failure", impl.CancelledError, "")
    assert fired_with(get) == ("Failure", impl.CancelledError, "")


def test_subclass_overriding_acquire_and_release(impl: Impl) -> None:
    calls: list[str] = []

    class Lock(impl.DeferredLock):  # type: ignore[name-defined, misc]
        def acquire(self) -> Any:
            calls.append("acquire")
            return super().acquire()

        def release(self) -> None:
            calls.append("release")
            super().release()

    lock = Lock()
    assert fired_with(lock.run(lambda: "done")) == "done"
    assert calls == ["acquire", "release"]
    assert lock.locked is False


class _Recording(list):  # type: ignore[type-arg]
    """A list that records the calls acquire/release/get/put make on it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def append(self, item: Any) -> None:
        self.calls.append("append")
        super().append(item)

    def pop(self, index: Any = -1) -> Any:
        self.calls.append(f"pop({index})")
        return super().pop(index)


def test_waiting_list_subclass_is_used_through_its_methods(impl: Impl) -> None:
    lock = impl.DeferredLock()
    lock.waiting = _Recording()
    lock.acquire()
    second = lock.acquire()
    lock.release()
    assert fired_with(second) is lock
    queue = impl.DeferredQueue()
    queue.pending = _Recording()
    queue.put(1)
    assert fired_with(queue.get()) == 1
    assert lock.waiting.calls == ["append", "pop(0)"]
    assert queue.pending.calls == ["append", "pop(0)"]


def test_locked_is_tested_for_truth(impl: Impl) -> None:
    lock = impl.DeferredLock()
    lock.locked = 1
    waiting = lock.acquire()
    assert not waiting.called
    lock.release()
    assert lock.locked is True
    assert fired_with(waiting) is lock


def test_semaphore_tokens_use_the_number_type_given(impl: Impl) -> None:
    semaphore = impl.DeferredSemaphore(2.0)
    semaphore.acquire()
    assert semaphore.tokens == 1.0 and type(semaphore.tokens) is float
    semaphore.release()
    assert semaphore.tokens == 2.0


def test_waiter_that_is_not_a_Deferred_is_called_back_by_name(impl: Impl) -> None:
    got: list[Any] = []

    class Waiter:
        def callback(self, result: Any) -> None:
            got.append(result)

    queue = impl.DeferredQueue()
    queue.waiting.append(Waiter())
    queue.put("x")
    lock = impl.DeferredLock()
    lock.acquire()
    lock.waiting.append(Waiter())
    lock.release()
    assert got == ["x", lock]


def test_errors_from_a_waiter_propagate_out_of_release(impl: Impl) -> None:
    lock = impl.DeferredLock()
    lock.acquire()
    waiting = lock.acquire()
    waiting.addCallback(lambda _: 1 / 0)
    lock.release()  # the callback's error stays in the Deferred, as in Twisted
    assert fired_with(waiting)[1] is ZeroDivisionError
    semaphore = impl.DeferredSemaphore(1)
    semaphore.acquire()
    semaphore.waiting.append(object())  # no callback method
    with pytest.raises(AttributeError, match="callback"):
        semaphore.release()


# -- garbage collection -----------------------------------------------------------------


@pytest.mark.parametrize("make", ["DeferredLock", "DeferredSemaphore", "DeferredQueue"])
def test_abandoned_primitive_with_waiters_is_collected(impl: Impl, make: str) -> None:
    primitive = getattr(impl, make)(1) if make == "DeferredSemaphore" else getattr(impl, make)()
    if make == "DeferredQueue":
        waiters = [primitive.get() for _ in range(3)]
    else:
        waiters = [primitive.acquire() for _ in range(3)]
    # Each waiting Deferred's canceller is a bound method of the primitive: a cycle.
    ref = weakref.ref(primitive)
    refs = [weakref.ref(d) for d in waiters]
    del primitive, waiters
    gc.collect()
    assert ref() is None
    assert [r() for r in refs] == [None, None, None]


# -- python -O --------------------------------------------------------------------------

_ASSERTS = """
import sys
if sys.argv[1] == "twisted":
    from twisted.internet import defer as ns
else:
    import txdefer as ns
lock = ns.DeferredLock()
lock.release()
semaphore = ns.DeferredSemaphore(1)
semaphore.release()
print(lock.locked, semaphore.tokens)
"""


@pytest.mark.parametrize("kind", ["lock", "semaphore"])
def test_in_debug_mode_an_acquire_records_who_made_and_who_fired_it(
    impl: Impl, kind: str
) -> None:
    """
    Twisted's ``acquire`` makes a ``Deferred`` and fires it with ``callback``, so in
    debug mode a free acquire has both stacks, as a waiting one has once released:
    ``AlreadyCalledError`` and the unhandled-error log show both.
    """
    primitive = impl.DeferredLock() if kind == "lock" else impl.DeferredSemaphore(1)
    here = "in test_in_debug_mode_an_acquire_records_who_made_and_who_fired_it"

    def last_frame(stack: list[str]) -> str:
        """The innermost frame of the stack outside the library (Twisted's
        ``acquire`` has a frame of its own; compiled code has none)."""
        ours = [f for f in stack if "defer.py" not in f and "/txdefer/" not in f]
        return ours[-1].splitlines()[0]

    impl.setDebugging(True)
    try:
        free = primitive.acquire()
        waiting = primitive.acquire()
        assert waiting._debugInfo.invoker is None
        primitive.release()
        for d in (free, waiting):
            assert last_frame(d._debugInfo.creator).endswith(here)
            assert last_frame(d._debugInfo.invoker).endswith(here)
            with pytest.raises(impl.AlreadyCalledError) as raised:
                d.callback(None)
            assert " C: Deferred was created:" in str(raised.value)
            assert " I: First Invoker was:" in str(raised.value)
    finally:
        impl.setDebugging(False)


@pytest.mark.parametrize("name", ["twisted", "txdefer"])
def test_release_checks_are_asserts_that_vanish_under_O(name: str) -> None:
    plain = subprocess.run(
        [sys.executable, "-c", _ASSERTS, name], capture_output=True, text=True, check=False
    )
    assert plain.returncode == 1
    assert "AssertionError: Tried to release an unlocked lock" in plain.stderr
    optimized = subprocess.run(
        [sys.executable, "-O", "-c", _ASSERTS, name], capture_output=True, text=True, check=False
    )
    assert optimized.returncode == 0, optimized.stderr
    assert optimized.stdout.split() == ["False", "2"]


# -- differential: random operations, compared with Twisted -----------------------------

_OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["acquire", "release", "cancel", "run", "fire_failure"])),
        st.tuples(st.just("put"), st.integers(0, 3)),
        st.tuples(st.just("get")),
        st.tuples(st.just("set_locked"), st.sampled_from([True, False, 0, 1, None])),
        st.tuples(st.just("cancel_get"), st.integers(0, 5)),
    ),
    max_size=40,
)


def _drive(impl: Impl, tokens: int, size: int | None, backlog: int | None, ops: list[Any]) -> Any:
    """
    Run ``ops`` on a lock, a semaphore and a queue of ``impl``; return everything
    observable after each step.
    """
    lock = impl.DeferredLock()
    semaphore = impl.DeferredSemaphore(tokens)
    queue = impl.DeferredQueue(size, backlog)
    acquired: list[Any] = []
    gets: list[Any] = []
    trace: list[Any] = []

    def attempt(fn: Any, *args: Any) -> Any:
        try:
            return ("ok", fn(*args))
        except Exception as e:  # noqa: BLE001 - errors are observations
            return ("raise", type(e), str(e))

    def attempt_deferred(fn: Any, into: list[Any]) -> Any:
        # A Deferred made is kept (its outcome is compared at the end); the trace
        # records whether it had fired at once.
        status = attempt(fn)
        if status[0] == "ok":
            into.append(status[1])
            status = ("ok", status[1].called)
        return status

    for op in ops:
        name = op[0]
        if name == "acquire":
            for primitive in (lock, semaphore):
                trace.append(attempt_deferred(primitive.acquire, acquired))
        elif name == "release":
            trace.append(attempt(lock.release))
            trace.append(attempt(semaphore.release))
        elif name == "cancel" and acquired:
            acquired[0].cancel()
        elif name == "run":
            d = semaphore.run(lambda: "ran")
            acquired.append(d)
        elif name == "fire_failure" and acquired:
            d = acquired[-1]
            d.addCallback(lambda _: 1 / 0)
        elif name == "put":
            trace.append(attempt(queue.put, op[1]))
        elif name == "get":
            trace.append(attempt_deferred(queue.get, gets))
        elif name == "set_locked":
            lock.locked = op[1]
        elif name == "cancel_get" and gets:
            gets[op[1] % len(gets)].cancel()
        trace.append(
            (
                lock.locked,
                len(lock.waiting),
                semaphore.tokens,
                len(semaphore.waiting),
                list(queue.pending),
                len(queue.waiting),
            )
        )
    roles = {id(lock): "lock", id(semaphore): "semaphore"}
    outcomes = []
    for d in acquired + gets:
        value = fired_with(d)
        outcomes.append(roles.get(id(value), value))
    return trace, outcomes


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    tokens=st.integers(1, 3),
    size=st.one_of(st.none(), st.integers(0, 3)),
    backlog=st.one_of(st.none(), st.integers(0, 3)),
    ops=_OPERATIONS,
)
def test_random_operations_match_Twisted(
    tokens: int, size: int | None, backlog: int | None, ops: list[Any]
) -> None:
    expected = _drive(TWISTED, tokens, size, backlog, ops)
    for impl in ALL_IMPLS[1:]:
        assert _drive(impl, tokens, size, backlog, ops) == expected, impl


@pytest.mark.parametrize("name", ["Deferred", "DeferredLock", "DeferredSemaphore", "DeferredQueue"])
def test_compiled_methods_are_named_after_the_public_class_as_in_twisted(name: str) -> None:
    import types

    import txdefer
    from twisted.internet import defer

    ours, theirs = getattr(txdefer, name), getattr(defer, name)
    compiled = {
        attr: value
        for attr, value in vars(ours).items()
        if isinstance(value, types.MethodDescriptorType)
    }
    assert compiled, f"{name} has no compiled method of its own"
    for attr, value in compiled.items():
        if hasattr(theirs, attr):
            assert value.__qualname__ == getattr(theirs, attr).__qualname__


def test_subclasses_of_the_primitives_use_the_compiled_methods(impl: Impl) -> None:
    class Lock(impl.module.DeferredLock):
        pass

    class Queue(impl.module.DeferredQueue):
        def get(self) -> Any:
            return super().get().addCallback(lambda v: ("got", v))

    class Semaphore(impl.module.DeferredSemaphore):
        pass

    lock = Lock()
    first, second = lock.acquire(), lock.acquire()
    assert fired_with(first) is lock and not second.called
    lock.release()
    assert fired_with(second) is lock and lock.locked
    queue = Queue()
    queue.put(1)
    assert fired_with(queue.get()) == ("got", 1)
    semaphore = Semaphore(1)
    assert fired_with(semaphore.acquire()) is semaphore
    semaphore.release()
    assert semaphore.tokens == 1
