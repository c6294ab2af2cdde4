"""The counts the database keeps (migration 0006) stay exact under a concurrent mix of every
write that changes them: articles created with tags and deleted, favorites and unfavorites of a
hot article and of many, follows, tag replacement (PUT with a tagList, and in SQL), users
deleted with everything they own (cascades), conflicting inserts, and transactions rolled back
and then run again. Afterwards every kept count is compared with a COUNT(*) of its rows
(tests/counts.py)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import asyncpg
import pytest

from tests.counts import compare_counts
from tests.helpers import auth
from tests.realworld import quick_users

WORKERS = 8
OPERATIONS = 40  # per API worker
TAGS = ["hot", "rare", "mid", "blue", "green"]


@pytest.fixture
async def client(make_client):
    return await make_client(DB_POOL_MIN_SIZE="2", DB_POOL_MAX_SIZE=str(WORKERS + 4), DB_ACQUIRE_TIMEOUT="30")


async def test_a_concurrent_mix_of_writes_leaves_every_count_exact(client, db, database_url):
    names = [f"mixer{n}" for n in range(WORKERS + 4)]
    tokens = dict(zip(names, await quick_users(db, names), strict=True))
    hot = (
        await (
            await client.post(
                "/api/articles",
                json={"article": {"title": "Hot", "description": "d", "body": "b", "tagList": ["hot"]}},
                headers=auth(tokens[names[-1]]),
            )
        ).json()
    )["article"]["slug"]
    slugs: list[str] = [hot]
    for doomed in names[WORKERS + 1 : WORKERS + 3]:  # deleted during the mix, with all they own
        for n in range(3):
            article = {"title": f"Doomed {n}", "description": "d", "body": "b", "tagList": ["hot", TAGS[n + 1]]}
            response = await client.post("/api/articles", json={"article": article}, headers=auth(tokens[doomed]))
            slugs.append((await response.json())["article"]["slug"])
        await client.post(f"/api/articles/{hot}/favorite", headers=auth(tokens[doomed]))
        await client.post(f"/api/profiles/{names[0]}/follow", headers=auth(tokens[doomed]))
    done: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    async def api_worker(n: int) -> None:
        rng = random.Random(n)
        token = tokens[names[n]]
        mine: list[str] = []
        for i in range(OPERATIONS):
            kind = rng.choice(
                ["create", "create", "delete", "retag", "favorite_hot", "favorite", "unfavorite", "twice", "follow"]
            )
            headers = auth(token)
            if kind == "create":
                tags = (["hot"] if rng.random() < 0.9 else []) + rng.sample(TAGS[1:], rng.randint(0, 2))
                article = {"title": f"Mix {n} {i}", "description": "d", "body": "b", "tagList": tags}
                response = await client.post("/api/articles", json={"article": article}, headers=headers)
                if response.status == 201:
                    slug = (await response.json())["article"]["slug"]
                    mine.append(slug)
                    slugs.append(slug)
            elif kind == "retag" and mine:  # PUT with a tagList replaces the article's tags
                tags = rng.sample(TAGS, rng.randint(0, 3))
                response = await client.put(
                    f"/api/articles/{rng.choice(mine)}", json={"article": {"tagList": tags}}, headers=headers
                )
            elif kind == "delete" and mine:
                response = await client.delete(f"/api/articles/{mine.pop(rng.randrange(len(mine)))}", headers=headers)
            elif kind in ("favorite_hot", "favorite", "unfavorite"):
                slug = hot if kind == "favorite_hot" else rng.choice(slugs)
                method = client.delete if kind == "unfavorite" or rng.random() < 0.3 else client.post
                response = await method(f"/api/articles/{slug}/favorite", headers=headers)
            elif kind == "twice":  # a client retrying: the same favorite twice at once
                slug = rng.choice(slugs)
                first, response = await asyncio.gather(
                    *(client.post(f"/api/articles/{slug}/favorite", headers=headers) for _ in range(2))
                )
                statuses[first.status] += 1
            else:
                other = rng.choice(names)
                method = client.post if rng.random() < 0.7 else client.delete
                response = await method(f"/api/profiles/{other}/follow", headers=headers)
            done[kind] += 1
            statuses[response.status] += 1

    async def sql_worker() -> None:
        """Writes the API does not make: deleted users (cascades), tag replacement, bulk and
        conflicting inserts, and transactions that roll back and are then run again."""
        conn = await asyncpg.connect(database_url)
        rng = random.Random(99)
        try:
            for i in range(30):
                kind = rng.choice(["replace_tags", "bulk_favorites", "retry", "retry"])
                if i in (10, 20):
                    kind = "delete_user"
                try:
                    await sql_write(conn, rng, kind, i)
                except (asyncpg.ForeignKeyViolationError, asyncpg.DeadlockDetectedError):
                    done["failed whole (an article deleted meanwhile)"] += 1  # nothing of it stays
                done[kind] += 1
                await asyncio.sleep(0)
        finally:
            await conn.close()

    async def sql_write(conn: asyncpg.Connection, rng: random.Random, kind: str, i: int) -> None:
        if kind == "delete_user":  # its articles, their tags and favorites, its favorites, its follows
            await conn.execute("DELETE FROM users WHERE username = $1", names[WORKERS + i // 10])
        elif kind == "replace_tags":
            async with conn.transaction():
                article = await conn.fetchval("SELECT id FROM articles ORDER BY random() LIMIT 1")
                await conn.execute("DELETE FROM article_tags WHERE article_id = $1", article)
                await conn.execute(
                    "INSERT INTO article_tags (article_id, tag_id) SELECT $1, id FROM tags"
                    " WHERE name = ANY($2::text[]) ON CONFLICT DO NOTHING",
                    article,
                    rng.sample(TAGS, 2),
                )
        elif kind == "bulk_favorites":  # many users at once, some already there (conflicts)
            await conn.execute(
                "INSERT INTO favorites (user_id, article_id)"
                " SELECT u.id, a.id FROM users u, (SELECT id FROM articles ORDER BY random() LIMIT 3) a"
                " ON CONFLICT DO NOTHING"
            )
        else:  # a transaction that fails after writing, rolled back, then run again
            for attempt in range(2):
                try:
                    async with conn.transaction():
                        await conn.execute(
                            "DELETE FROM favorites WHERE (user_id, article_id) IN"
                            " (SELECT user_id, article_id FROM favorites ORDER BY random() LIMIT 2)"
                        )
                        await conn.execute(
                            "INSERT INTO article_tags (article_id, tag_id)"
                            " SELECT a.id, t.id FROM (SELECT id FROM articles ORDER BY random() LIMIT 2) a,"
                            " tags t WHERE t.name = 'rare' ON CONFLICT DO NOTHING"
                        )
                        if attempt == 0:
                            raise RuntimeError("the first run fails")
                except RuntimeError:
                    done["rolled back"] += 1

    await asyncio.gather(*(api_worker(n) for n in range(WORKERS)), sql_worker())

    compared, wrong = await compare_counts(db)
    operations = sum(done.values())
    print(
        f"\ncount drift: {operations} operations {dict(done)}, answers {dict(statuses)}; "
        f"{compared} counts compared, {len(wrong)} differ"
    )
    assert not wrong, "\n".join(wrong)
    assert not [status for status in statuses if status >= 500], statuses
    assert compared > 50 and operations >= WORKERS * OPERATIONS
    # the hot article's favorites were counted on several rows (one per backend), not queued on one
    assert (
        await db.fetchval(
            "SELECT count(*) FROM favorite_counts WHERE article_id = (SELECT id FROM articles WHERE slug = $1)", hot
        )
        > 1
    )
    # the list answers from those counts: one of each, checked against the rows
    body = await (await client.get("/api/articles?tag=hot&limit=1")).json()
    assert body["articlesCount"] == await db.fetchval(
        "SELECT count(*) FROM article_tags WHERE tag_id = (SELECT id FROM tags WHERE name = 'hot')"
    )
    article = (await (await client.get(f"/api/articles/{hot}")).json())["article"]
    assert article["favoritesCount"] == await db.fetchval(
        "SELECT count(*) FROM favorites WHERE article_id = (SELECT id FROM articles WHERE slug = $1)", hot
    )
