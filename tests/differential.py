"""
The differential harness: a program of Deferred operations runs step by step in two
worlds, one on Twisted's ``Deferred`` (the reference) and one on the implementation
under test, and after every step everything observable in each world is described in
terms that do not depend on the world, so that the two descriptions can be compared.

A world names every Deferred it meets by the order in which it first met it (``D0``,
``D1``...), so the same program names the same Deferreds the same way in both worlds.
What is observed after a step (see ``World.step``):

* the outcome of the operation: its return value, or the type and message of the
  exception it raised;
* every callback and errback invocation with its result, extra arguments and
  keyword arguments; every re-entrant call a callback made and its outcome; every
  canceller call; every step of ``inlineCallbacks`` generators and coroutines;
* the warnings emitted (category, message, and where: file and line in the test's
  code, or "library code");
* the events logged to Twisted's global log publisher during the step and by the
  ``gc.collect()`` that ends it;
* for every Deferred the program holds: its class name, ``called``, ``paused``,
  ``_chainedTo``, ``result``, ``str()``, the entries of ``_callbacks``,
  ``_suppressAlreadyCalled``, whose ``_canceller`` it has, and its ``_debugInfo``
  (the failure it would log, whether it has the two stacks) (and a
  ``DeferredList``'s progress);
* for every ``DeferredLock``, ``DeferredSemaphore`` and ``DeferredQueue`` made
  (named ``P<n>`` by the order they were made): its waiting Deferreds and the
  attributes Twisted's steps use (``locked``; ``tokens``, ``limit``; ``pending``,
  ``size``, ``backlog``);
* the delayed calls pending on the world's ``Clock``;
* after the last step, which drops every Deferred and collects garbage: every
  "Unhandled error in Deferred:" logged during the program (as a whole, not step by
  step: when a Deferred is freed depends on what refers to it, and Twisted's failures
  keep the frames of ``defer.py`` they went through alive, which compiled code has
  none of).

Half the programs run in debug mode (``setDebugging(True)``), where each Deferred
records the stacks that made it and first fired it, which ``AlreadyCalledError`` and
the unhandled-error log show: of those stacks only the program's own frames (this
file's, by function and line) are compared, not the library's or the test runner's.

Addresses become ``D<n>`` for known Deferreds and ``0xADDR`` otherwise; the name of a
``Deferred`` subclass under test becomes ``Deferred``; the frames listed in a
failure's text, and where CPython says it hit the recursion limit, are left out.
Exceptions are compared by type and message.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import gc
import os
import pprint
import re
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Generator, Iterator
from typing import Any

import hypothesis
import txdefer._core
import txdefer._defer
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from twisted.internet.defer import CancelledError, FailureGroup, FirstError
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from tests.impls import TWISTED, TXDEFER, Impl

_DEFERRED_TYPES = (TWISTED.Deferred, txdefer._core.DeferredBase)
_ADDRESS = re.compile(r"0x[0-9a-f]+")
_NO_RESULT = object()
_RECURSION = re.compile(r"maximum recursion depth exceeded( (while|in) [a-zA-Z_ ]*[a-zA-Z_])?")
_HERE = os.path.dirname(os.path.abspath(__file__))
#: Twisted's and txdefer's ``passthru`` and ``_failthru`` (``install()`` gives
#: Twisted's names txdefer's): the halves ``addCallback`` and ``addErrback`` leave.
_PASS_THROUGH = (
    TWISTED.passthru,
    TWISTED._failthru,
    txdefer._defer.passthru,
    txdefer._defer._failthru,
)
_MODULE_IN_REPR = re.compile(r"<(twisted\.internet\.defer|txdefer\._defer)\.")
#: A frame of a stack recorded in debug mode, as ``DebugInfo`` shows it (prefixed
#: `` C:`` for the stack that created the Deferred, `` I:`` for the one that first
#: fired it), with its source line, and the line ``traceback`` puts after a frame
#: met more than three times in a row ("[Previous line repeated 2 more times]").
#: That line goes with its frame: nested ``DeferredList``s repeat txdefer's one
#: Python frame per level, while Twisted's levels alternate several of
#: ``defer.py``'s, which ``traceback`` does not fold.
_DEBUG_FRAME = re.compile(
    r'^(?P<prefix> [CI]:)  File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>.*)\n'
    r"(?:(?P=prefix)    .*\n)?"
    r"(?P<repeated>(?P=prefix)  \[Previous line repeated \d+ more times?\]\n)?",
    re.MULTILINE,
)
_FRAME_LINE = re.compile(r"^\S+\.py:\d+:\S+\n", re.MULTILINE)

Op = tuple[Any, ...]


# -- what programs are made of --------------------------------------------------------

#: A reference to a Deferred the program holds: its position (modulo the number held)
#: in the list of held Deferreds, resolved to a name when the operation runs.
pick = st.integers(0, 7)
#: Values passed to ``callback()``, returned by callbacks, passed as extra arguments.
value = st.sampled_from(["x", "y", None, 1])
extra_args = st.lists(value, max_size=2).map(tuple)
extra_kwargs = st.dictionaries(st.sampled_from(["k", "m"]), value, max_size=2)
#: A reference to a lock, semaphore or queue the program made: its position (modulo
#: the number made) in the order they were made.
primitive_pick = st.integers(0, 3)
#: A primitive to make: a lock, a semaphore of so many tokens (0 is refused), or a
#: queue of a size and a backlog (``None``: no limit).
primitive_kind = st.one_of(
    st.tuples(st.just("DeferredLock")),
    st.tuples(st.just("DeferredSemaphore"), st.integers(0, 2)),
    st.tuples(
        st.just("DeferredQueue"), st.none() | st.integers(0, 2), st.none() | st.integers(0, 2)
    ),
)
#: What a program does with a primitive: ``take`` is ``acquire()`` (``get()`` for a
#: queue), ``give`` is ``release()`` (``put(value)``); the context manager's halves
#: (a queue has none: ``take``/``give``).
primitive_use = st.sampled_from(["take", "give", "__aenter__", "__aexit__"])
#: A value assigned to a primitive's own attribute (``locked``, ``tokens``, ``size``):
#: Twisted's steps read them back as they are.
primitive_setting = st.sampled_from([0, 1, 2, None, True, False])

#: What a callback (or generator) does on the side, before it ends.
effect = st.one_of(
    st.tuples(st.just("fire"), pick, value),
    st.tuples(st.just("fail"), pick),
    st.tuples(st.just("cancel"), pick),
    st.tuples(st.just("pause"), pick),
    st.tuples(st.just("unpause"), pick),
    st.tuples(st.just("add recorder to"), pick),
    st.tuples(st.just("add recorder to own")),
    st.tuples(st.just("chain"), pick, pick),
    st.tuples(st.just("take"), primitive_pick),
    st.tuples(st.just("give"), primitive_pick, value),
    # Set the world's context variable (a generator runs in a copy of the context).
    st.tuples(st.just("set var"), value),
)

#: How a callback ends.
ending = st.one_of(
    st.tuples(st.just("return"), value),
    st.tuples(st.just("passthrough")),
    st.tuples(st.just("raise"), st.sampled_from(["ValueError", "CancelledError"])),
    st.tuples(st.just("return failure")),
    st.tuples(st.just("return held"), pick),
    st.tuples(st.just("return own")),
    st.tuples(
        st.just("return new"),
        st.sampled_from(["unfired", "succeed", "fail"]),
        st.booleans(),  # whether the program keeps holding it
    ),
)

#: A callback: up to two effects, then an ending.
action = st.tuples(st.lists(effect, max_size=2).map(tuple), ending)
#: A function given to ``maybeDeferred`` or a primitive's ``run()``, which may also
#: return a coroutine (that awaits a held Deferred, or nothing, then returns a value):
#: both run it with ``Deferred.fromCoroutine``.
called_action = st.tuples(
    st.lists(effect, max_size=2).map(tuple),
    st.one_of(ending, st.tuples(st.just("return coroutine"), st.none() | pick, value)),
)

canceller = st.sampled_from([None, "noop", "callback", "errback", "raise"])

#: Keyword arguments of ``addCallbacks`` beyond the two callables (``None`` allowed).
callbacks_extras = st.fixed_dictionaries(
    {},
    optional={
        "callbackArgs": st.none() | extra_args,
        "callbackKeywords": st.none() | extra_kwargs,
        "errbackArgs": st.none() | extra_args,
        "errbackKeywords": st.none() | extra_kwargs,
    },
)

#: A step of an ``inlineCallbacks`` generator or a coroutine.
generator_step = st.one_of(
    st.tuples(st.just("await"), pick, st.booleans()),  # the flag: catch failures
    st.tuples(st.just("value"), value),  # a generator yields a plain value
    st.tuples(st.just("effect"), effect),
    st.tuples(st.just("raise")),
    # returnValue(value), deprecated: in the body, or from a function it calls.
    st.tuples(st.just("returnValue"), value, st.booleans()),
)
generator_steps = st.lists(generator_step, max_size=4).map(tuple)

callback_value = st.one_of(
    value,
    st.tuples(st.just("deferred"), pick),
    st.tuples(st.just("failure")),
)
errback_kind = st.sampled_from(["exception", "failure", "current exception", "nothing"])
delay = st.sampled_from([0, 1, 2])


#: What the programs step around (in both worlds alike, logging that they did):
#: known differences from Twisted, each pinned by a (strict xfail) test in
#: tests/test_differential_repros.py, so that the programs can find others (remove
#: an entry when its difference is fixed); and programs that never end on Twisted.
AVOIDED: dict[str, Callable[[World, str, Any], bool]] = {
    # Not a difference: awaiting a paused Deferred from inside its own callback chain
    # loops for ever on Twisted (and txdefer): Deferred.__iter__ yields it, the
    # coroutine's driver adds a callback to it, the running chain calls that callback
    # at once (pause is only checked between Deferreds), which resumes __iter__, which
    # yields it again...
    "awaiting a paused Deferred that is running its callbacks": lambda world, method, d: (
        method == "await" and bool(d.paused) and d._runningCallbacks
    ),
    # The same loop, when a Deferred a coroutine awaits is paused or unpaused (to a
    # count other than 0) from inside its own running callback chain.
    "pausing a running Deferred that a coroutine awaits": lambda world, method, d: (
        method in ("pause", "unpause") and d._runningCallbacks and id(d) in world.awaited
    ),
    # Not a difference: cancelling a Deferred that leads to Deferreds waiting on each
    # other through a DeferredList.  cancel() on a Deferred waiting on another cancels
    # that one, and DeferredList.cancel() cancels every member, logging what each
    # raises: round a cycle this recurses to the recursion limit on every branch, for
    # exponential time, on Twisted (and txdefer, whose DeferredList.cancel is
    # Twisted's).
    "cancelling into Deferreds that wait on each other": lambda world, method, d: (
        method == "cancel" and _cancel_goes_round_a_cycle(d)
    ),
}


def _cancel_goes_round_a_cycle(start: Any) -> bool:
    """
    Does ``start.cancel()`` lead into a cycle: a Deferred that has fired and waits on
    another Deferred (its result) forwards the cancel to it, and a DeferredList that
    has not fired cancels its members.
    """

    def forwards_to(d: Any) -> list[Any]:
        is_list = hasattr(d, "_deferredList")
        if not d.called:
            return list(d._deferredList) if is_list else []
        if is_list:
            return []
        result = getattr(d, "result", None)
        return [result] if isinstance(result, _DEFERRED_TYPES) else []

    on_path: set[int] = set()
    done: set[int] = set()

    def visit(d: Any) -> bool:
        if id(d) in on_path:
            return True
        if id(d) in done:
            return False
        on_path.add(id(d))
        found = any(visit(n) for n in forwards_to(d) if isinstance(n, _DEFERRED_TYPES))
        on_path.discard(id(d))
        done.add(id(d))
        return found

    return visit(start)


def avoided(world: World, method: str, d: Any) -> str | None:
    """What ``d.<method>()`` (or awaiting ``d``) now would run into, if it is avoided."""
    for name, applies in AVOIDED.items():
        if applies(world, method, d):
            return name
    return None


#: Seconds after which a step is taken for a runaway: cancelling round a cycle of
#: Deferreds that wait on each other through ``DeferredList``s, which
#: ``DeferredList.cancel`` (catching the ``RecursionError`` each branch ends in) turns
#: into exponentially many cancellations, on Twisted and on txdefer (which runs
#: Twisted's ``DeferredList.cancel``).  Ordinary steps take milliseconds.
RUNAWAY_SECONDS = 10


class _Runaway(Exception):
    """Raised by every ``cancel()`` once a step has run away."""


def _refuse_to_cancel(self: object) -> None:
    raise _Runaway()


_CANCELLING_CLASSES = [TWISTED.Deferred, TWISTED.DeferredList, TXDEFER.Deferred, TXDEFER.DeferredList]


def _stop_cancellations() -> list[tuple[type, Any]]:
    """
    Make every ``cancel()`` of both implementations raise: each ``DeferredList.cancel``
    loop then ends after one pass over its members, and the runaway step unwinds.
    Returns what ``_resume_cancellations`` puts back.
    """
    saved = [(cls, cls.__dict__.get("cancel")) for cls in _CANCELLING_CLASSES]
    for cls in _CANCELLING_CLASSES:
        cls.cancel = _refuse_to_cancel  # type: ignore[method-assign]
    return saved


def _resume_cancellations(saved: list[tuple[type, Any]]) -> None:
    for cls, original in saved:
        if original is None:
            del cls.cancel
        else:
            cls.cancel = original  # type: ignore[method-assign]


# -- one world --------------------------------------------------------------------------


class World:
    """
    One implementation's run of a program: the Deferreds it holds, the names of all
    those it has met, its clock, and the log of what its callbacks did.
    """

    def __init__(self, impl: Impl) -> None:
        self.impl = impl
        self.clock = Clock()
        #: Every Deferred met, by name (its position); weakly, not to keep it alive.
        self.known: list[weakref.ReferenceType[Any]] = []
        self._names: dict[int, int] = {}
        #: The Deferreds the program holds, by name, in the order it took them.
        self.held: dict[int, Any] = {}
        self.log: list[object] = []
        self.number = 0
        self.warning_filter = "always"
        #: How many coroutines await each Deferred (by id) right now.
        self.awaited: collections.Counter[int] = collections.Counter()
        #: Descriptions of the "Unhandled error in Deferred:" events logged so far.
        self.unhandled: list[object] = []
        #: The locks, semaphores and queues made, by name (their position).
        self.primitives: list[Any] = []
        #: A context variable of this world's own, which effects set and every
        #: callback and generator step records: Twisted runs each generator's steps
        #: in a copy of the context current when it started.
        self.context_var: contextvars.ContextVar[object] = contextvars.ContextVar(
            f"differential {impl.name}", default="unset"
        )
        subclass = impl.Deferred.__name__
        self._subclass_name = (
            None if subclass == "Deferred" else re.compile(rf"\b{re.escape(subclass)}\b")
        )

    # -- naming ----------------------------------------------------------------------

    def register(self, d: Any, hold: bool) -> int:
        """The name of ``d`` (given a new one if it has none); hold it if asked."""
        n = self._names.get(id(d))
        if n is None or self.known[n]() is not d:
            n = len(self.known)
            self.known.append(weakref.ref(d))
            self._names[id(d)] = n
        if hold:
            self.held[n] = d
        return n

    def resolve_primitive(self, p: int) -> int | None:
        """The name of the primitive that the pick ``p`` refers to."""
        return p % len(self.primitives) if self.primitives else None

    def picked_primitive(self, p: int) -> Any:
        """The primitive the pick ``p`` refers to (the rules run only once one exists)."""
        return self.primitives[p % len(self.primitives)]

    def lookup(self, n: int | None) -> Any:
        """The Deferred named ``n``, or ``None`` if it no longer exists."""
        return None if n is None else self.known[n]()

    def resolve(self, p: int) -> int | None:
        """The name of the held Deferred that the pick ``p`` refers to."""
        held = list(self.held)
        return held[p % len(held)] if held else None

    def text(self, text: str) -> str:
        """``text`` with addresses and the class name of the implementation normalised."""

        def address(match: re.Match[str]) -> str:
            n = self._names.get(int(match.group(), 16))
            if n is not None and id(self.known[n]()) == int(match.group(), 16):
                return f"D{n}"
            return "0xADDR"

        text = _ADDRESS.sub(address, text)
        # A failure's text lists the frames it went through, which are the
        # implementation's own (defer.py's, or none for compiled code).
        # CPython says where the recursion limit was hit ("... while calling a Python
        # object", "... in comparison"), which depends on how deep the stack was.
        text = _RECURSION.sub("maximum recursion depth exceeded", text)
        text = _DEBUG_FRAME.sub(_program_frame, text)
        text = _FRAME_LINE.sub("", text).replace(
            "Traceback (failure with no frames):", "Traceback:"
        )
        if self._subclass_name is not None:
            text = self._subclass_name.sub("Deferred", text)
        # An object's default repr names its class's module (txdefer's classes are
        # not in Twisted's; see the README's compatibility table).
        return _MODULE_IN_REPR.sub("<defer.", text)

    def class_name(self, obj: object) -> str:
        return self.text(type(obj).__name__)

    def name(self, value: object, depth: int = 0, *, raised: bool = True) -> object:
        """
        A description of ``value`` that is the same in both worlds.  With ``raised``
        false, a failure's exception is described without what raising it again
        changes (its traceback, its context), nor of the failures inside it: for a
        failure logged when its Deferred is freed, which is not at the same moment in
        both worlds.
        """
        if depth > 4:
            return "..."
        if value is _NO_RESULT:
            return "<no result>"
        if isinstance(value, _DEFERRED_TYPES):
            return ("D", self.register(value, hold=False))
        if isinstance(value, Failure):
            if not raised:
                return ("Failure", value.type, self.exception(value.value, depth, raised=False))
            # Whether the exception carries the failure's traceback (as after
            # ``except``), not the traceback itself: its frames differ (see above).
            carries = getattr(value.value, "__traceback__", None) is value.tb
            return (
                "Failure",
                value.type,
                self.exception(value.value, depth),
                carries,
                _program_frames_of(value),
            )
        if isinstance(value, BaseException):
            return ("exception", type(value), self.exception(value, depth, raised=raised))
        if isinstance(value, (list, tuple)):
            items = tuple(self.name(v, depth + 1, raised=raised) for v in value)
            return (type(value).__name__, items)
        if isinstance(value, dict):
            items = tuple((k, self.name(v, depth + 1, raised=raised)) for k, v in value.items())
            return ("dict", items)
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, (bool, int, float, type)):
            return value
        for p, primitive in enumerate(self.primitives):
            if value is primitive:
                return ("P", p)
        if isinstance(value, (TWISTED._CancellationStatus, txdefer._core._InlineCallbacks)):
            # An inlineCallbacks cancellation status (txdefer's is its driver: a known
            # difference), by its two attributes.
            return (
                "cancellation status",
                self.name(value.deferred, depth + 1, raised=raised),
                self.name(value.waitingOn, depth + 1, raised=raised),
            )
        return ("object", self.class_name(value), self.text(repr(value)))

    def exception(self, e: BaseException, depth: int, *, raised: bool = True) -> object:
        if isinstance(e, FirstError):
            return ("FirstError", e.index, self.name(e.subFailure, depth + 1, raised=raised))
        if isinstance(e, FailureGroup):
            return ("FailureGroup", self.name(list(e.failures), depth + 1, raised=raised))
        # With the kinds of exception it was raised while handling, or from.
        chained = (type(e.__context__), type(e.__cause__), e.__suppress_context__)
        if not raised or chained == (type(None), type(None), False):
            return self.text(str(e))
        return (self.text(str(e)), chained)

    def outcome(self, call: Callable[[], object]) -> tuple[object, ...]:
        """``("ok", description of the return value)`` or ``("raise", type, message)``."""
        try:
            returned = call()
        except BaseException as e:  # noqa: BLE001 - observing everything is the point
            return ("raise", type(e), self.exception(e, 0))
        return ("ok", self.name(returned))

    # -- callbacks ---------------------------------------------------------------------

    def bind_effect(self, effect: Op) -> Op:
        """``effect`` with its picks resolved to names."""
        kind = effect[0]
        if kind == "chain":
            return (kind, self.resolve(effect[1]), self.resolve(effect[2]))
        if kind in ("add recorder to own", "set var"):
            return effect
        if kind in ("take", "give"):
            return (kind, self.resolve_primitive(effect[1]), *effect[2:])
        return (kind, self.resolve(effect[1]), *effect[2:])

    def bind_action(self, action: Op) -> Op:
        effects, end = action
        if end[0] == "return held" or (end[0] == "return coroutine" and end[1] is not None):
            end = (end[0], self.resolve(end[1]), *end[2:])
        return (tuple(self.bind_effect(e) for e in effects), end)

    def recorder(self, tag: object) -> Callable[..., object]:
        def record(result: object) -> object:
            self.log.append(
                ("recorder", tag, self.name(result), self.handled(), self.context_var.get())
            )
            return result

        return record

    def do_effect(self, tag: object, owner: int | None, effect: Op) -> None:
        kind = effect[0]
        if kind == "set var":
            self.context_var.set(f"{effect[1]} by {tag}")
            self.log.append(("effect", tag, kind, self.handled()))
            return
        if kind in ("take", "give"):
            if effect[1] is None:
                self.log.append(("effect", tag, kind, "no target"))
                return
            use = lambda: self.use(effect[1], kind, effect[2] if kind == "give" else None)
            self.log.append(("effect", tag, kind, self.handled(), self.outcome(use)))
            return
        if kind == "add recorder to own":
            target = self.lookup(owner)
        else:
            target = self.lookup(effect[1])
        if target is None:
            self.log.append(("effect", tag, kind, "no target"))
            return
        call: Callable[[], object]
        if kind == "fire":
            call = lambda: target.callback(effect[2])
        elif kind == "fail":
            call = lambda: target.errback(OSError(f"failed by {tag}"))
        elif kind in ("cancel", "pause", "unpause"):
            skip = avoided(self, kind, target)
            if skip:
                self.log.append(("effect", tag, kind, "skipped", skip))
                return
            call = getattr(target, kind)
        elif kind in ("add recorder to", "add recorder to own"):
            call = lambda: target.addBoth(self.recorder(tag))
        else:
            other = self.lookup(effect[2])
            if other is None:
                self.log.append(("effect", tag, kind, "no target"))
                return
            call = lambda: target.chainDeferred(other)
        self.log.append(("effect", tag, kind, self.handled(), self.outcome(call)))

    def handled(self) -> object:
        """The exception being handled where user code runs (``sys.exc_info()``)."""
        return self.name(sys.exc_info()[1])

    def end(self, tag: object, owner: int | None, end: Op, result: object) -> object:
        kind = end[0]
        if kind == "return":
            return end[1]
        if kind == "passthrough":
            return result
        if kind == "return coroutine":
            steps = () if end[1] is None else (("await", end[1], True),)
            return self.coroutine(tag, steps, end[2])()
        if kind == "raise":
            if end[1] == "CancelledError":
                raise CancelledError(f"raised by {tag}")
            raise ValueError(f"raised by {tag}")
        if kind == "return failure":
            return Failure(ValueError(f"returned by {tag}"))
        if kind in ("return held", "return own"):
            d = self.lookup(owner if kind == "return own" else end[1])
            if d is None:
                return result
            skip = d is self.lookup(owner) and avoided(self, "return itself", d)
            if skip:
                self.log.append(("skipped", tag, skip))
                return result
            return d
        state, hold = end[1], end[2]
        if state == "unfired":
            d = self.impl.Deferred()
        elif state == "succeed":
            d = self.impl.succeed(f"new by {tag}")
        else:
            d = self.impl.fail(KeyError(f"new by {tag}"))
        self.log.append(("new", tag, self.register(d, hold=hold)))
        return d

    def callback(self, tag: object, owner: int | None, action: Op) -> Callable[..., object]:
        """A callback doing ``action`` (already bound), recording every call."""
        effects, end = action
        # The callback refers to the Deferreds it acts on, as real code would: whether
        # they still exist must not depend on what else keeps them alive (Twisted's
        # failures keep frames, and what they refer to, alive).
        targets = [self.lookup(n) for n in _names_in(action) if n is not None]

        def run(result: object, *args: object, **kwargs: object) -> object:
            assert targets is not None
            self.log.append(
                (
                    "run",
                    tag,
                    self.name(result),
                    self.name(args),
                    self.name(kwargs),
                    self.handled(),
                    self.context_var.get(),
                )
            )
            for effect in effects:
                self.do_effect(tag, owner, effect)
            return self.end(tag, owner, end, result)

        return run

    def canceller(self, kind: str | None, tag: object) -> Callable[[Any], None] | None:
        if kind is None:
            return None

        def cancel(d: Any) -> None:
            self.log.append(("canceller", tag, self.name(d)))
            if kind == "callback":
                d.callback(f"cancelled {tag}")
            elif kind == "errback":
                d.errback(KeyError(f"cancelled {tag}"))
            elif kind == "raise":
                raise RuntimeError(f"canceller {tag} raised")

        return cancel

    # -- generators and coroutines -------------------------------------------------

    def step_targets(self, steps: Op) -> list[Any]:
        """The Deferreds generator steps refer to (kept alive, as by real code)."""
        names: list[int | None] = []
        for step in steps:
            if step[0] == "await":
                names.append(step[1])
            elif step[0] == "effect":
                names += _names_in(((step[1],), ("passthrough",)))
        return [self.lookup(n) for n in names if n is not None]

    def generator(self, tag: object, steps: Op, returns: object) -> Callable[[], Any]:
        world = self
        targets = self.step_targets(steps)

        def body() -> Generator[Any, Any, object]:
            assert targets is not None
            world.log.append(("generator started", tag, world.context_var.get()))
            for i, step in enumerate(steps):
                kind = step[0]
                if kind == "await":
                    d = world.lookup(step[1])
                    if d is None:
                        world.log.append(("generator", tag, i, "no target"))
                        continue
                    try:
                        got = yield d
                    except Exception as e:
                        world.log.append(
                            ("generator caught", tag, i, world.name(e), world.context_var.get())
                        )
                        if not step[2]:
                            raise
                    else:
                        world.log.append(
                            ("generator got", tag, i, world.name(got), world.context_var.get())
                        )
                    finally:
                        del d
                elif kind == "value":
                    got = yield step[1]
                    world.log.append(
                        ("generator got", tag, i, world.name(got), world.context_var.get())
                    )
                elif kind == "returnValue" and not step[2]:
                    world.log.append(("generator returnValue", tag, i))
                    world.impl.returnValue(step[1])  # in the generator's own body
                else:
                    world.other_step("generator", tag, i, step)
            world.log.append(("generator returns", tag, world.context_var.get()))
            return returns

        return body

    def other_step(self, who: str, tag: object, i: int, step: Op) -> None:
        """
        A step of a generator or coroutine (``who``) that neither awaits nor calls
        ``returnValue`` in the body: an effect, ``returnValue`` from a function the
        body calls (this one), or a raise.
        """
        kind = step[0]
        if kind == "effect":
            self.do_effect(tag, None, step[1])
        elif kind == "returnValue":
            self.log.append((f"{who} returnValue", tag, i))
            self.impl.returnValue(step[1])
        else:
            raise ValueError(f"raised by {who} {tag}")

    def coroutine(self, tag: object, steps: Op, returns: object) -> Callable[[], Any]:
        world = self
        targets = self.step_targets(steps)

        async def body() -> object:
            assert targets is not None
            world.log.append(("coroutine started", tag, world.context_var.get()))
            for i, step in enumerate(steps):
                kind = step[0]
                if kind in ("await", "value"):
                    d = world.lookup(step[1]) if kind == "await" else None
                    if d is None:
                        # A coroutine awaits only Deferreds: a plain value is awaited
                        # through succeed().
                        d = world.impl.succeed(step[1] if kind == "value" else None)
                    skip = avoided(world, "await", d)
                    if skip:
                        world.log.append(("coroutine", tag, i, "skipped", skip))
                        del d
                        continue
                    world.awaited[id(d)] += 1
                    try:
                        got = await d
                    except Exception as e:
                        world.log.append(
                            ("coroutine caught", tag, i, world.name(e), world.context_var.get())
                        )
                        if not (kind == "await" and step[2]):
                            raise
                    else:
                        world.log.append(
                            ("coroutine got", tag, i, world.name(got), world.context_var.get())
                        )
                    finally:
                        world.awaited[id(d)] -= 1
                        if not world.awaited[id(d)]:
                            del world.awaited[id(d)]
                        del d
                elif kind == "returnValue" and not step[2]:
                    world.log.append(("coroutine returnValue", tag, i))
                    world.impl.returnValue(step[1])  # in the coroutine's own body
                else:
                    world.other_step("coroutine", tag, i, step)
            world.log.append(("coroutine returns", tag, world.context_var.get()))
            return returns

        return body

    # -- operations --------------------------------------------------------------------

    def perform(self, op: Op) -> object:
        """Run one operation of the program; return what the API call returned."""
        kind = op[0]
        tag = self.number
        impl = self.impl
        if kind == "create":
            d = impl.Deferred(self.canceller(op[1], tag))
            return self.register(d, hold=True)
        if kind == "succeed":
            return self.register(impl.succeed(op[1]), hold=True)
        if kind == "fail":
            return self.register(impl.fail(ValueError(f"fail {tag}")), hold=True)
        if kind == "advance":
            return self.clock.advance(op[1])
        if kind == "drop everything":
            self.held.clear()
            self.primitives.clear()
            self.clock = Clock()
            return None
        if kind in ("gatherResults", "DeferredList", "race"):
            ds = [self.lookup(self.resolve(p)) for p in op[1]]
            if kind == "gatherResults":
                made = impl.gatherResults(ds, consumeErrors=op[2])
            elif kind == "DeferredList":
                made = impl.DeferredList(
                    ds, fireOnOneCallback=op[2], fireOnOneErrback=op[3], consumeErrors=op[4]
                )
            else:
                made = impl.race(ds)
            self.register(made, hold=True)
            return made
        if kind == "inlineCallbacks":
            made = impl.inlineCallbacks(self.generator(tag, op[1], op[2]))()
            self.register(made, hold=True)
            return made
        if kind == "coroutine":
            coro = self.coroutine(tag, op[1], op[2])()
            if op[3] == "fromCoroutine":
                made = impl.Deferred.fromCoroutine(coro)
            else:
                made = impl.ensureDeferred(coro)
            self.register(made, hold=True)
            return made
        if kind == "maybeDeferred":
            made = impl.maybeDeferred(self.callback(tag, None, self.bind_action(op[1])), "arg")
            self.register(made, hold=True)
            return made

        if kind == "primitive":
            cls = getattr(impl, op[1])
            self.primitives.append(cls(*op[2:]))
            return len(self.primitives) - 1
        if kind == "use":
            return self.use(self.resolve_primitive(op[1]), op[2], op[3])
        if kind == "run":
            primitive = self.picked_primitive(op[1])
            made = primitive.run(self.callback(tag, None, self.bind_action(op[2])), "arg", *op[3])
            self.register(made, hold=True)
            return made
        if kind == "set":
            primitive = self.picked_primitive(op[1])
            attribute = {"DeferredLock": "locked", "DeferredSemaphore": "tokens"}
            setattr(primitive, attribute.get(type(primitive).__name__, "size"), op[2])
            return None
        if kind == "waiter":
            # Cancel, pause or fire by hand a Deferred waiting on the primitive.
            waiting = self.picked_primitive(op[1]).waiting
            if not waiting:
                return "none waiting"
            d = waiting[op[2] % len(waiting)]
            self.register(d, hold=True)
            if op[3] == "callback":
                return d.callback(f"by hand {tag}")
            avoid = avoided(self, op[3], d)
            if avoid:
                return ("skipped", avoid)
            return getattr(d, op[3])()
        if kind == "wait on":
            # A Deferred of the program's own put at the end of the waiting list:
            # the next release (or put) fires it.
            primitive = self.picked_primitive(op[1])
            primitive.waiting.append(self.lookup(self.resolve(op[2])))
            return None

        # Operations on one held Deferred.
        n = self.resolve(op[1])
        d = self.held[n]
        if kind in ("addCallback", "addErrback", "addBoth"):
            cb = self.callback(tag, n, self.bind_action(op[2]))
            return getattr(d, kind)(cb, *op[3], **op[4])
        if kind == "addCallbacks":
            cb = self.callback((tag, "callback"), n, self.bind_action(op[2]))
            eb = None if op[3] is None else self.callback((tag, "errback"), n, self.bind_action(op[3]))
            return d.addCallbacks(cb, eb, **op[4])
        if kind == "callback":
            result = op[2]
            if isinstance(result, tuple) and result[0] == "deferred":
                result = self.held[self.resolve(result[1])]
                skip = result is d and avoided(self, "callback itself", d)
                if skip:
                    return ("skipped", skip)
            elif isinstance(result, tuple):
                result = Failure(ZeroDivisionError(f"callback {tag}"))
            return d.callback(result)
        if kind == "errback":
            how = op[2]
            if how == "exception":
                return d.errback(ArithmeticError(f"errback {tag}"))
            if how == "failure":
                return d.errback(Failure(LookupError(f"errback {tag}")))
            if how == "current exception":
                try:
                    raise IndexError(f"errback {tag}")
                except IndexError:
                    return d.errback()
            return d.errback()
        if kind in ("pause", "unpause", "cancel"):
            skip = avoided(self, kind, d)
            if skip:
                return ("skipped", skip)
            return getattr(d, kind)()
        if kind == "chainDeferred":
            return d.chainDeferred(self.held[self.resolve(op[2])])
        if kind == "addTimeout":
            on_timeout = None
            if op[3]:

                def on_timeout(result: object, timeout: float) -> object:
                    self.log.append(("onTimeoutCancel", tag, self.name(result), timeout))
                    return f"timed out {tag}"

            return d.addTimeout(op[2], self.clock, on_timeout)
        if kind == "drop":
            del self.held[n]
            return None
        raise AssertionError(f"unknown operation {op!r}")

    def use(self, p: int | None, how: str, value: object) -> object:
        """``take``, ``give`` or a context manager half on the primitive named ``p``."""
        if p is None:
            return "no primitive"
        primitive = self.primitives[p]
        is_queue = not hasattr(primitive, "acquire")
        if how in ("give", "__aexit__"):
            if is_queue:
                return primitive.put(value)
            if how == "give":
                return primitive.release()
            return primitive.__aexit__(None, None, None)
        if is_queue:
            made = primitive.get()
        else:
            made = primitive.acquire() if how == "take" else primitive.__aenter__()
        self.register(made, hold=True)
        return made

    # -- observing ---------------------------------------------------------------------

    def step(self, op: Op) -> dict[str, object]:
        """Run ``op`` then collect garbage; describe everything observable."""
        self.number += 1
        self.log = []
        # Events are described as they come, not kept: a logged failure's traceback
        # would keep the frames it went through, and what they refer to, alive.
        logged: list[object] = []

        def observe(event: dict[str, Any]) -> None:
            if _reports_unhandled_error(event):
                self.unhandled.append(self.event(event, unhandled=True))
            else:
                logged.append(self.event(event))

        globalLogPublisher.addObserver(observe)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter(self.warning_filter)
                returned = self.outcome(lambda: self.perform(op))
                # What a collection frees can make more garbage (a logged failure).
                while gc.collect():
                    pass
        finally:
            globalLogPublisher.removeObserver(observe)
        observed = {
            "returned": returned,
            "log": self.log,
            "warnings": [self.warning(w) for w in caught],
            "logged": logged,
            "held": [self.state(n, d) for n, d in self.held.items()],
            "clock": [(c.getTime(), c.active()) for c in self.clock.getDelayedCalls()],
            "primitives": [self.primitive_state(p) for p in self.primitives],
        }
        if op == ("drop everything",):
            # When a Deferred is freed, and so when its unhandled error is logged,
            # depends on what refers to it: Twisted's failures keep the frames of
            # defer.py they went through (and the Deferreds those refer to) alive,
            # which txdefer's Rust code has no frames for.  So unhandled errors are
            # compared once every Deferred is gone, as a whole.
            observed["unhandled errors"] = sorted(self.unhandled, key=repr)
        return observed

    def warning(self, w: warnings.WarningMessage) -> object:
        """
        A warning's category, message and place: the test's code by file and line;
        the library's own code (Twisted's ``defer.py``, txdefer's modules) as such.
        """
        if os.path.dirname(os.path.abspath(w.filename)) == _HERE:
            place: object = (os.path.basename(w.filename), w.lineno)
        else:
            place = "library code"
        return (w.category, self.text(str(w.message)), place)

    def event(self, event: dict[str, Any], unhandled: bool = False) -> object:
        failure = event.get("log_failure")
        level = event.get("log_level")
        return (
            event.get("log_namespace"),
            None if level is None else level.name,
            self.text(str(event.get("log_format"))),
            event.get("isError"),
            None if failure is None else self.name(failure, raised=not unhandled),
            self.text(str(event.get("debugInfo", ""))),
        )

    def state(self, n: int, d: Any) -> object:
        state: list[object] = [
            n,
            self.class_name(d),
            d.called,
            d.paused,
            self.name(d._chainedTo),
            self.name(getattr(d, "result", _NO_RESULT)),
            self.outcome(lambda: str(d)),
            tuple(self.callbacks_entry(entry) for entry in d._callbacks),
            d._suppressAlreadyCalled,
            self.canceller_kind(d._canceller),
            self.debug_info(d._debugInfo),
        ]
        if hasattr(d, "resultList"):
            state += [self.name(d.resultList), d.finishedCount]
        return tuple(state)


    def canceller_kind(self, canceller: object) -> object:
        """A Deferred's ``_canceller``: none, the program's, or the library's."""
        return None if canceller is None else _whose(canceller)

    def debug_info(self, info: Any) -> object:
        """
        A Deferred's ``_debugInfo``: none, or the failure it would log as unhandled
        and whether it has the stacks that made and first fired the Deferred.
        """
        if info is None:
            return None
        return (
            self.name(info.failResult),
            info.creator is not None,
            info.invoker is not None,
        )

    def callbacks_entry(self, entry: Any) -> object:
        """
        An entry of ``d._callbacks``: for each half, what the callable is (the
        program's own by kind, Twisted's pass-through, or the library's), its
        arguments and its keyword arguments (as a dict: the mapping type is a known
        difference); or, for what resumes a waiting generator, only that.
        """
        halves: list[object] = []
        for function, args, kwargs in entry:
            if function is TWISTED._gotResultInlineCallbacks or isinstance(
                function, txdefer._core._InlineResume
            ):
                # What resumes a generator or coroutine waiting on the Deferred: a
                # known difference (the README's compatibility table).
                halves.append("resumes a generator")
                continue
            what = function.__name__ if function in _PASS_THROUGH else _whose(function)
            halves.append((what, self.name(args), self.name(dict(kwargs or {}))))
        return tuple(halves)

    def primitive_state(self, primitive: Any) -> object:
        """A lock's, semaphore's or queue's attributes, as Twisted's steps use them."""
        state: list[object] = [self.class_name(primitive)]
        for attribute in ("waiting", "locked", "tokens", "limit", "pending", "size", "backlog"):
            if hasattr(primitive, attribute):
                state.append((attribute, self.name(getattr(primitive, attribute))))
        return tuple(state)


