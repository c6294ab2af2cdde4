"""The pool gives connections back without asyncpg's reset query (service/db.py, keep_session):
that is only sound while no route leaves session state behind. With one pooled connection, every
declared operation runs, successes and errors, and the connection must then look like a fresh
one: no session-level settings, listeners, advisory locks, cursors or temporary tables. (The
"transaction" mode runs against PostgreSQL directly here; tests/outage/test_pgbouncer.py runs
the API through a real PgBouncer.)"""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp import web

from service import keys
from service.app import api_endpoints
from service.db import connection
from tests.helpers import auth, create_article, register

# Settings changed for the session (asyncpg's type introspection turns jit off and back on: the
# value is the default again); cursors besides the unnamed portal of this very query.
STATE = """
SELECT (SELECT coalesce(array_agg(name ORDER BY name), '{}') FROM pg_settings
         WHERE source = 'session' AND setting IS DISTINCT FROM reset_val) AS settings,
       (SELECT coalesce(array_agg(channel), '{}') FROM pg_listening_channels() AS channel) AS channels,
       (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory') AS advisory_locks,
       (SELECT count(*) FROM pg_cursors WHERE name <> '') AS cursors,
       (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temporary_tables
"""
FRESH = {"settings": [], "channels": [], "advisory_locks": 0, "cursors": 0, "temporary_tables": 0}


async def session_state(client) -> dict:
    pool: asyncpg.Pool = client.server.app[keys.POOL]
    assert pool.get_max_size() == 1  # the connection every request used
    async with pool.acquire() as conn:
        row = await conn.fetchrow(STATE)
    assert row is not None
    return dict(row)


def operations_answered(client) -> set[tuple[str, str]]:
    metrics = client.server.app[keys.METRICS]
    [family] = metrics.requests.collect()
    return {(s.labels["method"], s.labels["route"]) for s in family.samples if s.name.endswith("_total")}


async def every_operation(client) -> None:
    """Each declared operation at least once, with a few of their error answers besides."""
    jake, jane = await register(client), await register(client)
    me, her = auth(jake["token"]), auth(jane["token"])
    assert (
        await client.post(
            "/api/users/login", json={"user": {"email": f"{jake['username']}@example.com", "password": "password123"}}
        )
    ).status == 200
    wrong = {"user": {"email": "no@example.com", "password": "wrong-password"}}
    assert (await client.post("/api/users/login", json=wrong)).status == 401
    assert (await client.post("/api/users/login", json=wrong)).status == 429  # LOGIN_MAX_FAILURES=1
    assert (await client.get("/api/user", headers=me)).status == 200
    assert (await client.put("/api/user", json={"user": {"bio": "hi"}}, headers=me)).status == 200
    assert (await client.put("/api/user", json={"user": {"username": jane["username"]}}, headers=me)).status == 409
    assert (await client.get(f"/api/profiles/{jane['username']}", headers=me)).status == 200
    assert (await client.post(f"/api/profiles/{jane['username']}/follow", headers=me)).status == 200
    assert (await client.delete(f"/api/profiles/{jane['username']}/follow", headers=me)).status == 200
    slug = (await create_article(client, jane["token"], tags=["state"]))["slug"]
    assert (await client.get("/api/articles?tag=state", headers=me)).status == 200
    assert (await client.get("/api/articles/feed", headers=me)).status == 200
    assert (await client.get(f"/api/articles/{slug}")).status == 200
    assert (await client.put(f"/api/articles/{slug}", json={"article": {"body": "new"}}, headers=me)).status == 403
    assert (await client.put(f"/api/articles/{slug}", json={"article": {"body": "new"}}, headers=her)).status == 200
    assert (await client.post(f"/api/articles/{slug}/favorite", headers=me)).status == 200
    assert (await client.delete(f"/api/articles/{slug}/favorite", headers=me)).status == 200
    response = await client.post(f"/api/articles/{slug}/comments", json={"comment": {"body": "hi"}}, headers=me)
    assert response.status == 201
    comment_id = (await response.json())["comment"]["id"]
    assert (await client.get(f"/api/articles/{slug}/comments")).status == 200
    assert (await client.delete(f"/api/articles/{slug}/comments/{comment_id}", headers=me)).status == 204
    assert (await client.get("/api/tags")).status == 200
    assert (await client.delete(f"/api/articles/{slug}", headers=her)).status == 204
    assert (await client.get(f"/api/articles/{slug}")).status == 404
    assert (await client.get("/t/statement-timeout")).status == 503  # cancelled by the server


async def statement_timeout(request: web.Request) -> web.Response:
    await (await connection(request)).execute("SELECT pg_sleep(1)")  # DB_STATEMENT_TIMEOUT=0.1
    return web.json_response({})


@pytest.mark.parametrize("mode", ["session", "transaction"])
async def test_no_route_leaves_session_state_on_its_connection(make_client, mode):
    client = await make_client(
        routes=lambda app: app.router.add_get("/t/statement-timeout", statement_timeout),
        DB_POOL_MIN_SIZE="1",
        DB_POOL_MAX_SIZE="1",
        DB_POOL_MODE=mode,
        LOGIN_MAX_FAILURES="1",
        DB_STATEMENT_TIMEOUT="0.1",
    )
    await every_operation(client)
    declared = {(e.method, client.server.app.router[e.operation_id].canonical) for e in api_endpoints().endpoints}
    assert declared <= operations_answered(client)
    assert await session_state(client) == FRESH


async def test_the_check_sees_session_state_that_a_reset_would_have_undone(make_client):
    """The inspection above is not vacuous: a route that leaves each kind of state behind shows."""

    async def leave_state(request: web.Request) -> web.Response:
        conn = await connection(request)
        await conn.execute("SET work_mem = '8MB'; LISTEN somewhere; SELECT pg_advisory_lock(42)")
        await conn.execute("DECLARE held CURSOR WITH HOLD FOR SELECT 1; CREATE TEMP TABLE scratch (x int)")
        return web.json_response({})

    client = await make_client(
        routes=lambda app: app.router.add_get("/t/leave-state", leave_state), DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1"
    )
    assert (await client.get("/t/leave-state")).status == 200
    assert await session_state(client) == {
        "settings": ["work_mem"],
        "channels": ["somewhere"],
        "advisory_locks": 1,
        "cursors": 1,
        "temporary_tables": 1,
    }
