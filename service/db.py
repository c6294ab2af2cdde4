"""The connection story, top to bottom: the pool opens with the app, each request borrows one
connection (lazily, in a transaction when its route asks), gives it back on every path, and the
pool closes, bounded, when the app stops."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import asyncpg
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from service import keys
from service.auth import decode_token, token_from_header
from service.errors import ApiError, DatabaseUnavailable, classify_database_error
from service.limits import client_address
from service.settings import Settings, resolved
from service.sqlfiles import queries

if TYPE_CHECKING:
    from service.replicas import Replica, Replicas

log = logging.getLogger("service.db")

POOL_CLOSE_TIMEOUT = 5.0
READY_QUERY_TIMEOUT = 1.0


def _ms(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))  # 0 would mean "no limit" to PostgreSQL


def server_timeouts(settings: Settings) -> dict[str, str]:
    """The limits PostgreSQL enforces on the service's work, in milliseconds."""
    return {
        "statement_timeout": _ms(settings.db_statement_timeout),
        "lock_timeout": _ms(resolved(settings.db_lock_timeout)),
        "idle_in_transaction_session_timeout": _ms(settings.db_idle_in_transaction_timeout),
    }


def session_settings(settings: Settings) -> dict[str, str]:
    """Startup parameters for every session of the pool. Behind PgBouncer in transaction mode
    (DB_POOL_MODE=transaction) the timeouts cannot travel here: PgBouncer refuses unknown startup
    parameters, and a session setting would not follow the client across server connections
    anyway. There they are set per transaction instead (`transaction_settings`)."""
    parameters = {"application_name": "conduit"}
    if settings.db_pool_mode == "session":
        parameters.update(server_timeouts(settings))
    return parameters


def transaction_settings(settings: Settings) -> str | None:
    """In transaction mode, the statement that opens every request's transaction: SET LOCAL holds
    for exactly the transaction PgBouncer pins to one server connection. One round trip."""
    if settings.db_pool_mode != "transaction":
        return None
    return "; ".join(f"SET LOCAL {name} = {value}" for name, value in server_timeouts(settings).items())


# What "the database cannot be reached now" looks like while connecting (a refused or timed-out
# socket, a server starting, stopping or full, or no server of the DSN accepting writes).
UNREACHABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.TargetServerAttributeNotMatched,
)


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset when a connection is given back: nothing beyond what asyncpg always does
    (roll back a transaction left open, drop listener callbacks). Its default reset adds a round
    trip on every release (RESET ALL, CLOSE ALL, UNLISTEN *, pg_advisory_unlock_all()) to undo
    session state that this service never creates: its statements are the files in sql/, which
    set the timeouts with SET LOCAL, lock with pg_advisory_xact_lock, and neither listen, nor
    declare cursors, nor make temporary tables. tests/test_session_state.py holds every route to
    that; `make bench-levers` measures what the round trip cost."""


async def init_connection(conn: asyncpg.Connection) -> None:
    """Codecs every pooled connection needs: json and jsonb through orjson."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads
        )


def connect_options(settings: Settings) -> dict[str, Any]:
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
    background: set[asyncio.Task[None]] = field(default_factory=set)


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
        reset=keep_session,
    )
    try:
        return await asyncpg.create_pool(**options, min_size=settings.db_pool_min_size)
    except UNREACHABLE as error:
        log.warning("database unreachable at start-up (%r); starting with an empty pool", error)
        return await asyncpg.create_pool(**options, min_size=0)


