"""A page of the newest articles costs the page, not the table: every list query (each filter,
the feed, their counts) is planned without a sequential scan of the articles table, both as
PostgreSQL plans it for the given values (custom plan) and as it plans it for any value (the
generic plan a prepared statement switches to after five executions).

The data is the benchmark's seed at a small size, in a database of this module's own; no time
is measured here (speed is the benchmark's business)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import asyncpg
import pytest

from service.handlers.articles import feed_statement, list_statement
from service.sqlfiles import queries
from tests.bench.seed import Scale, seed
from tests.conftest import seeded_database

SCALE = Scale(users=80, articles=3_000, follows=600, favorites=6_000, comments=600)


@pytest.fixture(scope="module")
def seeded(server_dsn: str) -> Iterator[tuple[str, dict]]:
    """A database of its own with the seed loaded and analyzed (the seed ends with ANALYZE)."""
    with seeded_database(server_dsn, "conduit_plans", lambda conn: seed(conn, SCALE, distinct_hashes=False)) as made:
        yield made


def variants(facts: dict) -> dict[str, tuple[str, list]]:
    """Each list query the handlers run, with realistic arguments (viewer, limit, offset, filters)."""
    reader = facts["users"].index(facts["follower"]) + 1
    return {
        "newest": (list_statement(False, False, False), [None, 20, 0]),
        "newest, signed in": (list_statement(False, False, False), [reader, 20, 0]),
        "tag": (list_statement(True, False, False), [None, 20, 0, facts["tag"]]),
        "author": (list_statement(False, True, False), [None, 20, 0, facts["author"]]),
        "favorited": (list_statement(False, False, True), [None, 20, 0, facts["favoriter"]]),
        "tag and author": (list_statement(True, True, False), [None, 20, 0, facts["tag"], facts["author"]]),
        "tag and favorited": (list_statement(True, False, True), [reader, 20, 0, facts["tag"], facts["favoriter"]]),
        "feed": (feed_statement(), [reader, 20, 0]),
        "feed, second page": (feed_statement(), [reader, 20, 20]),
        "one article": (queries("articles").by_slug, [reader, facts["slugs"][len(facts["slugs"]) // 2]]),
        "comments": (queries("comments").for_article, [facts["slugs"][7], reader]),
    }


def nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def explain(url: str, sql: str, args: list, mode: str) -> dict:
    """EXPLAIN ANALYZE of the prepared statement, run as asyncpg runs it, under plan_cache_mode."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"SET plan_cache_mode = {mode}")
        await conn.execute(f"PREPARE q AS {sql}")
        execute = f"EXECUTE q({', '.join(literal(a) for a in args)})"
        await conn.execute(execute)
        raw = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {execute}")
        return json.loads(raw)[0]["Plan"] if isinstance(raw, str) else raw[0]["Plan"]
    finally:
        await conn.close()


NAMES = list(
    variants({"users": ["x"], "follower": "x", "tag": "t", "author": "a", "favoriter": "f", "slugs": ["s"] * 8})
)


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("name", NAMES)
def test_no_list_query_scans_the_articles_table(seeded, name, mode):
    url, facts = seeded
    sql, args = variants(facts)[name]
    plan = asyncio.run(explain(url, sql, args, mode))
    scans = [
        node for node in nodes(plan) if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "articles"
    ]
    assert not scans, f"{name} ({mode}) reads the whole articles table:\n{json.dumps(plan, indent=1)[:4000]}"
    # and it really ran: the plan is not a stub that returned nothing
    assert plan["Actual Rows"] == 1


def test_the_pages_hold_what_the_seed_put_there(seeded):
    """The variants above are realistic: each filter matches articles, and the counts are exact."""
    url, facts = seeded

    async def check() -> None:
        conn = await asyncpg.connect(url)
        try:
            for name in ("newest", "tag", "author", "favorited", "feed"):
                sql, args = variants(facts)[name]
                row = await conn.fetchrow(sql, *args)
                assert row is not None, name
                body = json.loads(row["body"])
                assert len(body["articles"]) == 20, name
                assert body["articlesCount"] >= 20, name
            sql, args = variants(facts)["newest"]
            row = await conn.fetchrow(sql, *args)
            assert row is not None
            body = json.loads(row["body"])
            assert body["articlesCount"] == SCALE.articles == await conn.fetchval("SELECT count(*) FROM articles")
        finally:
            await conn.close()

    asyncio.run(check())
