"""Test fixtures: a real PostgreSQL (embedded, or the server DATABASE_URL names), a database per
run migrated once, emptied before each test, and the real app built by the real factory."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from service.embedded import EmbeddedPostgres
from service.migrate import apply_migrations

T = TypeVar("T")

APP_TABLES = ["users", "follows", "articles", "tags", "article_tags", "favorites", "comments", "login_failures"]


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """An admin DSN: the DATABASE_URL server if set, else a throwaway embedded server."""
    given = os.environ.get("DATABASE_URL")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="conduit-pg-") as folder:
        server = EmbeddedPostgres(Path(folder) / "data", durable=False)
        try:
            yield server.start()
        finally:
            server.destroy()


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def seeded_database(
    server_dsn: str, prefix: str, fill: Callable[[asyncpg.Connection], Awaitable[T]]
) -> Iterator[tuple[str, T]]:
    """A database of its own, migrated and filled by `fill` (whose result comes with its DSN),
    dropped afterwards: for a test module whose data must not be the shared test database's."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    url = with_database(server_dsn, name)

    async def create() -> T:
        await _admin(server_dsn, f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(url)
        try:
            await apply_migrations(conn)
            return await fill(conn)
        finally:
            await conn.close()

    facts = asyncio.run(create())
    try:
        yield url, facts
    finally:
        asyncio.run(_admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url(server_dsn: str) -> Iterator[str]:
    """A fresh database for this run, migrated once."""
    name = f"conduit_test_{os.getpid()}_{secrets.token_hex(3)}"
    url = with_database(server_dsn, name)

    async def create() -> None:
        await _admin(server_dsn, f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(url)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    asyncio.run(create())
    yield url
    asyncio.run(_admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection for assertions about what is stored; the tables start empty."""
    conn = await asyncpg.connect(database_url)
    await conn.execute(f"TRUNCATE {', '.join(APP_TABLES)} RESTART IDENTITY CASCADE")
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> dict[str, str]:
    """The environment the app factory reads; tests may override entries before building."""
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "MIGRATE_ON_START": "false",
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "4",
        "DB_ACQUIRE_TIMEOUT": "1",
        "JWT_SECRET": "test-secret-test-secret-test-secret-0123",
    }
    for key in list(os.environ):
        if key == "DATABASE_URL" or key.startswith(("DB_", "JWT_", "LOGIN_", "CORS_", "SHUTDOWN_", "MAX_BODY")):
            monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


class ProductionLikeServer(TestServer):
    """aiohttp's TestServer turns handler_cancellation on; gunicorn's worker (and ours) leaves it
    off, so a client that hangs up does not cancel its handler. Tests run as production does."""

    async def _make_runner(self, handler_cancellation: bool = False, **kwargs):
        return web.AppRunner(self.app, handler_cancellation=False, **kwargs)


@pytest.fixture
async def make_client(aiohttp_client, app_env, db, monkeypatch):
    """Build the real app with the real factory (optionally with extra settings) and serve it."""
    from service.app import create_app

    async def make(routes=None, **overrides: str):
        """`routes(app)` may add test-only routes to the factory's app before it starts."""
        for key, value in overrides.items():
            monkeypatch.setenv(key, value)
        app = await create_app()
        if routes is not None:
            routes(app)
        return await aiohttp_client(ProductionLikeServer(app))

    return make


@pytest.fixture
async def client(make_client):
    return await make_client()


@pytest.fixture
def gunicorn(database_url):
    """Start the real gunicorn (`gunicorn(**env)`, 2 workers on the test database unless told
    otherwise; see tests/gunicorn_process.py); whatever is still running at the end is killed."""
    from tests.gunicorn_process import Gunicorn

    started: list[Gunicorn] = []

    def start(**env: str) -> Gunicorn:
        server = Gunicorn(env.pop("DATABASE_URL", database_url), **env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
