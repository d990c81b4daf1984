"""
Two macro workloads that look like real programs: a service answering 1000
concurrent requests.

Each request is handled by the same logic, written once with ``inlineCallbacks``
and once as ``async def``:

1. look the user up in a cache, which answers at once (an already-fired Deferred);
2. query a "database" through a connection pool of 10 (a ``DeferredSemaphore``);
   the answer arrives later, from a call-soon loop, and one query in ten fails;
3. handle the failure with ``try``/``except``;
4. build the JSON response with ``json.dumps``.

All 1000 requests start at once and are collected with ``gatherResults``; then the
call-soon loop runs until every request has been answered.  There is no reactor and
no clock: the loop is a deque of callables drained in a loop, so the time measured
is the Deferred machinery, the generator/coroutine switching and the program's own
work (dict building, JSON), not I/O.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from types import ModuleType
from typing import Any

from txdefer.bench.spec import Case, Workload, collector

WORKLOADS: list[Workload] = []
macro = collector(WORKLOADS, "macro")

REQUESTS = 1000
POOL_SIZE = 10
USERS = 100
FAIL_EVERY = 10


class CallSoonLoop:
    """
    The smallest event loop: a FIFO of calls, run in order until none is left.
    Calls scheduled while draining run in the same drain.
    """

    def __init__(self) -> None:
        self._calls: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()

    def call_soon(self, f: Callable[..., Any], *args: Any) -> None:
        self._calls.append((f, args))

    def run(self) -> None:
        calls = self._calls
        next_call = calls.popleft
        while calls:
            f, args = next_call()
            f(*args)


class QueryError(Exception):
    """
    The "database" refused a query.
    """


class Backend:
    """
    What the request handler talks to: a cache that answers synchronously and a
    database, reached through a pool of ``POOL_SIZE`` connections, that answers
    from the call-soon loop.  Built once per implementation.
    """

    def __init__(self, ns: ModuleType, loop: CallSoonLoop) -> None:
        self._ns = ns
        self._loop = loop
        self._pool = ns.DeferredSemaphore(POOL_SIZE)
        self._cache = {
            f"user:{i}": {"name": f"user{i}", "tier": ("free", "pro")[i % 2]}
            for i in range(USERS)
        }

    def cache_get(self, key: str) -> Any:
        """
        The cached value for ``key``, in an already-fired Deferred.
        """
        return self._ns.succeed(self._cache.get(key))

    def query(self, request_id: int) -> Any:
        """
        The database row for ``request_id``, once a pool connection is free and the
        call-soon loop has delivered the answer; every ``FAIL_EVERY``-th query fails
        with :class:`QueryError`.
        """
        return self._pool.run(self._send_query, request_id)

    def pool_state(self) -> tuple[int, int]:
        """
        Free connections and queued queries: ``(POOL_SIZE, 0)`` when idle.
        """
        return self._pool.tokens, len(self._pool.waiting)

    def _send_query(self, request_id: int) -> Any:
        d = self._ns.Deferred()
        if request_id % FAIL_EVERY == FAIL_EVERY - 1:
            self._loop.call_soon(d.errback, QueryError(f"query {request_id}: deadlock"))
        else:
            row = {
                "order": request_id * 7,
                "items": request_id % 5,
                "total": request_id * 3.5,
            }
            self._loop.call_soon(d.callback, row)
        return d


def _ok(request_id: int, user: Any, row: Any) -> str:
    return json.dumps(
        {"id": request_id, "status": 200, "user": user, "order": row}, sort_keys=True
    )


def _error(request_id: int, error: Exception) -> str:
    return json.dumps({"id": request_id, "status": 503, "error": str(error)})


def _serve(
    ns: ModuleType, start: Callable[[int], Any], loop: CallSoonLoop, backend: Backend
) -> Callable[[], Any]:
    """
    The timed operation: start all requests, run the loop until it is idle; return
    the responses (a Deferred) and the pool's state, which must be idle again.
    """
    gatherResults = ns.gatherResults

    def go():
        responses = gatherResults([start(i) for i in range(REQUESTS)])
        loop.run()
        return responses, backend.pool_state()

    return go


@macro("handler_inlinecb")
def handler_inlinecb(ns: ModuleType) -> Case:
    """
    1000 concurrent requests handled by an ``inlineCallbacks`` generator: cache
    lookup, pooled database query answered later (one in ten fails and is handled
    with try/except), JSON response.
    """
    loop = CallSoonLoop()
    backend = Backend(ns, loop)

    @ns.inlineCallbacks
    def handle(request_id):
        user = yield backend.cache_get(f"user:{request_id % USERS}")
        try:
            row = yield backend.query(request_id)
        except QueryError as e:
            return _error(request_id, e)
        return _ok(request_id, user, row)

    return Case(_serve(ns, handle, loop, backend))


@macro("handler_coroutine")
def handler_coroutine(ns: ModuleType) -> Case:
    """
    The same 1000 requests handled by the same logic written as ``async def``, each
    run with ``Deferred.fromCoroutine``.
    """
    loop = CallSoonLoop()
    backend = Backend(ns, loop)
    fromCoroutine = ns.Deferred.fromCoroutine

    async def handle(request_id):
        user = await backend.cache_get(f"user:{request_id % USERS}")
        try:
            row = await backend.query(request_id)
        except QueryError as e:
            return _error(request_id, e)
        return _ok(request_id, user, row)

    def start(request_id):
        return fromCoroutine(handle(request_id))

    return Case(_serve(ns, start, loop, backend))
