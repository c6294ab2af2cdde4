"""Reads from PostgreSQL streaming replicas (DATABASE_REPLICA_URLS), never older than the client's
own writes.

Each worker keeps one pool per replica, beside the primary's, and a monitor task that samples, every
MONITOR_INTERVAL, the primary's WAL position and each replica's replay position. A replica serves
reads while it is reachable, in recovery (not promoted) and at most DB_REPLICA_MAX_LAG seconds
behind; one that fails under a request is skipped until the monitor sees it well again.

Read-your-writes: after a write answered 2xx, the primary's WAL position (taken after the commit)
is stored as the user's fence in `read_fences`, on the primary, where every worker and instance
sees it. A read runs on a replica while its client's fences are looked up on the primary, and
answers only if the replay position the monitor saw there before the read began has passed them;
otherwise the primary answers it again. Lookups are coalesced per worker: every read that queued
while a lookup ran shares the next one (`... WHERE key = ANY($1)`), which starts after they
queued, so it sees every write answered before they arrived. The worker that answered a write
also keeps its position for a while (`Replicas.wrote`): its client's next reads go straight to
the primary until a replica has replayed it, rather than run twice.

Unset, none of this exists: service/db.py takes the primary's pool as before."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from aiohttp import web

from service import keys
from service.settings import Settings, resolved
from service.sqlfiles import queries

log = logging.getLogger("service.replicas")

MONITOR_INTERVAL = 0.1  # seconds between two samples of the WAL positions
HISTORY = 600  # primary samples kept: a minute at MONITOR_INTERVAL; an older gap counts as that old
# At most one fence lookup per worker starts within this many seconds of the previous one: a
# read waits that long at most (nothing when the worker had no lookup that recently), and under
# load one lookup serves every read that came in meanwhile. Without it a lookup (a round trip of
# a fraction of a millisecond) served about one read at a time; at 2 ms it served 7 at 3,000
# reads/s and cost a single-article read 1.2-1.4x; at 5 ms, 1.04-1.10x (`make bench-replica`).
FENCE_WINDOW = 0.005
PRUNE_INTERVAL = 60.0  # seconds between two prunes of old fences by a worker's monitor
PRUNE_AGE = 600.0  # fences at least this old (and 10 x DB_REPLICA_MAX_LAG) are pruned
MONITOR_APPLICATION = "conduit-monitor"  # the monitor's and fence lookups' own sessions, by name

_q = queries("replicas")

WAL_PAGE = 8192  # wal_block_size: PostgreSQL's default, and what every packaged build uses
_PAGE_HEADERS = (24, 40)  # a WAL page's short header, and the long one that opens a segment


def wal_position(lsn: int) -> int:
    """An insert position (pg_current_wal_insert_lsn()) as a replay position can equal it. When
    the last record ends exactly at a page boundary, the insert position lies past the next
    page's header, while a replica that replayed that record reports the boundary itself: the
    same point in the WAL, which would otherwise look unreplayed until more WAL is written."""
    offset = lsn % WAL_PAGE
    return lsn - offset if offset in _PAGE_HEADERS else lsn


def replica_label(url: str, index: int) -> str:
    """The `pool` label of a replica in /metrics: its host:port, and its place in the list (two
    replicas may share a host)."""
    parts = urlsplit(url)
    return f"replica{index}:{parts.hostname or 'local'}:{parts.port or 5432}"


@dataclass
class WalHistory:
    """The primary's WAL position over time: (monotonic time, position) samples, oldest first."""

    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    checked: float = -math.inf  # when the primary last answered a sample (monotonic time)

    def add(self, at: float, position: int) -> None:
        self.checked = at
        if not self.samples or position != self.samples[-1][1]:  # an idle primary: keep when it moved
            self.samples.append((at, position))

    @property
    def latest(self) -> int | None:
        return self.samples[-1][1] if self.samples else None

    def lag(self, replayed: int, now: float) -> float:
        """How long ago the primary first had a position the replica has not replayed; 0 when it
        has replayed the latest sample (an idle primary does not make a replica look stale);
        infinite when it has not even replayed the oldest one kept (how far behind is unknown)."""
        if self.samples and self.samples[0][1] > replayed:
            return math.inf
        for at, position in self.samples:
            if position > replayed:
                return max(0.0, now - at)
        return 0.0


