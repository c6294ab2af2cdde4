"""Permissions: a second user's token changes nothing that belongs to the first, on every write
endpoint; and nobody can take another user's username or email."""

from __future__ import annotations

import pytest

from tests.helpers import auth, create_article, register


@pytest.fixture
async def two_users(client, db):
    """Alice owns an article with a comment, a favorite and a follow; Mallory owns nothing."""
    alice = await register(client, "alice")
    mallory = await register(client, "mallory")
    article = await create_article(client, alice["token"], title="Alice's own", tags=["mine"])
    slug = article["slug"]
    comment = await client.post(
        f"/api/articles/{slug}/comments", json={"comment": {"body": "first"}}, headers=auth(alice["token"])
    )
    assert comment.status == 201, await comment.text()
    comment_id = (await comment.json())["comment"]["id"]
    assert (await client.post(f"/api/articles/{slug}/favorite", headers=auth(alice["token"]))).status == 200
    assert (await client.post("/api/profiles/mallory/follow", headers=auth(alice["token"]))).status == 200
    return alice, mallory, slug, comment_id


async def snapshot(db) -> dict:
    """Everything stored that belongs to Alice."""
    return {
        "article": dict(await db.fetchrow("SELECT slug, title, description, body, updated_at FROM articles")),
        "comments": [dict(r) for r in await db.fetch("SELECT id, body, author_id FROM comments ORDER BY id")],
        "favorites": [tuple(r) for r in await db.fetch("SELECT user_id, article_id FROM favorites")],
        "follows": [tuple(r) for r in await db.fetch("SELECT follower_id, followed_id FROM follows")],
        "alice": dict(
            await db.fetchrow("SELECT username, email, password_hash, bio, image FROM users WHERE username = 'alice'")
        ),
    }


async def test_only_the_author_may_update_or_delete_an_article_or_comment(client, db, two_users):
    alice, mallory, slug, comment_id = two_users
    before = await snapshot(db)
    as_mallory = auth(mallory["token"])
    forbidden = [
        ("PUT", f"/api/articles/{slug}", {"article": {"title": "Mallory's now", "body": "defaced"}}),
        ("PUT", f"/api/articles/{slug}", {"article": {}}),
        ("DELETE", f"/api/articles/{slug}", None),
        ("DELETE", f"/api/articles/{slug}/comments/{comment_id}", None),
    ]
    for method, path, body in forbidden:
        response = await client.request(method, path, json=body, headers=as_mallory)
        assert response.status == 403, (method, path, await response.text())
        assert (await response.json())["errors"]
    assert await snapshot(db) == before
    # The author may do all of it.
    as_alice = auth(alice["token"])
    assert (await client.delete(f"/api/articles/{slug}/comments/{comment_id}", headers=as_alice)).status == 204
    assert (await client.delete(f"/api/articles/{slug}", headers=as_alice)).status == 204


async def test_a_comment_cannot_be_deleted_through_another_article(client, db, two_users):
    _alice, mallory, _slug, comment_id = two_users
    own = await create_article(client, mallory["token"], title="Mallory's")
    response = await client.delete(f"/api/articles/{own['slug']}/comments/{comment_id}", headers=auth(mallory["token"]))
    assert response.status == 404
    assert await db.fetchval("SELECT count(*) FROM comments WHERE id = $1", comment_id) == 1


async def test_per_user_writes_touch_only_the_callers_own_rows(client, db, two_users):
    """Favorites, follows, comments and the current user are the caller's own: with Mallory's
    token they change Mallory's rows, never Alice's."""
    _alice, mallory, slug, _comment_id = two_users
    before = await snapshot(db)
    as_mallory = auth(mallory["token"])
    ids = {r["username"]: r["id"] for r in await db.fetch("SELECT id, username FROM users")}
    # Unfavorite / unfollow with Mallory's token cannot remove Alice's favorite or follow.
    assert (await client.delete(f"/api/articles/{slug}/favorite", headers=as_mallory)).status == 200
    assert (await client.delete("/api/profiles/alice/follow", headers=as_mallory)).status == 200
    assert (await snapshot(db))["favorites"] == before["favorites"]
    assert (await snapshot(db))["follows"] == before["follows"]
    # Favorite / follow / comment / update-self act as Mallory.
    assert (await client.post(f"/api/articles/{slug}/favorite", headers=as_mallory)).status == 200
    assert (await client.post("/api/profiles/alice/follow", headers=as_mallory)).status == 200
    comment = await client.post(f"/api/articles/{slug}/comments", json={"comment": {"body": "hi"}}, headers=as_mallory)
    assert comment.status == 201
    updated = await client.put("/api/user", json={"user": {"bio": "just mallory"}}, headers=as_mallory)
    assert (await updated.json())["user"]["username"] == "mallory"
    after = await snapshot(db)
    assert after["alice"] == before["alice"]
    assert after["article"] == before["article"]
    article_id = await db.fetchval("SELECT id FROM articles WHERE slug = $1", slug)
    assert set(after["favorites"]) - set(before["favorites"]) == {(ids["mallory"], article_id)}
    assert set(after["follows"]) - set(before["follows"]) == {(ids["mallory"], ids["alice"])}
    new_comments = [c for c in after["comments"] if c not in before["comments"]]
    assert [c["author_id"] for c in new_comments] == [ids["mallory"]]


@pytest.mark.parametrize(
    ("field", "value"),
    [("username", "alice"), ("email", "alice@example.com"), ("email", "ALICE@Example.COM")],
)
async def test_nobody_takes_another_users_username_or_email(client, db, field, value):
    await register(client, "alice")
    mallory = await register(client, "mallory")
    response = await client.put("/api/user", json={"user": {field: value}}, headers=auth(mallory["token"]))
    assert response.status == 409, await response.text()
    assert field in (await response.json())["errors"]
    new = {"username": "mallory2", "email": "mallory2@example.com", "password": "password123", field: value}
    response = await client.post("/api/users", json={"user": new})
    assert response.status == 409, await response.text()
    assert field in (await response.json())["errors"]
    rows = await db.fetch("SELECT username, email FROM users ORDER BY id")
    assert [tuple(r) for r in rows] == [("alice", "alice@example.com"), ("mallory", "mallory@example.com")]
