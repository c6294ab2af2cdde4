"""`make bench-scale`: what each read costs at 1,000, 10,000, 100,000 and 1,000,000 articles, and
once skew is added at the largest size (issue 13).

One database grows through the sizes, seeded in SQL (not through the API, and not from Python
rows: a million articles in a couple of minutes on two cores). Its shape at every size: a tag on
30% of the articles, an author who wrote 12% of them, a user who favorited 20% of them, a reader
who follows 10 ordinary authors, about 80 articles per user, 1-3 tags and 2 favorites per
article. Then the skew: one article favorited by 100,000 more users, one tag on 90% of the
articles (the prolific author already has 120,000 at a million).

Each read is measured through the service (wrk, one worker; CPU per request of the app's worker
and of PostgreSQL from /proc, the figure a shared machine disturbs least) and inside PostgreSQL
(planning + execution of the very statement the handler runs, median of EXPLAIN ANALYZE runs, on
the first page and on page 5)."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time

import asyncpg

from service.handlers.articles import feed_statement, list_statement
from service.sqlfiles import queries
from tests.bench.run import BASE_PORT, WORK, Endpoint, Result, load_info, measure, prepare_empty, start_service

START = "2020-01-01"
READER = 3  # follows 10 ordinary authors
PROLIFIC = 1  # 12% of the articles
FAVORITER = 2  # favorited 20% of the articles
FANS = 100_000  # the skew: users who all favorite one article


def _h(column: str, salt: int) -> str:
    """A deterministic pseudo-random 32-bit number from an integer column (multiplicative hash)."""
    return f"((({column})::bigint * 2654435761 + {salt * 40503}) % 4294967296)"


def grow_sql(start: int, end: int) -> str:
    """Articles start+1..end with their tags and favorites, and the users they need."""
    users = max(120, end // 80)
    return f"""
INSERT INTO users (id, username, email, password_hash, bio)
OVERRIDING SYSTEM VALUE
SELECT n, 'user' || n, 'user' || n || '@example.com', 'not-a-hash', 'A bio of user ' || n
  FROM generate_series(1, {users}) AS n
ON CONFLICT DO NOTHING;
SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users));

INSERT INTO tags (id, name) OVERRIDING SYSTEM VALUE
SELECT n, CASE n WHEN 1 THEN 'popular' ELSE 'tag' || n END FROM generate_series(1, 50) AS n
ON CONFLICT DO NOTHING;
SELECT setval(pg_get_serial_sequence('tags', 'id'), (SELECT max(id) FROM tags));

