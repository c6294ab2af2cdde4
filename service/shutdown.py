"""The app's half of a graceful stop: requests in flight get SHUTDOWN_TIMEOUT to finish, the rest
are cancelled and answered 503; and the whole stop's budget, which gunicorn's graceful_timeout
must cover. The worker's half (readiness off, SHUTDOWN_DELAY, closing the listener) is in
service/worker.py, whose docstring lists every step in order."""

from __future__ import annotations

import asyncio
import logging
import math
import os
from typing import Any

from aiohttp import web

from service import keys
from service.db import POOL_CLOSE_TIMEOUT
from service.errors import json_error
from service.settings import Settings, resolved

log = logging.getLogger("service.shutdown")

# A request cancelled at the end of SHUTDOWN_TIMEOUT rolls its transaction back and is answered
# 503 within this time.
CANCEL_GRACE = 1.0
# After the drain, aiohttp's own per-connection shutdown waits this long for responses still
# being written, and as long again once it has cancelled them (see web_protocol.shutdown).
FLUSH_TIMEOUT = 1.0
# Leaving the event loop and the interpreter.
EXIT_MARGIN = 1.0


def graceful_timeout(settings: Settings) -> int:
    """gunicorn's graceful_timeout: every step of a worker's stop, in whole seconds (gunicorn
    rejects a float), so the master never kills a worker that is still within its budget."""
    budget = (
        resolved(settings.shutdown_delay)
        + settings.shutdown_timeout
        + CANCEL_GRACE
        + 2 * FLUSH_TIMEOUT
        + POOL_CLOSE_TIMEOUT
        + EXIT_MARGIN
    )
    if settings.database_replica_urls:
        # The replicas' pools close before the primary's, all together (service/replicas.py),
        # and their monitor sessions within a second.
        budget += POOL_CLOSE_TIMEOUT + 1.0
    return math.ceil(budget)


class InFlight:
    """The tasks of the requests being handled right now, so the stop can wait for them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.cancelled: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        # When SHUTDOWN_TIMEOUT ends (event loop time): set by whoever closes the listener.
        self.deadline: float | None = None

    def __len__(self) -> int:
        return len(self._tasks)

    def enter(self) -> asyncio.Task[Any]:
        """Count the calling request's task in; `leave(task)` when it has its answer."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)  # given the loop: no getpid() per call on Python 3.11
        assert task is not None  # noqa: S101 - a request always runs in a task; this narrows the type
        self._tasks.add(task)
        self._idle.clear()
        return task

    def leave(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def _idle_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def drain(self, timeout: float, grace: float = CANCEL_GRACE) -> int:
        """Wait up to `timeout` for every request in flight; cancel those still running and give
        them `grace` to unwind. Returns how many were cancelled."""
        if await self._idle_within(timeout):
            return 0
        late = list(self._tasks)
        self.cancelled.update(late)
        for task in late:
            task.cancel()
        if not await self._idle_within(grace):
            log.warning("worker %d: %d cancelled requests did not finish within %.1fs", os.getpid(), len(self), grace)
        return len(late)


def shutting_down(request: web.Request) -> web.Response:
    """The answer to a request cancelled because the worker stops: nothing was committed, retry."""
    response = json_error(
        503, {"server": ["the service is shutting down; retry"]}, request, headers={"Retry-After": "1"}
    )
    response.force_close()
    return response


async def drain_requests(app: web.Application) -> None:
    """on_shutdown: runs after the listener has closed and before the cleanup contexts (the pool).
    Under gunicorn the worker has closed the listener and has already waited for the connections
    to close (service/worker.py): what it left of SHUTDOWN_TIMEOUT remains."""
    lifecycle, in_flight = app[keys.LIFECYCLE], app[keys.IN_FLIGHT]
    lifecycle.draining = True  # already so under gunicorn; also for run_app and tests
    loop = asyncio.get_running_loop()
    timeout = app[keys.SETTINGS].shutdown_timeout
    if in_flight.deadline is None:  # run_app and tests: the listener has just closed
        in_flight.deadline = loop.time() + timeout
        log.info("worker %d: draining %d requests in flight (up to %.1fs)", os.getpid(), len(in_flight), timeout)
    cancelled = await in_flight.drain(max(0.0, in_flight.deadline - loop.time()))
    if cancelled:
        log.warning("worker %d: cancelled %d requests still running after %.1fs", os.getpid(), cancelled, timeout)
    else:
        log.info("worker %d: drained", os.getpid())


def setup(app: web.Application) -> None:
    app[keys.IN_FLIGHT] = InFlight()
    app.on_shutdown.append(drain_requests)
