"""`make fuzz`: schemathesis against the live service with the service's own OpenAPI document.

Starts a throwaway embedded PostgreSQL and `python -m service serve` on FUZZ_PORT, registers a
user whose token schemathesis sends (tests/schemathesis.toml reads it from CONDUIT_TOKEN), runs
`schemathesis run` with every built-in check, and always stops the service and the database.
Exits with schemathesis's status: non-zero on any failure. Extra arguments go to `schemathesis run`
(e.g. `make fuzz FUZZ_ARGS="--max-examples 200 --include-operation-id login"`).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from service.embedded import EmbeddedPostgres  # noqa: E402

CONFIG = ROOT / "tests" / "schemathesis.toml"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def main() -> int:
    port = int(os.environ.get("FUZZ_PORT", "18090"))
    max_examples = os.environ.get("FUZZ_MAX_EXAMPLES", "30")
    extra = shlex.split(os.environ.get("FUZZ_ARGS", "")) + sys.argv[1:]
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="conduit-fuzz-") as folder:
        database = EmbeddedPostgres(Path(folder) / "data", durable=False)
        admin_dsn = database.start()
        try:
            dsn = asyncio.run(_create_database(admin_dsn, "conduit_fuzz"))
            log_path = Path(folder) / "service.log"
            with open(log_path, "wb") as log:
                service = subprocess.Popen(
                    [sys.executable, "-m", "service", "serve"],
                    cwd=ROOT,
                    env={**os.environ, **_service_env(dsn, port)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                status = 1
                try:
                    _wait_ready(base, service)
                    token = _register(base)
                    command = [
                        str(Path(sys.executable).with_name("schemathesis")),
                        "--config-file",
                        str(CONFIG),
                        "run",
                        f"{base}/api/openapi.json",
                        "--max-examples",
                        max_examples,
                        *extra,
                    ]
                    print("$", shlex.join(command), flush=True)
                    status = subprocess.call(command, cwd=ROOT, env={**os.environ, "CONDUIT_TOKEN": token})
                finally:
                    _stop(service)
                    _report_server_errors(log_path, failed=status != 0)
        finally:
            database.destroy()
    return status


def _service_env(dsn: str, port: int) -> dict[str, str]:
    return {
        "APP_ENV": "development",
        "DATABASE_URL": dsn,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MIGRATE_ON_START": "true",
        "JWT_SECRET": secrets.token_hex(32),
        "SHUTDOWN_DELAY": "0",
    }


async def _create_database(admin_dsn: str, name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def _wait_ready(base: str, service: subprocess.Popen) -> None:
    """Poll /readyz (migrations applied, database reachable), bounded; fail if the service dies."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise SystemExit(f"the service exited with {service.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)  # a bounded poll on a condition, not a wait standing in for one
    raise SystemExit(f"the service was not ready within {READY_TIMEOUT:.0f}s")


def _register(base: str) -> str:
    name = f"fuzzer{secrets.token_hex(4)}"
    body = {"user": {"username": name, "email": f"{name}@example.com", "password": secrets.token_hex(12)}}
    request = urllib.request.Request(
        f"{base}/api/users", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["user"]["token"]


def _stop(service: subprocess.Popen) -> None:
    if service.poll() is not None:
        return
    service.send_signal(signal.SIGTERM)
    try:
        service.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(service.pid, signal.SIGKILL)
        service.wait()


def _report_server_errors(log_path: Path, failed: bool) -> None:
    """The service's own account of what went wrong: its error lines (tracebacks included)."""
    lines = log_path.read_text(errors="replace").splitlines()
    errors = [line for line in lines if not line.startswith('{"request_id"')]
    if failed and errors:
        print("--- service log (without access lines), last 80 ---")
        print("\n".join(errors[-80:]))


if __name__ == "__main__":
    sys.exit(main())
