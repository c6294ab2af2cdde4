"""The database goes away and comes back: requests fail fast with 503 and JSON, the probes tell
the truth, and the service serves again by itself with no request failing on a stale connection."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import all_given_back, auth, create_article, register
from tests.outage.conftest import alive, assert_unavailable, backends, wait_for

pytestmark = pytest.mark.outage


async def ready(client) -> bool:
    return (await client.get("/readyz")).status == 200


async def all_succeed(client, token: str, count: int = 12) -> None:
    """A burst of reads and transactional writes, concurrently, every one answered well."""

    async def read(i: int) -> int:
        return (await client.get("/api/articles", headers=auth(token))).status

    async def write(i: int) -> int:
        response = await client.put("/api/user", json={"user": {"bio": f"bio {i}"}}, headers=auth(token))
        return response.status

    statuses = await asyncio.gather(*(read(i) if i % 2 else write(i) for i in range(count)))
    assert statuses == [200] * count


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_stopped_database_answers_503_at_once_and_the_service_recovers_by_itself(make_postgres, serve, mode):
    # Commits reach the WAL before they are acknowledged, so an immediate stop (a crash) keeps them.
    postgres = make_postgres(synchronous_commit="on")
    client = await serve(postgres.url(), DB_POOL_MAX_SIZE="4")
    user = await register(client)
    await create_article(client, user["token"])
    await all_succeed(client, user["token"])  # the pool is warm: its connections will go stale

    postgres.stop(mode)

    for path in ("/api/articles", "/api/tags"):
        await assert_unavailable(await client.get(path))
    await assert_unavailable(await client.put("/api/user", json={"user": {"bio": "x"}}, headers=auth(user["token"])))
    assert (await client.get("/livez")).status == 200
    readiness = await client.get("/readyz")
    assert readiness.status == 503
    assert (await readiness.json())["status"] == "unavailable"

    postgres.start()
    await wait_for(lambda: ready(client))
    await all_succeed(client, user["token"])
    assert all_given_back(client)


async def test_killed_backends_are_replaced_without_a_single_failed_request(postgres, serve, admin_of):
    """pg_terminate_backend on every idle pooled connection, then traffic at once: asyncpg may not
    have seen the FATAL message and the EOF yet, so a request can pick a dead connection; it runs
    once more on a fresh one instead of failing."""
    client = await serve(postgres.url(), DB_POOL_MAX_SIZE="4")
    user = await register(client)
    admin = await admin_of(postgres)
    for _ in range(5):
        await all_succeed(client, user["token"], count=8)
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'conduit'"
        )
        assert killed >= 1
        await all_succeed(client, user["token"], count=8)
    assert (await client.get("/readyz")).status == 200


async def kill_during_pause(postgres, admin_of, routes) -> None:
    await asyncio.wait_for(routes.entered.wait(), 5)
    admin = await admin_of(postgres)
    victim = routes.pids[0]
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", victim)
    await wait_for(lambda: alive(admin, victim), False)
    routes.proceed.set()


async def test_a_transaction_whose_connection_dies_mid_request_runs_once_more(postgres, serve, routes, admin_of):
    client = await serve(postgres.url(), routes=routes)
    request = asyncio.create_task(client.post("/t/pause-in-transaction"))
    await kill_during_pause(postgres, admin_of, routes)
    response = await request
    assert response.status == 201, await response.text()
    assert routes.runs == 2 and routes.pids[0] != routes.pids[1]
    admin = await admin_of(postgres)
    # The first run's write died with its transaction; only the second one's is there.
    assert await admin.fetchval("SELECT array_agg(name) FROM tags") == ["run2"]


async def test_autocommitted_work_is_not_run_again_when_its_connection_dies(postgres, serve, routes, admin_of):
    """Outside a transaction the first run's write is already committed: running the handler
    again could write twice, so the answer is 503."""
    client = await serve(postgres.url(), routes=routes)
    request = asyncio.create_task(client.post("/t/pause-autocommit"))
    await kill_during_pause(postgres, admin_of, routes)
    await assert_unavailable(await request, message="the database connection failed")
    assert routes.runs == 1
    admin = await admin_of(postgres)
    assert await admin.fetchval("SELECT array_agg(name) FROM tags") == ["run1"]
    assert (await client.get("/api/tags")).status == 200


async def test_a_read_whose_connection_dies_mid_request_runs_once_more(postgres, serve, routes, admin_of):
    client = await serve(postgres.url(), routes=routes)
    request = asyncio.create_task(client.get("/t/pause"))
    await kill_during_pause(postgres, admin_of, routes)
    response = await request
    assert response.status == 200, await response.text()
    assert routes.runs == 2


async def test_started_with_the_database_down_it_becomes_ready_and_migrates_once_it_is_up(postgres, serve, admin_of):
    await postgres.create_database("fresh")
    postgres.stop()
    client = await serve(postgres.url("fresh"), MIGRATE_ON_START="true")

    assert (await client.get("/livez")).status == 200
    readiness = await client.get("/readyz")
    assert readiness.status == 503
    assert (await readiness.json())["reason"] == "database not migrated yet"
    await assert_unavailable(await client.get("/api/tags"), message="the service is starting; retry")

    postgres.start()
    await wait_for(lambda: ready(client), timeout=30)  # the migration retry backs off up to 5 s
    admin = await admin_of(postgres, "fresh")
    assert await admin.fetchval("SELECT count(*) FROM schema_migrations") >= 2
    user = await register(client)
    await all_succeed(client, user["token"])
    assert await backends(admin) >= 1  # the pool connected by itself
