"""Real gunicorn, two workers, started while PostgreSQL is down: no "worker failed to boot", no
crash loop; live at once, ready (and migrated, once) as soon as the database is up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from service.embedded import free_port
from tests.outage.conftest import JWT_SECRET

pytestmark = [pytest.mark.outage, pytest.mark.gunicorn]

ROOT = Path(__file__).resolve().parents[2]


def request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def until(condition, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll a condition with a deadline (never a sleep standing in for it)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def answers(port: int, path: str, status: int) -> bool:
    try:
        return request(port, "GET", path)[0] == status
    except OSError:
        return False


def test_gunicorn_starts_with_the_database_down_and_becomes_ready_once_it_is_up(postgres, tmp_path):
    asyncio.run(postgres.create_database("fresh"))
    postgres.stop()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_", "APP_", "JWT_", "SHUTDOWN_"))}
    env.update(
        APP_ENV="production",
        DATABASE_URL=postgres.url("fresh"),
        JWT_SECRET=JWT_SECRET,
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="2",
        MIGRATE_ON_START="true",
        SHUTDOWN_DELAY="0",
        SHUTDOWN_TIMEOUT="2",
    )
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            # No control socket: gunicorn 27's default path is one per user, shared by every
            # gunicorn a parallel test run starts.
            [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf", "--no-control-socket",
             "service.app:create_app"],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        until(lambda: answers(port, "/livez", 200), what="/livez")
        for _ in range(6):  # whichever worker answers: live, not ready, API 503 with JSON
            assert request(port, "GET", "/livez")[0] == 200
            assert request(port, "GET", "/readyz")[0] == 503
            status, body = request(port, "GET", "/api/tags")
            assert status == 503 and "errors" in json.loads(body)

        postgres.start()
        until(lambda: log.read_text().count("migrations done") == 2, what="both workers to migrate")
        until(lambda: all(answers(port, "/readyz", 200) for _ in range(6)), what="/readyz")
        user = {"username": "booted", "email": "booted@example.com", "password": "password123"}
        assert request(port, "POST", "/api/users", {"user": user})[0] == 201
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    text = log.read_text()
    assert process.returncode == 0, text
    assert "Worker failed to boot" not in text and "Traceback" not in text, text
    assert text.count("Booting worker") == 2, text  # no worker died and was replaced

    async def applied() -> int:
        admin = await postgres.admin("fresh")
        try:
            return await admin.fetchval("SELECT count(*) FROM schema_migrations")
        finally:
            await admin.close()

    assert asyncio.run(applied()) == text.count("applied migration")  # each file once, by one worker