INSERT INTO articles (id, slug, title, description, body, author_id, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT n, 'measured-article-' || n, 'Measured article ' || n, 'What article ' || n || ' is about.',
       repeat('The pool lends one connection per request and always takes it back. ', 2 + n % 6),
       CASE WHEN {_h("n", 1)} % 100 < 12 THEN {PROLIFIC} ELSE 4 + {_h("n", 2)} % ({users} - 3) END,
       timestamptz '{START}' + n * interval '30 seconds', timestamptz '{START}' + n * interval '30 seconds'
  FROM generate_series({start + 1}, {end}) AS n;
SELECT setval(pg_get_serial_sequence('articles', 'id'), {end});

-- 'popular' on 30%; one or two of the other 49 on each.
INSERT INTO article_tags (article_id, tag_id, article_created_at)
SELECT a.id, t.tag, a.created_at
  FROM articles a
 CROSS JOIN LATERAL (SELECT 1 AS tag WHERE {_h("a.id", 3)} % 10 < 3
                     UNION SELECT 2 + {_h("a.id", 4)} % 49
                     UNION SELECT 2 + {_h("a.id", 5)} % 49 WHERE a.id % 2 = 0) AS t
 WHERE a.id > {start};

-- user {FAVORITER} favorites 20%; two more favorites per article from anyone.
INSERT INTO favorites (user_id, article_id, article_created_at)
SELECT u, a.id, a.created_at
  FROM articles a
 CROSS JOIN LATERAL (SELECT {FAVORITER} AS u WHERE {_h("a.id", 6)} % 5 = 0
                     UNION SELECT 1 + {_h("a.id", 7)} % {users}
                     UNION SELECT 1 + {_h("a.id", 8)} % {users}) AS f
 WHERE a.id > {start}
ON CONFLICT DO NOTHING;

-- the reader follows 10 ordinary authors; others follow at random (users / 2 follows).
INSERT INTO follows (follower_id, followed_id)
SELECT {READER}, n FROM generate_series(10, 19) AS n
UNION ALL
SELECT f, t FROM (SELECT 4 + {_h("n", 9)} % ({users} - 4) AS f, 4 + {_h("n", 10)} % ({users} - 4) AS t
                    FROM generate_series(1, {users} / 2) AS n) AS pairs WHERE f <> t
ON CONFLICT DO NOTHING;
"""


def skew_sql(articles: int) -> str:
    viral = articles // 2
    return f"""
INSERT INTO users (username, email, password_hash)
SELECT 'fan' || n, 'fan' || n || '@example.com', 'not-a-hash' FROM generate_series(1, {FANS}) AS n;
INSERT INTO favorites (user_id, article_id, article_created_at)
SELECT u.id, a.id, a.created_at FROM users u, articles a WHERE u.username LIKE 'fan%' AND a.id = {viral};
INSERT INTO tags (name) VALUES ('everywhere');
INSERT INTO article_tags (article_id, tag_id, article_created_at)
SELECT a.id, (SELECT id FROM tags WHERE name = 'everywhere'), a.created_at FROM articles a WHERE a.id % 10 <> 0;
"""


async def settle(conn: asyncpg.Connection) -> None:
    tables = "users, tags, articles, article_tags, favorites, follows"
    for counts in ("tag_counts", "author_counts", "favoriter_counts", "favorite_counts", "article_totals"):
        tables += f", {counts}"
    await conn.execute(f"VACUUM (ANALYZE) {tables}")


async def grow(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(sql)
        await settle(conn)
    finally:
        await conn.close()


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def server_ms(dsn: str, sql: str, args: list, runs: int = 9) -> tuple[float, int]:
    """Median planning + execution time (ms) of the prepared statement, warmed past the five
    executions after which PostgreSQL may switch it to a generic plan (as in the service), and
    the buffers its execution touched (functions it calls included): a count no load disturbs."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"PREPARE q AS {sql}")
        execute = f"EXECUTE q({', '.join(_literal(a) for a in args)})"
        for _ in range(8):
            await conn.execute(execute)
        times, buffers = [], 0
        for _ in range(runs):
            raw = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON, FORMAT JSON) {execute}")
            result = json.loads(raw)[0]
            times.append(result["Planning Time"] + result["Execution Time"])
            buffers = result["Plan"]["Shared Hit Blocks"] + result["Plan"]["Shared Read Blocks"]
        return statistics.median(times), buffers
    finally:
        await conn.close()


Read = tuple[str, str, dict[str, str], str, list[object]]


def reads(slug_file: str, token: str, viral: str | None) -> list[Read]:
    """(row name, path, wrk environment, statement, its arguments with the offset as "OFFSET")."""
    by_slug = queries("articles").by_slug
    rows: list[Read] = [
        ("newest", "/api/articles?limit=20", {}, list_statement(False, False, False), [None, 20, "OFFSET"]),
        (
            "one article (random)",
            "/api/articles/_slug_",
            {"BENCH_SLUGS": slug_file},
            by_slug,
            [None, "measured-article-77"],
        ),
        (
            "?tag= (30%)",
            "/api/articles?limit=20&tag=popular",
            {},
            list_statement(True, False, False),
            [None, 20, "OFFSET", "popular"],
        ),
        (
            "?author= (12%)",
            f"/api/articles?limit=20&author=user{PROLIFIC}",
            {},
            list_statement(False, True, False),
            [None, 20, "OFFSET", f"user{PROLIFIC}"],
        ),
        (
            "?favorited= (20%)",
            f"/api/articles?limit=20&favorited=user{FAVORITER}",
            {},
            list_statement(False, False, True),
            [None, 20, "OFFSET", f"user{FAVORITER}"],
        ),
        (
            "feed (10 follows)",
            "/api/articles/feed?limit=20",
            {"BENCH_TOKENS": token},
            feed_statement(),
            [READER, 20, "OFFSET"],
        ),
    ]
    if viral:
        rows += [
            (
                "skew: the article with 100k favorites",
                f"/api/articles/{viral}",
                {},
                by_slug,
                [None, viral],
            ),
            (
                "skew: ?tag= on 90%",
                "/api/articles?limit=20&tag=everywhere",
                {},
                list_statement(True, False, False),
                [None, 20, "OFFSET", "everywhere"],
            ),
        ]
    return rows