async def open_replica_pool(settings: Settings, url: str, label: str) -> asyncpg.Pool:
    """A replica's pool: as the primary's, with DB_REPLICA_POOL_MAX_SIZE connections at most,
    any server accepted (a standby is read-only), and half of DB_CONNECT_TIMEOUT to connect, so
    that a read that falls back to the primary still answers within DB_CONNECT_TIMEOUT."""
    options: dict[str, Any] = {
        "dsn": url,
        "timeout": settings.db_connect_timeout / 2,
        "max_size": settings.db_replica_pool_max_size,
        "command_timeout": settings.db_statement_timeout + 1.0,
        "statement_cache_size": settings.db_statement_cache_size,
        "max_inactive_connection_lifetime": 300.0,
        "server_settings": session_settings(settings),
        "init": init_connection,
        "reset": keep_session,
    }
    try:
        return await asyncpg.create_pool(
            **options, min_size=min(settings.db_pool_min_size, settings.db_replica_pool_max_size)
        )
    except UNREACHABLE as error:
        log.warning("replica %s unreachable at start-up (%r); starting with an empty pool", label, error)
        return await asyncpg.create_pool(**options, min_size=0)


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the pool with the app; close it, bounded, after every request has finished."""
    settings = app[keys.SETTINGS]
    pool = await open_pool(settings)
    app[keys.POOL] = pool
    app[keys.POOL_GATE] = Gate(settings.db_pool_max_size)
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
        tasks = list(lifecycle.background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # the migrator's own connection closes
        await close_pool(pool)


async def close_pool(pool: asyncpg.Pool) -> None:
    """pool.close() waits for every connection to be released: bound it, then terminate."""
    try:
        await asyncio.wait_for(pool.close(), POOL_CLOSE_TIMEOUT)
    except Exception as error:  # noqa: BLE001 - closing must never raise (TimeoutError included)
        log.warning("pool did not close within %ss (%r); terminating it", POOL_CLOSE_TIMEOUT, error)
        pool.terminate()


class Gate:
    """Requests take the pool's connections through here, first come first served.

    asyncpg's pool alone lets a request that just arrived take a connection that was being handed
    to one already waiting, which then queues again at the back: under load a few requests waited
    hundreds of milliseconds while most waited none (a p99 35 times the median in `make bench`).
    Here a freed place goes to the longest waiter, and each waits until its own deadline at most.
    (asyncio.Semaphore is as fair, but with asyncio.timeout around it each wait asks for the
    running loop several times, and on Python 3.11 every such ask is a getpid() system call.)"""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def free(self) -> int:
        return self._free

    @property
    def waiting(self) -> int:
        return sum(not waiter.done() for waiter in self._waiters)

    def try_enter(self) -> bool:
        """Take a place if one is free and nobody waits for it; never waits."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def enter(self, timeout: float) -> None:
        """Take a place within `timeout` seconds; TimeoutError otherwise."""
        if self.try_enter():
            return
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.leave()  # the place was handed over just as this request was cancelled
            raise
        finally:
            timer.cancel()

    def leave(self) -> None:
        """Give the place back: to the longest waiter still waiting, if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # skips waiters whose deadline passed or that were cancelled
                waiter.set_result(None)
                return
        self._free += 1


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Lease:
    """One request's connection: taken from the pool on first use, given back exactly once.

    It runs in a transaction when the route declares one, and in DB_POOL_MODE=transaction always
    (an implicit one, which commits whatever the handler did unless it failed unexpectedly, as
    autocommit would have): that is where the SET LOCAL timeouts live. `broken` tells the
    middleware that the connection died under the request (its backend was terminated, the
    server restarted): that is the pool's stale connection, not the request's fault."""

    __slots__ = (
        "_pool",
        "_gate",
        "_timeout",
        "_transactional",
        "_per_transaction",
        "_conn",
        "_tx",
        "_done",
        "_autocommitted",
        "_committed",
        "broken",
        "_primary",
        "_replicas",
        "_reader",
        "_fence",
        "_replayed",
        "replica",
    )

    def __init__(
        self,
        pool: asyncpg.Pool,
        gate: Gate,
        timeout: float,
        transactional: bool,
        per_transaction: str | None = None,
    ) -> None:
        self._pool = pool
        self._gate = gate
        self._timeout = timeout
        self._transactional = transactional
        self._per_transaction = per_transaction
        self._conn: PoolConnectionProxy | None = None
        self._tx: Transaction | None = None
        self._done = False
        self._autocommitted = False  # a statement ran outside a transaction: it may have written
        self._committed = False  # a commit was attempted: its work may be durable
        self.broken = False
        self._primary = (pool, gate)
        self._replicas: Replicas | None = None
        self._reader: list[str] = []  # the reading client's fences, which a replica must have passed
        self._fence: asyncio.Future[int | None] | None = None  # their lookup, once a replica serves
        self._replayed: int | None = None  # what every replica that served had replayed before it did
        self.replica: Replica | None = None  # where the connection now held comes from

    def read_from_replicas(self, replicas: Replicas) -> None:
        """Let this lease take its connection from a healthy replica (a GET of a read route)."""
        self._replicas = replicas

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool of the connection held, or last held."""
        return self._pool

    @property
    def reads_from_replicas(self) -> bool:
        return self._replicas is not None

    def reader(self, keys: list[str]) -> None:
        """The reading client's fence keys (its address, and its user once the token is checked)."""
        self._reader = keys

    @property
    def acquired(self) -> bool:
        return self._conn is not None

    @property
    def undone(self) -> bool:
        """Nothing this lease ran can have been committed: running the request again is safe."""
        return not (self._autocommitted or self._committed)

    async def connection(self) -> asyncpg.Connection:
        """The connection, typed as what handlers see: asyncpg's pool proxy forwards every
        Connection method, and asyncpg's own isinstance() counts it as a Connection."""
        if self._conn is not None:
            return cast(asyncpg.Connection, self._conn)
        if self._done:
            raise RuntimeError("the request's connection was already given back")
        conn = await self._acquire()
        self._conn = conn
        if self._transactional or self._per_transaction is not None:
            self._tx = conn.transaction()
            await self._tx.start()
            if self._per_transaction is not None:
                await conn.execute(self._per_transaction)
        else:
            self._autocommitted = True
        return cast(asyncpg.Connection, conn)

    async def _acquire(self) -> PoolConnectionProxy:
        """A connection: a free one within DB_ACQUIRE_TIMEOUT, and a new one, when the pool has
        to open it, within DB_CONNECT_TIMEOUT; the answer says which ran out. (Everything that
        takes a pool connection passes the gate first, the readiness check included, so past the
        gate the pool has a connection for this request: only opening one can make it wait.)"""
        if self._replicas is not None:
            conn = await self._acquire_replica(self._replicas)
            if conn is not None:
                return conn
            self._pool, self._gate = self._primary
            self.replica = None
        try:
            await self._gate.enter(self._timeout)
        except TimeoutError:
            raise DatabaseUnavailable("pool_timeout", "no database connection is free; retry") from None
        try:
            return await self._pool.acquire()
        except TimeoutError:
            self._gate.leave()
            raise DatabaseUnavailable("connect_timeout", "the database did not answer in time") from None
        except BaseException:
            self._gate.leave()
            raise

    async def _acquire_replica(self, replicas: Replicas) -> PoolConnectionProxy | None:
        """A connection from a healthy replica; None when there is none, or it fails (it is then
        skipped), so that the primary serves. The client's fence is looked up meanwhile, queued
        now (after the read arrived), and `fence_passed()` checks it before the read answers:
        the read does not wait for it first, and nearly every read passes."""
        replica = replicas.pick()
        if replica is None or replica.pool is None or replica.replayed is None:
            return None
        replayed = replica.replayed  # read before its first statement there: every snapshot has it
        if replicas.ahead(self._reader, replayed):
            return None  # this worker answered the client's write, which the replica has not replayed
        try:
            await replica.gate.enter(self._timeout)
        except TimeoutError:
            return None  # its pool is saturated: the primary serves this one
        try:
            conn: PoolConnectionProxy = await replica.pool.acquire()
        except BaseException as error:
            replica.gate.leave()
            if not isinstance(error, Exception):
                raise
            replica.mark_failed(error)
            return None
        if self._fence is None:
            self._fence = replicas.fences.request(self._reader)
        self._replayed = replayed if self._replayed is None else min(self._replayed, replayed)
        self._pool, self._gate, self.replica = replica.pool, replica.gate, replica
        return conn

    async def fence_passed(self) -> bool:
        """Whether a read that a replica served saw its client's own writes: the replica had
        replayed the client's latest fence before the read's first statement there. True when
        no replica served it; False when the fence could not be looked up (only the primary is
        sure then). Waits for the lookup, which usually came back while the read ran."""
        future, self._fence = self._fence, None
        if future is None:
            return True
        try:
            fence = await future
        except Exception as error:  # noqa: BLE001 - the fence is unknown: only the primary is safe
            log.info("fence lookup failed (%r); reading from the primary", error)
            return False
        return fence is None or (self._replayed is not None and fence <= self._replayed)

    def drop_fence(self) -> None:
        """The read failed: its fence is not needed (a pending lookup's answer is dropped)."""
        future, self._fence = self._fence, None
        if future is not None:
            future.cancel()

    async def put_back(self) -> None:
        """Give the connection back before slow work that needs no database (a password hash);
        the next `connection()` takes one again. An implicit transaction commits first."""
        if self._transactional:
            raise RuntimeError("a transactional request keeps its connection until it ends")
        await self._give_back(commit=True)

    async def release(self, commit: bool, fence: list[str] | None = None) -> int | None:
        """Commit or roll back the request's transaction, then return the connection.

        A failed commit is raised after the connection is back; a failed rollback is only logged:
        the pool resets (or, failing that, terminates) the connection on release anyway. With
        `fence` (fence keys; replicas configured, a write answered 2xx), the primary's WAL position
        after the commit becomes the client's read-your-writes fence, before the answer leaves;
        returned is a position past the commit as well (None: no fence was set)."""
        if self._done:
            return None
        if fence is not None and commit and self._conn is None and not self.undone:
            self._conn = await self._acquire()  # it wrote, then gave its connection back early
        self._done = True
        return await self._give_back(commit, fence)

    async def _give_back(self, commit: bool, fence: list[str] | None = None) -> int | None:
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        if conn is None:
            return None
        position = None
        try:
            if tx is not None and commit:
                if _is_dead(conn):
                    # The connection died after the handler's last statement: nothing was
                    # committed, so the request must not answer success (the middleware may run
                    # it once more, since it is undone).
                    self.broken = True
                    raise DatabaseUnavailable("connection", "the database connection failed")
                self._committed = True
                await tx.commit()
            elif tx is not None and not _is_dead(conn):
                try:
                    await tx.rollback()
                except Exception as error:  # noqa: BLE001
                    log.debug("rollback failed, the pool will reset the connection: %r", error)
            if fence is not None and commit:
                # After the commit: its position is past it.
                position = int(await conn.fetchval(_fence, fence, column=1))
        finally:
            if _is_dead(conn):
                self.broken = True
            try:
                await self._pool.release(conn)
            except Exception as error:  # noqa: BLE001 - asyncpg has terminated it; the pool goes on
                self.broken = True
                log.info("a connection could not be reset and was closed: %r", error)
            finally:
                self._gate.leave()
        return position


