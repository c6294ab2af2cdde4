"""Probes: /livez never touches the database; /readyz says whether a query succeeds."""

from __future__ import annotations

import asyncio

import pytest

from service import keys
from service.embedded import free_port


async def test_livez_and_readyz_when_the_database_answers(client):
    live = await client.get("/livez")
    assert live.status == 200
    assert await live.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready"}


@pytest.mark.parametrize(
    ("migrate_on_start", "reason"), [("false", "database unreachable"), ("true", "database not migrated yet")]
)
async def test_readyz_is_503_when_the_database_is_unreachable(make_client, migrate_on_start, reason):
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/conduit"
    client = await make_client(DATABASE_URL=nowhere, MIGRATE_ON_START=migrate_on_start, DB_CONNECT_TIMEOUT="0.5")
    assert (await client.get("/livez")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 503
    # like every 5xx body, it names the request id
    assert await ready.json() == {"status": "unavailable", "reason": reason, "requestId": ready.headers["X-Request-ID"]}
    api = await client.get("/api/tags")
    assert api.status == 503
    assert api.headers["Retry-After"] == "1"
    assert "database" in (await api.json())["errors"]


async def test_readyz_is_503_while_draining(client):
    client.server.app[keys.LIFECYCLE].draining = True
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["reason"] == "shutting down"
    assert (await client.get("/livez")).status == 200


async def test_readyz_stays_200_while_the_pool_is_saturated(make_client):
    """Overload is not unreadiness: taking every busy instance out of rotation would cascade."""
    from tests.test_connection_handling import Probe

    probe = Probe()
    client = await make_client(
        routes=probe.install, DB_POOL_MAX_SIZE="1", DB_POOL_MIN_SIZE="0", DB_ACQUIRE_TIMEOUT="0.2"
    )
    holder = asyncio.create_task(client.get("/t/hold"))
    await asyncio.wait_for(probe.entered.wait(), 5)
    assert (await client.get("/api/tags")).status == 503
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready", "pool": "saturated"}
    probe.release.set()
    assert (await holder).status == 200


async def test_readiness_never_takes_a_connection_a_request_has_its_turn_for(make_client):
    """The check passes the gate like a request, but never queues. Here the gate's one place has
    just been handed to a request that has not yet taken the pool's idle connection: /readyz
    must leave that connection alone (else the request would wait for the check, past its
    acquire timeout) and answer that the pool is busy."""
    client = await make_client(DB_POOL_MAX_SIZE="1", DB_POOL_MIN_SIZE="1")
    pool, gate = client.server.app[keys.POOL], client.server.app[keys.POOL_GATE]
    await gate.enter(1)  # the place, handed over
    assert pool.get_idle_size() == 1  # the connection, not yet taken
    ready = await client.get("/readyz")
    assert await ready.json() == {"status": "ready", "pool": "saturated"}
    assert pool.get_idle_size() == 1
    gate.leave()
    assert await (await client.get("/readyz")).json() == {"status": "ready"}  # a free place: it asks
