"""Real gunicorn, two workers, started while PostgreSQL is down: no "worker failed to boot", no
crash loop; live at once, ready (and migrated, once) as soon as the database is up."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from tests.gunicorn_process import Gunicorn
from tests.outage.conftest import JWT_SECRET, wait_for

pytestmark = [pytest.mark.outage, pytest.mark.gunicorn]


async def status(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as response:
        await response.read()
        return response.status


async def test_gunicorn_starts_with_the_database_down_and_becomes_ready_once_it_is_up(postgres, admin_of):
    await postgres.create_database("fresh")
    postgres.stop()
    server = Gunicorn(postgres.url("fresh"), APP_ENV="production", MIGRATE_ON_START="true", JWT_SECRET=JWT_SECRET)
    try:
        server.start()
        await server.wait_for_lines("database unreachable at start-up", count=2)  # each worker booted
        async with aiohttp.ClientSession() as session:
            for _ in range(6):  # whichever worker answers: live, not ready, the API 503 with JSON
                assert await status(session, server.url + "/livez") == 200
                assert await status(session, server.url + "/readyz") == 503
                async with session.get(server.url + "/api/tags") as response:
                    assert response.status == 503 and "errors" in await response.json()

            await asyncio.to_thread(postgres.start)
            await server.wait_for_lines("migrations done", count=2)  # each worker's readiness is on
            for _ in range(6):
                await wait_for(lambda: status(session, server.url + "/readyz"), 200)
            user = {"username": "booted", "email": "booted@example.com", "password": "password123"}
            async with session.post(server.url + "/api/users", json={"user": user}) as response:
                assert response.status == 201, await response.text()
        server.signal(signal.SIGTERM)
        code = await server.wait_exit()
    finally:
        server.close()
    log = server.log()
    assert code == 0, log
    assert "Worker failed to boot" not in log and "Traceback" not in log, log
    assert len(server.worker_pids()) == 2, log  # no worker died and was replaced
    admin = await admin_of(postgres, "fresh")
    # Both workers raced to migrate; each file was applied once, by one of them.
    assert await admin.fetchval("SELECT count(*) FROM schema_migrations") == len(server.matching("applied migration"))
