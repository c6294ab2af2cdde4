"""The rest of the known traps: a failover to a read-only server, more connections than the
server allows, a schema change under cached statements, a server that never answers a connect."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.helpers import all_given_back, auth, register
from tests.outage.conftest import (
    WAITING_ON_A_LOCK,
    TestRoutes,
    alive,
    assert_unavailable,
    backends,
    wait_for,
)

pytestmark = pytest.mark.outage


async def read_only(server, admin_of, on: bool) -> None:
    """The honest stand-in for a failover: the server itself refuses writes from now on, for
    existing sessions too (ALTER SYSTEM + reload), as a demoted primary would."""
    admin = await admin_of(server)
    if on:
        await admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
    else:
        await admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
    await admin.execute("SELECT pg_reload_conf()")


async def session(client) -> dict:
    return await (await client.get("/t/session")).json()


async def _sees_read_only(client, expected: str) -> bool:
    return (await session(client))["read_only"] == expected


async def test_writes_on_a_server_turned_read_only_answer_503_and_the_pool_is_recycled(
    postgres, serve, routes, admin_of
):
    client = await serve(postgres.url(), routes=routes, DB_POOL_MAX_SIZE="1")
    user = await register(client)
    before = (await session(client))["pid"]
    await read_only(postgres, admin_of, True)
    await wait_for(lambda: _sees_read_only(client, "on"))  # the pooled session has the new setting

    response = await client.put("/api/user", json={"user": {"bio": "lost?"}}, headers=auth(user["token"]))
    # It ran once more on a fresh connection, which asyncpg refused: no server of the DSN is
    # read-write (DB_TARGET_SESSION_ATTRS=read-write).
    await assert_unavailable(response, message="no database server accepts writes")
    admin = await admin_of(postgres)
    assert not await alive(admin, before)
    assert (await client.get("/readyz")).status == 503

    await read_only(postgres, admin_of, False)
    await wait_for(lambda: _ready(client))
    response = await client.put("/api/user", json={"user": {"bio": "written"}}, headers=auth(user["token"]))
    assert response.status == 200


async def test_readiness_notices_a_read_only_server_before_any_write_does(postgres, serve, routes, admin_of):
    client = await serve(postgres.url(), routes=routes, DB_POOL_MAX_SIZE="1")
    before = (await session(client))["pid"]
    await read_only(postgres, admin_of, True)
    await wait_for(lambda: _sees_read_only(client, "on"))
    assert (await client.get("/readyz")).status == 503
    # The pool's connections were expired: the next use replaces the read-only session (and,
    # with only a read-only server in the DSN, cannot find a writable one).
    await assert_unavailable(await client.get("/t/session"), message="no database server accepts writes")
    admin = await admin_of(postgres)
    assert not await alive(admin, before)


async def test_after_a_failover_a_write_runs_once_more_on_the_new_primary(make_postgres, serve, routes, admin_of):
    """Two servers in the DSN; the one the pool is connected to turns read-only (the old primary),
    the other accepts writes (the new one): the write that met the read-only server is rolled
    back, the pool recycled, and the request answered by the new primary."""
    old, new = make_postgres(), make_postgres()
    dsn = f"postgresql://conduit@127.0.0.1:{old.port},127.0.0.1:{new.port}/conduit"
    client = await serve(dsn, routes=routes, DB_POOL_MAX_SIZE="1")
    old_admin, new_admin = await admin_of(old), await admin_of(new)
    pid = (await session(client))["pid"]
    assert await alive(old_admin, pid)
    await read_only(old, admin_of, True)
    await wait_for(lambda: _sees_read_only(client, "on"))

    user = {"username": "afterfailover", "email": "after@example.com", "password": "password123"}
    response = await client.post("/api/users", json={"user": user})
    assert response.status == 201, await response.text()
    assert await new_admin.fetchval("SELECT count(*) FROM users WHERE username = 'afterfailover'") == 1
    assert await old_admin.fetchval("SELECT count(*) FROM users") == 0


async def test_more_connections_than_the_server_allows_answer_503_not_500(make_postgres, serve, routes, admin_of):
    """Two workers (two apps) whose pools add up to more than max_connections leaves room for."""
    # 6 slots, 2 kept for superusers, 1 taken by the test's superuser connection: 3 for the app.
    small = make_postgres(max_connections="6", superuser_reserved_connections="2")
    first = await serve(small.url(), routes=routes, DB_POOL_MAX_SIZE="2", DB_STATEMENT_TIMEOUT="30")
    second = await serve(small.url(), routes=routes, DB_POOL_MAX_SIZE="2", DB_STATEMENT_TIMEOUT="30")
    admin = await admin_of(small)
    await admin.execute("SELECT pg_advisory_lock($1)", TestRoutes.LOCK)
    holders = [asyncio.create_task(client.get("/t/wait-lock")) for client in (first, first, second)]
    await wait_for(lambda: backends(admin, WAITING_ON_A_LOCK), 3)

    # The second worker has a free pool slot, but the server has no connection left to give.
    await assert_unavailable(await second.get("/api/tags"), message="the database is overloaded")
    assert (await second.get("/livez")).status == 200

    await admin.execute("SELECT pg_advisory_unlock($1)", TestRoutes.LOCK)
    assert [r.status for r in await asyncio.gather(*holders)] == [200, 200, 200]
    assert (await second.get("/api/tags")).status == 200


async def test_a_schema_change_under_a_cached_statement_reruns_the_transaction(postgres, serve, admin_of, caplog):
    """asyncpg retries a statement whose result type changed by itself, but not inside a
    transaction (InvalidCachedStatementError): the request's transaction runs once more."""
    client = await serve(postgres.url(), DB_POOL_MAX_SIZE="1")
    user = await register(client)
    update = {"user": {"bio": "cached"}}
    assert (await client.put("/api/user", json=update, headers=auth(user["token"]))).status == 200
    admin = await admin_of(postgres)
    await admin.execute("ALTER TABLE users ALTER COLUMN email TYPE varchar(320)")  # a result type changes

    response = await client.put("/api/user", json={"user": {"bio": "after"}}, headers=auth(user["token"]))
    assert response.status == 200, await response.text()
    assert (await response.json())["user"]["bio"] == "after"
    assert any("InvalidCachedStatementError" in r.getMessage() for r in caplog.records if r.name == "service.db")
    statuses = await asyncio.gather(
        *(client.put("/api/user", json={"user": {"bio": str(i)}}, headers=auth(user["token"])) for i in range(6))
    )
    assert [r.status for r in statuses] == [200] * 6


async def test_a_server_that_never_answers_is_given_up_on_after_the_connect_timeout(serve, caplog):
    """A listening socket that never speaks (a half-dead host, a black-holed route): asyncpg's own
    default would wait 60 s per attempt. The acquire budget here is far longer than the connect
    timeout, so the answer's kind shows which bound fired."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        client = await serve(
            f"postgresql://conduit@127.0.0.1:{port}/conduit", DB_CONNECT_TIMEOUT="0.2", DB_ACQUIRE_TIMEOUT="60"
        )
        assert (await client.get("/livez")).status == 200
        await assert_unavailable(await client.get("/api/tags"), message="the database did not answer in time")
        assert (await client.get("/readyz")).status == 503
        assert all_given_back(client)
    assert "connect_timeout" in [
        r.getMessage().split("(", 1)[1].split(")", 1)[0] for r in caplog.records if r.name == "service.errors"
    ]


async def _ready(client) -> bool:
    return (await client.get("/readyz")).status == 200
