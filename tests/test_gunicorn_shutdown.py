"""Graceful shutdown under the real gunicorn: 2 workers, real signals, requests held in flight by
a real row lock (the test's own connection locks the article; PUT /api/articles/{slug} waits)."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal

import aiohttp
import pytest

from service.sqlfiles import migrations
from tests.conftest import _admin, with_database
from tests.gunicorn_process import conduit_backends, eventually
from tests.helpers import auth

pytestmark = pytest.mark.gunicorn


async def _author_and_article(url: str) -> tuple[str, str]:
    async with aiohttp.ClientSession(url) as session:
        user = {"username": "author", "email": "author@example.com", "password": "password123"}
        async with session.post("/api/users", json={"user": user}) as r:
            assert r.status == 201, await r.text()
            token = (await r.json())["user"]["token"]
        article = {"title": "Held", "description": "d", "body": "original", "tagList": []}
        async with session.post("/api/articles", json={"article": article}, headers=auth(token)) as r:
            assert r.status == 201, await r.text()
            return token, (await r.json())["article"]["slug"]


async def _put_body(url: str, token: str, slug: str, body: str, request_id: str | None = None):
    headers = auth(token) | ({"X-Request-ID": request_id} if request_id else {})
    async with (
        aiohttp.ClientSession(url) as session,
        session.put(f"/api/articles/{slug}", json={"article": {"body": body}}, headers=headers) as r,
    ):
        return r.status, dict(r.headers), await r.json()


async def _lock_article(db, slug: str):
    tx = db.transaction()
    await tx.start()
    await db.execute("SELECT 1 FROM articles WHERE slug = $1 FOR UPDATE", slug)
    return tx


async def _refused(url: str) -> bool:
    try:
        async with aiohttp.ClientSession(url) as session, session.get("/livez"):
            return False
    except aiohttp.ClientConnectorError:
        return True


async def _no_service_connections(db) -> bool:
    return await conduit_backends(db) == 0


async def test_in_flight_requests_finish_after_sigterm_then_pool_closes_and_exit_0(gunicorn, db):
    server = gunicorn()
    await server.wait_serving(db)
    token, slug = await _author_and_article(server.url)
    lock = await _lock_article(db, slug)
    puts = [asyncio.create_task(_put_body(server.url, token, slug, f"edit {i}")) for i in range(3)]
    await eventually(lambda: _waiting_on_lock(db, 3), "3 PUTs waiting on the row lock")

    server.signal(signal.SIGTERM)
    await server.wait_for_lines(r"draining \d+ requests in flight", count=2)
    assert await _refused(server.url), "the listener is still open while draining"
    assert not any(put.done() for put in puts)

    await lock.rollback()
    results = await asyncio.gather(*puts)
    assert [(status, body["article"]["body"]) for status, _, body in results] == [(200, f"edit {i}") for i in range(3)]
    assert await server.wait_exit() == 0
    server.assert_clean_exit()
    await eventually(lambda: _no_service_connections(db), "the pools' connections to leave pg_stat_activity")


async def test_readyz_503_during_the_delay_while_requests_are_served_then_the_listener_closes(gunicorn, db):
    server = gunicorn(SHUTDOWN_DELAY="3")
    await server.wait_serving(db)

    server.signal(signal.SIGTERM)
    await server.wait_for_lines(r"SIGTERM: readiness off; closing the listener in 3.0s", count=2)
    # Fresh connections, so the listener itself is shown to be open; both workers are draining,
    # so whichever accepts answers readiness 503, and serves everything else.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(server.url, connector=connector) as session:
        for attempt in range(4):
            async with session.get("/readyz", headers={"X-Request-ID": f"probe-{attempt}"}) as r:
                assert r.status == 503
                assert (await r.json()) == {
                    "status": "unavailable",
                    "reason": "shutting down",
                    "requestId": f"probe-{attempt}",
                }
            async with session.get("/api/tags") as r:
                assert r.status == 200
                assert r.headers["Connection"] == "close"  # keep-alive clients move elsewhere
    assert not server.matching("closing the listener$"), "the delay was cut short"

    await server.wait_for_lines(r"draining \d+ requests in flight", count=2)
    assert await _refused(server.url)
    assert await server.wait_exit() == 0
    server.assert_clean_exit()


async def test_a_second_sigterm_changes_nothing(gunicorn, db):
    server = gunicorn(SHUTDOWN_DELAY="2")
    await server.wait_serving(db)
    token, slug = await _author_and_article(server.url)
    lock = await _lock_article(db, slug)
    put = asyncio.create_task(_put_body(server.url, token, slug, "edited"))
    await eventually(lambda: _waiting_on_lock(db, 1), "the PUT waiting on the row lock")

    # An orchestrator that signals every process, then the master passing its own on: each
    # worker gets SIGTERM twice. (Sent one after the other: two signals sent at once to a
    # process that has not run in between merge into one.)
    for pid in server.worker_pids():
        os.kill(pid, signal.SIGTERM)
    await server.wait_for_lines("SIGTERM: readiness off", count=2)
    server.signal(signal.SIGTERM)
    await server.wait_for_lines("SIGTERM again: already stopping", count=2)
    await server.wait_for_lines(r"draining \d+ requests in flight", count=2)
    assert len(server.matching("SIGTERM: readiness off")) == 2
    assert len(server.matching("closing the listener$")) == 2
    assert len(server.worker_pids()) == 2  # none was replaced

    await lock.rollback()
    status, _, body = await put
    assert (status, body["article"]["body"]) == (200, "edited")
    assert await server.wait_exit() == 0
    server.assert_clean_exit()


async def test_requests_past_shutdown_timeout_are_cancelled_with_503_and_the_worker_still_exits_0(gunicorn, db):
    server = gunicorn(SHUTDOWN_TIMEOUT="1")
    await server.wait_serving(db)
    token, slug = await _author_and_article(server.url)
    lock = await _lock_article(db, slug)
    put = asyncio.create_task(_put_body(server.url, token, slug, "never stored", request_id="slow-put"))
    await eventually(lambda: _waiting_on_lock(db, 1), "the PUT waiting on the row lock")

    server.signal(signal.SIGTERM)
    status, headers, body = await put  # the lock is still held: only the drain ends it
    assert status == 503
    assert headers["Retry-After"] == "1"
    assert body == {"errors": {"server": ["the service is shutting down; retry"]}, "requestId": "slow-put"}
    assert await server.wait_exit() == 0
    server.assert_clean_exit()  # in particular, gunicorn did not have to kill it
    assert server.matching("cancelled 1 requests still running after 1.0s")
    await eventually(lambda: _no_service_connections(db), "the pools' connections to leave pg_stat_activity")

    await lock.rollback()
    assert await db.fetchval("SELECT body FROM articles WHERE slug = $1", slug) == "original"


@pytest.fixture
async def fresh_database_url(server_dsn):
    """An empty database, for migrations to run in."""
    name = f"conduit_fresh_{os.getpid()}_{secrets.token_hex(3)}"
    await _admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    yield with_database(server_dsn, name)
    await _admin(server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_two_workers_started_together_share_one_migration_run(gunicorn, fresh_database_url):
    import asyncpg

    server = gunicorn(DATABASE_URL=fresh_database_url, MIGRATE_ON_START="true")
    await server.wait_for_lines(r"migrations done", count=2)  # one per worker: both are migrated
    async with aiohttp.ClientSession(server.url) as session:
        for _ in range(4):
            async with session.get("/readyz") as r:
                assert r.status == 200

    versions = [migration.version for migration in migrations()]
    conn = await asyncpg.connect(fresh_database_url)
    try:
        recorded = [row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()
    assert recorded == versions
    for version in versions:
        assert len(server.matching(f"applied migration {version}$")) == 1, server.log()
    assert not server.matching("retrying|failed"), server.log()

    server.signal(signal.SIGTERM)
    assert await server.wait_exit() == 0
    server.assert_clean_exit()


async def _waiting_on_lock(db, count: int) -> bool:
    return await conduit_backends(db, waiting_on_lock=True) >= count
