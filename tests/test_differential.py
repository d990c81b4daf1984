"""
Differential tests: random programs of Deferred operations (adding callbacks that
return values, raise, return other Deferreds, or re-enter other Deferreds; firing,
pausing, cancelling, chaining) run on Twisted's Deferred and on the implementation
under test; everything observable must be the same.
"""

from __future__ import annotations

import gc
import os
import random
import re
import warnings
from typing import Any

import hypothesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from twisted.python.failure import Failure

from tests.differential import (
    DifferentialMachine,
    PrimitivesMachine,
    isolated_global_log,
    machine_for,
)
from tests.impls import TWISTED, Impl

N_DEFERREDS = 3

index = st.integers(0, N_DEFERREDS - 1)

# What a callback does, besides recording that it ran.
action = st.one_of(
    st.tuples(st.just("return"), st.sampled_from(["x", "y", None])),
    st.tuples(st.just("passthrough")),
    st.tuples(st.just("raise")),
    st.tuples(st.just("return deferred"), index),
    st.tuples(st.just("fire"), index),
    st.tuples(st.just("fail"), index),
    st.tuples(st.just("cancel"), index),
    st.tuples(st.just("pause"), index),
    st.tuples(st.just("unpause"), index),
    st.tuples(st.just("add recorder to"), index),
    st.tuples(st.just("chain"), index, index),
)

operation = st.one_of(
    st.tuples(st.sampled_from(["addCallback", "addErrback", "addBoth"]), index, action),
    st.tuples(st.just("addCallbacks"), index, action, action),
    st.tuples(st.just("callback"), index, st.sampled_from(["a", "b"])),
    st.tuples(st.just("errback"), index),
    st.tuples(st.just("pause"), index),
    st.tuples(st.just("unpause"), index),
    st.tuples(st.just("cancel"), index),
    st.tuples(st.just("chainDeferred"), index, index),
)

cancellers = st.lists(
    st.sampled_from([None, "noop", "callback", "errback"]),
    min_size=N_DEFERREDS,
    max_size=N_DEFERREDS,
)


class Program:
    """One run of a random program on one implementation, with its observations."""

    def __init__(self, impl: Impl, canceller_kinds: list[str | None]) -> None:
        self.impl = impl
        self.log: list[object] = []
        self.ds: list[Any] = [
            impl.Deferred(self._canceller(kind, i))
            for i, kind in enumerate(canceller_kinds)
        ]

    def _canceller(self, kind: str | None, i: int) -> Any:
        if kind is None:
            return None

        def canceller(d: Any) -> None:
            self.log.append(("canceller", i))
            if kind == "callback":
                d.callback(f"cancelled {i}")
            elif kind == "errback":
                d.errback(KeyError(f"cancelled {i}"))

        return canceller

    def name(self, value: object) -> object:
        """A comparable description of any value, Deferreds named by index."""
        for i, d in enumerate(self.ds):
            if value is d:
                return ("D", i)
        if isinstance(value, Failure):
            return ("Failure", value.type, self.text(str(value.value)))
        if isinstance(value, str):
            return self.text(value)
        return value

    def outcome(self, fn: Any) -> tuple[object, ...]:
        try:
            value = fn()
        except BaseException as e:  # noqa: BLE001 - observing everything is the point
            return ("raise", type(e), self.text(str(e)))
        return ("ok", self.name(value))

    def text(self, text: str) -> str:
        for i, d in enumerate(self.ds):
            text = text.replace(f"0x{id(d):x}", f"D{i}")
        text = text.replace(self.impl.Deferred.__name__, "Deferred")
        return re.sub(r"0x[0-9a-f]+", "0xADDR", text)

    def callback(self, tag: object, spec: tuple[Any, ...]) -> Any:
        def run(result: object) -> object:
            self.log.append(("run", tag, self.name(result)))
            kind = spec[0]
            if kind == "return":
                return spec[1]
            if kind == "passthrough":
                return result
            if kind == "raise":
                raise ValueError(f"raised by {tag}")
            if kind == "return deferred":
                return self.ds[spec[1]]
            if kind == "add recorder to":
                self.ds[spec[1]].addBoth(self.callback(("recorder", tag), ("passthrough",)))
                return result
            if kind == "chain":
                self.ds[spec[1]].chainDeferred(self.ds[spec[2]])
                return result
            target = self.ds[spec[1]]
            method = {
                "fire": lambda: target.callback(f"fired by {tag}"),
                "fail": lambda: target.errback(OSError(f"failed by {tag}")),
                "cancel": target.cancel,
                "pause": target.pause,
                "unpause": target.unpause,
            }[kind]
            self.log.append(("re-entered", tag, self.outcome(method)))
            return result

        return run

    def step(self, number: int, op: tuple[Any, ...]) -> None:
        kind, i = op[0], op[1]
        d = self.ds[i]
        if kind in ("addCallback", "addErrback", "addBoth"):
            call = lambda: getattr(d, kind)(self.callback(number, op[2]))
        elif kind == "addCallbacks":
            call = lambda: d.addCallbacks(
                self.callback((number, "cb"), op[2]),
                self.callback((number, "eb"), op[3]),
            )
        elif kind == "callback":
            call = lambda: d.callback(op[2])
        elif kind == "errback":
            call = lambda: d.errback(RuntimeError(f"errback {number}"))
        elif kind == "chainDeferred":
            call = lambda: d.chainDeferred(self.ds[op[2]])
        else:
            call = getattr(d, kind)
        self.log.append(("op", number, self.outcome(call)))

    def state(self) -> list[object]:
        states: list[object] = []
        for d in self.ds:
            result = getattr(d, "result", "<none>")
            states.append(
                (
                    d.called,
                    d.paused,
                    self.name(d._chainedTo),
                    self.name(result),
                    self.outcome(lambda d=d: str(d)),
                )
            )
        return states


