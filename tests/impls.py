"""
The three implementations every behaviour test runs against, and helpers to observe
what a scenario does on each.

* ``TWISTED``: Twisted's own pure-Python ``twisted.internet.defer`` (the reference);
* ``TXDEFER``: ``txdefer`` (the Rust ``Deferred`` and the Python helpers around it);
* ``SUBCLASS``: ``txdefer``'s helpers with a plain Python subclass of
  ``txdefer.Deferred`` as the ``Deferred`` class.

A test that fails on ``TWISTED`` is a wrong test; one that passes there and fails on
another implementation is a txdefer bug.  ``txdefer.install()`` is never called in this
process (tests that need it run in a subprocess), so Twisted's originals stay intact.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import twisted.internet.defer as tdefer
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

import txdefer
import txdefer._core


class SubDeferred(txdefer.Deferred):  # type: ignore[type-arg]
    """
    A plain Python subclass of txdefer's Deferred.  Defined once: every subclass is
    recorded for good in ``_DEFERRED_SUBCLASSES``.
    """


class Impl:
    """
    One implementation: ``impl.Deferred`` is its Deferred class; every other name of
    ``twisted.internet.defer`` (``succeed``, ``DeferredList``, ``inlineCallbacks``...)
    is looked up in its module.
    """

    def __init__(
        self, name: str, module: ModuleType, deferred: type, subclasses: list[type]
    ) -> None:
        self.name = name
        self.module = module
        self.Deferred: Any = deferred
        #: The implementation's ``_DEFERRED_SUBCLASSES`` list.
        self.subclasses = subclasses

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.module, attr)

    def __repr__(self) -> str:
        return self.name

    @property
    def is_twisted(self) -> bool:
        return self is TWISTED


TWISTED = Impl("twisted", tdefer, tdefer.Deferred, tdefer._DEFERRED_SUBCLASSES)
TXDEFER = Impl("txdefer", txdefer, txdefer.Deferred, txdefer._core._DEFERRED_SUBCLASSES)
SUBCLASS = Impl("subclass", txdefer, SubDeferred, txdefer._core._DEFERRED_SUBCLASSES)

ALL_IMPLS = [TWISTED, TXDEFER, SUBCLASS]
OURS = [TXDEFER, SUBCLASS]


# -- observing outcomes ---------------------------------------------------------------

_ADDRESS = re.compile(r"0x[0-9a-f]+")


def normalize(text: str, impl: Impl | None = None) -> str:
    """
    Make a text comparable across implementations: addresses become ``0xADDR`` and
    the class name of ``impl.Deferred`` becomes ``Deferred``.
    """
    text = _ADDRESS.sub("0xADDR", text)
    if impl is not None and impl.Deferred.__name__ != "Deferred":
        text = re.sub(rf"\b{re.escape(impl.Deferred.__name__)}\b", "Deferred", text)
    return text


def describe(value: object) -> Any:
    """
    A comparable description of a result: a ``Failure`` becomes
    ``("Failure", exception type, str(exception))``.
    """
    if isinstance(value, Failure):
        return ("Failure", value.type, str(value.value))
    return value


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """
    Call ``fn``; return ``("ok", describe(result))`` or ``("raise", type, message)``.
    """
    try:
        value = fn(*args, **kwargs)
    except BaseException as e:  # noqa: B036 - observing everything is the point
        return ("raise", type(e), str(e))
    return ("ok", describe(value))


_NOTHING = object()


def result_of(d: Any) -> Any:
    """
    The current result of a fired Deferred, taken through a callback (so a failure is
    handled and is not logged as unhandled).  ``_NOTHING`` if it has no result yet.
    """
    box: list[Any] = []

    def grab(r: object) -> None:
        box.append(r)
        return None

    d.addBoth(grab)
    return box[0] if box else _NOTHING


def no_result(d: Any) -> bool:
    """
    Whether ``d`` has no result available for a new callback now.
    """
    box: list[Any] = []
    d.addBoth(lambda r: box.append(r) or r)
    return not box


def fired_with(d: Any) -> Any:
    """
    ``describe()`` of ``d``'s result, consuming it; ``"<no result>"`` if none.
    """
    value = result_of(d)
    if value is _NOTHING:
        return "<no result>"
    return describe(value)


@contextlib.contextmanager
def captured_log() -> Iterator[list[dict[str, Any]]]:
    """
    Collect the events published on Twisted's global log publisher.  Garbage from
    earlier tests is collected first so that its events are not captured.
    """
    gc.collect()
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(events.append)


def unhandled_error_events(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """
    The comparable essentials of "Unhandled error in Deferred:" log events.
    """
    summary = []
    for event in events:
        if event.get("log_namespace") != "twisted.internet.defer":
            continue
        failure = event.get("log_failure")
        summary.append(
            (
                event.get("log_format"),
                event.get("isError"),
                event["log_level"].name,
                None if failure is None else (failure.type, str(failure.value)),
            )
        )
    return summary


def unhandled(exc_type: type, message: str) -> list[tuple[Any, ...]]:
    """
    What Twisted logs for one unhandled failure (without debug info).
    """
    return [
        ("Unhandled error in Deferred:", True, "critical", None),
        ("", None, "critical", (exc_type, message)),
    ]


def nothing_to_delete(type_name: str, attribute: str) -> str:
    """
    The message of ``del obj.attribute`` on an instance of a plain class named
    ``type_name`` that has no such attribute, as the running Python words it
    (CPython 3.10 gives only the attribute's name).
    """
    instance = type(type_name, (), {})()
    try:
        delattr(instance, attribute)
    except AttributeError as e:
        return str(e)
    raise AssertionError("deleting a missing attribute did not fail")
