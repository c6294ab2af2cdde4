"""Fixtures for the outage tests: a PostgreSQL server of each test's own, which the test may stop,
restart, kill backends of, fill up or turn read-only without touching any other test, and the
real app built by the real factory, pointed at it.

initdb runs once per session: the template cluster gets an unprivileged role `conduit` (the app
never connects as a superuser, so `max_connections` and reserved slots behave as in production)
and a migrated database `conduit`; each test starts a copy of that data directory."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from service import keys
from service.db import connection, transactional
from service.embedded import SYSTEM_USER, EmbeddedPostgres
from service.migrate import apply_migrations
from tests.conftest import ProductionLikeServer

APP_ROLE = "conduit"
APP_DATABASE = "conduit"
JWT_SECRET = "outage-secret-outage-secret-0123456789"
WAITING_ON_A_LOCK = "wait_event_type = 'Lock'"
IDLE_IN_TRANSACTION = "state LIKE 'idle in transaction%'"


async def wait_for(probe: Callable[[], Any], expected: Any = True, timeout: float = 10.0) -> None:
    """Poll `probe()` (a value or an awaitable) until it equals `expected`: never a fixed sleep
    standing in for the condition; fails loudly if it does not come true in time."""
    async with asyncio.timeout(timeout):
        while True:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
            if value == expected:
                return
            await asyncio.sleep(0.01)


async def backends(admin: asyncpg.Connection, where: str = "true", *args: Any) -> int:
    """How many of the app's sessions match `where` now. pg_stat_activity is otherwise a snapshot
    taken at a transaction's first look, and tests look from inside one while holding a lock."""
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    return await admin.fetchval(
        f"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'conduit' AND ({where})", *args
    )


async def alive(admin: asyncpg.Connection, pid: int) -> bool:
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    return bool(await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid))


class OwnPostgres:
    """An embedded server on a copy of the template cluster."""

    def __init__(self, pgdata: Path, **options: str) -> None:
        self.server = EmbeddedPostgres(pgdata, durable=False, options=options)

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def start(self) -> None:
        self.server.start()

    def stop(self, mode: str = "fast") -> None:
        self.server.stop(mode)

    def url(self, database: str = APP_DATABASE, user: str = APP_ROLE) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    async def admin(self, database: str = APP_DATABASE) -> asyncpg.Connection:
        """A superuser connection (it may use the reserved slots, and ignores read-only mode)."""
        return await asyncpg.connect(
            self.url(database, user="postgres"), server_settings={"default_transaction_read_only": "off"}
        )

    async def create_database(self, name: str) -> None:
        conn = await self.admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}" OWNER {APP_ROLE}')
        finally:
            await conn.close()

    def destroy(self) -> None:
        self.server.destroy()


def _chown_tree(root: Path, user: str) -> None:
    import pwd

    entry = pwd.getpwnam(user)
    for folder, _dirs, files in os.walk(root):
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


@pytest.fixture(scope="session")
def outage_folder() -> Iterator[Path]:
    """Where the servers' data lives: not under pytest's own temporary folder, which every pytest
    process on the machine makes private to its user again (the servers run as another user)."""
    with tempfile.TemporaryDirectory(prefix="conduit-outage-") as folder:
        os.chmod(folder, 0o755)
        yield Path(folder)


@pytest.fixture(scope="session")
def template_cluster(outage_folder: Path) -> Path:
    """A stopped, initialized data directory with the app's role and a migrated database."""
    pgdata = outage_folder / "template"
    server = EmbeddedPostgres(pgdata, durable=False)
    dsn = server.start()

    async def prepare() -> None:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f"CREATE ROLE {APP_ROLE} LOGIN")
            await admin.execute(f"CREATE DATABASE {APP_DATABASE} OWNER {APP_ROLE}")
        finally:
            await admin.close()
        conn = await asyncpg.connect(f"postgresql://{APP_ROLE}@127.0.0.1:{server.port}/{APP_DATABASE}")
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    try:
        asyncio.run(prepare())
    finally:
        server.stop()
    (pgdata / "server.log").unlink(missing_ok=True)
    return pgdata


@pytest.fixture
def scratch(outage_folder: Path) -> Iterator[Path]:
    """A folder of the test's own that unprivileged processes (servers, pgbouncer) can reach."""
    folder = Path(tempfile.mkdtemp(dir=outage_folder))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def make_postgres(template_cluster: Path, scratch: Path) -> Iterator[Callable[..., OwnPostgres]]:
    """`make_postgres(**server_settings)`: a started server of the test's own."""
    made: list[OwnPostgres] = []

    def make(**options: str) -> OwnPostgres:
        pgdata = scratch / f"data{len(made)}"
        shutil.copytree(template_cluster, pgdata, symlinks=True)
        if os.geteuid() == 0:
            _chown_tree(pgdata, SYSTEM_USER)
        server = OwnPostgres(pgdata, **options)
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.destroy()


@pytest.fixture
def postgres(make_postgres) -> OwnPostgres:
    return make_postgres()