class Replica:
    """One replica: its pool, its gate, and what the monitor last saw of it."""

    def __init__(self, url: str, index: int, settings: Settings) -> None:
        from service.db import Gate

        self.url = url
        self.label = replica_label(url, index)
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.gate = Gate(settings.db_replica_pool_max_size)
        self.replayed: int | None = None  # the replay position last seen; None: unknown
        self.lag: float | None = None
        self.in_recovery = False
        self.reachable = False
        self.failed = False  # a request failed on it: skipped until the monitor sees it well
        self.sampled = -math.inf  # when `lag` was measured (monotonic time)
        self._failures = 0  # counts mark_failed(): a poll that began before one cannot undo it
        self.polling: asyncio.Task[None] | None = None  # the monitor's sample in progress
        self._monitor: asyncpg.Connection | None = None

    @property
    def current_lag(self) -> float | None:
        """The lag now, as far as it is known: what the last sample measured plus the time since,
        so that a monitor that stalls (a blackholed server, a slow primary) cannot keep a replica
        in use past the bound on an old sample. None: unknown."""
        return None if self.lag is None else self.lag + (time.monotonic() - self.sampled)

    @property
    def healthy(self) -> bool:
        """Usable for reads now."""
        lag = self.current_lag
        return (
            self.reachable
            and self.in_recovery
            and not self.failed
            and self.replayed is not None
            and lag is not None
            and lag <= self.settings.db_replica_max_lag
        )

    def mark_failed(self, error: BaseException) -> None:
        if not self.failed:
            log.warning("replica %s failed under a request (%r); skipped until it is well", self.label, error)
        self.failed = True
        self._failures += 1
        self.replayed = None  # a restarted replica must be seen anew before a fence trusts it

    async def poll(self, history: WalHistory) -> None:
        """One sample of the replica's state, bounded by DB_CONNECT_TIMEOUT."""
        failures = self._failures
        try:
            async with asyncio.timeout(self.settings.db_connect_timeout):
                if self._monitor is None or self._monitor.is_closed():
                    self._monitor = await _connect(self.url, self.settings)
                row = await self._monitor.fetchrow(_q.replica_position)
        except Exception as error:  # noqa: BLE001 - any failure: the replica is not usable now
            if self.reachable:
                log.warning("replica %s unreachable (%r)", self.label, error)
            self.reachable = False
            self.replayed = None
            self.lag = None
            await self.close_monitor()
            return
        assert row is not None  # noqa: S101 - a SELECT without FROM returns one row
        self.reachable = True
        self.in_recovery = bool(row["in_recovery"])
        if not self.in_recovery or row["replayed"] is None:
            if self.replayed is not None or self.lag is not None:
                log.warning("replica %s is no longer in recovery (promoted?); skipped", self.label)
            self.replayed = None
            self.lag = None
            return
        if failures != self._failures:
            return  # a request saw it fail while this sample was on its way: the next one decides
        now = time.monotonic()
        self.replayed = int(row["replayed"])
        # Against the primary's history, and no less than the age of the primary's last sample:
        # while the primary cannot be sampled, how far the replica is behind is not known.
        self.lag = max(history.lag(self.replayed, now), now - history.checked)
        self.sampled = now
        if self.failed:
            log.info("replica %s answers again", self.label)
        self.failed = False

    async def close_monitor(self) -> None:
        conn, self._monitor = self._monitor, None
        if conn is not None:
            with suppress(Exception):
                await asyncio.wait_for(conn.close(), 1.0)


