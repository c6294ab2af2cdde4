"""The connection story, top to bottom: the pool opens with the app, each request borrows one
connection (lazily, in a transaction when its route asks), gives it back on every path, and the
pool closes, bounded, when the app stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
import orjson
from aiohttp import web

from service import keys
from service.errors import DatabaseUnavailable
from service.settings import Settings

log = logging.getLogger("service.db")

POOL_CLOSE_TIMEOUT = 5.0
READY_QUERY_TIMEOUT = 1.0


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


def session_settings(settings: Settings) -> dict[str, str]:
    """Server-side limits for every session of the pool (sent as startup parameters)."""
    return {
        "application_name": "conduit",
        "statement_timeout": _ms(settings.db_statement_timeout),
        "lock_timeout": _ms(settings.db_lock_timeout),
        "idle_in_transaction_session_timeout": _ms(settings.db_idle_in_transaction_timeout),
    }


async def init_connection(conn: asyncpg.Connection) -> None:
    """Codecs every pooled connection needs: json and jsonb through orjson."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads
        )


def connect_options(settings: Settings) -> dict:
    """Arguments shared by the pool and the migrator's own connection."""
    return {
        "dsn": settings.database_url,
        "timeout": settings.db_connect_timeout,
        "target_session_attrs": settings.db_target_session_attrs,
    }


@dataclass
class Lifecycle:
    """What readiness depends on besides the database answering."""

    migrated: asyncio.Event = field(default_factory=asyncio.Event)
    draining: bool = False
    background: set[asyncio.Task] = field(default_factory=set)


async def open_pool(settings: Settings) -> asyncpg.Pool:
    """The pool, with DB_POOL_MIN_SIZE connections warm. When the database cannot be reached
    the process must still come up (probes answer, readiness says 503), so the pool then starts
    empty and grows on demand once the database is back."""
    options = dict(
        **connect_options(settings),
        max_size=settings.db_pool_max_size,
        command_timeout=settings.db_statement_timeout + 1.0,
        statement_cache_size=settings.db_statement_cache_size,
        max_inactive_connection_lifetime=300.0,
        server_settings=session_settings(settings),
        init=init_connection,
    )
    try:
        return await asyncpg.create_pool(**options, min_size=settings.db_pool_min_size)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        log.warning("database unreachable at start-up (%r); starting with an empty pool", error)
        return await asyncpg.create_pool(**options, min_size=0)


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the pool with the app; close it, bounded, after every request has finished."""
    settings = app[keys.SETTINGS]
    pool = await open_pool(settings)
    app[keys.POOL] = pool
    lifecycle = app[keys.LIFECYCLE]
    if settings.migrate_on_start:
        from service.migrate import migrate_when_reachable

        task = asyncio.create_task(migrate_when_reachable(settings, lifecycle.migrated))
        lifecycle.background.add(task)
        task.add_done_callback(lifecycle.background.discard)
    else:
        lifecycle.migrated.set()
    try:
        yield
    finally:
        for task in list(lifecycle.background):
            task.cancel()
        await close_pool(pool)


async def close_pool(pool: asyncpg.Pool) -> None:
    """pool.close() waits for every connection to be released: bound it, then terminate."""
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT)
    except (asyncio.TimeoutError, Exception) as error:  # noqa: BLE001 - closing must never raise
        log.warning("pool did not close within %ss (%r); terminating it", POOL_CLOSE_TIMEOUT, error)
        pool.terminate()


class Lease:
    """One request's connection: taken from the pool on first use, given back exactly once."""

    __slots__ = ("_pool", "_timeout", "_transactional", "_conn", "_tx", "_done")

    def __init__(self, pool: asyncpg.Pool, timeout: float, transactional: bool) -> None:
        self._pool = pool
        self._timeout = timeout
        self._transactional = transactional
        self._conn: asyncpg.Connection | None = None
        self._tx = None
        self._done = False

    @property
    def acquired(self) -> bool:
        return self._conn is not None

    async def connection(self) -> asyncpg.Connection:
        if self._conn is not None:
            return self._conn
        if self._done:
            raise RuntimeError("the request's connection was already given back")
        try:
            conn = await self._pool.acquire(timeout=self._timeout)
        except asyncio.TimeoutError:
            raise DatabaseUnavailable("pool_timeout", "no database connection is free; retry") from None
        self._conn = conn
        if self._transactional:
            self._tx = conn.transaction()
            await self._tx.start()
        return conn

    async def put_back(self) -> None:
        """Outside a transaction: give the connection back before slow work that needs no
        database (a password hash); the next `connection()` takes one again."""
        if self._tx is not None:
            raise RuntimeError("a transactional request keeps its connection until it ends")
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn)

    async def release(self, commit: bool) -> None:
        """Commit or roll back the request's transaction, then return the connection.

        A failed commit is raised after the connection is back; a failed rollback is only logged:
        the pool resets (or, failing that, terminates) the connection on release anyway."""
        if self._done:
            return
        self._done = True
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        if conn is None:
            return
        try:
            if tx is not None and not conn.is_closed():
                if commit:
                    await tx.commit()
                else:
                    try:
                        await tx.rollback()
                    except Exception as error:  # noqa: BLE001
                        log.debug("rollback failed, the pool will reset the connection: %r", error)
        finally:
            await self._pool.release(conn)


def transactional(handler: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
    """Mark a plain aiohttp handler as running in one transaction (routes declared with
    service.routing set the flag themselves)."""
    handler.transactional = True  # type: ignore[attr-defined]
    return handler


@web.middleware
async def connection_middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
    """Lend the request a lazy connection; commit on a success response, roll back otherwise."""
    pool = request.app.get(keys.POOL)
    if pool is None:
        return await handler(request)
    settings = request.app[keys.SETTINGS]
    route_handler = request.match_info.handler
    lease = Lease(pool, settings.db_acquire_timeout, getattr(route_handler, "transactional", False))
    request[keys.LEASE] = lease
    try:
        response = await handler(request)
    except BaseException:
        await lease.release(commit=False)
        raise
    await lease.release(commit=response.status < 400)
    return response


async def connection(request: web.Request) -> asyncpg.Connection:
    """The request's connection; taken from the pool now if this is its first use."""
    lifecycle = request.app[keys.LIFECYCLE]
    if not lifecycle.migrated.is_set():
        raise DatabaseUnavailable("not_migrated", "the service is starting; retry")
    lease = request[keys.LEASE]
    if lease.acquired:
        return await lease.connection()
    with request.app[keys.METRICS].waiting_for_connection():  # db_pool_waiting
        return await lease.connection()


async def put_back(request: web.Request) -> None:
    """Give the request's connection back early (non-transactional routes only)."""
    await request[keys.LEASE].put_back()


async def ping(pool: asyncpg.Pool) -> None:
    """One trivial query, bounded: raises when the database cannot answer within a second."""
    async with asyncio.timeout(READY_QUERY_TIMEOUT):
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
