"""Run the official RealWorld conformance suite (newman) against the real service.

Starts a throwaway embedded PostgreSQL (a fresh data directory in a temporary folder, never
.pgdata/ nor DATABASE_URL), serves `python -m service serve`
on a free port (or --port), waits for /readyz, runs the Postman collection with newman, and
always stops the service and the database afterwards. Exits with newman's status: non-zero on
any failed assertion; 2 when it cannot run at all (no collection, no npx, service not ready).

    python tests/tools/conformance.py [--collection PATH] [--port N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from service.embedded import EmbeddedPostgres, free_port  # noqa: E402

DEFAULT_COLLECTION = ROOT.parent / "shared" / "realworld" / "Conduit.postman_collection.json"
NEWMAN = ["npx", "--yes", "newman@6"]
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def fail(message: str) -> NoReturn:
    print(f"conformance: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


async def _create_database(admin_dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def wait_ready(url: str, service: subprocess.Popen, timeout: float) -> None:
    """Poll /readyz until it answers 200; give up when the service exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.poll() is not None:
            fail(f"the service exited with status {service.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)  # a bounded poll on a condition, not a stand-in for one
    fail(f"{url} did not answer 200 within {timeout:.0f}s")


def stop(service: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if service.poll() is not None:
        return
    service.send_signal(signal.SIGTERM)
    try:
        service.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        service.kill()
        service.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, default=Path(os.environ.get("COLLECTION") or DEFAULT_COLLECTION))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CONFORMANCE_PORT") or 0) or None)
    args = parser.parse_args(argv)

    collection = args.collection.resolve()
    if not collection.is_file():
        fail(f"no collection at {collection} (pass --collection or COLLECTION=/path/to/Conduit.postman_collection.json)")
    if shutil.which("npx") is None:
        fail("npx (Node.js) is not on PATH")
    port = args.port or free_port()

    with tempfile.TemporaryDirectory(prefix="conduit-conformance-") as folder:
        log_path = Path(folder) / "service.log"
        # Always a database of its own: the suite writes users and articles, and must find no others.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DATABASE_", "DB_", "JWT_", "APP_", "LOGIN_", "CORS_", "SHUTDOWN_", "MAX_BODY"))
        }
        database = EmbeddedPostgres(Path(folder) / "pgdata", durable=False)
        service = None
        try:
            admin = database.start()
            asyncio.run(_create_database(admin, "conduit"))
            env.update(
                DATABASE_URL=admin.rsplit("/", 1)[0] + "/conduit",
                APP_ENV="development",
                MIGRATE_ON_START="true",
                HOST="127.0.0.1",
                PORT=str(port),
                PYTHONUNBUFFERED="1",
            )
            with open(log_path, "wb") as log:
                service = subprocess.Popen(
                    [sys.executable, "-m", "service", "serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            base = f"http://127.0.0.1:{port}"
            try:
                wait_ready(f"{base}/readyz", service, READY_TIMEOUT)
            except SystemExit:
                sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
                raise
            print(f"conformance: service ready at {base}; running {collection}", flush=True)
            unique = f"u{int(time.time())}{os.getpid()}"
            newman = subprocess.run(
                [
                    *NEWMAN, "run", str(collection),
                    "--global-var", f"APIURL={base}/api",
                    "--global-var", f"USERNAME={unique}",
                    "--global-var", f"EMAIL={unique}@mail.com",
                    "--global-var", "PASSWORD=password",
                ],
                cwd=ROOT,
            )
            status = newman.returncode
            if status != 0:
                print("conformance: the service's log ends with:", file=sys.stderr)
                sys.stderr.write("".join(log_path.read_text(errors="replace").splitlines(True)[-40:]))
        finally:
            if service is not None:
                stop(service)
            database.destroy()
    if status != 0:
        print(f"conformance: newman exited with status {status}", file=sys.stderr)
    return 1 if status else 0


if __name__ == "__main__":
    raise SystemExit(main())
