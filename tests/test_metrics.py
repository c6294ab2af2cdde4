"""GET /metrics in one process: what the pool gauges and the error counter say while the pool is
really saturated, and the request id in every 5xx body."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from service import keys
from tests.gunicorn_process import conduit_backends, eventually
from tests.helpers import auth, create_article, register


async def scrape(client) -> dict[tuple[str, frozenset], float]:
    r = await client.get("/metrics")
    assert r.status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(await r.text())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_pool_gauges_and_db_errors_while_the_pool_is_saturated(make_client, db):
    client = await make_client(DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1", DB_ACQUIRE_TIMEOUT="1")
    user = await register(client)
    article = await create_article(client, user["token"])
    lock = db.transaction()
    await lock.start()
    await db.execute("SELECT 1 FROM articles WHERE slug = $1 FOR UPDATE", article["slug"])

    # The pool's only connection waits on the row lock; the next request waits for the pool.
    put = asyncio.create_task(
        client.put(f"/api/articles/{article['slug']}", json={"article": {"body": "new"}}, headers=auth(user["token"]))
    )
    await eventually(lambda: _waiting_on_lock(db), "the PUT waiting on the row lock")
    starved = asyncio.create_task(client.get("/api/articles", headers={"X-Request-ID": "starved"}))

    async def saturated() -> dict | None:
        samples = await scrape(client)
        return samples if value(samples, "db_pool_waiting") == 1 else None

    samples = await eventually(saturated, "a request waiting for a connection")
    assert (value(samples, "db_pool_size"), value(samples, "db_pool_in_use"), value(samples, "db_pool_idle")) == (
        1,
        1,
        0,
    )

    r = await starved  # DB_ACQUIRE_TIMEOUT later
    assert r.status == 503
    assert r.headers["Retry-After"] == "1"
    assert (await r.json())["requestId"] == "starved"
    await lock.rollback()
    assert (await put).status == 200

    samples = await scrape(client)
    assert value(samples, "db_errors_total", kind="pool_timeout") == 1
    assert value(samples, "db_pool_waiting") == 0
    assert value(samples, "db_pool_in_use") == 0
    assert value(samples, "http_requests_total", method="PUT", route="/api/articles/{slug}", status="200") == 1
    assert value(samples, "http_requests_total", method="GET", route="/api/articles", status="503") == 1


async def test_unusual_methods_are_counted_as_other(client):
    r = await client.request("PROPFIND", "/api/tags")
    assert r.status == 405
    samples = await scrape(client)
    assert value(samples, "http_requests_total", method="other", route="unmatched", status="405") == 1


async def test_every_5xx_body_names_the_request_id(make_client):
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    client = await make_client(routes=lambda app: app.router.add_get("/broken", broken))

    r = await client.get("/broken", headers={"X-Request-ID": "bug-1"})
    assert (r.status, await r.json()) == (500, {"errors": {"server": ["internal error"]}, "requestId": "bug-1"})

    r = await client.get("/broken")
    assert (await r.json())["requestId"] == r.headers["X-Request-ID"]  # a generated one

    client.server.app[keys.LIFECYCLE].draining = True
    r = await client.get("/readyz", headers={"X-Request-ID": "probe-1"})
    assert r.status == 503
    assert (await r.json())["requestId"] == "probe-1"


async def _waiting_on_lock(db) -> bool:
    return await conduit_backends(db, waiting_on_lock=True) >= 1


def test_a_scrape_survives_a_worker_file_not_yet_sized(tmp_path):
    """A worker that is starting has created its file but not sized it yet: the scrape that
    meets it must still answer (with everyone else's values), not fail whole. (The stock
    MultiProcessCollector fails this test with struct.error.)"""
    import json

    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.mmap_dict import MmapedDict

    from service.metrics import SizedFilesCollector

    written = MmapedDict(str(tmp_path / "counter_101.db"))
    key = json.dumps(["http_requests", "http_requests_total", {"route": "/x"}, "HTTP requests answered"])
    written.write_value(key, 3.0, 0.0)
    written.close()
    (tmp_path / "counter_102.db").touch()  # the starting worker's file, still 0 bytes

    registry = CollectorRegistry()
    SizedFilesCollector(registry, path=str(tmp_path))
    text = generate_latest(registry).decode()
    assert 'http_requests_total{route="/x"} 3.0' in text
