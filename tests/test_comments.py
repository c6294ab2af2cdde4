"""Comments: anyone reads an article's comments, newest first; a signed-in user comments; only a
comment's author deletes it."""

from __future__ import annotations

import pytest

from tests.helpers import auth, create_article
from tests.realworld import COMMENT_KEYS, ISO_MILLIS_UTC, QueryLog, comment, errors, follow, members, ok, quick_users


async def comments(client, slug: str, token: str | None = None) -> list[dict]:
    response = await client.get(f"/api/articles/{slug}/comments", headers=auth(token) if token else {})
    return (await ok(response))["comments"]


@pytest.fixture
async def article(client, db):
    """jake's article; anna is another user."""
    jake, anna = await members(db, "jake", "anna")
    return {"jake": jake, "anna": anna, "slug": (await create_article(client, jake["token"]))["slug"]}


async def test_commenting_answers_the_comment(client, article, db):
    made = await comment(client, article["anna"]["token"], article["slug"], "Thank you so much!")
    assert set(made) == COMMENT_KEYS
    assert made["body"] == "Thank you so much!"
    assert isinstance(made["id"], int)
    assert ISO_MILLIS_UTC.match(made["createdAt"]) and ISO_MILLIS_UTC.match(made["updatedAt"])
    assert made["author"] == {"username": "anna", "bio": None, "image": None, "following": False}
    assert await db.fetchval("SELECT count(*) FROM comments") == 1


async def test_comments_are_listed_newest_first_for_anyone(client, article):
    made = [await comment(client, article["anna"]["token"], article["slug"], f"comment {n}") for n in range(3)]
    listed = await comments(client, article["slug"])
    assert listed == list(reversed(made))


async def test_an_article_without_comments_lists_none(client, article):
    assert await comments(client, article["slug"]) == []


async def test_comments_show_whether_the_reader_follows_each_author(client, article):
    await comment(client, article["anna"]["token"], article["slug"], "by anna")
    await comment(client, article["jake"]["token"], article["slug"], "by jake")
    await follow(client, article["jake"]["token"], "anna")
    seen = {
        c["body"]: c["author"]["following"] for c in await comments(client, article["slug"], article["jake"]["token"])
    }
    assert seen == {"by anna": True, "by jake": False}
    assert {c["author"]["following"] for c in await comments(client, article["slug"])} == {False}


async def test_reading_comments_with_an_invalid_token_is_401(client, article):
    await errors(await client.get(f"/api/articles/{article['slug']}/comments", headers=auth("not-a-token")), 401)


async def test_comments_of_an_unknown_article_are_404(client, article):
    token = article["jake"]["token"]
    assert set(await errors(await client.get("/api/articles/nothing/comments"), 404)) == {"article"}
    response = await client.post("/api/articles/nothing/comments", json={"comment": {"body": "x"}}, headers=auth(token))
    assert set(await errors(response, 404)) == {"article"}


async def test_commenting_needs_a_valid_token(client, article, db):
    path = f"/api/articles/{article['slug']}/comments"
    for headers in ({}, auth("not-a-token")):
        await errors(await client.post(path, json={"comment": {"body": "x"}}, headers=headers), 401)
    assert await db.fetchval("SELECT count(*) FROM comments") == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"comment": {"body": ""}}, "body"),
        ({"comment": {}}, "body"),
        ({"comment": {"body": 1}}, "body"),
        ({}, "comment"),
    ],
)
async def test_a_comment_is_validated(client, article, payload, field):
    path = f"/api/articles/{article['slug']}/comments"
    response = await client.post(path, json=payload, headers=auth(article["anna"]["token"]))
    assert set(await errors(response, 422)) == {field}


async def test_the_author_deletes_their_comment(client, article, db):
    made = await comment(client, article["anna"]["token"], article["slug"])
    kept = await comment(client, article["anna"]["token"], article["slug"], "kept")
    path = f"/api/articles/{article['slug']}/comments/{made['id']}"
    response = await client.delete(path, headers=auth(article["anna"]["token"]))
    assert response.status == 204 and await response.read() == b""
    assert await comments(client, article["slug"]) == [kept]
    await errors(await client.delete(path, headers=auth(article["anna"]["token"])), 404)  # gone


async def test_nobody_else_deletes_a_comment_not_even_the_articles_author(client, article, db):
    made = await comment(client, article["anna"]["token"], article["slug"])
    path = f"/api/articles/{article['slug']}/comments/{made['id']}"
    assert set(await errors(await client.delete(path, headers=auth(article["jake"]["token"])), 403)) == {"comment"}
    assert await db.fetchval("SELECT count(*) FROM comments") == 1


async def test_deleting_an_unknown_comment_is_404(client, article):
    token = article["anna"]["token"]
    other = (await create_article(client, token, title="Another"))["slug"]
    made = await comment(client, token, other)
    headers = auth(token)
    assert set(
        await errors(await client.delete(f"/api/articles/{article['slug']}/comments/999999", headers=headers), 404)
    ) == {"comment"}
    # a comment exists only under its own article
    await errors(await client.delete(f"/api/articles/{article['slug']}/comments/{made['id']}", headers=headers), 404)
    await errors(await client.delete(f"/api/articles/nothing/comments/{made['id']}", headers=headers), 404)


@pytest.mark.parametrize("comment_id", ["abc", "-1", "1.5", "99999999999999999999"])
async def test_a_comment_id_that_is_not_a_positive_integer_is_422(client, article, comment_id):
    path = f"/api/articles/{article['slug']}/comments/{comment_id}"
    assert set(await errors(await client.delete(path, headers=auth(article["anna"]["token"])), 422)) == {"id"}


async def test_deleting_needs_a_valid_token(client, article):
    made = await comment(client, article["anna"]["token"], article["slug"])
    path = f"/api/articles/{article['slug']}/comments/{made['id']}"
    for headers in ({}, auth("not-a-token")):
        await errors(await client.delete(path, headers=headers), 401)


async def test_listing_1_or_20_comments_runs_the_same_statements(make_client, db):
    client = await make_client(DB_POOL_MIN_SIZE="1", DB_POOL_MAX_SIZE="1")
    tokens = await quick_users(db, [f"user{n}" for n in range(20)])
    one = (await create_article(client, tokens[0], title="one"))["slug"]
    twenty = (await create_article(client, tokens[0], title="twenty"))["slug"]
    await comment(client, tokens[1], one)
    for n, token in enumerate(tokens):
        await comment(client, token, twenty, f"comment {n}")
        if n:
            await follow(client, tokens[0], f"user{n}")  # every following flag is true for user0
    log = await QueryLog.attach(client)
    for headers in ({}, auth(tokens[0])):
        for_one = await log.count(client.get(f"/api/articles/{one}/comments", headers=headers))
        assert await log.count(client.get(f"/api/articles/{twenty}/comments", headers=headers)) == for_one
        assert for_one == 1, log.statements  # the comments with the token's user checked in the same query
    assert len(await comments(client, twenty, tokens[0])) == 20
