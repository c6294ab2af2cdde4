"""Every count the database keeps, set against a COUNT(*) of the rows it counts (used by the
drift tests: tests/test_count_drift.py, tests/test_migrations.py)."""

from __future__ import annotations

import asyncpg

# (what is counted, the kept count per key, the real count per key)
KEPT_AGAINST_REAL = [
    (
        "articles per tag",
        "SELECT tag_id AS key, sum(articles) AS n FROM tag_counts GROUP BY tag_id",
        "SELECT tag_id AS key, count(*) AS n FROM article_tags GROUP BY tag_id",
    ),
    (
        "articles per author",
        "SELECT user_id AS key, sum(articles) AS n FROM author_counts GROUP BY user_id",
        "SELECT author_id AS key, count(*) AS n FROM articles GROUP BY author_id",
    ),
    (
        "favorites per user",
        "SELECT user_id AS key, sum(favorites) AS n FROM favoriter_counts GROUP BY user_id",
        "SELECT user_id AS key, count(*) AS n FROM favorites GROUP BY user_id",
    ),
    (
        "favorites per article",
        "SELECT article_id AS key, sum(favorites) AS n FROM favorite_counts GROUP BY article_id",
        "SELECT article_id AS key, count(*) AS n FROM favorites GROUP BY article_id",
    ),
    (
        "feed total per user (from its authors' counts)",
        (
            "SELECT fo.follower_id AS key, sum(c.articles) AS n FROM follows fo"
            " JOIN author_counts c ON c.user_id = fo.followed_id GROUP BY fo.follower_id"
        ),
        (
            "SELECT fo.follower_id AS key, count(*) AS n FROM follows fo"
            " JOIN articles a ON a.author_id = fo.followed_id GROUP BY fo.follower_id"
        ),
    ),
    (
        "articles in all",
        "SELECT 0 AS key, sum(articles) AS n FROM article_totals",
        "SELECT 0 AS key, count(*) AS n FROM articles",
    ),
]


async def compare_counts(conn: asyncpg.Connection) -> tuple[int, list[str]]:
    """(how many counts were compared, a line for each that differs). Every key either side knows
    is compared (a key with rows and no count, or a count left for a key with no rows, differs),
    all in one snapshot."""
    compared, wrong = 0, []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for what, kept, real in KEPT_AGAINST_REAL:
            rows = await conn.fetch(
                f"SELECT key, coalesce(k.n, 0)::bigint AS kept, coalesce(r.n, 0)::bigint AS real"
                f"  FROM ({kept}) AS k FULL JOIN ({real}) AS r USING (key)"
            )
            compared += len(rows)
            wrong += [
                f"{what}, key {r['key']}: kept {r['kept']}, real {r['real']}" for r in rows if r["kept"] != r["real"]
            ]
    return compared, wrong


# One number: how many kept counts differ from their rows (0 when all agree), for invariant checks.
MISMATCHES = " + ".join(
    f"(SELECT count(*) FROM ({kept}) AS k FULL JOIN ({real}) AS r USING (key)"
    " WHERE coalesce(k.n, 0) <> coalesce(r.n, 0))"
    for _, kept, real in KEPT_AGAINST_REAL
)
