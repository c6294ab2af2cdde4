"""A live service for the tools that test it from outside (newman, schemathesis, wrk): a
throwaway embedded PostgreSQL with a fresh database, the service started as a subprocess on a
port, ready when /readyz says so, and always stopped (service, then database) afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from service.embedded import EmbeddedPostgres, free_port  # noqa: E402

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
SERVE = [sys.executable, "-m", "service", "serve"]
# Settings of the caller's environment that must not leak into the service under test.
_OWN_SETTINGS = ("DATABASE_", "DB_", "JWT_", "APP_", "LOGIN_", "CORS_", "SHUTDOWN_", "MAX_BODY", "WEB_CONCURRENCY")


class NotReady(SystemExit):
    """The service could not be started; exit status 2 with a one-line reason."""

    def __init__(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)
        super().__init__(2)


@dataclass
class Live:
    base: str
    database_url: str
    log_path: Path
    folder: Path

    def log_tail(self, lines: int = 40) -> str:
        return "".join(self.log_path.read_text(errors="replace").splitlines(True)[-lines:])


async def _create_database(admin_dsn: str, name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def wait_ready(url: str, process: subprocess.Popen, timeout: float = READY_TIMEOUT) -> None:
    """Poll /readyz until it answers 200; give up when the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NotReady(f"the service exited with status {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)  # a bounded poll on a condition, not a stand-in for one
    raise NotReady(f"{url} did not answer 200 within {timeout:.0f}s")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group, then SIGKILL if it does not exit in time."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def live_service(
    port: int | None = None, command: list[str] | None = None, env: dict[str, str] | None = None, replica: bool = False
) -> Iterator[Live]:
    """Serve `command` (default `python -m service serve`) on a fresh database; yield its URLs.
    With `replica`, a streaming replica of that database (pg_basebackup -R) serves the reads."""
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="conduit-live-") as name:
        folder = Path(name)
        database = EmbeddedPostgres(folder / "pgdata", durable=False)
        standby: EmbeddedPostgres | None = None
        try:
            database_url = asyncio.run(_create_database(database.start(), "conduit"))
            replica_env = {}
            if replica:
                os.chmod(folder, 0o755)  # the servers run as another user when this runs as root
                standby = database.replica(folder / "replica")
                replica_env["DATABASE_REPLICA_URLS"] = standby.start().rsplit("/", 1)[0] + "/conduit"
            service_env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_SETTINGS)}
            service_env.update(
                APP_ENV="development",
                DATABASE_URL=database_url,
                MIGRATE_ON_START="true",
                HOST="127.0.0.1",
                PORT=str(port),
                SHUTDOWN_DELAY="0",
                PYTHONUNBUFFERED="1",
                **replica_env,
                **(env or {}),
            )
            live = Live(f"http://127.0.0.1:{port}", database_url, folder / "service.log", folder)
            with open(live.log_path, "wb") as log:
                process = subprocess.Popen(
                    command or SERVE,
                    cwd=ROOT,
                    env=service_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                try:
                    wait_ready(f"{live.base}/readyz", process)
                except NotReady:
                    sys.stderr.write(live.log_tail())
                    raise
                yield live
            finally:
                stop(process)
        finally:
            if standby is not None:
                standby.destroy()
            database.destroy()
