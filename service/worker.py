"""The gunicorn worker: aiohttp's uvloop worker, with the stop this service promises.

The master turns its own SIGTERM into a SIGTERM to every worker (an orchestrator may send one
too: the second changes nothing). A worker then stops in this order:

1. readiness off, at once: `/readyz` answers 503 (`handle_exit`);
2. for SHUTDOWN_DELAY it still accepts and serves, so the load balancer can take it out of
   rotation without a refused connection; answers carry `Connection: close`
   (service/observability.py) so keep-alive clients reconnect elsewhere;
3. the listener closes, and idle keep-alive connections with it (`_close_listener` leaves the
   serve loop; aiohttp's `runner.cleanup()` does the rest, in this order, from here on);
4. requests in flight get SHUTDOWN_TIMEOUT to finish; the rest are cancelled, their
   transactions rolled back, and answered 503 (on_shutdown: service/shutdown.py `drain_requests`);
5. the pool closes, bounded (cleanup context: service/db.py `pool_ctx`);
6. the worker exits 0, and once every worker has, the master exits 0.

gunicorn's graceful_timeout covers all of it (service/shutdown.py `graceful_timeout`).
aiohttp's stock worker does steps 3-6 only, at once on SIGTERM, and its own drain waits up to
twice its timeout before it cancels; hence step 4 is ours, and aiohttp's is left to flush."""

from __future__ import annotations

import signal
from typing import Any

from aiohttp import web
from aiohttp.worker import GunicornUVLoopWebWorker

from service import keys
from service.settings import resolved
from service.shutdown import FLUSH_TIMEOUT


class ConduitWorker(GunicornUVLoopWebWorker):
    # gunicorn types it as a WSGI callable; aiohttp's workers keep the app (or its factory) there.
    wsgi: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app: web.Application | None = None
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
            return web.AppRunner(
                app,
                logger=self.log,
                keepalive_timeout=self.cfg.keepalive,
                access_log=None,
                handler_cancellation=False,
                shutdown_timeout=FLUSH_TIMEOUT,
            )

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
        """Step 3: leave the serve loop; aiohttp's runner.cleanup() runs steps 3 to 5."""
        self.log.info("closing the listener")
        self.alive = False
        self._notify_waiter_done()

    async def _run(self) -> None:
        await super()._run()
        self.log.info("stopped cleanly")
