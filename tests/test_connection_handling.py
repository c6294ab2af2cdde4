"""The connection story: pool opened and closed with the app, one lazily-acquired connection per
request, given back on every path, commit and rollback, and backpressure instead of a hang."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiohttp import web

from service import keys
from service.db import _is_dead, connection, transactional
from service.errors import ApiError
from tests.helpers import all_given_back


def pool_of(client) -> asyncpg.Pool:
    return client.server.app[keys.POOL]


def in_use(pool: asyncpg.Pool) -> int:
    return pool.get_size() - pool.get_idle_size()


async def wait_until(predicate, timeout: float = 5.0) -> None:
    """Poll a condition (never a fixed sleep): fail loudly if it does not come true in time."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - the pool's counts have no event to wait on
            await asyncio.sleep(0.005)


class Probe:
    """Test-only routes, added to the app the real factory builds."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.task: asyncio.Task | None = None

    def install(self, app: web.Application) -> None:
        app.router.add_get("/t/ok", self.ok)
        app.router.add_get("/t/raise", self.raise_error)
        app.router.add_get("/t/error-response", self.error_response)
        app.router.add_get("/t/hold", self.hold)
        app.router.add_post("/t/tag/{name}/{outcome}", self.write_tag)

    async def ok(self, request: web.Request) -> web.Response:
        conn = await connection(request)
        return web.json_response({"one": await conn.fetchval("SELECT 1")})

    async def raise_error(self, request: web.Request) -> web.Response:
        await (await connection(request)).fetchval("SELECT 1")
        raise RuntimeError("boom")

    async def error_response(self, request: web.Request) -> web.Response:
        await (await connection(request)).fetchval("SELECT 1")
        return web.json_response({"errors": {"x": ["no"]}}, status=409)

    async def hold(self, request: web.Request) -> web.Response:
        await (await connection(request)).fetchval("SELECT 1")
        self.task = asyncio.current_task()
        self.entered.set()
        await self.release.wait()
        return web.json_response({})

    @transactional
    async def write_tag(self, request: web.Request) -> web.Response:
        conn = await connection(request)
        await conn.execute("INSERT INTO tags (name) VALUES ($1)", request.match_info["name"])
        outcome = request.match_info["outcome"]
        if outcome == "raise":
            raise RuntimeError("after the write")
        if outcome == "api-error":
            raise ApiError(422, {"name": ["rejected"]})
        if outcome == "error-response":
            return web.json_response({"errors": {}}, status=400)
        return web.json_response({}, status=201)


@pytest.fixture
def probe() -> Probe:
    return Probe()


async def test_pool_opens_with_the_app_and_closes_when_it_stops(make_client, database_url, db):
    client = await make_client()
    pool = pool_of(client)
    assert not pool.is_closing()
    assert (await client.get("/api/tags")).status == 200
    count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'conduit' AND datname = current_database()"
    assert await db.fetchval(count) >= 1
    await client.close()
    assert pool.is_closing()
    assert await db.fetchval(count) == 0


@pytest.mark.parametrize(("path", "status"), [("/t/ok", 200), ("/t/raise", 500), ("/t/error-response", 409)])
async def test_connection_goes_back_on_every_path(make_client, probe, path, status):
    client = await make_client(routes=probe.install)
    response = await client.get(path)
    assert response.status == status
    assert response.content_type == "application/json"
    assert all_given_back(client)


async def test_connection_goes_back_when_the_handler_is_cancelled(make_client, probe):
    client = await make_client(routes=probe.install)
    pool = pool_of(client)
    request = asyncio.create_task(client.get("/t/hold"))
    await asyncio.wait_for(probe.entered.wait(), 5)
    assert in_use(pool) == 1
    probe.task.cancel()
    await wait_until(lambda: in_use(pool) == 0)
    request.cancel()
    await asyncio.gather(request, return_exceptions=True)
    assert all_given_back(client)
    assert (await client.get("/t/ok")).status == 200


async def test_a_500_names_the_request_id_and_hides_the_details(make_client, probe):
    client = await make_client(routes=probe.install)
    response = await client.get("/t/raise", headers={"X-Request-ID": "req-123"})
    body = await response.json()
    assert response.status == 500
    assert body == {"errors": {"server": ["internal error"]}, "requestId": "req-123"}
    assert response.headers["X-Request-ID"] == "req-123"


@pytest.mark.parametrize(
    ("outcome", "status", "kept"),
    [("commit", 201, True), ("raise", 500, False), ("api-error", 422, False), ("error-response", 400, False)],
)
async def test_transaction_commits_on_success_and_rolls_back_otherwise(make_client, probe, db, outcome, status, kept):
    client = await make_client(routes=probe.install)
    response = await client.post(f"/t/tag/t-{outcome}/{outcome}")
    assert response.status == status
    stored = await db.fetchval("SELECT count(*) FROM tags WHERE name = $1", f"t-{outcome}")
    assert stored == (1 if kept else 0)
    assert all_given_back(client)


async def test_non_transactional_route_runs_in_autocommit(make_client, probe, db):
    """Without the flag, nothing wraps the request: a statement stands even if the answer is an error."""
    client = await make_client(routes=probe.install)
    login = {"user": {"email": "nobody@example.com", "password": "password123"}}
    assert (await client.post("/api/users/login", json=login)).status == 401
    assert await db.fetchval("SELECT count(*) FROM login_failures") == 2  # account and address


async def test_exhausted_pool_answers_503_with_retry_after_and_requests_without_db_still_pass(make_client, probe):
    client = await make_client(
        routes=probe.install, DB_POOL_MAX_SIZE="1", DB_POOL_MIN_SIZE="0", DB_ACQUIRE_TIMEOUT="0.2"
    )
    holder = asyncio.create_task(client.get("/t/hold"))
    await asyncio.wait_for(probe.entered.wait(), 5)

    busy = await client.get("/api/tags", headers={"X-Request-ID": "busy-1"})
    assert busy.status == 503
    assert busy.headers["Retry-After"] == "1"
    body = await busy.json()
    assert body["errors"] == {"database": ["no database connection is free; retry"]}
    assert body["requestId"] == "busy-1"

    # Requests that need no database take no pool slot, so they pass while the pool is full.
    assert (await client.get("/livez")).status == 200
    bad_token = await client.get("/api/user", headers={"Authorization": "Token not-a-jwt"})
    assert bad_token.status == 401
    invalid_body = await client.post("/api/users", json={"user": {"email": "x"}})
    assert invalid_body.status == 422

    probe.release.set()
    assert (await holder).status == 200
    assert (await client.get("/api/tags")).status == 200


async def test_put_back_frees_the_slot_and_the_next_use_takes_another(make_client, db):
    """Login gives its connection back while argon2 runs, so a login burst cannot hold the pool."""
    seen: dict[str, int] = {}

    def install(app: web.Application) -> None:
        async def handler(request: web.Request) -> web.Response:
            from service.db import put_back

            pool = request.app[keys.POOL]
            await (await connection(request)).fetchval("SELECT 1")
            seen["during"] = in_use(pool)
            await put_back(request)
            seen["after_put_back"] = in_use(pool)
            await (await connection(request)).fetchval("SELECT 1")
            seen["again"] = in_use(pool)
            return web.json_response({})

        app.router.add_get("/t/put-back", handler)

    client = await make_client(routes=install)
    assert (await client.get("/t/put-back")).status == 200
    assert seen == {"during": 1, "after_put_back": 0, "again": 1}
    assert all_given_back(client)


async def test_a_commit_on_a_connection_that_died_is_never_answered_as_success(make_client, db):
    """The backend dies after the handler's last statement: its transaction never commits, so the
    request may not answer 201. Nothing was committed, so it runs once more, and stores once."""
    runs: list[int] = []

    def install(app: web.Application) -> None:
        @transactional
        async def handler(request: web.Request) -> web.Response:
            conn = await connection(request)
            await conn.execute("INSERT INTO tags (name) VALUES ('once')")
            runs.append(conn.get_server_pid())
            if len(runs) == 1:
                await db.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
                await wait_until(lambda: _is_dead(conn))  # asyncpg has seen the EOF
            return web.json_response({}, status=201)

        app.router.add_post("/t/dies-before-commit", handler)

    client = await make_client(routes=install)
    response = await client.post("/t/dies-before-commit")
    assert response.status == 201
    assert len(runs) == 2  # the first run's answer was not sent: it ran once more
    assert await db.fetchval("SELECT count(*) FROM tags WHERE name = 'once'") == 1


async def test_a_client_leaving_mid_body_is_its_fault_not_a_database_outage(client):
    """A hang-up while the body is read answers 400 (logged and counted as such), not a 503
    counted among database errors."""
    metrics = client.server.app[keys.METRICS]
    _reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        b'POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"user":'
    )
    await writer.drain()
    writer.close()
    labels = {"method": "POST", "route": "/api/users"}

    def answered(status: str) -> float | None:
        return metrics.registry.get_sample_value("http_requests_total", {**labels, "status": status})

    await wait_until(lambda: answered("400") or answered("503"))
    assert answered("400") == 1
    assert answered("503") is None
    assert metrics.registry.get_sample_value("db_errors_total", {"kind": "connection"}) is None


async def test_a_deadlock_victim_runs_once_more_and_both_writes_succeed(make_client, db):
    """Two transactional requests lock two rows in opposite orders: PostgreSQL aborts one as a
    deadlock's victim, and the middleware runs it once more (its transaction rolled back, its
    body kept), so both answer 200 and both writes are there."""
    await db.execute("CREATE TABLE IF NOT EXISTS deadlock_probe (id int PRIMARY KEY, n int NOT NULL)")
    await db.execute("TRUNCATE deadlock_probe")
    await db.execute("INSERT INTO deadlock_probe VALUES (1, 0), (2, 0)")
    locked = {1: asyncio.Event(), 2: asyncio.Event()}
    runs = {1: 0, 2: 0}

    @transactional
    async def write(request: web.Request) -> web.Response:
        first = int(request.match_info["first"])
        second = 3 - first
        runs[first] += 1
        conn = await connection(request)
        await conn.execute("UPDATE deadlock_probe SET n = n + 1 WHERE id = $1", first)
        if runs[first] == 1:  # the first run waits until the other request holds its row
            locked[first].set()
            await locked[second].wait()
        await conn.execute("UPDATE deadlock_probe SET n = n + 1 WHERE id = $1", second)
        return web.json_response({"ok": True})

    client = await make_client(routes=lambda app: app.router.add_post("/t/deadlock/{first}", write))
    try:
        answers = await asyncio.gather(client.post("/t/deadlock/1"), client.post("/t/deadlock/2"))
        assert [response.status for response in answers] == [200, 200]
        assert sorted(runs.values()) == [1, 2]  # the victim ran twice
        assert await db.fetchval("SELECT sum(n) FROM deadlock_probe") == 4  # nothing lost, nothing twice
    finally:
        await db.execute("DROP TABLE deadlock_probe")
