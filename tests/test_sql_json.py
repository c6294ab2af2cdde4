"""The reads whose JSON PostgreSQL builds (articles, lists, the feed, comments, tags) answer
exactly what the declared pydantic models would write from the same values: the same keys in
the same order, the same timestamps to the millisecond, the same escaping of awkward text."""

from __future__ import annotations

import json

import pytest

from schemas.articles import MultipleArticlesResponse, SingleArticleResponse, TagsResponse
from schemas.comments import MultipleCommentsResponse
from tests.helpers import auth, create_article, register

AWKWARD = 'Quotes " and \\ backslash, a tab\t, a newline\n, \x01, 🐉, Ünïcödé, <b>&amp;</b> 日本語'


def ordered(text: str) -> list:
    """JSON parsed with every object kept as its ordered list of pairs: order counts in ==."""
    return json.loads(text, object_pairs_hook=list)


@pytest.fixture
async def world(client):
    """Two users, articles with awkward text and unsorted tags, a follow, a favorite, comments."""
    alice = await register(client, "alice")
    bob = await register(client, "bob")
    response = await client.put(
        "/api/user", json={"user": {"bio": AWKWARD, "image": "https://example.com/b.png"}}, headers=auth(bob["token"])
    )
    assert response.status == 200
    tricky = await create_article(
        client,
        bob["token"],
        title="Héllo " + AWKWARD[:40],
        tags=["zeta", "alpha", "émoji 🐉"],
        description=AWKWARD,
        body=AWKWARD * 3,
    )
    plain = await create_article(client, alice["token"], title="Plain")
    assert (await client.post("/api/profiles/bob/follow", headers=auth(alice["token"]))).status == 200
    assert (await client.post(f"/api/articles/{tricky['slug']}/favorite", headers=auth(alice["token"]))).status == 200
    for text in (AWKWARD, "second"):
        response = await client.post(
            f"/api/articles/{tricky['slug']}/comments", json={"comment": {"body": text}}, headers=auth(alice["token"])
        )
        assert response.status == 201, await response.text()
    return {"alice": alice, "bob": bob, "tricky": tricky["slug"], "plain": plain["slug"]}


async def test_built_json_is_what_the_models_write(client, world):
    reads = [
        ("/api/articles", MultipleArticlesResponse),
        ("/api/articles?tag=zeta", MultipleArticlesResponse),
        ("/api/articles?author=bob", MultipleArticlesResponse),
        ("/api/articles?favorited=alice", MultipleArticlesResponse),
        ("/api/articles?tag=nothing-has-this", MultipleArticlesResponse),
        ("/api/articles?limit=1&offset=1", MultipleArticlesResponse),
        (f"/api/articles/{world['tricky']}", SingleArticleResponse),
        (f"/api/articles/{world['plain']}", SingleArticleResponse),
        (f"/api/articles/{world['tricky']}/comments", MultipleCommentsResponse),
        (f"/api/articles/{world['plain']}/comments", MultipleCommentsResponse),
        ("/api/tags", TagsResponse),
    ]
    signed_in = [(path, model, auth(world["alice"]["token"])) for path, model in reads]
    feed = [("/api/articles/feed", MultipleArticlesResponse, auth(world["alice"]["token"]))]
    for path, model, headers in [(p, m, {}) for p, m in reads] + signed_in + feed:
        response = await client.get(path, headers=headers)
        text = await response.text()
        assert response.status == 200, (path, text)
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        rewritten = model.model_validate_json(text).json_bytes().decode()
        assert ordered(text) == ordered(rewritten), path


async def test_built_json_carries_the_data(client, world):
    """Spot checks of the values themselves (the test above only proves the shape and format)."""
    alice = auth(world["alice"]["token"])
    article = (await (await client.get(f"/api/articles/{world['tricky']}", headers=alice)).json())["article"]
    assert article["tagList"] == ["alpha", "zeta", "émoji 🐉"]  # sorted (by code point: the C collation)
    assert article["description"] == AWKWARD and article["body"] == AWKWARD * 3
    assert article["favorited"] is True and article["favoritesCount"] == 1
    assert article["author"] == {
        "username": "bob",
        "bio": AWKWARD,
        "image": "https://example.com/b.png",
        "following": True,
    }
    listed = await (await client.get("/api/articles", headers=alice)).json()
    assert listed["articlesCount"] == 2 and [a["slug"] for a in listed["articles"]] == [world["plain"], world["tricky"]]
    assert {k: v for k, v in article.items() if k != "body"} == listed["articles"][1]
    comments = (await (await client.get(f"/api/articles/{world['tricky']}/comments")).json())["comments"]
    assert [c["body"] for c in comments] == ["second", AWKWARD]  # newest first
    assert comments[0]["author"]["following"] is False


@pytest.mark.parametrize(
    "path", ["/api/articles", "/api/articles?tag=zeta", "/api/articles/feed", "ARTICLE", "ARTICLE/comments"]
)
async def test_a_token_whose_user_is_gone_is_a_401_on_reads(client, db, world, path):
    """Reads check the token's user in their own query (one round trip instead of two)."""
    carol = await register(client, "carol")
    await db.execute("DELETE FROM users WHERE username = 'carol'")
    path = path.replace("ARTICLE", f"/api/articles/{world['tricky']}")
    response = await client.get(path, headers=auth(carol["token"]))
    assert response.status == 401, await response.text()
    assert (await response.json())["errors"] == {"token": ["is invalid"]}