def _whose(function: Any) -> object:
    """A callable: the program's own (this file's), by qualified name, or the library's."""
    if getattr(function, "__module__", None) == __name__:
        return ("program", function.__qualname__)
    return "library"


def _program_frame(frame: re.Match[str]) -> str:
    """
    A frame of a debug-mode stack, as the same in both worlds: the program's own
    frames (this file's), by function and line, with the line that says it recurred;
    not the library's (Twisted's ``defer.py`` frames, which compiled code has none
    of), nor the test runner's, nor the frame that steps one world or the other.
    """
    if os.path.basename(frame["file"]) != "differential.py" or frame["func"] == "apply":
        return ""
    return f"{frame['prefix']}  {frame['func']}:{frame['line']}\n{frame['repeated'] or ''}"


def _program_frames_of(failure: Failure) -> object:
    """
    The frames of a failure's traceback that are the program's own (this file's),
    by function and line, with the names of the local variables captured (debug
    mode captures them): the library's frames differ (Twisted's ``defer.py``,
    which compiled code has none of).
    """
    return tuple(
        (frame[0], frame[2], tuple(sorted(name for name, _ in frame[3])))
        for frame in failure.frames
        if os.path.basename(frame[1]) == "differential.py"
    )


def _reports_unhandled_error(event: dict[str, Any]) -> bool:
    """Whether ``event`` is one of the two that report an unhandled failure."""
    return event.get("log_namespace") == "twisted.internet.defer" and (
        event.get("log_format") == "Unhandled error in Deferred:" or "debugInfo" in event
    )


