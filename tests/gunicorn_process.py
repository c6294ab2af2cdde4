"""gunicorn as a subprocess, started the production way, for the tests that need the real thing.

Its combined output is read line by line on a thread; tests wait for conditions (a log line, an
answer, a row in pg_stat_activity) with a bounded poll, never for a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf", "service.app:create_app"]
# Ports these tests may listen on; CONDUIT_TEST_PORTS="first-last" moves the range.
PORTS = os.environ.get("CONDUIT_TEST_PORTS", "18120-18139")
# Settings of the calling environment that must not leak into the server under test.
_NOT_INHERITED = ("DATABASE_URL", "PORT", "HOST", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS", "PROMETHEUS_MULTIPROC_DIR")
_NOT_INHERITED_PREFIXES = ("DB_", "SHUTDOWN_", "MIGRATE_", "JWT_", "LOGIN_", "CORS_", "APP_ENV")

WAIT = 15.0  # upper bound for any condition: far above what each takes, so only a hang trips it


def free_port(ports: str = PORTS) -> int:
    first, last = (int(part) for part in ports.split("-"))
    for port in range(first, last + 1):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports}")


async def eventually(probe: Callable[[], Awaitable[Any]], what: str, timeout: float = WAIT) -> Any:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def conduit_backends(db: asyncpg.Connection, waiting_on_lock: bool = False) -> int:
    """The service's sessions in this database (its pools set application_name 'conduit')."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'conduit'"
    if waiting_on_lock:
        query += " AND wait_event_type = 'Lock'"
    # Inside a transaction (a test holding a row lock), pg_stat_activity is a snapshot taken at
    # its first read; drop it so every poll sees the present.
    await db.execute("SELECT pg_stat_clear_snapshot()")
    return await db.fetchval(query)


class Gunicorn:
    def __init__(self, database_url: str, **env: str) -> None:
        self.port = int(env["PORT"]) if "PORT" in env else free_port()  # a given PORT: a restart in its place
        base = {
            key: value
            for key, value in os.environ.items()
            if key not in _NOT_INHERITED and not key.startswith(_NOT_INHERITED_PREFIXES)
        }
        self.env = {
            **base,
            "APP_ENV": "development",
            "DATABASE_URL": database_url,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            "MIGRATE_ON_START": "false",
            "SHUTDOWN_DELAY": "0",
            "DB_POOL_MIN_SIZE": "1",
            "DB_POOL_MAX_SIZE": "4",
            # lock waits in these tests are held on purpose; keep the server-side limits out of it
            "DB_STATEMENT_TIMEOUT": "30",
            "JWT_SECRET": "test-secret-test-secret-test-secret-0123",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.workers = int(self.env["WEB_CONCURRENCY"])
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> Gunicorn:
        self._proc = subprocess.Popen(
            COMMAND,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as under an orchestrator
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def matching(self, pattern: str) -> list[str]:
        regex = re.compile(pattern)
        with self._changed:
            return [line for line in self.lines if regex.search(line)]

    def _wait_lines(self, pattern: str, count: int, timeout: float) -> list[str]:
        regex = re.compile(pattern)

        def found() -> list[str]:
            return [line for line in self.lines if regex.search(line)]

        with self._changed:
            ok = self._changed.wait_for(
                lambda: len(found()) >= count or not (self._reader and self._reader.is_alive()), timeout
            )
            lines = found()
        if not ok or len(lines) < count:
            raise AssertionError(f"expected {count} log lines matching {pattern!r}, got {len(lines)}:\n{self.log()}")
        return lines

    async def wait_for_lines(self, pattern: str, count: int = 1, timeout: float = WAIT) -> list[str]:
        """Wait (off the event loop) until `count` output lines match `pattern`."""
        return await asyncio.to_thread(self._wait_lines, pattern, count, timeout)

    def worker_pids(self) -> list[int]:
        return [int(line.rsplit(":", 1)[1]) for line in self.matching(r"Booting worker with pid: \d+")]

    async def wait_serving(self, db: asyncpg.Connection) -> None:
        """Ready through the socket, and every worker's pool open (so every worker is up)."""

        async def ready() -> bool:
            try:
                async with aiohttp.ClientSession() as session, session.get(self.url + "/readyz") as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(ready, "/readyz 200\n" + self.log())
        pools = self.workers * int(self.env["DB_POOL_MIN_SIZE"])
        await eventually(lambda: _at_least(conduit_backends(db), pools), f"{pools} pooled connections")

    def signal(self, sig: int) -> None:
        """To the master only, as `kill` or an orchestrator's stop does."""
        os.kill(self.pid, sig)

    async def wait_exit(self, timeout: float = WAIT) -> int:
        assert self._proc is not None and self._reader is not None
        code = await asyncio.to_thread(self._proc.wait, timeout)
        await asyncio.to_thread(self._reader.join, timeout)
        return code

    def close(self) -> None:
        """Teardown: whatever a failed test left running is killed, group and all."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(WAIT)
        if self._reader is not None:
            self._reader.join(WAIT)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def assert_clean_exit(self) -> None:
        """Every worker stopped by itself and exited 0; the master neither killed nor lost one."""
        log = self.log()
        pids = self.worker_pids()
        assert len(self.matching(r"\[INFO\] stopped cleanly")) == len(pids), log
        for trouble in ("exited with code", "was sent", "WORKER TIMEOUT", "Traceback", "Error while closing"):
            assert trouble not in log, log


async def _at_least(count: Awaitable[int], minimum: int) -> bool:
    return await count >= minimum
