"""Prometheus metrics at GET /metrics: requests by route and status, the pool, database errors.

Under gunicorn each worker writes its values to PROMETHEUS_MULTIPROC_DIR (prepared by
service/gunicorn_conf.py) and a scrape, whichever worker answers it, reads all of them:
counters and histograms are summed over every worker that ever ran, the pool gauges over the
workers alive now ('livesum'). Without that directory (tests, `make run`) the process's own
values are served."""

from __future__ import annotations

import asyncio
import glob
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import suppress

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from service import keys

# How stale a worker's pool gauges may be when another worker answers the scrape.
POOL_SAMPLE_INTERVAL = 1.0
# Any other method string (clients can send anything) is counted as "other": labels stay bounded.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REQUEST_LABELS = ("method", "route", "status")


# prometheus-client picks file-backed values when it is first imported with this variable set
# (gunicorn_conf sets it in the master, before any worker imports it): read it at the same moment.
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ

# Each file-backed value checks, on every update, whether the process has forked since it last
# wrote: by default with os.getpid(), a system call, three times per request. The process id
# only changes at a fork, so it is kept and renewed in the child (prometheus-client's own hook).
_pid = os.getpid()


def _renew_pid() -> None:
    global _pid  # noqa: PLW0603 - one value per process, read on every metric update
    _pid = os.getpid()


os.register_at_fork(after_in_child=_renew_pid)
if MULTIPROCESS:
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: _pid)


class Metrics:
    """One process's metrics, in a registry of its own (tests build many apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("http_requests", "HTTP requests answered", _REQUEST_LABELS, registry=r)
        self.duration = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request", _REQUEST_LABELS, registry=r
        )

        def gauge(name: str, documentation: str) -> Gauge:
            return Gauge(name, documentation, registry=r, multiprocess_mode="livesum")

        self.pool_size = gauge("db_pool_size", "Connections open in the pool")
        self.pool_in_use = gauge("db_pool_in_use", "Pool connections lent to requests")
        self.pool_idle = gauge("db_pool_idle", "Pool connections open and free")
        self.pool_waiting = gauge("db_pool_waiting", "Requests waiting for a pool connection")
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        # Requests waiting for a connection now: a plain count on the request's path, copied
        # into db_pool_waiting with the other pool gauges (each scrape, and every second).
        self.waiting = 0
        self.db_errors = Counter("db_errors", "Database failures answered 503, by kind", ("kind",), registry=r)

    def observe_request(self, method: str, route: str, status: int, duration: float) -> None:
        key = (method if method in _METHODS else "other", route, status)
        children = self._children.get(key)
        if children is None:  # label sets are bounded: methods x route templates x statuses
            labels = (key[0], route, str(status))
            children = self._children[key] = (self.requests.labels(*labels), self.duration.labels(*labels))
        children[0].inc()
        children[1].observe(duration)

    def db_error(self, kind: str) -> None:
        self.db_errors.labels(kind).inc()

    def sample_pool(self, pool: asyncpg.Pool) -> None:
        size, idle = pool.get_size(), pool.get_idle_size()
        self.pool_size.set(size)
        self.pool_idle.set(idle)
        self.pool_in_use.set(size - idle)
        self.pool_waiting.set(self.waiting)

    def render(self) -> bytes:
        if MULTIPROCESS:
            registry = CollectorRegistry()
            SizedFilesCollector(registry)  # type: ignore[no-untyped-call]  # prometheus-client's __init__ is unannotated
            return generate_latest(registry)
        return generate_latest(self.registry)


class SizedFilesCollector(MultiProcessCollector):
    """prometheus-client's multiprocess collector, minus files a worker has created but not yet
    sized: a new worker's file exists at 0 bytes for an instant, and reading it then fails the
    whole scrape (prometheus/client_python#1199). A file never shrinks back to 0 bytes."""

    def collect(self) -> Iterable[Metric]:
        metrics: Iterable[Metric] = MultiProcessCollector.merge(
            [f for f in glob.glob(os.path.join(self._path, "*.db")) if _sized(f)], accumulate=True
        )
        return metrics


def _sized(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except FileNotFoundError:  # a dead worker's live gauge, removed by the master meanwhile
        return False


async def metrics_view(request: web.Request) -> web.Response:
    metrics = request.app[keys.METRICS]
    pool = request.app.get(keys.POOL)
    if pool is not None:
        metrics.sample_pool(pool)
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def pool_sampler_ctx(app: web.Application) -> AsyncIterator[None]:
    """Keep this worker's pool gauges fresh for scrapes that another worker answers."""
    metrics, pool = app[keys.METRICS], app[keys.POOL]

    async def sample_forever() -> None:
        while True:
            metrics.sample_pool(pool)
            await asyncio.sleep(POOL_SAMPLE_INTERVAL)

    task = asyncio.create_task(sample_forever())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def setup(app: web.Application) -> None:
    """After the pool's cleanup context: the sampler starts after the pool and stops before it."""
    app[keys.METRICS] = Metrics()
    app.cleanup_ctx.append(pool_sampler_ctx)
    app.router.add_get("/metrics", metrics_view, name="metrics")