def _names_in(action: Op) -> list[int | None]:
    """The names of the Deferreds a bound action (or generator step) refers to."""
    effects, end = action
    names = [
        n
        for effect in effects
        if effect[0] not in ("take", "give", "set var")  # these name no Deferred
        for n in effect[1:3]
        if isinstance(n, int)
    ]
    if end[0] in ("return held", "return coroutine"):
        names.append(end[1])
    return names


@contextlib.contextmanager
def isolated_global_log() -> Iterator[None]:
    """
    Detach every observer of Twisted's global log publisher for the duration: the
    buffer that keeps events until logging begins would keep each logged failure, its
    traceback's frames and the Deferreds they refer to alive (and the default observer
    would print every unhandled error).
    """
    observers = list(globalLogPublisher._observers)
    for observer in observers:
        globalLogPublisher.removeObserver(observer)
    try:
        yield
    finally:
        for observer in observers:
            globalLogPublisher.addObserver(observer)


#: Seconds one step of a program may take before the process gives up on it.
STEP_TIME_LIMIT = 60


class _Watchdog(threading.Thread):
    """
    Watches the running step from a thread of its own (a signal handler would run in
    the looping step's own frames, where a loop that recurses leaves it no stack):
    after ``RUNAWAY_SECONDS`` it stops cancellations so that the step unwinds (the
    program is then discarded); after ``STEP_TIME_LIMIT`` it ends the process.
    """

    def __init__(self) -> None:
        super().__init__(name="differential-watchdog", daemon=True)
        #: (when it runs away, when to give up, the program so far) while a step runs.
        self.current: tuple[float, float, list[Op]] | None = None
        #: What ``_stop_cancellations`` replaced, once it has been called for a step.
        self.stopped: list[tuple[type, Any]] | None = None

    def run(self) -> None:
        while True:
            time.sleep(0.5)
            current = self.current
            if current is None:
                continue
            now = time.monotonic()
            if now > current[1]:
                self.give_up(current[2])
            elif now > current[0] and self.stopped is None:
                self.stopped = _stop_cancellations()

    @staticmethod
    def give_up(ops: list[Op]) -> None:
        # pytest may be capturing stderr in a file that exiting will not show.
        path = os.environ.get("TXDEFER_DIFF_HANG_FILE") or os.path.join(
            tempfile.gettempdir(), "txdefer-differential-hang.txt"
        )
        with open(path, "w") as f:
            f.write(f"{ops!r}\n")
        message = f"A step did not end in {STEP_TIME_LIMIT} s; the program is in {path}\n"
        os.write(2, message.encode())
        os._exit(70)