def _is_dead(conn: asyncpg.Connection | PoolConnectionProxy) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # its socket closed and asyncpg already took it back
        return True


def transactional(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Mark a plain aiohttp handler as running in one transaction (routes declared with
    service.routing set the flag themselves)."""
    handler.transactional = True  # type: ignore[attr-defined]  # a function attribute, read with getattr below
    return handler


_fence = queries("replicas").fence


# Errors after which the request's transaction, rolled back, is worth one more run on a fresh
# connection: a statement prepared before a schema change (asyncpg retries those itself only
# outside a transaction), and a server that turned read-only under a pooled connection (a
# failover; the pool's connections are recycled first, so the retry connects anew), and a
# transaction PostgreSQL chose as a deadlock's victim or failed for serialization (the retry
# PostgreSQL's documentation prescribes: two writers of overlapping kept counts, issue 13's
# triggers, can meet in opposite orders across a request's statements; the other one commits).
RETRY_ONCE = (
    asyncpg.InvalidCachedStatementError,
    asyncpg.OutdatedSchemaCacheError,
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A handler's own answer (404, 422, ...): final, whatever became of its connection afterwards.
ANSWERS = (ApiError, web.HTTPException)


@web.middleware
async def connection_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Lend the request a lazy connection; commit on a success response, roll back otherwise.

    When the request failed on a connection that died under it (a pooled connection whose
    backend was killed or restarted), or on one of RETRY_ONCE, and nothing it did can have been
    committed (or it is a GET), it runs once more with a fresh lease. The body was read and
    validated before any connection was taken and aiohttp keeps it, so the second run sees the
    same request."""
    pool = request.app.get(keys.POOL)
    if pool is None:
        return await handler(request)
    replicas = request.app.get(keys.REPLICAS)
    try:
        return await _with_lease(request, handler, pool, replicas)
    except ANSWERS:
        raise
    except StaleRead:
        # The replica had not replayed this client's last write when the read ran there: the
        # primary answers instead (a client that wrote a moment ago; rare otherwise).
        request.app[keys.METRICS].fence_reruns.inc()
        return await _with_lease(request, handler, pool, replicas, primary=True)
    except Exception as error:
        lease = request[keys.LEASE]
        if lease.replica is not None and (lease.broken or isinstance(error, (*REPLICA_DOWN, *REPLICA_CONFLICTS))):
            # A read failed on a replica: run it once more on the primary. A replica that is
            # down (stopped, restarting, promoted) is skipped until the monitor sees it well; a
            # query cancelled by a recovery conflict says nothing against the next one.
            if lease.broken or isinstance(error, REPLICA_DOWN):
                lease.replica.mark_failed(error)
            log.warning(
                "%s %s failed on replica %s (%r); reading from the primary",
                request.method,
                request.path,
                lease.replica.label,
                error,
            )
            return await _with_lease(request, handler, pool, replicas, primary=True)
        if not (lease.broken or isinstance(error, RETRY_ONCE)):
            raise
        if not (lease.undone or request.method in SAFE_METHODS):
            raise
        log.warning("%s %s failed on its connection (%r); running it once more", request.method, request.path, error)
    return await _with_lease(request, handler, pool, replicas)


READ_METHODS = frozenset({"GET", "HEAD"})


class StaleRead(Exception):
    """A read that ran on a replica which had not replayed its client's last write."""


# What a read that failed on a replica may have met there, after which it runs once more on the
# primary: the server stopping, restarting or unreachable (then it is skipped for a while), or a
# query cancelled by a conflict with recovery (SQLSTATE 40001, 40P01 or 57P04). Anything else (a
# statement timeout, a data error) is the request's own and answers as it would on the primary.
REPLICA_DOWN = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    OSError,
    TimeoutError,
    DatabaseUnavailable,
)
REPLICA_CONFLICTS = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError, asyncpg.DatabaseDroppedError)


