"""`python -m tests.bench.writes --against main`: the database's cost of a favorite and an
unfavorite (each with the article read back, as the handlers do), on one hot article and on
many, for the code at a git revision and for the working tree, in rounds that alternate between
them, so that a shared machine's drift falls on both alike. Each side runs on a database its own
migrations made, seeded alike; one connection, no HTTP: what the write costs PostgreSQL and
asyncpg, which the triggers of issue 13 add to. `make bench` measures the same writes through the
service (favorite_hot, favorite_many), where a busy machine's noise is larger than the change."""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import time
from pathlib import Path

import asyncpg

from service.migrate import apply_migrations
from service.sqlfiles import Migration, Queries, migrations, queries
from tests.bench.run import WORK, export_tree
from tests.bench.seed import Scale, seed

SCALE = Scale(users=200, articles=3_000, follows=500, favorites=6_000, comments=0)


async def prepare(admin_dsn: str, name: str, files: list[Migration]) -> str:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn, files)
        await seed(conn, SCALE, distinct_hashes=False)
    finally:
        await conn.close()
    return dsn


async def pairs(dsn: str, q: Queries, hot: bool, count: int) -> float:
    """Microseconds per favorite + unfavorite, each in its own transaction with the read back."""
    conn = await asyncpg.connect(dsn)
    try:
        favorite, unfavorite, single = [await conn.prepare(sql) for sql in (q.favorite, q.unfavorite, q.by_slug)]
        slugs = [r["slug"] for r in await conn.fetch("SELECT slug FROM articles ORDER BY id LIMIT 1000")]
        rng = random.Random(1)
        started = time.perf_counter()
        for _ in range(count):
            slug = slugs[500] if hot else rng.choice(slugs)
            user = rng.randint(1, SCALE.users)
            async with conn.transaction():
                await favorite.fetchval(user, slug)
                await single.fetchrow(user, slug)
            async with conn.transaction():
                await unfavorite.fetchval(rng.randint(1, SCALE.users), slug)
                await single.fetchrow(user, slug)
        return (time.perf_counter() - started) / count * 1e6
    finally:
        await conn.close()


async def compare(admin_dsn: str, tree: Path, rounds: int) -> None:
    old_files = [Migration(p.stem, p.read_text("utf-8")) for p in sorted((tree / "sql/migrations").glob("*.sql"))]
    old_q = Queries((tree / "sql/queries/articles.sql").read_text("utf-8"))
    sides = {
        "then": (await prepare(admin_dsn, "writes_then", old_files), old_q),
        "now": (await prepare(admin_dsn, "writes_now", migrations()), queries("articles")),
    }
    times: dict[tuple[str, bool], list[float]] = {(side, hot): [] for side in sides for hot in (True, False)}
    for n in range(rounds):
        for hot in (True, False):
            order = list(sides.items()) if n % 2 == 0 else list(sides.items())[::-1]  # ABBA: order evens out
            for side, (dsn, q) in order:
                times[(side, hot)].append(await pairs(dsn, q, hot, 300))
    for hot in (True, False):
        then, now = (statistics.median(times[(side, hot)]) for side in sides)
        print(
            f"favorite + unfavorite, {'one hot article' if hot else 'many articles'}: {then:.0f} µs then, "
            f"{now:.0f} µs now (median of {rounds} alternating rounds of 300): now/then speed x{then / now:.2f}"
        )


def main() -> None:
    from service.embedded import EmbeddedPostgres

    parser = argparse.ArgumentParser(prog="python -m tests.bench.writes")
    parser.add_argument("--against", metavar="GIT_REV", default="main")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    server = EmbeddedPostgres(WORK / "pgdata", durable=False)
    try:
        admin_dsn = server.start()
        asyncio.run(compare(admin_dsn, export_tree(args.against), args.rounds))
    finally:
        server.destroy()
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
