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
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from service import keys

if TYPE_CHECKING:
    from service.replicas import Replicas

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
        # Per pool (`pool`: primary, or a replica's label), only with DATABASE_REPLICA_URLS set.
        self.pool_requests = Counter(
            "db_pool_requests", "Requests that took a connection, by pool", ("pool",), registry=r
        )
        self.pool_connections = Gauge(
            "db_pool_connections", "Connections open, by pool", ("pool",), registry=r, multiprocess_mode="livesum"
        )
        self.pool_connections_in_use = Gauge(
            "db_pool_connections_in_use",
            "Connections lent to requests, by pool",
            ("pool",),
            registry=r,
            multiprocess_mode="livesum",
        )
        # A replica's lag as its worst-placed worker sees it ('livemax': each worker has its own
        # monitor); -1 while no worker can tell (the replica unreachable or promoted).
        self.replica_lag = Gauge(
            "db_replica_lag_seconds",
            "How far the replica's replay is behind the primary, in seconds (max over the workers)",
            ("pool",),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.replica_healthy = Gauge(
            "db_replica_healthy",
            "1 when every live worker reads from the replica, 0 when one skips it (min over the workers)",
            ("pool",),
            registry=r,
            multiprocess_mode="livemin",
        )
        self._pool_children: dict[str, Counter] = {}
        # Fence lookups on the primary, and the reads they served: reads per lookup is how well
        # they are coalesced.
        self.fence_lookups = Counter("db_fence_lookups", "Read-your-writes fence lookups on the primary", registry=r)
        self.fence_reads = Counter("db_fence_reads", "Reads whose fence a lookup fetched", registry=r)
        self.fence_reruns = Counter(
            "db_fence_reruns",
            "Reads a replica served before it had replayed their client's last write, answered by the primary",
            registry=r,
        )

    def observe_request(self, method: str, route: str, status: int, duration: float) -> None:
        key = (method if method in _METHODS else "other", route, status)
        children = self._children.get(key)
        if children is None:  # label sets are bounded: methods x route templates x statuses
            labels = (key[0], route, str(status))
            children = self._children[key] = (self.requests.labels(*labels), self.duration.labels(*labels))
        children[0].inc()
        children[1].observe(duration)

    def pool_request(self, pool: str) -> None:
        child = self._pool_children.get(pool)
        if child is None:
            child = self._pool_children[pool] = self.pool_requests.labels(pool)
        child.inc()

    def sample_replicas(self, pool: asyncpg.Pool, replicas: Replicas) -> None:
        for label, each in [("primary", pool), *((r.label, r.pool) for r in replicas.replicas)]:
            if each is None:
                continue
            size = each.get_size()
            self.pool_connections.labels(label).set(size)
            self.pool_connections_in_use.labels(label).set(size - each.get_idle_size())
        for replica in replicas.replicas:
            lag = replica.current_lag
            self.replica_lag.labels(replica.label).set(lag if lag is not None else -1)
            self.replica_healthy.labels(replica.label).set(1 if replica.healthy else 0)

    def fence_lookup(self, reads: int) -> None:
        self.fence_lookups.inc()
        self.fence_reads.inc(reads)

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
        replicas = request.app.get(keys.REPLICAS)
        if replicas is not None:
            metrics.sample_replicas(pool, replicas)
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def pool_sampler_ctx(app: web.Application) -> AsyncIterator[None]:
    """Keep this worker's pool gauges fresh for scrapes that another worker answers."""
    metrics, pool = app[keys.METRICS], app[keys.POOL]

    async def sample_forever() -> None:
        while True:
            metrics.sample_pool(pool)
            replicas = app.get(keys.REPLICAS)
            if replicas is not None:
                metrics.sample_replicas(pool, replicas)
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
