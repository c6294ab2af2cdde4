"""What validating every pooled connection on acquire would cost: a `SELECT 1` per request.

    .venv/bin/python -m tests.tools.bench_validate_on_acquire [requests]

Runs against a throwaway embedded PostgreSQL (or DATABASE_URL) over TCP loopback, the cheapest
round trip there is; across a network each validation costs a full round trip more. The service
does not validate: a request that meets a dead connection runs once more instead (service/db.py),
which costs nothing on the happy path. This prints the figures that choice rests on."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import uvloop
from asyncpg.pool import PoolConnectionProxy


async def measure(dsn: str, requests: int) -> None:
    async def validate(conn: PoolConnectionProxy) -> None:
        await conn.fetchval("SELECT 1")

    plain = await asyncpg.create_pool(dsn, min_size=4, max_size=4)
    checked = await asyncpg.create_pool(dsn, min_size=4, max_size=4, setup=validate)
    query = "SELECT id, name FROM (VALUES (1, 'a'), (2, 'b')) AS t(id, name) WHERE id = $1"

    async def one(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            await conn.fetchrow(query, 1)

    results: dict[str, list[float]] = {"no validation": [], "SELECT 1 on acquire": []}
    for _ in range(5):  # interleaved rounds, so both see the same machine load
        for name, pool in (("no validation", plain), ("SELECT 1 on acquire", checked)):
            started = time.perf_counter()
            for _ in range(requests):
                await one(pool)
            results[name].append((time.perf_counter() - started) / requests * 1e6)
    for name, samples in results.items():
        print(f"{name:>22}: {statistics.median(samples):7.1f} µs per acquire+query (median of 5 x {requests})")
    await plain.close()
    await checked.close()


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    dsn = os.environ.get("DATABASE_URL")
    if dsn:
        uvloop.run(measure(dsn, requests))
        return
    from service.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="conduit-bench-") as folder:
        os.chmod(folder, 0o755)
        server = EmbeddedPostgres(Path(folder) / "data", durable=False)
        try:
            uvloop.run(measure(server.start(), requests))
        finally:
            server.destroy()


if __name__ == "__main__":
    main()
