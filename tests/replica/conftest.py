"""Fixtures for the replica tests: one pair of real servers for the whole session, an embedded
primary of the tests' own and a streaming replica made from it with `pg_basebackup -R`, and the
real app (or real service processes) configured with both.

The primary logs every statement with its session's application name (`app=conduit:` for the
service's pools), so a test can say exactly which statements reached it. A test that pauses
replay, stops or promotes the replica restores it before it ends (`pair.restore()` runs after
every test as well)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from service.embedded import EmbeddedPostgres, free_port
from service.migrate import apply_migrations
from service.replicas import wal_position
from tests.conftest import APP_TABLES, ProductionLikeServer
from tests.outage.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "replica-secret-replica-secret-0123456789"
DATABASE = "conduit"


@dataclass
class Pair:
    primary: EmbeddedPostgres
    replica: EmbeddedPostgres

    @property
    def primary_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.primary.port}/{DATABASE}"

    @property
    def replica_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.replica.port}/{DATABASE}"

    async def on_primary(self, query: str, *args: Any) -> Any:
        conn = await asyncpg.connect(self.primary_url)
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()

    async def on_replica(self, query: str, *args: Any) -> Any:
        conn = await asyncpg.connect(self.replica_url)
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()

    async def caught_up(self) -> int:
        """Wait until the replica has replayed everything the primary has written so far."""
        target = wal_position(int(await self.on_primary("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")))

        async def replayed() -> bool:
            done = await self.on_replica("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
            return done is not None and done >= target

        await wait_for(replayed, timeout=30)
        return target

    async def seen_by(self, app: Any) -> None:
        """Wait until the replica has replayed all the primary wrote, and `app`'s monitor saw it."""
        from service import keys

        target = await self.caught_up()
        replica = app[keys.REPLICAS].replicas[0]
        await wait_for(lambda: replica.healthy and replica.replayed >= target, timeout=15)

    async def pause(self) -> None:
        await self.on_replica("SELECT pg_wal_replay_pause()")
        await wait_for(lambda: self.on_replica("SELECT pg_get_wal_replay_pause_state()"), "paused")

    async def resume(self) -> None:
        await self.on_replica("SELECT pg_wal_replay_resume()")

    def primary_log_offset(self) -> int:
        return (self.primary.pgdata / "server.log").stat().st_size

    def primary_statements(self, since: int, application: str = "conduit") -> list[str]:
        """The statements the service's sessions (by application name) ran on the primary since
        `since` (an offset in its log)."""
        with (self.primary.pgdata / "server.log").open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        entries: list[str] = []
        for line in text.splitlines():
            if line.startswith("app=") or not entries:
                entries.append(line)
            else:
                entries[-1] += "\n" + line  # a statement's next lines
        prefix = f"app={application}:"
        return [e for e in entries if e.startswith(prefix) and ("statement: " in e or " execute " in e)]

    def restore(self) -> None:
        """The replica running, in recovery, replaying; made anew when a test promoted it."""
        if self.replica.running_port() is None:
            self.replica.start()
        if not asyncio.run(self._resume_if_paused()):
            port, folder = self.replica.port, self.replica.pgdata
            self.replica.destroy()
            self.replica = self.primary.replica(folder)
            self.replica.port = port
            self.replica.start()
        asyncio.run(self.caught_up())

    async def _resume_if_paused(self) -> bool:
        async def up() -> bool:
            try:
                await self.on_replica("SELECT 1")
            except (OSError, asyncpg.PostgresError):
                return False
            return True

        await wait_for(up, timeout=30)
        if not await self.on_replica("SELECT pg_is_in_recovery()"):
            return False
        await self.resume()
        return True


@pytest.fixture(scope="session")
def pair() -> Iterator[Pair]:
    """The primary (every statement logged) and its replica, shared by all the replica tests."""
    with tempfile.TemporaryDirectory(prefix="conduit-replica-") as name:
        folder = Path(name)
        os.chmod(folder, 0o755)  # the servers run as another user when the tests run as root
        primary = EmbeddedPostgres(
            folder / "primary",
            durable=False,
            options={"log_statement": "all", "log_line_prefix": "app=%a:", "wal_level": "replica"},
        )
        replica: EmbeddedPostgres | None = None
        try:
            admin = primary.start()
            asyncio.run(_create_database(admin))
            replica = primary.replica(folder / "replica")
            replica.start()
            pair = Pair(primary, replica)
            asyncio.run(pair.caught_up())
            yield pair
        finally:
            if replica is not None:
                replica.destroy()
            primary.destroy()


