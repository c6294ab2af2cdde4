"""Read-your-writes: with replay paused on the replica, a client's write answered 2xx by one
service process is seen at once by its reads through another process, with its token or without
(a client is its user and its address), while another client's read through that process, in the
lag bound, still sees the replica's older state."""

from __future__ import annotations

import aiohttp
import pytest

from tests.replica.conftest import Pair, client

pytestmark = pytest.mark.replica


async def test_a_write_is_read_back_at_once_through_another_instance_while_replay_is_paused(
    services, fresh: Pair
) -> None:
    # A lag bound far above the test's length: the paused replica stays in use for other reads.
    first, second = services("first", DB_REPLICA_MAX_LAG="60"), services("second", DB_REPLICA_MAX_LAG="60")
    other = client("10.0.0.99")  # another client, anonymous: the replica's own view
    async with aiohttp.ClientSession() as http:
        await first.ready(http)
        await second.ready(http)
        user = {"user": {"username": "reader", "email": "reader@example.com", "password": "password123"}}
        async with http.post(f"{first.base}/api/users", json=user, headers=client("10.0.0.1")) as response:
            assert response.status == 201
            token = (await response.json())["user"]["token"]
        await fresh.caught_up()
        await fresh.pause()

        # The same user from another address (another device): its user's fence applies.
        writer, device = client("10.0.0.1", token), client("10.0.0.2", token)
        article = {"article": {"title": "Fresh", "description": "d", "body": "b", "tagList": []}}
        async with http.post(f"{first.base}/api/articles", json=article, headers=writer) as response:
            assert response.status == 201
            slug = (await response.json())["article"]["slug"]
        async with http.get(f"{second.base}/api/articles/{slug}", headers=device) as response:
            assert response.status == 200, await response.text()
        async with http.get(f"{second.base}/api/articles?author=reader", headers=device) as response:
            assert (await response.json())["articlesCount"] == 1
        # The same client without its token: its address's fence applies.
        async with http.get(f"{second.base}/api/articles/{slug}", headers=client("10.0.0.1")) as response:
            assert response.status == 200, await response.text()

        async with http.put(f"{second.base}/api/user", json={"user": {"bio": "edited"}}, headers=device) as response:
            assert response.status == 200
        async with http.get(f"{first.base}/api/profiles/reader", headers=writer) as response:
            assert (await response.json())["profile"]["bio"] == "edited"

        # The replica really is behind: another client's read is served there, and does not see
        # the article yet.
        async with http.get(f"{second.base}/api/articles/{slug}", headers=other) as response:
            assert response.status == 404
        assert await fresh.on_replica("SELECT count(*) FROM articles") == 0

        # A registration (no token yet): the new user reads itself, and so does its client with
        # another account's token (the legacy suite does that) or none.
        newcomer = {"user": {"username": "newcomer", "email": "newcomer@example.com", "password": "password123"}}
        async with http.post(f"{first.base}/api/users", json=newcomer, headers=client("10.0.0.3")) as response:
            assert response.status == 201
            new_token = (await response.json())["user"]["token"]
        async with http.get(f"{second.base}/api/user", headers=client("10.0.0.4", new_token)) as response:
            assert response.status == 200, await response.text()
        for headers in (client("10.0.0.3"), client("10.0.0.3", token)):
            async with http.get(f"{second.base}/api/profiles/newcomer", headers=headers) as response:
                assert response.status == 200, await response.text()
        async with http.get(f"{second.base}/api/profiles/newcomer", headers=other) as response:
            assert response.status == 404
        # Each of the six fenced reads through the second process ran on the replica first, was
        # found not to have seen its client's write, and was answered again by the primary.
        async with http.get(f"{second.base}/metrics") as response:
            assert "\ndb_fence_reruns_total 6.0\n" in await response.text()

        await fresh.resume()
        await fresh.caught_up()
        async with http.get(f"{second.base}/api/articles/{slug}", headers=other) as response:
            assert response.status == 200