def run_program(
    impl: Impl, canceller_kinds: list[str | None], ops: list[tuple[Any, ...]]
) -> list[object]:
    program = Program(impl, canceller_kinds)
    with warnings.catch_warnings():
        # A callback returning its own Deferred warns; make that deterministic.
        warnings.simplefilter("error")
        for number, op in enumerate(ops):
            program.step(number, op)
        observed: list[object] = [program.log, program.state()]
        # Finally: handle every result (so nothing is logged as unhandled).
        for i, d in enumerate(program.ds):
            seen: list[object] = []
            d.addBoth(lambda r, seen=seen: seen.append(program.name(r)))
            observed.append((i, seen))
    return observed


@settings(
    max_examples=int(os.environ.get("TXDEFER_DIFF_EXAMPLES", "2000")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(canceller_kinds=cancellers, ops=st.lists(operation, max_size=14))
def test_random_programs_behave_as_on_twisted(
    impl: Impl, canceller_kinds: list[str | None], ops: list[tuple[Any, ...]]
) -> None:
    expected = run_program(TWISTED, canceller_kinds, ops)
    assert run_program(impl, canceller_kinds, ops) == expected


# -- stateful: programs run step by step in both worlds ---------------------------------

#: Programs per implementation in the default (CI) profile: 1,500 on txdefer and on
#: the subclass, and fewer Twisted-against-Twisted runs, which check that the harness
#: itself is deterministic (half of the programs run in debug mode, where each new
#: Deferred formats its stack: they take about twice as long).
#: ``TXDEFER_DIFF_EXAMPLES=<n>`` runs <n> on each instead, with a random seed unless
#: ``TXDEFER_DIFF_SEED=<seed>`` gives one.
CI_PROGRAMS = {"twisted": 400, "txdefer": 1500, "subclass": 1500}
#: The same for the programs centred on locks, semaphores and queues.
CI_PRIMITIVES_PROGRAMS = {"twisted": 150, "txdefer": 600, "subclass": 600}

#: A long profile runs in batches of this many programs, each a separate Hypothesis
#: run with its own seed (the given seed, plus one per batch): within one run
#: Hypothesis keeps a record of every choice it has made, which grows by about
#: 65 KB per program (6.5 GB for 100,000).
LONG_RUN_BATCH = 5000


def test_stateful_programs_observe_the_same_as_on_twisted(impl: Impl) -> None:
    """
    Random programs of operations, run step by step on Twisted and on ``impl``:
    after every step, the return value or exception of the call, every callback
    invocation, warnings, logged events, the state and ``str()`` of every held
    Deferred, lock, semaphore and queue and the clock are compared; and at the end,
    with every Deferred gone, the unhandled errors logged.  (See
    tests/differential.py.)
    """
    run_programs(impl, DifferentialMachine, CI_PROGRAMS[impl.name])


def test_stateful_programs_of_locks_semaphores_and_queues_observe_the_same(
    impl: Impl,
) -> None:
    """
    The same, for programs centred on ``DeferredLock``, ``DeferredSemaphore`` and
    ``DeferredQueue``: acquiring, releasing, ``run()``, the context manager's
    halves, getting and putting, waiters cancelled, paused and fired by hand,
    attributes assigned, callbacks that take and give.
    """
    run_programs(impl, PrimitivesMachine, CI_PRIMITIVES_PROGRAMS[impl.name])


def run_programs(impl: Impl, base: type[DifferentialMachine], ci_programs: int) -> None:
    """
    Run ``ci_programs`` programs of ``base`` on Twisted and ``impl`` (or
    ``TXDEFER_DIFF_EXAMPLES`` of them), failing at the first difference.
    """
    long_run = os.environ.get("TXDEFER_DIFF_EXAMPLES")
    seed = os.environ.get("TXDEFER_DIFF_SEED")
    if long_run and not seed:
        seed = str(random.randrange(2**32))
    total = int(long_run or ci_programs)
    batches = [LONG_RUN_BATCH] * (total // LONG_RUN_BATCH) if long_run else []
    if sum(batches) < total:
        batches.append(total - sum(batches))
    compared, discarded = DifferentialMachine.compared, DifferentialMachine.discarded
    gc.collect()
    try:
        with isolated_global_log():
            for number, count in enumerate(batches):
                machine = machine_for(impl, base)
                batch_seed = int(seed) + number if seed else None
                if batch_seed is not None:
                    machine = hypothesis.seed(batch_seed)(machine)
                try:
                    run_state_machine_as_test(
                        machine,
                        settings=settings(
                            max_examples=count,
                            stateful_step_count=20,
                            deadline=None,
                            derandomize=not seed,
                            database=None,
                            suppress_health_check=list(HealthCheck),
                        ),
                    )
                except BaseException as e:
                    if batch_seed is not None:
                        e.add_note(
                            f"replay: TXDEFER_DIFF_SEED={batch_seed} TXDEFER_DIFF_EXAMPLES={count}"
                        )
                    raise
    finally:
        gc.unfreeze()  # the machine freezes what exists before each program
    ran = DifferentialMachine.compared - compared
    skipped = DifferentialMachine.discarded - discarded
    # Shown with `pytest -s` (the long profile's count of programs compared).
    print(
        f"\n{impl.name} ({base.__name__}): {ran} programs compared with Twisted to the end,"
        f" {skipped} discarded (recursion limit or runaway cancellation), in {len(batches)} run(s),"
        f" seed {seed or 'derandomized'}"
    )
    # Hypothesis counts a program that generated no operation as an example too.
    assert ran >= total * 0.9, f"only {ran} programs of {total} were compared"


def test_harness_recognises_cancellation_that_would_go_round_a_cycle() -> None:
    """
    Two Deferreds whose callbacks returned the DeferredList that waits on them: on
    Twisted, cancelling either recurses to the recursion limit on every branch, for
    exponential time.  The programs step around it (``AVOIDED``); check that the
    harness sees it, on both implementations, and not where there is no cycle.
    """
    from tests.differential import _cancel_goes_round_a_cycle
    from tests.impls import TXDEFER

    for impl in (TWISTED, TXDEFER):
        d1, d2, alone = impl.Deferred(), impl.Deferred(), impl.Deferred()
        holder: list[Any] = []
        d1.addCallback(lambda _, holder=holder: holder[0])
        d2.addCallback(lambda _, holder=holder: holder[0])
        dl = impl.DeferredList([d1, d2])
        holder.append(dl)
        d1.callback(1)
        d2.callback(2)
        assert _cancel_goes_round_a_cycle(d1)
        assert _cancel_goes_round_a_cycle(dl)
        assert not _cancel_goes_round_a_cycle(alone)
        alone.callback(None)
        assert not _cancel_goes_round_a_cycle(alone)


def test_harness_drops_a_library_frame_of_a_debug_stack_with_its_repeats() -> None:
    """
    Debug-mode stacks are compared by the program's own frames only: a library frame
    goes, and so does the "[Previous line repeated ...]" line ``traceback`` puts
    after it when it recurs (nested ``DeferredList``s repeat txdefer's one Python
    frame per level, where Twisted's alternate several of ``defer.py``'s); the line
    after a program frame stays.  (Seed 131 of the stateful programs, three
    ``gatherResults`` nested, differed only by that line.)
    """
    from tests.differential import _DEBUG_FRAME, _program_frame

    stack = (
        ' I:  File "/x/tests/differential.py", line 874, in perform\n'
        " I:    return d.chainDeferred(other)\n"
        ' I:  File "/x/txdefer/_defer.py", line 204, in _cbDeferred\n'
        " I:    return collect(result, index, succeeded)\n"
        " I:  [Previous line repeated 1 more time]\n"
        ' I:  File "/x/tests/differential.py", line 900, in recurse\n'
        " I:    recurse()\n"
        " I:  [Previous line repeated 2 more times]\n"
    )
    assert _DEBUG_FRAME.sub(_program_frame, stack) == (
        " I:  perform:874\n I:  recurse:900\n I:  [Previous line repeated 2 more times]\n"
    )
