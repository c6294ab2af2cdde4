"""The gunicorn worker: aiohttp's uvloop worker, with the stop this service promises.

The master turns its own SIGTERM into a SIGTERM to every worker (an orchestrator may send one
too: the second changes nothing). A worker then stops in this order:

1. readiness off, at once: `/readyz` answers 503 (`handle_exit`);
2. for SHUTDOWN_DELAY it still accepts and serves, so the load balancer can take it out of
   rotation without a refused connection; answers carry `Connection: close`
   (service/observability.py) so keep-alive clients reconnect elsewhere;
3. the listener closes (`_drain_connections`; when it closes for good, its queue is emptied
   first, so that the close resets no connection: service/listener.py), and from then on
   SHUTDOWN_TIMEOUT runs. No connection is closed under a request that may be on its way: each
   open connection is served until its client closes it, or its next request is answered (with
   `Connection: close`);
4. when none is left, or at the end of SHUTDOWN_TIMEOUT, the serve loop ends; aiohttp's
   `runner.cleanup()` does the rest, in this order: what is still open is closed (connections
   idle since before the listener closed: a proxy that saw it refuse no longer uses them),
   requests still running are cancelled, their transactions rolled back, and answered 503
   (on_shutdown: service/shutdown.py `drain_requests`);
5. the pool closes, bounded (cleanup context: service/db.py `pool_ctx`);
6. the worker exits 0, and once every worker has, the master exits 0.

gunicorn's graceful_timeout covers all of it (service/shutdown.py `graceful_timeout`).
aiohttp's stock worker does steps 3-6 only, at once on SIGTERM: it closes idle keep-alive
connections with the listener, which a pooling proxy may have just sent a request down (a reset,
and a 502 it does not retry for a POST), and its own drain waits up to twice its timeout before
it cancels; hence steps 3 and 4 are ours, and aiohttp's drain is left to flush."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from aiohttp import web
from aiohttp.worker import GunicornUVLoopWebWorker

from service import keys, listener
from service.settings import resolved
from service.shutdown import FLUSH_TIMEOUT

# How often the stop looks whether every connection has closed (aiohttp's server has no hook).
CONNECTIONS_POLL = 0.05


class ConduitWorker(GunicornUVLoopWebWorker):
    # gunicorn types it as a WSGI callable; aiohttp's workers keep the app (or its factory) there.
    wsgi: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._draining: asyncio.Task[None] | None = None
        self._stopping = False

    def run(self) -> None:
        # uvloop takes a listening socket over and, when it closes it, detaches a plain socket
        # object; gunicorn's wrapper would be closed a second time (a logged EBADF at each stop).
        self.sockets = [getattr(sock, "sock", sock) for sock in self.sockets]
        try:
            super().run()  # ends with sys.exit(0) once the stop is complete
        finally:
            # The closed loop has put SIGTERM's default action back; a late SIGTERM must not
            # turn this clean exit into a death by signal.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        factory = self.wsgi

        async def make_runner() -> web.AppRunner:
            app = factory if isinstance(factory, web.Application) else await factory()
            self._app = app
            if self._stopping:  # SIGTERM arrived while the app was being built
                app[keys.LIFECYCLE].draining = True
            # Our own runner: no aiohttp access log (the app writes one JSON line per request),
            # a client that hangs up does not cancel its handler (as in the tests), and aiohttp's
            # drain only flushes what ours (step 4) leaves.
            self._runner = web.AppRunner(
                app,
                logger=self.log,
                keepalive_timeout=self.cfg.keepalive,
                access_log=None,
                handler_cancellation=False,
                shutdown_timeout=FLUSH_TIMEOUT,
            )
            return self._runner

        self.wsgi = make_runner

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM (run by the event loop): step 1, and step 3 scheduled after the delay."""
        if self._stopping:
            self.log.info("SIGTERM again: already stopping")
            return
        self._stopping = True
        delay = 0.0
        if self._app is not None:
            self._app[keys.LIFECYCLE].draining = True
            delay = resolved(self._app[keys.SETTINGS].shutdown_delay)
        self.log.info("SIGTERM: readiness off; closing the listener in %.1fs", delay)
        self.loop.call_later(delay, self._close_listener)

    def _close_listener(self) -> None:
        self.log.info("closing the listener")
        self._draining = self.loop.create_task(self._drain_connections())

    async def _drain_connections(self) -> None:
        """Step 3: close the listener, then wait, up to SHUTDOWN_TIMEOUT, for every open
        connection to close by itself; then step 4."""
        try:
            await self._close_and_wait()
        except Exception:
            self.log.exception("draining the connections failed; closing them")
        finally:
            self._leave_serve_loop()

    async def _close_and_wait(self) -> None:
        runner, app = self._runner, self._app
        if runner is None or app is None or runner.server is None:
            return  # SIGTERM before the app was served: nothing to drain
        # Sockets that close for good here: first let them take no new connection, and accept
        # what is queued, so that the close resets none (service/listener.py).
        last = [sock for sock in self.sockets if await asyncio.to_thread(listener.closing_for_good, sock, self.ppid)]
        if last and all(listener.ignore_new_connections(sock) for sock in last):
            self.log.info("the listener takes no new connection; emptying its queue")
            await listener.empty_queue(last)
        for site in runner.sites:
            await site.stop()
        loop, server, in_flight = self.loop, runner.server, app[keys.IN_FLIGHT]
        timeout = app[keys.SETTINGS].shutdown_timeout
        in_flight.deadline = loop.time() + timeout  # the same SHUTDOWN_TIMEOUT for the requests' drain
        self.log.info(
            "draining %d requests in flight on %d open connections (up to %.1fs)",
            len(in_flight),
            len(server.connections),
            timeout,
        )
        while server.connections and loop.time() < in_flight.deadline:  # noqa: ASYNC110 (aiohttp's server has no hook for its last connection closing)
            await asyncio.sleep(CONNECTIONS_POLL)
        if server.connections:
            self.log.info("closing %d connections still open after %.1fs", len(server.connections), timeout)
        else:
            self.log.info("every connection closed")

    def _leave_serve_loop(self) -> None:
        """Step 4: aiohttp's runner.cleanup() closes what is left, then runs steps 4 and 5."""
        self.alive = False
        self._notify_waiter_done()

    async def _run(self) -> None:
        await super()._run()
        self.log.info("stopped cleanly")
