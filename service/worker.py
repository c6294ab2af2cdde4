"""The gunicorn worker: aiohttp's uvloop worker, with the shutdown order this service promises.

On SIGTERM: readiness turns 503 at once; requests are still accepted and served for
SHUTDOWN_DELAY (so the load balancer can take the pod out of rotation); then the listener
closes and in-flight requests get SHUTDOWN_TIMEOUT to finish; then the app's cleanup closes
the pool (bounded); then the worker exits 0. A second SIGTERM changes nothing."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.worker import GunicornUVLoopWebWorker

from service import keys


class ConduitWorker(GunicornUVLoopWebWorker):
    _app: web.Application | None = None
    _stopping = False

    def load_wsgi(self) -> None:
        super().load_wsgi()
        factory = self.wsgi

        async def runner() -> web.AppRunner:
            app = factory if isinstance(factory, web.Application) else await factory()
            self._app = app
            settings = app[keys.SETTINGS]
            # Our own runner, so the drain budget is exactly SHUTDOWN_TIMEOUT, and a client that
            # hangs up does not cancel its handler (the same choice the tests make).
            return web.AppRunner(
                app,
                logger=self.log,
                keepalive_timeout=self.cfg.keepalive,
                access_log=None,
                shutdown_timeout=settings.shutdown_timeout,
                handler_cancellation=False,
            )

        self.wsgi = runner

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self._stopping:
            return
        self._stopping = True
        delay = 0.0
        if self._app is not None:
            self._app[keys.LIFECYCLE].draining = True
            delay = self._app[keys.SETTINGS].shutdown_delay
        self.log.info("SIGTERM: readiness off; closing the listener in %.1fs", delay)
        self.loop.call_later(delay, self._stop_serving)

    def _stop_serving(self) -> None:
        self.alive = False
        self._notify_waiter_done()