@pytest.fixture
def outage_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment the factory reads, cleared of anything the host set."""
    for key in list(os.environ):
        if key in ("DATABASE_URL", "APP_ENV", "MIGRATE_ON_START") or key.startswith(
            ("DB_", "JWT_", "LOGIN_", "CORS_", "SHUTDOWN_", "MAX_BODY")
        ):
            monkeypatch.delenv(key, raising=False)
    env = {
        "APP_ENV": "development",
        "MIGRATE_ON_START": "false",
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "2",
        "DB_ACQUIRE_TIMEOUT": "1",
        "JWT_SECRET": JWT_SECRET,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
async def serve(aiohttp_client, outage_env, monkeypatch) -> Callable[..., Awaitable]:
    """`await serve(database_url, routes=..., cancellation=False, **env)`: the real app from the
    real factory (plus test-only routes), served as production serves it unless `cancellation`."""
    from service.app import create_app

    async def start(database_url: str, *, routes: TestRoutes | None = None, cancellation: bool = False, **env: str):
        monkeypatch.setenv("DATABASE_URL", database_url)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        app = await create_app()
        if routes is not None:
            routes.install(app)
        server_class = TestServer if cancellation else ProductionLikeServer  # TestServer cancels on hang-up
        return await aiohttp_client(server_class(app))

    return start


class TestRoutes:
    """Test-only routes added to the factory's app: slow queries, lock waits, a pause between
    two statements the test controls, and what the request's session sees."""

    __test__ = False
    LOCK = 4242

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.proceed = asyncio.Event()
        self.runs = 0
        self.pids: list[int] = []

    def install(self, app: web.Application) -> None:
        app.router.add_get("/t/sleep/{seconds}", self.sleep)
        app.router.add_post("/t/sleep-in-transaction/{seconds}", self.sleep_in_transaction)
        app.router.add_get("/t/wait-lock", self.wait_lock)
        app.router.add_get("/t/session", self.session)
        app.router.add_get("/t/pause", self.pause)
        app.router.add_post("/t/pause-in-transaction", self.pause_in_transaction)
        app.router.add_post("/t/pause-autocommit", self.pause_autocommit)

    async def sleep(self, request: web.Request) -> web.Response:
        conn = await connection(request)
        await conn.execute("SELECT pg_sleep($1)", float(request.match_info["seconds"]))
        return web.json_response({})

    @transactional
    async def sleep_in_transaction(self, request: web.Request) -> web.Response:
        conn = await connection(request)
        await conn.execute("INSERT INTO tags (name) VALUES ('slept')")
        await conn.execute("SELECT pg_sleep($1)", float(request.match_info["seconds"]))
        return web.json_response({}, status=201)

    async def wait_lock(self, request: web.Request) -> web.Response:
        """Holds its connection until the test lets go of the advisory lock."""
        conn = await connection(request)
        await conn.execute("SELECT pg_advisory_xact_lock($1)", self.LOCK)
        return web.json_response({})

    async def session(self, request: web.Request) -> web.Response:
        conn = await connection(request)
        row = await conn.fetchrow(
            "SELECT pg_backend_pid() AS pid, current_setting('statement_timeout') AS statement_timeout,"
            " current_setting('lock_timeout') AS lock_timeout,"
            " current_setting('idle_in_transaction_session_timeout') AS idle_in_transaction_session_timeout,"
            " current_setting('transaction_read_only') AS read_only"
        )
        assert row is not None
        return web.json_response(dict(row))

    async def _pause(self, request: web.Request, status: int) -> web.Response:
        self.runs += 1
        conn = await connection(request)
        self.pids.append(await conn.fetchval("SELECT pg_backend_pid()"))
        await conn.execute("INSERT INTO tags (name) VALUES ($1) ON CONFLICT DO NOTHING", f"run{self.runs}")
        self.entered.set()
        await self.proceed.wait()
        await conn.fetchval("SELECT 1")
        return web.json_response({"runs": self.runs}, status=status)

    async def pause(self, request: web.Request) -> web.Response:
        return await self._pause(request, 200)

    @transactional
    async def pause_in_transaction(self, request: web.Request) -> web.Response:
        return await self._pause(request, 201)

    async def pause_autocommit(self, request: web.Request) -> web.Response:
        return await self._pause(request, 201)


@pytest.fixture
def routes() -> TestRoutes:
    return TestRoutes()


def pool_of(client) -> asyncpg.Pool:
    return client.server.app[keys.POOL]


def in_use(pool: asyncpg.Pool) -> int:
    return pool.get_size() - pool.get_idle_size()


async def assert_unavailable(response, *, message: str | None = None) -> dict:
    """503 with Retry-After and the JSON error shape, naming the request id; no traceback."""
    text = await response.text()
    assert response.status == 503, text
    assert response.headers.get("Retry-After") == "1"
    assert response.content_type == "application/json"
    assert "Traceback" not in text
    body = await response.json()
    assert body["requestId"] == response.headers["X-Request-ID"]
    assert list(body["errors"]) == ["database"]
    if message is not None:
        assert body["errors"]["database"] == [message]
    return body


@pytest.fixture
async def admin_of() -> AsyncIterator[Callable[[OwnPostgres], Awaitable[asyncpg.Connection]]]:
    """Superuser connections, closed after the test."""
    opened: list[asyncpg.Connection] = []

    async def open_admin(server: OwnPostgres, database: str = APP_DATABASE) -> asyncpg.Connection:
        conn = await server.admin(database)
        opened.append(conn)
        return conn

    yield open_admin
    for conn in opened:
        if not conn.is_closed():
            await conn.close(timeout=2)