def main_scale(args: argparse.Namespace, wrk_path: str, admin_dsn: str) -> None:
    from service.auth import issue_token
    from tests.bench.run import JWT_SECRET

    dsn = asyncio.run(prepare_empty(admin_dsn, "conduit_scale"))
    token = issue_token(READER, JWT_SECRET, 3600)
    results: dict[str, dict[str, tuple[Result, tuple[float, int], tuple[float, int]]]] = {}
    columns: list[str] = []
    stages: list[tuple[str, int, bool]] = [(f"{size:,}", size, False) for size in args.sizes]
    stages.append((f"{args.sizes[-1]:,} + skew", args.sizes[-1], True))
    grown = 0
    for column, size, skew in stages:
        started = time.monotonic()

        asyncio.run(grow(dsn, skew_sql(size) if skew else grow_sql(grown, size)))
        grown = size
        print(f"\n{column} articles: seeded in {time.monotonic() - started:.0f}s; {load_info()}", flush=True)
        columns.append(column)
        rng = random.Random(size)
        slug_file = WORK / "scale-slugs.txt"
        slug_file.write_text("".join(f"measured-article-{rng.randint(1, size)}\n" for _ in range(2000)))
        viral = f"measured-article-{size // 2}" if skew else None
        service = start_service(dsn, BASE_PORT + 3, 1)
        try:
            for name, path, env, sql, sql_args in reads(str(slug_file), token, viral):
                result = measure(wrk_path, service, Endpoint(name, f"{name} ({column})", path, env=env), args)
                page1 = asyncio.run(server_ms(dsn, sql, [0 if a == "OFFSET" else a for a in sql_args]))
                page5 = asyncio.run(server_ms(dsn, sql, [80 if a == "OFFSET" else a for a in sql_args]))
                results.setdefault(name, {})[column] = (result, page1, page5)
        finally:
            service.stop()

    print(
        f"\nEach read as the table grows: CPU per request (app worker + PostgreSQL, microseconds; wrk -c"
        f"{args.connections}, {args.duration}s after {args.warmup}s), and PostgreSQL's own time for the "
        "statement (planning + execution, median of 9 EXPLAIN ANALYZE) and the buffers it touched, on "
        f"page 1 / page 5. Growth: the {columns[-2]} column against the first; skew: the last against the "
        f"{columns[-2]} one.\n"
    )
    print(
        "| read | "
        + " | ".join(columns)
        + " | growth: CPU/req | growth: SQL ms p1 / p5 | growth: buffers p1 / p5 | skew: CPU/req, buffers p1 |"
    )
    print("|---|" + "---|" * (len(columns) + 4))
    for name, by_column in results.items():
        cells: list[str] = []
        cpu: dict[str, float] = {}
        for column in columns:
            if column not in by_column:
                cells.append("")
                continue
            result, (first, first_buffers), (fifth, fifth_buffers) = by_column[column]
            cpu[column] = result.app_us + result.db_us
            cells.append(
                f"{cpu[column]:,.0f} µs/req, {result.rps:,.0f} req/s; SQL {first:.2f} / {fifth:.2f} ms, "
                f"{first_buffers} / {fifth_buffers} buffers"
            )
        base, big, skewed = columns[0], columns[-2], columns[-1]
        growth = sql_growth = buffer_growth = skew_ratio = ""
        if base in by_column and big in by_column:
            (_, b1, b5), (_, g1, g5) = by_column[base], by_column[big]
            growth = f"x{cpu[big] / cpu[base]:.2f}"
            sql_growth = f"x{g1[0] / b1[0]:.2f} / x{g5[0] / b5[0]:.2f}"
            buffer_growth = f"x{g1[1] / b1[1]:.2f} / x{g5[1] / b5[1]:.2f}"
        if big in by_column and skewed in by_column:
            skew_ratio = f"x{cpu[skewed] / cpu[big]:.2f}, x{by_column[skewed][1][1] / by_column[big][1][1]:.2f}"
        print(f"| {name} | " + " | ".join(cells) + f" | {growth} | {sql_growth} | {buffer_growth} | {skew_ratio} |")
