"""Read-your-writes: with replay paused on the replica, a client's write answered 2xx by one
service process is seen at once by its reads through another process, while an anonymous read
through that process, in the lag bound, still sees the replica's older state; a registration
(no token) is seen by every later read."""

from __future__ import annotations

import aiohttp
import pytest

from tests.replica.conftest import Pair

pytestmark = pytest.mark.replica


async def test_a_write_is_read_back_at_once_through_another_instance_while_replay_is_paused(
    services, fresh: Pair
) -> None:
    # A lag bound far above the test's length: the paused replica stays in use for other reads.
    first, second = services("first", DB_REPLICA_MAX_LAG="60"), services("second", DB_REPLICA_MAX_LAG="60")
    async with aiohttp.ClientSession() as http:
        await first.ready(http)
        await second.ready(http)
        user = {"user": {"username": "reader", "email": "reader@example.com", "password": "password123"}}
        async with http.post(f"{first.base}/api/users", json=user) as response:
            assert response.status == 201
            auth = {"Authorization": f"Token {(await response.json())['user']['token']}"}
        await fresh.caught_up()
        await fresh.pause()

        article = {"article": {"title": "Fresh", "description": "d", "body": "b", "tagList": []}}
        async with http.post(f"{first.base}/api/articles", json=article, headers=auth) as response:
            assert response.status == 201
            slug = (await response.json())["article"]["slug"]
        async with http.get(f"{second.base}/api/articles/{slug}", headers=auth) as response:
            assert response.status == 200, await response.text()
        async with http.get(f"{second.base}/api/articles?author=reader", headers=auth) as response:
            assert (await response.json())["articlesCount"] == 1

        async with http.put(f"{second.base}/api/user", json={"user": {"bio": "edited"}}, headers=auth) as response:
            assert response.status == 200
        async with http.get(f"{first.base}/api/profiles/reader", headers=auth) as response:
            assert (await response.json())["profile"]["bio"] == "edited"

        # The replica really is behind: an anonymous read (no fence) through the same instance
        # is served there, and does not see the article yet.
        async with http.get(f"{second.base}/api/articles/{slug}") as response:
            assert response.status == 404
        assert await fresh.on_replica("SELECT count(*) FROM articles") == 0

        # A registration (a write without a token) moves the fence every read passes: the new
        # user reads itself through the other instance, as does any client, signed in or not.
        new = {"user": {"username": "newcomer", "email": "newcomer@example.com", "password": "password123"}}
        async with http.post(f"{first.base}/api/users", json=new) as response:
            assert response.status == 201
            newcomer = {"Authorization": f"Token {(await response.json())['user']['token']}"}
        async with http.get(f"{second.base}/api/user", headers=newcomer) as response:
            assert response.status == 200, await response.text()
        async with http.get(f"{second.base}/api/profiles/newcomer") as response:
            assert response.status == 200, await response.text()
        async with http.get(f"{second.base}/api/profiles/newcomer", headers=auth) as response:
            assert response.status == 200, await response.text()

        await fresh.resume()
        await fresh.caught_up()
        async with http.get(f"{second.base}/api/articles/{slug}") as response:
            assert response.status == 200