async def _with_lease(
    request: web.Request, handler: Handler, pool: asyncpg.Pool, replicas: Replicas | None, primary: bool = False
) -> web.StreamResponse:
    settings = request.app[keys.SETTINGS]
    route = request.match_info.handler
    explicit = getattr(route, "transactional", False)
    lease = Lease(
        pool, request.app[keys.POOL_GATE], settings.db_acquire_timeout, explicit, transaction_settings(settings)
    )
    request[keys.LEASE] = lease
    if replicas is not None and request.method in READ_METHODS and not _pinned(route, explicit or primary):
        lease.read_from_replicas(replicas)
    try:
        try:
            response = await handler(request)
        except ANSWERS:
            # An implicit transaction keeps what the handler wrote before it answered with an
            # error of its own (a failed login is recorded, then 401), as autocommit would.
            await lease.release(commit=not explicit)
            if lease.reads_from_replicas and not await lease.fence_passed():
                raise StaleRead from None  # its 404 may be the write it has not seen yet
            raise
        except BaseException:
            lease.drop_fence()
            await lease.release(commit=False)
            raise
        fence = None
        if replicas is not None and request.method not in SAFE_METHODS and 200 <= response.status < 300:
            fence = _writers(request)
        position = await lease.release(commit=response.status < 400 or not explicit, fence=fence)
        if replicas is not None and fence is not None and position is not None:
            replicas.wrote(fence, position)
        if lease.reads_from_replicas and not await lease.fence_passed():
            raise StaleRead
        return response
    except ANSWERS:
        raise
    except Exception as error:
        if lease.broken or isinstance(error, asyncpg.ReadOnlySQLTransactionError):
            # One dead connection means its siblings are suspect too (the server restarted, or
            # turned read-only in a failover): recycle them all, so the next use connects anew.
            await lease.pool.expire_connections()
        if lease.broken and classify_database_error(error) is None:
            # Whatever asyncpg raised (it may be a protocol-state error), the cause is the server.
            raise DatabaseUnavailable("connection", "the database connection failed") from error
        raise


