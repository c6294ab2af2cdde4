"""Metrics and access logs under the real gunicorn with 2 workers: one scrape reports the sum of
every worker, and each request is one JSON line carrying its request id."""

from __future__ import annotations

import json
import os
import re
import signal

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gunicorn_process import eventually

pytestmark = pytest.mark.gunicorn


async def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    async with aiohttp.ClientSession(url) as session, session.get("/metrics") as r:
        assert r.status == 200
        assert r.content_type == "text/plain"
        text = await r.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_one_scrape_reports_the_sum_of_all_workers(gunicorn, db):
    server = gunicorn(DB_POOL_MIN_SIZE="2")
    await server.wait_serving(db)
    connector = aiohttp.TCPConnector(force_close=True)  # new connections: spread over workers
    async with aiohttp.ClientSession(server.url, connector=connector) as session:
        for _ in range(10):
            async with session.get("/api/tags") as r:
                assert r.status == 200
        async with session.get("/api/articles/no-such-article") as r:
            assert r.status == 404

    async def pools_of_both_workers() -> dict | None:
        samples = await scrape(server.url)
        return samples if value(samples, "db_pool_size") == 4 else None  # 2 workers x 2 connections

    samples = await eventually(pools_of_both_workers, "db_pool_size summed over both workers")
    assert value(samples, "http_requests_total", method="GET", route="/api/tags", status="200") == 10
    assert value(samples, "http_request_duration_seconds_count", method="GET", route="/api/tags", status="200") == 10
    assert value(samples, "http_requests_total", method="GET", route="/api/articles/{slug}", status="404") == 1
    assert not [key for key in samples if ("route", "/api/articles/no-such-article") in key[1]]
    assert value(samples, "db_pool_idle") + value(samples, "db_pool_in_use") == 4
    assert value(samples, "db_pool_waiting") == 0

    # A worker that stops leaves the pool sums (the master marks it dead), its counts stay.
    first = server.worker_pids()[0]
    os.kill(first, signal.SIGTERM)
    await server.wait_for_lines(r"Booting worker with pid", count=3)  # its replacement
    await server.wait_for_lines(rf"\[{first}\] \[INFO\] stopped cleanly")

    async def back_to_two_pools() -> dict | None:
        samples = await scrape(server.url)
        alive = len(server.worker_pids()) - 1
        return samples if value(samples, "db_pool_size") == 2 * alive and not server.matching("Traceback") else None

    samples = await eventually(back_to_two_pools, "db_pool_size of the 2 live workers only")
    assert value(samples, "http_requests_total", method="GET", route="/api/tags", status="200") == 10

    server.signal(signal.SIGTERM)
    assert await server.wait_exit() == 0
    server.assert_clean_exit()


async def test_access_log_is_one_json_line_per_request_with_its_request_id(gunicorn, db):
    server = gunicorn()
    await server.wait_serving(db)
    async with aiohttp.ClientSession(server.url) as session:
        async with session.get("/api/articles/some-slug", headers={"X-Request-ID": "trace-123"}) as r:
            assert r.status == 404
            assert r.headers["X-Request-ID"] == "trace-123"
        async with session.get("/api/tags") as r:
            assert r.status == 200
            generated = r.headers["X-Request-ID"]
            assert re.fullmatch(r"[0-9a-f]{32}", generated)
        async with session.get("/api/tags", headers={"X-Request-ID": "bad id with spaces"}) as r:
            replaced = r.headers["X-Request-ID"]
            assert re.fullmatch(r"[0-9a-f]{32}", replaced)  # not a log-injection vector

    lines = await server.wait_for_lines(r'"request_id": ?"trace-123"')
    entry = json.loads(lines[0])
    assert entry.pop("duration_ms") >= 0
    assert entry == {"request_id": "trace-123", "method": "GET", "route": "/api/articles/{slug}", "status": 404}
    generated_line = json.loads((await server.wait_for_lines(generated))[0])
    assert (generated_line["route"], generated_line["status"]) == ("/api/tags", 200)

    server.signal(signal.SIGTERM)
    assert await server.wait_exit() == 0
    # One line per request and no other access log (aiohttp's or gunicorn's) beside it.
    assert len(server.matching("trace-123")) == 1
    assert len(server.matching(generated)) == 1
    assert not server.matching("some-slug"), server.log()
    server.assert_clean_exit()


async def test_a_metrics_directory_left_by_an_earlier_run_is_emptied_at_start(gunicorn, db, tmp_path):
    stale = tmp_path / "counter_99999.db"
    stale.write_bytes(b"left by a previous run")  # would be summed in (or break the scrape)
    server = gunicorn(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    await server.wait_serving(db)
    assert not stale.exists()
    samples = await scrape(server.url)
    assert value(samples, "http_requests_total", method="GET", route="/readyz", status="200") >= 1
    assert list(tmp_path.glob("*.db"))  # the workers' own files are there instead

    server.signal(signal.SIGTERM)
    assert await server.wait_exit() == 0
    assert tmp_path.exists()  # a directory we were given is not ours to remove
    server.assert_clean_exit()
