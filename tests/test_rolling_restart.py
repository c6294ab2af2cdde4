"""Behind a real nginx (the README's reference configuration, nginx's default timeouts), two
instances of 2 workers each under a bounded keep-alive load with writes: rolling restarts and
reloads lose no request (tests/rolling_restart.py has the parts; run it alone to measure)."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import pytest

from tests.rolling_restart import ACCESS_LINE, NGINX, NGINX_UPSTREAM, Load, Nginx, rolling_restarts, upstream_lost

pytestmark = [
    pytest.mark.gunicorn,
    pytest.mark.nginx,
    pytest.mark.skipif(
        NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx; .ci/run does it when it can)"
    ),
]

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.timeout(300)
async def test_ten_rolling_restarts_under_load_lose_no_request(database_url, db, tmp_path):
    restarts = 10
    load, codes = await rolling_restarts(database_url, tmp_path, restarts)

    assert codes == [0] * restarts
    failed = [load.failed[number] for number in range(1, restarts + 1)]
    lost = [load.resets[number] for number in range(1, restarts + 1)]
    nginx_log = (tmp_path / "error.log").read_text(errors="replace").splitlines()[-20:]
    assert failed == [0] * restarts, f"failed requests per restart {failed}:\n" + "\n".join(
        load.failures[:20] + nginx_log
    )
    # Not even a GET that nginx could retry on the other instance was lost on an upstream connection.
    assert lost == [0] * restarts, f"requests lost upstream per restart {lost}:\n" + "\n".join(nginx_log)
    assert all(load.sent[number] > 0 for number in range(1, restarts + 1)), load.sent
    # Every comment answered 201 is stored, once.
    assert load.written > 0
    assert await db.fetchval("SELECT count(*) FROM comments") == load.written


async def test_reloads_under_load_lose_no_request(database_url, db, tmp_path):
    from tests.rolling_restart import author_and_article, instance, wait_ready

    servers = []
    for _ in range(2):
        servers.append(instance(database_url))
        await wait_ready(servers[-1])
    nginx = Nginx(tmp_path, servers[0].port, servers[1].port)
    try:
        await nginx.wait_serving()
        token, slug = await author_and_article(nginx.url)
        load = Load(nginx.url, token, slug)
        running = asyncio.create_task(load.run())
        try:
            for server in servers:
                await server.wait_for_lines(ACCESS_LINE, count=50)
            load.restart = 1
            server = servers[0]
            old_workers = server.worker_pids()
            server.signal(signal.SIGHUP)
            # New workers boot and serve while the old ones stop (SHUTDOWN_DELAY, then the drain,
            # which lasts while nginx keeps idle connections to them: up to SHUTDOWN_TIMEOUT).
            await server.wait_for_lines("Booting worker", count=len(old_workers) * 2)
            await server.wait_for_lines(r"\[INFO\] stopped cleanly", count=len(old_workers), timeout=30)
            for pid in old_workers:
                await server.wait_for_lines(rf"Worker exiting \(pid: {pid}\)")
            seen = len(server.matching(ACCESS_LINE))
            await server.wait_for_lines(ACCESS_LINE, count=seen + 50)  # the new workers serve
        finally:
            load.stop()
            await running
        lost, _ = upstream_lost(nginx, 0)
    finally:
        nginx.close()
        for server in servers:
            server.close()

    assert load.failed == {}, "\n".join(load.failures[:20])
    assert lost == 0, nginx.log()
    assert load.sent[1] > 0
    assert await db.fetchval("SELECT count(*) FROM comments") == load.written
    for server in servers:
        assert not server.matching("Traceback|WORKER TIMEOUT|was sent"), server.log()


def _addresses_out(config: str) -> str:
    return re.sub(r"listen [^;]+;", "listen ADDRESS;", re.sub(r"\b[\w.-]+:\d+\b", "ADDRESS", config))


def test_the_readme_shows_the_tested_nginx_configuration():
    block = re.search(r"```nginx\n(.*?)```", README.read_text(), re.DOTALL)
    assert block is not None, "README: no nginx block"
    tested = NGINX_UPSTREAM.format(port_a=8080, port_b=8080, port=80)
    assert _addresses_out(tested) in _addresses_out(block.group(1))