async def _connect(url: str, settings: Settings, **options: Any) -> asyncpg.Connection:
    conn: asyncpg.Connection = await asyncpg.connect(
        url,
        **options,
        timeout=settings.db_connect_timeout,
        statement_cache_size=resolved(settings.db_statement_cache_size),  # 0 behind PgBouncer (transaction mode)
        server_settings={"application_name": MONITOR_APPLICATION},
    )
    return conn


class FenceLookup:
    """The primary's fences of the clients reading, one query for all the reads waiting together.

    A read joins the queue; when no query runs, one starts for the whole queue (FENCE_WINDOW after
    the previous one at the earliest); while one runs, the newcomers wait for the next, which
    starts after they queued (a query that began before a read arrived could miss the write its
    client saw answered just before)."""

    def __init__(self, settings: Settings, counted: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        self._counted = counted  # told each lookup's number of reads (db_replica_fence_reads)
        self._last = -math.inf  # when the last lookup started (loop time)
        self._pending: list[tuple[list[str], asyncio.Future[int | None]]] = []
        self._running: asyncio.Task[None] | None = None  # the loop serving the queue, while it runs
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the control connection
        self.queries = 0  # how many batches ran (tests and the bench report it)

    def request(self, keys: list[str]) -> asyncio.Future[int | None]:
        """The position a replica must have replayed to serve this client: the latest of its
        fences (`fence_keys`), None when it never wrote. The lookup is queued now and answers
        later: a read runs on the replica meanwhile, and is checked against it before it answers."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int | None] = loop.create_future()
        self._pending.append((keys, future))
        if self._running is None:
            self._running = loop.create_task(self._run())
        return future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[tuple[list[str], asyncio.Future[int | None]]] = []
        try:
            while self._pending:
                wait = self._last + FENCE_WINDOW - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._last = loop.time()
                batch, self._pending = self._pending, []  # from here on, newcomers wait for the next
                try:
                    if self._counted is not None:
                        self._counted(len(batch))
                    found = await self._query(list({key for keys, _ in batch for key in keys}))
                except Exception as error:  # noqa: BLE001 - every waiter gets it and falls back
                    _fail(batch, error)
                    continue
                for keys, future in batch:
                    if not future.done():
                        future.set_result(max((found[key] for key in keys if key in found), default=None))
        finally:
            self._running = None
            # Stopped (shutdown): whoever still waits reads from the primary instead of hanging.
            _fail([*batch, *self._pending], ConnectionError("the fence lookup stopped"))
            self._pending = []

    async def stop(self) -> None:
        """At shutdown: end the loop serving the queue (a waiter left falls back to the primary)
        and close the control session."""
        task = self._running
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.close()

    async def _query(self, keys: list[str]) -> dict[str, int]:
        self.queries += 1
        rows = await self.fetch(_q.fences, keys)
        return {row["key"]: wal_position(int(row["lsn"])) for row in rows}

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        """A statement on the worker's control connection to the primary (opened on demand)."""
        async with self._lock:
            try:
                if self._conn is None or self._conn.is_closed():
                    # The primary as the pool finds it (DB_TARGET_SESSION_ATTRS): with a
                    # multi-host DATABASE_URL, never a standby's stale copy of the fences.
                    self._conn = await _connect(
                        self.settings.database_url or "",
                        self.settings,
                        target_session_attrs=self.settings.db_target_session_attrs,
                    )
                rows: list[asyncpg.Record] = await self._conn.fetch(
                    query, *args, timeout=self.settings.db_connect_timeout
                )
                return rows
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                await asyncio.wait_for(conn.close(), 1.0)


def _fail(waiters: list[tuple[list[str], asyncio.Future[int | None]]], error: BaseException) -> None:
    for _, future in waiters:
        if not future.done():
            future.set_exception(error)


class Replicas:
    """A worker's replicas, the primary's WAL history, and the fence lookups."""

    def __init__(self, settings: Settings, counted: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        self.replicas = [Replica(url, index, settings) for index, url in enumerate(settings.database_replica_urls)]
        self.history = WalHistory()
        self.fences = FenceLookup(settings, counted)
        self._next = itertools.count()
        # The fences of the writes this worker answered, by key, until the replicas in use have
        # replayed them: a hint (`ahead`), the lookup still decides for every read a replica runs.
        self.written: dict[str, int] = {}

    def wrote(self, keys: list[str], position: int) -> None:
        """A write this worker answered 2xx, and a WAL position past its commit."""
        position = wal_position(position)
        for key in keys:
            if self.written.get(key, -1) < position:
                self.written[key] = position

    def ahead(self, keys: list[str], replayed: int) -> bool:
        """Whether this worker answered a write of the client that `replayed` has not reached: its
        read goes straight to the primary, rather than run on the replica, fail the fence check
        and run again (a client reading back what it just wrote, the usual case)."""
        written = self.written
        return bool(written) and any(written.get(key, -1) > replayed for key in keys)

    def forget_replayed(self) -> None:
        """Drop the writes every replica in use has replayed (all of them when none is in use:
        reads go to the primary then, and once one is back, the lookup decides)."""
        if not self.written:
            return
        replayed = [r.replayed for r in self.replicas if r.healthy and r.replayed is not None]
        floor = min(replayed, default=math.inf)
        self.written = {key: position for key, position in self.written.items() if position > floor}

    def pick(self) -> Replica | None:
        """A healthy replica (round robin); None: the primary."""
        count = len(self.replicas)
        start = next(self._next)
        for offset in range(count):
            replica = self.replicas[(start + offset) % count]
            if replica.healthy:
                return replica
        return None

    async def sample(self) -> None:
        """One round of the monitor: the primary's position, then every replica's."""
        try:
            rows = await self.fences.fetch(_q.primary_position)
            if rows:
                self.history.add(time.monotonic(), wal_position(int(rows[0][0])))
            else:  # the control session is on a standby now (a failover): connect anew
                log.warning("the control session reached a standby; reconnecting to the primary")
                await self.fences.close()
        except Exception as error:  # noqa: BLE001 - the primary down: replicas keep their history
            log.debug("primary position unavailable: %r", error)
        # Each replica on its own: one that does not answer holds up no other's sample.
        for replica in self.replicas:
            if replica.polling is None or replica.polling.done():
                replica.polling = asyncio.create_task(replica.poll(self.history))

    async def monitor(self) -> None:
        pruned = time.monotonic()
        while True:
            self.forget_replayed()  # against the replay positions the last round brought
            await self.sample()
            if time.monotonic() - pruned > PRUNE_INTERVAL:
                pruned = time.monotonic()
                with suppress(Exception):
                    await self.fences.fetch(_q.prune, max(PRUNE_AGE, 10 * self.settings.db_replica_max_lag))
            await asyncio.sleep(MONITOR_INTERVAL)


async def replicas_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open each replica's pool (empty when it is down at start, as the primary's), start the
    monitor; at the end stop it and close the pools, bounded."""
    from service.db import close_pool, open_replica_pool

    settings = app[keys.SETTINGS]
    metrics = app[keys.METRICS]
    replicas = Replicas(settings, metrics.fence_lookup)
    for replica in replicas.replicas:
        replica.pool = await open_replica_pool(settings, replica.url, replica.label)
    app[keys.REPLICAS] = replicas  # until the monitor's first round, reads go to the primary
    task = asyncio.create_task(replicas.monitor())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        polls = [r.polling for r in replicas.replicas if r.polling is not None]
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)

        async def close(replica: Replica) -> None:
            await replica.close_monitor()
            if replica.pool is not None:
                await close_pool(replica.pool)

        # Together: however many replicas, their close costs one POOL_CLOSE_TIMEOUT at most.
        await asyncio.gather(replicas.fences.stop(), *(close(replica) for replica in replicas.replicas))
