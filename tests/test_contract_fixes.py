"""Regressions for what schemathesis found against the generated contract."""

from __future__ import annotations

from tests.helpers import auth, create_article, register


async def test_an_article_titled_feed_does_not_hide_behind_the_feed(client):
    token = (await register(client))["token"]
    article = await create_article(client, token, title="Feed")
    assert article["slug"].startswith("feed-")
    response = await client.get(f"/api/articles/{article['slug']}")
    assert response.status == 200
    assert (await response.json())["article"]["title"] == "Feed"


async def test_the_feed_path_declares_only_get(client):
    token = (await register(client))["token"]
    for method in ("PUT", "DELETE", "OPTIONS"):
        response = await client.request(method, "/api/articles/feed", headers=auth(token))
        assert response.status == 405, method
        assert response.headers["Allow"] == "GET"


async def test_feed_is_not_a_slug(client):
    token = (await register(client))["token"]
    response = await client.get("/api/articles/feed/comments", headers=auth(token))
    assert response.status == 422
    assert "slug" in (await response.json())["errors"]