def _pinned(route: Any, pinned: bool) -> bool:
    """Whether the read runs on the primary: a transaction, a route pinned there, or a retry."""
    return pinned or bool(getattr(route, "primary", False))


def fence_keys(request: web.Request) -> list[str]:
    """Who the client is, for read-your-writes: its address (the one login limiting uses:
    X-Forwarded-For only from TRUSTED_PROXIES) and, signed in, its user. A write moves every one
    of its fences, a read passes every one of its own: a client that wrote with one token and
    reads with another, or none, is still its address."""
    found = ["a" + client_address(request)]
    user = request.get(keys.USER)
    if user is not None:
        found.append(f"u{user.id}")
    elif keys.USER not in request:  # a route that does not authenticate (GET /api/tags): a
        user_id = _token_user(request)  # valid token still names the client's user
        if user_id is not None:
            found.append(f"u{user_id}")
    return found


def _token_user(request: web.Request) -> int | None:
    """The user of a valid token, without answering 401 for a bad one (the route asks none)."""
    try:
        token = token_from_header(request)
        return None if token is None else decode_token(token, resolved(request.app[keys.SETTINGS].jwt_secret))
    except ApiError:
        return None


def _writers(request: web.Request) -> list[str]:
    """The fences a write moves: its client's, and a new user's (a registration)."""
    found = fence_keys(request)
    writer = request.get(keys.WRITER)
    if writer is not None:
        found.append(f"u{writer}")
    return found


