"""Profiles: anyone may read one; a signed-in user follows and unfollows another."""

from __future__ import annotations

from tests.helpers import auth
from tests.realworld import PROFILE_KEYS, errors, follow, member, members, ok


async def profile(client, username: str, token: str | None = None) -> dict:
    return (await ok(await client.get(f"/api/profiles/{username}", headers=auth(token) if token else {})))["profile"]


async def follow_rows(db) -> list[tuple[str, str]]:
    rows = await db.fetch(
        """SELECT a.username AS follower, b.username AS followed FROM follows f
           JOIN users a ON a.id = f.follower_id JOIN users b ON b.id = f.followed_id ORDER BY 1, 2"""
    )
    return [(row["follower"], row["followed"]) for row in rows]


async def test_anyone_reads_a_profile_as_not_following(client, db):
    await member(db, "celeb")
    body = await profile(client, "celeb")
    assert body == {"username": "celeb", "bio": None, "image": None, "following": False}
    assert set(body) == PROFILE_KEYS


async def test_an_unknown_username_is_404(client, db):
    jake = await member(db, "jake")
    assert set(await errors(await client.get("/api/profiles/nobody"), 404)) == {"profile"}
    await errors(await client.post("/api/profiles/nobody/follow", headers=auth(jake["token"])), 404)
    await errors(await client.delete("/api/profiles/nobody/follow", headers=auth(jake["token"])), 404)


async def test_reading_a_profile_with_an_invalid_token_is_401(client, db):
    await member(db, "celeb")
    await errors(await client.get("/api/profiles/celeb", headers=auth("not-a-token")), 401)


async def test_follow_then_unfollow(client, db):
    jake = await member(db, "jake")
    await member(db, "celeb")
    followed = await follow(client, jake["token"], "celeb")
    assert followed == {"username": "celeb", "bio": None, "image": None, "following": True}
    assert await profile(client, "celeb", jake["token"]) == followed
    assert (await profile(client, "celeb"))["following"] is False  # anonymous readers follow nobody
    assert await follow_rows(db) == [("jake", "celeb")]

    response = await client.delete("/api/profiles/celeb/follow", headers=auth(jake["token"]))
    assert (await ok(response))["profile"]["following"] is False
    assert (await profile(client, "celeb", jake["token"]))["following"] is False
    assert await follow_rows(db) == []


async def test_following_is_per_follower(client, db):
    jake, anna = await members(db, "jake", "anna")
    await member(db, "celeb")
    await follow(client, jake["token"], "celeb")
    assert (await profile(client, "celeb", anna["token"]))["following"] is False


async def test_following_twice_keeps_one_row_and_unfollowing_a_stranger_is_fine(client, db):
    jake = await member(db, "jake")
    await member(db, "celeb")
    await follow(client, jake["token"], "celeb")
    assert (await follow(client, jake["token"], "celeb"))["following"] is True
    assert await follow_rows(db) == [("jake", "celeb")]
    await ok(await client.delete("/api/profiles/celeb/follow", headers=auth(jake["token"])))
    again = await client.delete("/api/profiles/celeb/follow", headers=auth(jake["token"]))
    assert (await ok(again))["profile"]["following"] is False


async def test_following_yourself_is_422(client, db):
    jake = await member(db, "jake")
    response = await client.post("/api/profiles/jake/follow", headers=auth(jake["token"]))
    assert set(await errors(response, 422)) == {"username"}
    assert await follow_rows(db) == []
    # unfollowing yourself asks nothing impossible: you are not following yourself
    unfollow = await client.delete("/api/profiles/jake/follow", headers=auth(jake["token"]))
    assert (await ok(unfollow))["profile"]["following"] is False


async def test_follow_and_unfollow_need_a_valid_token(client, db):
    await member(db, "celeb")
    for method in (client.post, client.delete):
        await errors(await method("/api/profiles/celeb/follow"), 401)
        await errors(await method("/api/profiles/celeb/follow", headers=auth("not-a-token")), 401)
