"""articlesCount of the unfiltered list comes from article_totals, kept by triggers on articles:
it stays exact through inserts, deletes, cascades, rollbacks, concurrent writers and TRUNCATE."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.helpers import auth, create_article, register


async def totals(db: asyncpg.Connection) -> tuple[int, int]:
    """(what the list answers from, what is really there)."""
    kept = await db.fetchval("SELECT sum(articles)::bigint FROM article_totals")
    return kept, await db.fetchval("SELECT count(*) FROM articles")


async def test_the_api_count_follows_creates_and_deletes(client, db):
    user = await register(client)
    slugs = [(await create_article(client, user["token"], title=f"Counted {n}"))["slug"] for n in range(3)]
    assert await totals(db) == (3, 3)
    assert (await client.delete(f"/api/articles/{slugs[0]}", headers=auth(user["token"]))).status == 204
    assert (await (await client.get("/api/articles")).json())["articlesCount"] == 2
    assert await totals(db) == (2, 2)


async def test_a_cascade_a_rollback_and_a_conflict_change_it_exactly(db):
    await db.execute(
        "INSERT INTO users (username, email, password_hash) VALUES ('a', 'a@x.io', 'h'), ('b', 'b@x.io', 'h')"
    )
    await db.execute(
        "INSERT INTO articles (slug, title, description, body, author_id) "
        "SELECT 'a-' || n, 't', 'd', 'b', (SELECT id FROM users WHERE username = 'a') FROM generate_series(1, 5) n"
    )
    await db.execute(
        "INSERT INTO articles (slug, title, description, body, author_id) "
        "SELECT 'b-' || n, 't', 'd', 'b', (SELECT id FROM users WHERE username = 'b') FROM generate_series(1, 4) n"
    )
    assert await totals(db) == (9, 9)
    try:
        async with db.transaction():
            await db.execute("DELETE FROM articles WHERE slug LIKE 'b-%'")
            assert await totals(db) == (5, 5)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert await totals(db) == (9, 9)
    conflict = await db.fetchval(
        "INSERT INTO articles (slug, title, description, body, author_id) "
        "VALUES ('a-1', 't', 'd', 'b', (SELECT id FROM users WHERE username = 'a')) "
        "ON CONFLICT (slug) DO NOTHING RETURNING id"
    )
    assert conflict is None
    await db.execute("DELETE FROM users WHERE username = 'a'")  # cascades to its 5 articles
    assert await totals(db) == (4, 4)
    await db.execute("TRUNCATE articles CASCADE")
    assert await totals(db) == (0, 0)


async def test_concurrent_writers_on_many_connections_keep_it_exact(db, database_url):
    await db.execute("INSERT INTO users (username, email, password_hash) VALUES ('w', 'w@x.io', 'h')")
    author = await db.fetchval("SELECT id FROM users WHERE username = 'w'")
    connections = [await asyncpg.connect(database_url) for _ in range(6)]
    try:

        async def write(conn: asyncpg.Connection, worker: int) -> None:
            for n in range(20):
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO articles (slug, title, description, body, author_id)"
                        " VALUES ($1, 't', 'd', 'b', $2)",
                        f"w{worker}-{n}",
                        author,
                    )
                    if n % 4 == 3:
                        await conn.execute("DELETE FROM articles WHERE slug = $1", f"w{worker}-{n - 1}")

        await asyncio.gather(*(write(conn, worker) for worker, conn in enumerate(connections)))
    finally:
        for conn in connections:
            await conn.close()
    assert await totals(db) == (6 * 15, 6 * 15)
    # the writers spread over several of the 16 rows, so they did not queue on one
    assert await db.fetchval("SELECT count(*) FROM article_totals WHERE articles <> 0") > 1
