"""Races, fired at the real server at once with asyncio.gather: constraints and INSERT ... ON
CONFLICT decide them, so there is never a 500, never a duplicate row, and every count is exact."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.helpers import auth, create_article, register
from tests.realworld import errors, ok, quick_users

RACERS = 8


@pytest.fixture
async def client(make_client):
    """Enough pooled connections for every racer at once, so the races are in the database and
    not in the queue for a connection."""
    return await make_client(DB_POOL_MIN_SIZE="2", DB_POOL_MAX_SIZE=str(2 * RACERS + 2), DB_ACQUIRE_TIMEOUT="30")


def statuses(responses) -> Counter:
    return Counter(response.status for response in responses)


async def test_registrations_with_the_same_email_at_once_make_one_user(client, db):
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/users",
                json={
                    "user": {
                        "username": f"jake{n}",
                        "email": "Jake@Jake.jake" if n % 2 else "jake@jake.jake",
                        "password": "jakejakejake",
                    }
                },
            )
            for n in range(RACERS)
        )
    )
    assert statuses(responses) == {201: 1, 409: RACERS - 1}
    for response in responses:
        if response.status == 409:
            assert await errors(response, 409) == {"email": ["has already been taken"]}
    assert await db.fetchval("SELECT count(*) FROM users WHERE lower(email) = 'jake@jake.jake'") == 1


async def test_registrations_with_the_same_username_at_once_make_one_user(client, db):
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/users",
                json={"user": {"username": "jake", "email": f"jake{n}@jake.jake", "password": "jakejakejake"}},
            )
            for n in range(RACERS)
        )
    )
    assert statuses(responses) == {201: 1, 409: RACERS - 1}
    for response in responses:
        if response.status == 409:
            assert await errors(response, 409) == {"username": ["has already been taken"]}
    assert await db.fetchval("SELECT count(*) FROM users") == 1


async def test_one_user_favoriting_an_article_many_times_at_once_counts_once(client, db):
    jake = await register(client, "jake")
    slug = (await create_article(client, jake["token"]))["slug"]
    path = f"/api/articles/{slug}/favorite"
    responses = await asyncio.gather(*(client.post(path, headers=auth(jake["token"])) for _ in range(RACERS)))
    for response in responses:
        article = (await ok(response))["article"]
        assert (article["favorited"], article["favoritesCount"]) == (True, 1)
    assert await db.fetchval("SELECT count(*) FROM favorites") == 1


async def test_many_users_favoriting_at_once_are_all_counted(client, db):
    tokens = await quick_users(db, [f"fan{n}" for n in range(RACERS)])
    slug = (await create_article(client, tokens[0]))["slug"]
    path = f"/api/articles/{slug}/favorite"
    responses = await asyncio.gather(*(client.post(path, headers=auth(token)) for token in tokens))
    for response in responses:
        # each answer counts its own favorite and those committed before it read
        assert 1 <= (await ok(response))["article"]["favoritesCount"] <= RACERS
    assert (await ok(await client.get(f"/api/articles/{slug}")))["article"]["favoritesCount"] == RACERS
    assert await db.fetchval("SELECT count(*) FROM favorites") == RACERS


async def test_favorite_and_unfavorite_racing_leave_a_count_equal_to_the_rows(client, db):
    jake = await register(client, "jake")
    slug = (await create_article(client, jake["token"]))["slug"]
    path = f"/api/articles/{slug}/favorite"
    calls = [client.post if n % 2 else client.delete for n in range(2 * RACERS)]
    responses = await asyncio.gather(*(call(path, headers=auth(jake["token"])) for call in calls))
    for response in responses:
        article = (await ok(response))["article"]
        assert article["favoritesCount"] == int(article["favorited"])  # one user: 0 or 1, and consistent
    rows = await db.fetchval("SELECT count(*) FROM favorites")
    assert rows in (0, 1)
    final = (await ok(await client.get(f"/api/articles/{slug}", headers=auth(jake["token"]))))["article"]
    assert (final["favorited"], final["favoritesCount"]) == (rows == 1, rows)


async def test_following_many_times_at_once_makes_one_row(client, db):
    jake = await register(client, "jake")
    await register(client, "celeb")
    responses = await asyncio.gather(
        *(client.post("/api/profiles/celeb/follow", headers=auth(jake["token"])) for _ in range(RACERS))
    )
    for response in responses:
        assert (await ok(response))["profile"]["following"] is True
    assert await db.fetchval("SELECT count(*) FROM follows") == 1


async def test_follow_and_unfollow_racing_never_fail_and_agree_with_the_rows(client, db):
    jake = await register(client, "jake")
    await register(client, "celeb")
    path = "/api/profiles/celeb/follow"
    calls = [client.post if n % 2 else client.delete for n in range(2 * RACERS)]
    responses = await asyncio.gather(*(call(path, headers=auth(jake["token"])) for call in calls))
    for call, response in zip(calls, responses, strict=True):
        assert (await ok(response))["profile"]["following"] is (call == client.post)
    rows = await db.fetchval("SELECT count(*) FROM follows")
    assert rows in (0, 1)
    final = (await ok(await client.get("/api/profiles/celeb", headers=auth(jake["token"]))))["profile"]
    assert final["following"] is (rows == 1)


async def test_articles_with_the_same_title_and_new_tags_at_once_all_succeed(client, db):
    tokens = await quick_users(db, [f"writer{n}" for n in range(RACERS)])
    article = {"title": "Same title", "description": "d", "body": "b", "tagList": ["fresh", "new", "shared"]}
    responses = await asyncio.gather(
        *(client.post("/api/articles", json={"article": article}, headers=auth(token)) for token in tokens)
    )
    made = [(await ok(response, 201))["article"] for response in responses]
    assert len({a["slug"] for a in made}) == RACERS
    assert all(a["tagList"] == ["fresh", "new", "shared"] for a in made)
    assert await db.fetchval("SELECT count(*) FROM tags") == 3
    assert await db.fetchval("SELECT count(*) FROM article_tags") == 3 * RACERS


async def waiting_on_a_lock(db) -> int:
    """How many of the service's sessions on this database are blocked on a lock right now."""
    return await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'conduit' AND wait_event_type = 'Lock'"
    )


@pytest.mark.parametrize("action", ["favorite", "comment"])
async def test_favoriting_or_commenting_an_article_as_it_is_deleted_is_404(client, db, database_url, action):
    """The delete commits while the request waits on the article's row: the answer is 404, not a
    foreign-key violation (500). The delete is held open in a transaction of the test's own."""
    import asyncpg

    jake = await register(client, "jake")
    slug = (await create_article(client, jake["token"]))["slug"]
    deleter = await asyncpg.connect(database_url)
    try:
        transaction = deleter.transaction()
        await transaction.start()
        await deleter.execute("DELETE FROM articles WHERE slug = $1", slug)
        if action == "favorite":
            request = client.post(f"/api/articles/{slug}/favorite", headers=auth(jake["token"]))
        else:
            request = client.post(
                f"/api/articles/{slug}/comments", json={"comment": {"body": "x"}}, headers=auth(jake["token"])
            )
        pending = asyncio.ensure_future(request)
        async with asyncio.timeout(10):
            while not await waiting_on_a_lock(db):  # bounded poll until the request is blocked
                assert not pending.done(), await (await pending).text()
                await asyncio.sleep(0.01)
        await transaction.commit()
        assert set(await errors(await pending, 404)) == {"article"}
    finally:
        await deleter.close()
    assert await db.fetchval("SELECT count(*) FROM favorites") == 0
    assert await db.fetchval("SELECT count(*) FROM comments") == 0
