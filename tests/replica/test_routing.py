"""Routing: with a healthy replica, reads never reach the primary; writes, transactions and
pinned routes do. Proven with the primary's own statement log."""

from __future__ import annotations

import pytest
from aiohttp import web

from service import keys
from service.db import connection, pinned_to_primary, transactional
from service.embedded import free_port
from tests.outage.conftest import wait_for
from tests.replica.conftest import Pair

pytestmark = pytest.mark.replica


async def register(client, name: str) -> str:
    response = await client.post(
        "/api/users", json={"user": {"username": name, "email": f"{name}@example.com", "password": "password123"}}
    )
    assert response.status == 201, await response.text()
    return (await response.json())["user"]["token"]


async def test_reads_reach_the_replica_alone_while_writes_reach_the_primary(make_app_client, fresh: Pair) -> None:
    client = await make_app_client()
    token = await register(client, "writer")
    auth = {"Authorization": f"Token {token}"}
    article = {"article": {"title": "Routed", "description": "d", "body": "b", "tagList": ["x"]}}
    response = await client.post("/api/articles", json=article, headers=auth)
    assert response.status == 201
    slug = (await response.json())["article"]["slug"]
    await fresh.seen_by(client.server.app)

    since = fresh.primary_log_offset()
    reads = [
        ("/api/articles", None),
        ("/api/articles", auth),
        (f"/api/articles/{slug}", None),
        (f"/api/articles/{slug}", auth),
        (f"/api/articles/{slug}/comments", auth),
        ("/api/profiles/writer", auth),
        ("/api/user", auth),
        ("/api/tags", None),
        ("/api/articles/feed", auth),
    ]
    for path, headers in reads:
        response = await client.get(path, headers=headers)
        assert response.status == 200, (path, await response.text())
    assert (await (await client.get(f"/api/articles/{slug}")).json())["article"]["title"] == "Routed"
    assert fresh.primary_statements(since) == []  # not one statement of the service's pools
    # Signed-in reads looked their fences up, on the primary, in the monitor's own session.
    assert any("read_fences" in line for line in fresh.primary_statements(since, "conduit-monitor"))

    # The check can fail: a write is seen on the primary by the same log.
    since = fresh.primary_log_offset()
    response = await client.post(f"/api/articles/{slug}/favorite", headers=auth)
    assert response.status == 200
    statements = fresh.primary_statements(since)
    assert any("favorites" in line for line in statements)
    assert any("set_fence" in line for line in statements)  # the write's fence, after its commit

    samples = pool_requests(client.server.app)
    assert samples["primary"] >= 3  # registration, the article, the favorite
    replica_label = client.server.app[keys.REPLICAS].replicas[0].label
    assert samples[replica_label] == len(reads) + 1


async def test_a_pinned_route_and_a_transaction_read_from_the_primary(make_app_client, fresh: Pair) -> None:
    @pinned_to_primary
    async def pinned(request: web.Request) -> web.Response:
        conn = await connection(request)
        return web.json_response({"n": await conn.fetchval("SELECT count(*) FROM users /* pinned */")})

    @transactional
    async def in_transaction(request: web.Request) -> web.Response:
        conn = await connection(request)
        return web.json_response({"n": await conn.fetchval("SELECT count(*) FROM users /* in a transaction */")})

    async def plain(request: web.Request) -> web.Response:
        conn = await connection(request)
        return web.json_response({"n": await conn.fetchval("SELECT count(*) FROM users /* plain */")})

    def routes(app: web.Application) -> None:
        app.router.add_get("/test/pinned", pinned)
        app.router.add_get("/test/transaction", in_transaction)
        app.router.add_get("/test/plain", plain)

    client = await make_app_client(routes=routes)
    since = fresh.primary_log_offset()
    for path in ("/test/pinned", "/test/transaction", "/test/plain"):
        response = await client.get(path)
        assert response.status == 200, await response.text()
    response = await client.head("/test/plain")  # a HEAD reads where its GET does
    assert response.status == 200
    statements = "\n".join(fresh.primary_statements(since))
    assert "/* pinned */" in statements
    assert "/* in a transaction */" in statements
    assert "/* plain */" not in statements  # the same read, unpinned, went to the replica
    replica_label = client.server.app[keys.REPLICAS].replicas[0].label
    assert pool_requests(client.server.app)[replica_label] == 2  # the GET and the HEAD


def test_a_declared_route_can_be_pinned_to_the_primary() -> None:
    from service.routing import Api

    api = Api()

    @api.route("GET", "/pinned", tag="t", summary="s", primary=True)
    async def pinned(request: web.Request) -> None:
        return None

    @api.route("GET", "/spread", tag="t", summary="s")
    async def spread(request: web.Request) -> None:
        return None

    app = web.Application()
    api.setup(app)
    handlers = {route.name: route.handler for route in app.router.routes()}
    assert getattr(handlers["pinned"], "primary", None) is True
    assert getattr(handlers["spread"], "primary", None) is False


def pool_requests(app: web.Application) -> dict[str, float]:
    counts = app[keys.METRICS].pool_requests
    return {s.labels["pool"]: s.value for m in counts.collect() for s in m.samples if s.name.endswith("_total")}


async def test_two_replicas_take_the_reads_in_turn(make_app_client, fresh: Pair) -> None:
    # The one replica under two names (a distinct URL each): two pools, two monitors' samples.
    second = fresh.replica_url + "?sslmode=disable"
    client = await make_app_client(DATABASE_REPLICA_URLS=f"{fresh.replica_url},{second}")
    first, other = client.server.app[keys.REPLICAS].replicas
    since = fresh.primary_log_offset()
    for _ in range(10):
        response = await client.get("/api/articles")
        assert response.status == 200
    assert fresh.primary_statements(since) == []
    counts = pool_requests(client.server.app)
    assert counts[first.label] == counts[other.label] == 5  # round robin


async def test_with_one_replica_down_the_other_takes_every_read(make_app_client, fresh: Pair) -> None:
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/conduit"  # nothing listens there
    client = await make_app_client(healthy=False, DATABASE_REPLICA_URLS=f"{down},{fresh.replica_url}")
    stopped, running = client.server.app[keys.REPLICAS].replicas
    await wait_for(lambda: running.healthy, timeout=15)
    since = fresh.primary_log_offset()
    for _ in range(6):
        response = await client.get("/api/articles")
        assert response.status == 200
    assert not stopped.healthy
    assert fresh.primary_statements(since) == []  # not the primary either: the other replica
    counts = pool_requests(client.server.app)
    assert counts[running.label] == 6
    assert counts.get(stopped.label, 0) == 0