async def _create_database(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(admin_dsn.rsplit("/", 1)[0] + f"/{DATABASE}")
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()


@pytest.fixture
async def fresh(pair: Pair) -> AsyncIterator[Pair]:
    """Empty tables on the primary, replayed on the replica; the replica restored afterwards."""
    conn = await asyncpg.connect(pair.primary_url)
    try:
        await conn.execute(f"TRUNCATE {', '.join([*APP_TABLES, 'read_fences'])} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    await pair.caught_up()
    try:
        yield pair
    finally:
        await asyncio.to_thread(pair.restore)


def client(address: str, token: str | None = None) -> dict[str, str]:
    """The headers of one client: its address, and its token if it is signed in."""
    headers = {"X-Forwarded-For": address}
    if token is not None:
        headers["Authorization"] = f"Token {token}"
    return headers


def replica_env(pair: Pair, **overrides: str) -> dict[str, str]:
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": pair.primary_url,
        "DATABASE_REPLICA_URLS": pair.replica_url,
        "MIGRATE_ON_START": "false",
        "DB_POOL_MIN_SIZE": "1",
        "DB_POOL_MAX_SIZE": "4",
        "DB_REPLICA_POOL_MAX_SIZE": "4",
        "DB_ACQUIRE_TIMEOUT": "2",
        "DB_CONNECT_TIMEOUT": "2",
        "JWT_SECRET": JWT_SECRET,
        "SHUTDOWN_DELAY": "0",
        # The tests' clients name themselves with X-Forwarded-For (`client()`): a client is its
        # address for read-your-writes, and they all connect from 127.0.0.1.
        "TRUSTED_PROXIES": "127.0.0.1",
    }
    env.update(overrides)
    return env


@pytest.fixture
async def make_app_client(aiohttp_client, fresh: Pair, monkeypatch: pytest.MonkeyPatch):
    """The real app, in process, on the pair; waits until its monitor sees the replica healthy
    (unless `healthy=False`)."""
    from service import keys
    from service.app import create_app

    for key in list(os.environ):
        if key.startswith(("DATABASE_", "DB_", "JWT_", "LOGIN_", "CORS_", "SHUTDOWN_", "MAX_BODY")):
            monkeypatch.delenv(key, raising=False)

    async def make(healthy: bool = True, routes=None, **overrides: str):
        for key, value in replica_env(fresh, **overrides).items():
            monkeypatch.setenv(key, value)
        app = await create_app()
        if routes is not None:
            routes(app)
        client = await aiohttp_client(ProductionLikeServer(app))
        if healthy:
            replicas = client.server.app[keys.REPLICAS]
            await wait_for(lambda: all(r.healthy for r in replicas.replicas), timeout=15)
        return client

    return make


class Service:
    """`python -m service serve` as a subprocess on the pair."""

    def __init__(self, pair: Pair, folder: Path, name: str, **overrides: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"{name}.log"
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DB_", "JWT_", "APP_"))}
        env = {**keep, **replica_env(pair, **overrides), "PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "serve"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def ready(self, session: aiohttp.ClientSession) -> None:
        """Ready, and its monitor sees the replica well (db_replica_healthy 1 in /metrics)."""

        async def healthy() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            try:
                async with session.get(f"{self.base}/metrics") as response:
                    text = await response.text()
            except aiohttp.ClientError:
                return False
            return any(line.startswith("db_replica_healthy{") and line.endswith(" 1.0") for line in text.splitlines())

        await wait_for(healthy, timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def services(fresh: Pair, tmp_path: Path) -> Iterator[Any]:
    """Start service processes on the pair: `services(name, **settings)`; all stopped at the end."""
    started: list[Service] = []

    def start(name: str, **overrides: str) -> Service:
        service = Service(fresh, tmp_path, name, **overrides)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
