"""More requests than connections, queries past their limits, clients that hang up: bounded
waits, 503 with JSON, and a connection that is clean for the next request."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import all_given_back, auth, register
from tests.outage.conftest import (
    IDLE_IN_TRANSACTION,
    WAITING_ON_A_LOCK,
    TestRoutes,
    alive,
    assert_unavailable,
    backends,
    in_use,
    pool_of,
    wait_for,
)

pytestmark = pytest.mark.outage


def kinds(caplog) -> list[str]:
    """The kinds of database failure the error middleware logged (`database unavailable (kind)`)."""
    return [r.getMessage().split("(", 1)[1].split(")", 1)[0] for r in caplog.records if r.name == "service.errors"]


async def test_overload_waits_at_most_the_acquire_timeout_then_503_and_recovers_at_once(
    postgres, serve, routes, admin_of
):
    client = await serve(
        postgres.url(), routes=routes, DB_POOL_MAX_SIZE="2", DB_ACQUIRE_TIMEOUT="0.3", DB_STATEMENT_TIMEOUT="30"
    )
    admin = await admin_of(postgres)
    await admin.execute("SELECT pg_advisory_lock($1)", TestRoutes.LOCK)
    holders = [asyncio.create_task(client.get("/t/wait-lock")) for _ in range(2)]
    await wait_for(lambda: backends(admin, WAITING_ON_A_LOCK), 2)
    assert in_use(pool_of(client)) == 2  # saturated

    excess = await asyncio.gather(*(client.get("/api/tags") for _ in range(4)))
    for response in excess:
        await assert_unavailable(response, message="no database connection is free; retry")
    assert (await client.get("/livez")).status == 200
    # The body is read and validated before a connection is taken: a bad one is still a 422.
    invalid = await client.post("/api/users", json={"user": {"username": "x"}})
    assert invalid.status == 422, await invalid.text()
    assert "email" in (await invalid.json())["errors"]

    await admin.execute("SELECT pg_advisory_unlock($1)", TestRoutes.LOCK)
    assert [response.status for response in await asyncio.gather(*holders)] == [200, 200]
    assert (await client.get("/api/tags")).status == 200
    assert all_given_back(client)


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
async def test_every_timeout_is_set_on_the_server(postgres, serve, routes, pool_mode):
    client = await serve(
        postgres.url(),
        routes=routes,
        DB_POOL_MODE=pool_mode,
        DB_STATEMENT_TIMEOUT="2.5",
        DB_LOCK_TIMEOUT="0.75",
        DB_IDLE_IN_TRANSACTION_TIMEOUT="30",
    )
    session = await (await client.get("/t/session")).json()
    assert session["statement_timeout"] == "2500ms"
    assert session["lock_timeout"] == "750ms"
    assert session["idle_in_transaction_session_timeout"] == "30s"


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
async def test_a_statement_timeout_answers_503_and_leaves_the_connection_clean(
    postgres, serve, routes, admin_of, caplog, pool_mode
):
    client = await serve(
        postgres.url(), routes=routes, DB_POOL_MAX_SIZE="1", DB_STATEMENT_TIMEOUT="0.5", DB_POOL_MODE=pool_mode
    )
    admin = await admin_of(postgres)
    pid = (await (await client.get("/t/session")).json())["pid"]

    await assert_unavailable(await client.get("/t/sleep/30"), message="the database did not answer in time")
    await assert_unavailable(await client.post("/t/sleep-in-transaction/30"))
    assert kinds(caplog) == ["statement_timeout", "statement_timeout"]

    assert await admin.fetchval("SELECT count(*) FROM tags") == 0  # the transaction was rolled back
    assert await backends(admin, IDLE_IN_TRANSACTION) == 0
    # The same connection serves the next request: nothing in progress, no transaction open.
    assert (await (await client.get("/t/session")).json())["pid"] == pid
    assert (await client.get("/api/tags")).status == 200


async def test_a_lock_timeout_is_enforced_by_the_server(postgres, serve, admin_of, caplog):
    client = await serve(postgres.url(), DB_STATEMENT_TIMEOUT="30", DB_LOCK_TIMEOUT="0.2")
    user = await register(client)
    admin = await admin_of(postgres)
    async with admin.transaction():
        await admin.execute("SELECT 1 FROM users WHERE username = $1 FOR UPDATE", user["username"])
        response = await client.put("/api/user", json={"user": {"bio": "waits"}}, headers=auth(user["token"]))
        await assert_unavailable(response, message="the database did not answer in time")
    assert kinds(caplog) == ["lock_timeout"]
    response = await client.put("/api/user", json={"user": {"bio": "free"}}, headers=auth(user["token"]))
    assert response.status == 200


async def test_an_idle_transaction_is_ended_by_the_server_and_the_request_runs_once_more(
    postgres, serve, routes, admin_of
):
    client = await serve(postgres.url(), routes=routes, DB_IDLE_IN_TRANSACTION_TIMEOUT="0.5")
    admin = await admin_of(postgres)
    request = asyncio.create_task(client.post("/t/pause-in-transaction"))
    await asyncio.wait_for(routes.entered.wait(), 5)
    # The handler idles inside its transaction; the server, not the app, ends that session.
    await wait_for(lambda: alive(admin, routes.pids[0]), False)
    routes.proceed.set()
    response = await request
    assert response.status == 201, await response.text()
    assert routes.runs == 2  # its transaction was rolled back by the server, so it ran again
    assert await admin.fetchval("SELECT array_agg(name) FROM tags") == ["run2"]


async def open_raw_request(client, method: str, path: str, body: bytes, token: str):
    """A client that sends a whole request and can then hang up without reading the answer."""
    _reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Authorization: Token {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    return writer


def hung_up(client) -> bool:
    """aiohttp has seen a connection close while its handler still runs (test-side view of its
    server's connections; a finished handler's connection is forgotten)."""
    return any(handler.transport is None for handler in client.server.runner.server.connections)


async def test_a_client_hanging_up_does_not_cancel_its_request_which_completes_and_gives_back_a_clean_connection(
    postgres, serve, admin_of
):
    """handler_cancellation is off, in production (service/worker.py) and here: a hang-up does not
    interrupt the handler, so a write the client gave up on is finished and committed whole."""
    client = await serve(postgres.url(), DB_STATEMENT_TIMEOUT="30")
    user = await register(client)
    admin = await admin_of(postgres)
    lock = admin.transaction()
    await lock.start()
    await admin.execute("SELECT 1 FROM users WHERE username = $1 FOR UPDATE", user["username"])
    writer = await open_raw_request(client, "PUT", "/api/user", b'{"user": {"bio": "finished"}}', user["token"])
    await wait_for(lambda: backends(admin, WAITING_ON_A_LOCK), 1)
    writer.close()
    await wait_for(lambda: hung_up(client))
    await lock.rollback()

    bio = "SELECT bio FROM users WHERE username = $1"
    await wait_for(lambda: admin.fetchval(bio, user["username"]), "finished")
    pool = pool_of(client)
    await wait_for(lambda: in_use(pool), 0)
    assert await backends(admin, IDLE_IN_TRANSACTION) == 0
    response = await client.put("/api/user", json={"user": {"bio": "next"}}, headers=auth(user["token"]))
    assert response.status == 200


async def test_with_handler_cancellation_on_a_hang_up_cancels_the_query_and_the_connection_stays_usable(
    postgres, serve, admin_of
):
    """What aiohttp's own test server does (and what SHUTDOWN_TIMEOUT does to late requests): the
    handler is cancelled mid-query; asyncpg cancels the query, the transaction rolls back, and
    the next request on that connection sees no "another operation is in progress"."""
    client = await serve(postgres.url(), cancellation=True, DB_POOL_MAX_SIZE="1", DB_STATEMENT_TIMEOUT="30")
    user = await register(client)
    admin = await admin_of(postgres)
    lock = admin.transaction()
    await lock.start()
    await admin.execute("SELECT 1 FROM users WHERE username = $1 FOR UPDATE", user["username"])
    writer = await open_raw_request(client, "PUT", "/api/user", b'{"user": {"bio": "abandoned"}}', user["token"])
    await wait_for(lambda: backends(admin, WAITING_ON_A_LOCK), 1)
    writer.close()
    await wait_for(lambda: backends(admin, WAITING_ON_A_LOCK), 0)  # the query was cancelled
    await lock.rollback()

    pool = pool_of(client)
    await wait_for(lambda: in_use(pool), 0)
    assert await backends(admin, IDLE_IN_TRANSACTION) == 0
    assert await admin.fetchval("SELECT bio FROM users WHERE username = $1", user["username"]) != "abandoned"
    response = await client.put("/api/user", json={"user": {"bio": "next"}}, headers=auth(user["token"]))
    assert response.status == 200, await response.text()
