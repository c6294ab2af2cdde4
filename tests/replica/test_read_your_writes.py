"""Read-your-writes: with replay paused on the replica, a client's write answered 2xx by one
service process is seen at once by its reads through another process, with its token or without
(a client is its user and its address), while another client's read through that process, in the
lag bound, still sees the replica's older state."""

from __future__ import annotations

import aiohttp
import pytest

from service import keys
from tests.outage.conftest import wait_for
from tests.replica.conftest import Pair, client
from tests.replica.test_routing import register

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
        # Five of the six fenced reads through the second process ran on the replica first, were
        # found not to have seen their client's write, and were answered again by the primary. The
        # sixth (the reader's token) went to the primary at once: this process answered that
        # user's profile edit, so it knew the replica had not replayed it.
        async with http.get(f"{second.base}/metrics") as response:
            assert "\ndb_fence_reruns_total 5.0\n" in await response.text()

        await fresh.resume()
        await fresh.caught_up()
        async with http.get(f"{second.base}/api/articles/{slug}", headers=other) as response:
            assert response.status == 200


async def test_a_client_reads_its_write_from_the_primary_at_once_through_the_worker_that_answered_it(
    make_app_client, fresh: Pair
) -> None:
    """The worker that answered a write knows its position: the client's next read goes straight
    to the primary while the replica has not replayed it (not to the replica first, then again)."""
    app_client = await make_app_client(DB_REPLICA_MAX_LAG="60")  # the paused replica stays in use
    app = app_client.server.app
    replicas = app[keys.REPLICAS]
    auth = {"Authorization": f"Token {await register(app_client, 'hinted')}"}
    await fresh.seen_by(app)
    await fresh.pause()

    article = {"article": {"title": "Hinted", "description": "d", "body": "b", "tagList": []}}
    response = await app_client.post("/api/articles", json=article, headers=auth)
    assert response.status == 201
    slug = (await response.json())["article"]["slug"]
    assert replicas.written  # the write's fence keys, with a position the replica has not reached
    since = fresh.primary_log_offset()
    response = await app_client.get(f"/api/articles/{slug}", headers=auth)
    assert response.status == 200
    assert any("articles_json" in line or "FROM articles" in line for line in fresh.primary_statements(since))
    assert "\ndb_fence_reruns_total 0.0\n" in await (await app_client.get("/metrics")).text()
    # Another client's read still runs on the replica, which has not replayed the article.
    response = await app_client.get(f"/api/articles/{slug}", headers=client("10.0.0.99"))
    assert response.status == 404

    await fresh.resume()
    await fresh.seen_by(app)
    await wait_for(lambda: not replicas.written)  # replayed: the hint is dropped
    since = fresh.primary_log_offset()
    response = await app_client.get(f"/api/articles/{slug}", headers=auth)
    assert response.status == 200
    assert fresh.primary_statements(since) == []  # the replica serves the writer again