def pinned_to_primary(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Mark a plain aiohttp handler as reading from the primary alone, even with replicas (routes
    declared with service.routing say `primary=True`)."""
    handler.primary = True  # type: ignore[attr-defined]  # a function attribute, read with getattr
    return handler


async def connection(request: web.Request) -> asyncpg.Connection:
    """The request's connection; taken from the pool now if this is its first use."""
    lifecycle = request.app[keys.LIFECYCLE]
    if not lifecycle.migrated.is_set():
        raise DatabaseUnavailable("not_migrated", "the service is starting; retry")
    lease = request[keys.LEASE]
    if lease.acquired:
        return await lease.connection()
    metrics = request.app[keys.METRICS]
    replicas = lease.reads_from_replicas
    if replicas:
        lease.reader(fence_keys(request))
    metrics.waiting += 1  # db_pool_waiting
    try:
        conn = await lease.connection()
    finally:
        metrics.waiting -= 1
    if replicas or request.app.get(keys.REPLICAS) is not None:
        metrics.pool_request(lease.replica.label if lease.replica is not None else "primary")
    return conn


async def put_back(request: web.Request) -> None:
    """Give the request's connection back early (non-transactional routes only)."""
    await request[keys.LEASE].put_back()


async def ping(pool: asyncpg.Pool, gate: Gate, *, writable: bool = False) -> bool:
    """One trivial query, bounded: raises when the database cannot answer within a second, or,
    when `writable`, when the server has turned read-only (a failover: the pool's connections
    are recycled so that new ones find the writable server). False, without asking, when every
    place at the gate is taken: the pool is busy serving requests, so the database answers. The
    check never queues, and the connection it takes is one no request holds a place for."""
    if not gate.try_enter():
        return False
    try:
        async with asyncio.timeout(READY_QUERY_TIMEOUT):
            async with pool.acquire() as conn:
                read_only = await conn.fetchval("SELECT current_setting('transaction_read_only') = 'on'")
    finally:
        gate.leave()
    if writable and read_only:
        await pool.expire_connections()
        raise DatabaseUnavailable("read_only", "the database is read-only")
    return True