_watchdog: _Watchdog | None = None


@contextlib.contextmanager
def watchdog(ops: list[Op]) -> Iterator[list[bool]]:
    """
    A step that never ends (a Deferred loop that does not terminate) cannot be
    interrupted by an exception, which the Deferred would catch.  A runaway
    cancellation is cut short: the yielded flag is set (the caller discards the
    program).  Anything else still running after ``STEP_TIME_LIMIT`` seconds: write
    the program to a file (replay it with ``replay()``) and exit the process.
    """
    global _watchdog
    if _watchdog is None:
        _watchdog = _Watchdog()
        _watchdog.start()
    ran_away = [False]
    now = time.monotonic()
    _watchdog.current = (now + RUNAWAY_SECONDS, now + STEP_TIME_LIMIT, ops)
    try:
        yield ran_away
    finally:
        _watchdog.current = None
        if _watchdog.stopped is not None:
            _resume_cancellations(_watchdog.stopped)
            _watchdog.stopped = None
            ran_away[0] = True


def replay(impl: Impl, ops: list[Op]) -> list[dict[str, object]]:
    """
    Run a program (the operations a failing run printed) in one world; return what
    was observed after each step.
    """
    world = World(impl)
    with isolated_global_log():
        return [world.step(op) for op in ops]


def compare(op: Op, expected: dict[str, object], actual: dict[str, object]) -> None:
    """Fail, showing what differs, unless the two worlds observed the same things."""
    different = [key for key in expected if expected[key] != actual[key]]
    if different:
        lines = [f"after {op!r}, differs from Twisted in: {', '.join(different)}"]
        for key in different:
            lines.append(f"-- {key} on Twisted:\n{pprint.pformat(expected[key])}")
            lines.append(f"-- {key} on the implementation:\n{pprint.pformat(actual[key])}")
        raise AssertionError("\n".join(lines))


