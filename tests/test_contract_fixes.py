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


async def test_path_parameters_that_postgresql_cannot_hold_are_rejected_not_500(client):
    """A NUL in a path parameter used to reach PostgreSQL (which rejects it) and answer 500."""
    token = (await register(client))["token"]
    for method, path in (
        ("GET", "/api/profiles/a%00b"),
        ("POST", "/api/profiles/a%00b/follow"),
        ("GET", "/api/articles/a%00b"),
        ("DELETE", "/api/articles/a%00b"),
        ("GET", "/api/articles/a%00b/comments"),
        ("POST", "/api/articles/a%00b/favorite"),
        ("DELETE", "/api/articles/a-b/comments/1%00"),
    ):
        response = await client.request(method, path, headers=auth(token))
        assert response.status == 422, (method, path, await response.text())
        assert list((await response.json())["errors"]) in (["username"], ["slug"], ["id"])


async def test_a_comment_id_out_of_range_is_rejected(client):
    token = (await register(client))["token"]
    for raw in ("0", "-1", "9223372036854775808", "1.5", "abc"):
        response = await client.delete(f"/api/articles/a-b/comments/{raw}", headers=auth(token))
        assert response.status == 422, raw
        assert list((await response.json())["errors"]) == ["id"]


def test_the_email_pattern_means_the_same_to_the_service_and_to_the_published_document() -> None:
    """schemathesis once generated a login email with U+0085 that the document's pattern (read
    as ECMAScript regex, where \\s does not cover it) allowed and pydantic's engine (where it
    does) refused: a schema-valid request answered 422. The pattern now names its ranges."""
    import re

    from pydantic import TypeAdapter, ValidationError

    from schemas.base import Email
    from service.app import api_endpoints
    from service.openapi import build_document

    published = build_document(api_endpoints())["components"]["schemas"]["LoginUser"]["properties"]["email"]["pattern"]
    assert "\\s" not in published
    model = TypeAdapter(Email)
    for odd in ("\x85", "\x1e", "\xa0", "\u2028", "\u3000", " ", "\t", "\x00", "\x7f", "é"):
        email = f"a{odd}b@example.com"
        try:
            model.validate_python(email)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted == bool(re.fullmatch(published, email)), repr(odd)
