"""The lag bound, faults (a replica stopped and started under load, promoted), and /metrics."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from service import keys
from tests.outage.conftest import wait_for
from tests.replica.conftest import Pair
from tests.replica.conftest import client as another_client
from tests.replica.test_routing import register

pytestmark = pytest.mark.replica


def metric(text: str, name: str, pool: str) -> float:
    match = re.search(rf'^{name}{{pool="{re.escape(pool)}"}} (\S+)$', text, re.MULTILINE)
    assert match is not None, f"no {name} for {pool} in /metrics"
    return float(match.group(1))


async def test_a_replica_further_behind_than_the_bound_is_skipped_until_it_catches_up(
    make_app_client, fresh: Pair
) -> None:
    client = await make_app_client(DB_REPLICA_MAX_LAG="0.3")
    app = client.server.app
    replica = app[keys.REPLICAS].replicas[0]
    auth = {"Authorization": f"Token {await register(client, 'lagger')}"}
    other = another_client("10.0.0.99")
    await fresh.seen_by(app)
    await fresh.pause()

    article = {"article": {"title": "Behind", "description": "d", "body": "b", "tagList": []}}
    response = await client.post("/api/articles", json=article, headers=auth)
    assert response.status == 201
    slug = (await response.json())["article"]["slug"]
    # The measured lag passes 0.3 s (health ages sooner: the lag plus its sample's age).
    await wait_for(lambda: replica.lag is not None and replica.lag > 0.3)
    assert not replica.healthy
    metrics = await (await client.get("/metrics")).text()
    assert metric(metrics, "db_replica_lag_seconds", replica.label) > 0.3
    assert metric(metrics, "db_replica_healthy", replica.label) == 0

    # Another client's anonymous reads (no fence of theirs to pass) now see the new article: the
    # primary serves them.
    since = fresh.primary_log_offset()
    response = await client.get(f"/api/articles/{slug}", headers=other)
    assert response.status == 200
    assert any("articles" in line for line in fresh.primary_statements(since))

    await fresh.resume()
    await wait_for(lambda: replica.healthy, timeout=15)  # caught up: back in use by itself
    since = fresh.primary_log_offset()
    response = await client.get(f"/api/articles/{slug}", headers=other)
    assert response.status == 200
    assert fresh.primary_statements(since) == []

    async def reported_healthy() -> bool:  # a scrape reads the lag as it is then (aged)
        metrics = await (await client.get("/metrics")).text()
        return (
            metric(metrics, "db_replica_healthy", replica.label) == 1
            and 0 <= metric(metrics, "db_replica_lag_seconds", replica.label) <= 0.3
        )

    await wait_for(reported_healthy)


async def test_metrics_count_requests_and_connections_per_pool(make_app_client, fresh: Pair) -> None:
    client = await make_app_client()
    label = client.server.app[keys.REPLICAS].replicas[0].label
    assert label == f"replica0:127.0.0.1:{fresh.replica.port}"
    await register(client, "counted")  # one request on the primary
    await fresh.seen_by(client.server.app)  # the registration's fence is passed: reads may use the replica
    for _ in range(3):
        assert (await client.get("/api/tags")).status == 200
    text = await (await client.get("/metrics")).text()
    assert metric(text, "db_pool_requests_total", "primary") == 1
    assert metric(text, "db_pool_requests_total", label) == 3
    assert metric(text, "db_pool_connections", "primary") >= 1
    assert metric(text, "db_pool_connections", label) >= 1
    assert metric(text, "db_pool_connections_in_use", label) == 0
    assert metric(text, "db_replica_lag_seconds", label) <= 1
    assert (await client.get("/readyz")).status == 200


async def test_a_replica_stopped_and_started_under_load_costs_no_5xx_and_rejoins(services, fresh: Pair) -> None:
    service = services("loaded", DB_REPLICA_POOL_MAX_SIZE="4", DB_POOL_MAX_SIZE="6")
    statuses: list[int] = []
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        await service.ready(http)
        user = {"user": {"username": "loader", "email": "loader@example.com", "password": "password123"}}
        async with http.post(f"{service.base}/api/users", json=user) as response:
            auth = {"Authorization": f"Token {(await response.json())['user']['token']}"}
        paths = [("/api/articles", None), ("/api/tags", None), ("/api/user", auth), ("/api/articles/feed", auth)]

        async def client(index: int) -> None:
            while not stop.is_set():
                path, headers = paths[index % len(paths)]
                async with http.get(f"{service.base}{path}", headers=headers) as response:
                    await response.read()
                    statuses.append(response.status)

        async def replica_requests() -> float:
            async with http.get(f"{service.base}/metrics") as response:
                text = await response.text()
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('db_pool_requests_total{pool="replica0')
            )

        load = [asyncio.create_task(client(i)) for i in range(8)]
        try:
            await wait_for(lambda: len(statuses) > 50)
            await asyncio.to_thread(fresh.replica.stop, "fast")
            served_while_down = len(statuses)
            await wait_for(lambda: len(statuses) > served_while_down + 100)  # served while it is down
            async with http.get(f"{service.base}/readyz") as response:
                assert response.status == 200  # readiness follows the primary alone
            before = await replica_requests()
            await asyncio.to_thread(fresh.replica.start)

            async def rejoined() -> bool:
                return await replica_requests() > before + 20

            await wait_for(rejoined, timeout=30)  # by itself: nothing told the service
        finally:
            stop.set()
            await asyncio.gather(*load)
    assert len(statuses) > 150
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}


async def test_a_promoted_replica_is_skipped(make_app_client, fresh: Pair) -> None:
    client = await make_app_client()
    replica = client.server.app[keys.REPLICAS].replicas[0]
    await fresh.on_replica("SELECT pg_promote()")
    await wait_for(lambda: replica.healthy, False)
    assert not replica.in_recovery
    await register(client, "after")  # on the primary; the promoted server never sees it
    since = fresh.primary_log_offset()
    response = await client.get("/api/profiles/after")
    assert response.status == 200  # from the primary
    assert fresh.primary_statements(since) != []