# -- the state machine ------------------------------------------------------------------


class DifferentialMachine(RuleBasedStateMachine):
    """
    Every rule is one operation, run in both worlds and compared; the teardown drops
    everything, collects garbage, and compares what that logged.
    """

    impl: Impl = TXDEFER

    #: Programs started so far (in this process), compared to the end, and discarded.
    programs = 0
    compared = 0
    discarded = 0

    def __init__(self) -> None:
        super().__init__()
        # Each step's gc.collect() only has to look at what this program makes if
        # everything older is frozen.  What was frozen and has become garbage since
        # is collected every few hundred programs (the caller unfreezes at the end).
        DifferentialMachine.programs += 1
        if DifferentialMachine.programs % 500 == 0:
            gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.worlds = (World(TWISTED), World(self.impl))
        #: Operations run so far (for the report of a failure).
        self.ops: list[Op] = []
        self.incomparable = False

    def apply(self, *op: Any) -> None:
        self.ops.append(op)
        with watchdog(self.ops) as ran_away:
            expected = self.worlds[0].step(op)
            actual = self.worlds[1].step(op)
        if ran_away[0]:
            # A storm of cancellations, cut short (see RUNAWAY_SECONDS).
            self.incomparable = True
            DifferentialMachine.discarded += 1
            hypothesis.event("discarded: cancellations ran away")
            hypothesis.assume(False)
        if expected != actual and "RecursionError" in repr(expected) + repr(actual):
            # Unbounded recursion (e.g. Deferreds cancelling each other in a cycle):
            # where the limit is hit, and so what happens next, depends on how many
            # frames each implementation uses per level.  Not comparable: discarded.
            self.incomparable = True
            DifferentialMachine.discarded += 1
            hypothesis.event("discarded: recursion limit hit, worlds differ")
            hypothesis.assume(False)
        compare(op, expected, actual)

    def holds(self) -> bool:
        return bool(self.worlds[0].held)

    def teardown(self) -> None:
        try:
            if self.ops and not self.incomparable:
                self.apply("drop everything")
                DifferentialMachine.compared += 1
        finally:
            for world in self.worlds:
                world.impl.setDebugging(False)
            self.worlds = ()

    @initialize(
        warning_filter=st.sampled_from(["always", "error"]),
        debug=st.booleans(),
        cancellers=st.lists(canceller, min_size=1, max_size=3),
    )
    def start(self, warning_filter: str, debug: bool, cancellers: list[str | None]) -> None:
        for world in self.worlds:
            world.warning_filter = warning_filter
            # Debug mode: each Deferred records the stacks that created and first
            # fired it, shown by AlreadyCalledError and the unhandled-error log.
            world.impl.setDebugging(debug)
        for kind in cancellers:
            self.apply("create", kind)

    @rule(kind=canceller)
    def create(self, kind: str | None) -> None:
        self.apply("create", kind)

    @rule(result=value)
    def succeed(self, result: object) -> None:
        self.apply("succeed", result)

    @rule()
    def fail(self) -> None:
        self.apply("fail")

    @precondition(holds)
    @rule(
        method=st.sampled_from(["addCallback", "addErrback", "addBoth"]),
        d=pick,
        callback=action,
        args=extra_args,
        kwargs=extra_kwargs,
    )
    def add_callback(
        self, method: str, d: int, callback: Op, args: Op, kwargs: dict[str, object]
    ) -> None:
        self.apply(method, d, callback, args, kwargs)

    @precondition(holds)
    @rule(d=pick, callback=action, errback=st.none() | action, extras=callbacks_extras)
    def add_callbacks(
        self, d: int, callback: Op, errback: Op | None, extras: dict[str, object]
    ) -> None:
        self.apply("addCallbacks", d, callback, errback, extras)

    @precondition(holds)
    @rule(d=pick, result=callback_value)
    def callback(self, d: int, result: object) -> None:
        self.apply("callback", d, result)

    @precondition(holds)
    @rule(d=pick, how=errback_kind)
    def errback(self, d: int, how: str) -> None:
        self.apply("errback", d, how)

    @precondition(holds)
    @rule(d=pick, method=st.sampled_from(["pause", "unpause", "cancel"]))
    def pause_unpause_cancel(self, d: int, method: str) -> None:
        self.apply(method, d)

    @precondition(holds)
    @rule(d=pick, other=pick)
    def chain_deferred(self, d: int, other: int) -> None:
        self.apply("chainDeferred", d, other)

    @precondition(holds)
    @rule(d=pick, seconds=delay, on_timeout_cancel=st.booleans())
    def add_timeout(self, d: int, seconds: int, on_timeout_cancel: bool) -> None:
        self.apply("addTimeout", d, seconds, on_timeout_cancel)

    @rule(seconds=delay)
    def advance_clock(self, seconds: int) -> None:
        self.apply("advance", seconds)

    @rule(ds=st.lists(pick, max_size=4).map(tuple), consume_errors=st.booleans())
    def gather_results(self, ds: Op, consume_errors: bool) -> None:
        self.apply("gatherResults", ds, consume_errors)

    @rule(
        ds=st.lists(pick, max_size=4).map(tuple),
        fire_on_one_callback=st.booleans(),
        fire_on_one_errback=st.booleans(),
        consume_errors=st.booleans(),
    )
    def deferred_list(
        self,
        ds: Op,
        fire_on_one_callback: bool,
        fire_on_one_errback: bool,
        consume_errors: bool,
    ) -> None:
        self.apply("DeferredList", ds, fire_on_one_callback, fire_on_one_errback, consume_errors)

    @rule(ds=st.lists(pick, max_size=4).map(tuple))
    def race(self, ds: Op) -> None:
        self.apply("race", ds)

    @rule(steps=generator_steps, returns=value)
    def inline_callbacks(self, steps: Op, returns: object) -> None:
        self.apply("inlineCallbacks", self.bind_steps(steps), returns)

    @rule(
        steps=generator_steps,
        returns=value,
        via=st.sampled_from(["fromCoroutine", "ensureDeferred"]),
    )
    def coroutine(self, steps: Op, returns: object, via: str) -> None:
        self.apply("coroutine", self.bind_steps(steps), returns, via)

    @rule(callable=called_action)
    def maybe_deferred(self, callable: Op) -> None:
        self.apply("maybeDeferred", callable)

    @rule(kind=primitive_kind)
    def make_primitive(self, kind: Op) -> None:
        self.apply("primitive", *kind)

    def has_primitives(self) -> bool:
        return bool(self.worlds[0].primitives)

    @precondition(has_primitives)
    @rule(p=primitive_pick, how=primitive_use, value=value)
    def use_primitive(self, p: int, how: str, value: object) -> None:
        self.apply("use", p, how, value)

    @precondition(has_primitives)
    @rule(p=primitive_pick, callable=called_action, args=extra_args)
    def run_with_primitive(self, p: int, callable: Op, args: Op) -> None:
        self.apply("run", p, callable, args)

    @precondition(has_primitives)
    @rule(p=primitive_pick, setting=primitive_setting)
    def set_primitive(self, p: int, setting: object) -> None:
        self.apply("set", p, setting)

    @precondition(lambda self: self.has_primitives() and self.holds())
    @rule(p=primitive_pick, d=pick)
    def wait_on_primitive(self, p: int, d: int) -> None:
        self.apply("wait on", p, d)

    @precondition(holds)
    @rule(d=pick)
    def drop(self, d: int) -> None:
        self.apply("drop", d)

    def bind_steps(self, steps: Op) -> Op:
        """Generator steps with their picks resolved to names (the same in both worlds)."""
        world = self.worlds[0]
        bound = []
        for step in steps:
            if step[0] == "await":
                step = ("await", world.resolve(step[1]), step[2])
            elif step[0] == "effect":
                step = ("effect", world.bind_effect(step[1]))
            bound.append(step)
        return tuple(bound)


