"""Tags: the tags in use, each once, in alphabetical order, for anyone."""

from __future__ import annotations

from tests.helpers import auth, create_article
from tests.realworld import QueryLog, errors, member, ok, quick_users


async def tags(client, headers: dict | None = None) -> list[str]:
    return (await ok(await client.get("/api/tags", headers=headers or {})))["tags"]


async def test_no_articles_no_tags(client):
    assert await tags(client) == []


async def test_tags_in_use_each_once_alphabetically(client, db):
    jake = await member(db, "jake")
    await create_article(client, jake["token"], title="one", tags=["training", "dragons"])
    await create_article(client, jake["token"], title="two", tags=["dragons", "angular", "Zebra"])
    assert await tags(client) == ["Zebra", "angular", "dragons", "training"]  # byte order: capitals first


async def test_a_tag_no_article_uses_any_more_is_not_listed(client, db):
    jake = await member(db, "jake")
    await create_article(client, jake["token"], title="kept", tags=["kept", "shared"])
    gone = await create_article(client, jake["token"], title="gone", tags=["gone", "shared"])
    response = await client.delete(f"/api/articles/{gone['slug']}", headers=auth(jake["token"]))
    assert response.status == 204
    assert await tags(client) == ["kept", "shared"]


async def test_tags_need_no_token_and_ignore_one(client, db):
    """GET /tags is public: unlike the optional-auth routes it never reads the Authorization header."""
    await member(db, "jake")
    assert await tags(client, auth("not-a-token")) == []


async def test_tags_answer_json_errors_for_other_methods(client):
    assert set(await errors(await client.post("/api/tags", json={}), 405)) == {"method"}


async def test_1_or_20_tags_cost_the_same_statements(make_client, db):
    client = await make_client(DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1")
    [token] = await quick_users(db, ["jake"])
    article = await create_article(client, token, title="one", tags=["solo"])
    log = await QueryLog.attach(client)
    one = await log.count(client.get("/api/tags"))
    assert (await client.delete(f"/api/articles/{article['slug']}", headers=auth(token))).status == 204
    await create_article(client, token, title="twenty", tags=[f"tag{n:02}" for n in range(10)])
    await create_article(client, token, title="more", tags=[f"tag{n:02}" for n in range(10, 20)])
    assert await log.count(client.get("/api/tags")) == one == 1  # the tags; the pool's release adds none
    assert len(await tags(client)) == 20
