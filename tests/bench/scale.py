"""`make bench-scale`: what a list page costs at 1,000, 10,000 and 100,000 articles (the bench's
proportions at each size), through the service (wrk) and inside PostgreSQL (EXPLAIN ANALYZE of
the very statements the handlers run)."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics

import asyncpg

from service.handlers.articles import feed_statement, list_statement
from tests.bench.run import BASE_PORT, Endpoint, load_info, login, measure, prepare_database, start_service


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def server_ms(dsn: str, sql: str, args: list, runs: int = 15) -> tuple[float, float]:
    """Median planning and execution time (ms) of the prepared statement, warmed past the five
    executions after which PostgreSQL may switch it to a generic plan (as in the service)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"PREPARE q AS {sql}")
        execute = f"EXECUTE q({', '.join(_literal(a) for a in args)})"
        for _ in range(8):
            await conn.execute(execute)
        planning, execution = [], []
        for _ in range(runs):
            raw = await conn.fetchval(f"EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON, FORMAT JSON) {execute}")
            result = json.loads(raw)[0]
            planning.append(result["Planning Time"])
            execution.append(result["Execution Time"])
        return statistics.median(planning), statistics.median(execution)
    finally:
        await conn.close()


def main_scale(args: argparse.Namespace, wrk_path: str, admin_dsn: str) -> None:
    from tests.bench.seed import Scale

    rows: dict[str, dict[int, tuple[float, float, float, float]]] = {}
    for size in args.sizes:
        scale = Scale.for_articles(size)
        # One argon2 hash shared by every user here: the rows keep their real shape, the seed its speed.
        dsn, facts = asyncio.run(prepare_database(admin_dsn, f"conduit_scale_{size}", scale, distinct_hashes=False))
        print(f"\n{size} articles: seeded {scale}; {load_info()}", flush=True)
        service = start_service(dsn, BASE_PORT + 3, 1)
        try:
            reader_id = facts["users"].index(facts["follower"]) + 1
            token = {"BENCH_TOKENS": login(service.url(""), facts["follower"])}
            variants = [
                ("newest 20", "/api/articles?limit=20", {}, list_statement(False, False, False), [None, 20, 0]),
                (
                    "?tag=",
                    f"/api/articles?limit=20&tag={facts['tag']}",
                    {},
                    list_statement(True, False, False),
                    [None, 20, 0, facts["tag"]],
                ),
                (
                    "?author=",
                    f"/api/articles?limit=20&author={facts['author']}",
                    {},
                    list_statement(False, True, False),
                    [None, 20, 0, facts["author"]],
                ),
                (
                    "?favorited=",
                    f"/api/articles?limit=20&favorited={facts['favoriter']}",
                    {},
                    list_statement(False, False, True),
                    [None, 20, 0, facts["favoriter"]],
                ),
                ("feed", "/api/articles/feed?limit=20", token, feed_statement(), [reader_id, 20, 0]),
            ]
            for name, path, env, sql, sql_args in variants:
                result = measure(wrk_path, service, Endpoint(name, f"{name} ({size})", path, env=env), args)
                planning, execution = asyncio.run(server_ms(dsn, sql, sql_args))
                rows.setdefault(name, {})[size] = (result.rps, result.p99_ms, planning, execution)
        finally:
            service.stop()

    print(
        "\nA list page (limit 20) as the table grows: req/s through the service (one worker, "
        f"wrk -c{args.connections}), and PostgreSQL's own time for the page's one statement "
        "(planning + execution, median of 15 EXPLAIN ANALYZE runs)\n"
    )
    header = "| page | " + " | ".join(f"{size:,} articles" for size in args.sizes) + " |"
    print(header)
    print("|---|" + "---|" * len(args.sizes))
    for name, by_size in rows.items():
        cells = [
            f"{rps:,.0f} req/s, p99 {p99:.0f} ms, SQL {planning + execution:.2f} ms"
            for rps, p99, planning, execution in (by_size[size] for size in args.sizes)
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