class PrimitivesMachine(DifferentialMachine):
    """
    Programs centred on ``DeferredLock``, ``DeferredSemaphore`` and ``DeferredQueue``:
    the same operations, without the combinators, timeouts and ``chainDeferred``, so
    that most steps take, give, run, cancel or re-enter a primitive and its waiters.
    (Among all the rules, a program rarely makes two waiters on one primitive and
    then cancels one.)
    """

    # Rules left out (a non-rule attribute hides the inherited rule).
    add_callbacks = chain_deferred = add_timeout = advance_clock = None  # type: ignore[assignment]
    gather_results = deferred_list = race = maybe_deferred = fail = None  # type: ignore[assignment]

    @precondition(DifferentialMachine.has_primitives)
    @rule(
        p=primitive_pick,
        i=st.integers(0, 2),
        method=st.sampled_from(["cancel", "pause", "unpause", "callback"]),
    )
    def waiter(self, p: int, i: int, method: str) -> None:
        self.apply("waiter", p, i, method)

    @initialize(kinds=st.lists(primitive_kind, min_size=1, max_size=2))
    def start_primitives(self, kinds: list[Op]) -> None:
        for kind in kinds:
            self.apply("primitive", *kind)


def machine_for(
    impl: Impl, base: type[DifferentialMachine] = DifferentialMachine
) -> type[DifferentialMachine]:
    """The state machine (``base``'s programs) comparing ``impl`` with Twisted."""
    return type(f"{base.__name__}_{impl.name}", (base,), {"impl": impl})
