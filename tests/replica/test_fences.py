"""The fence machinery on its own: a lookup never shares a query that began before the read
arrived, a replica's health ages with its last sample, and a token on a route that does not
authenticate still names the client's user."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from service import keys
from service.auth import issue_token
from service.db import fence_keys
from service.replicas import FenceLookup, Replica, wal_position
from service.settings import Settings
from tests.replica.conftest import JWT_SECRET, Pair

pytestmark = pytest.mark.replica


class HeldLookup(FenceLookup):
    """A lookup whose answer, once the primary has given it, is held back until released: a
    read that arrives meanwhile finds a query in flight that began before it."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.answered = asyncio.Event()
        self.release = asyncio.Event()

    async def _query(self, keys: list[str]) -> dict[str, int]:
        found = await super()._query(keys)
        if not self.answered.is_set():  # only the first lookup is held
            self.answered.set()
            await self.release.wait()
        return found


async def test_a_read_arriving_during_a_lookup_waits_for_one_that_sees_the_latest_write(fresh: Pair) -> None:
    lookup = HeldLookup(Settings(database_url=fresh.primary_url))
    try:
        early = lookup.request(["aclient"])
        await asyncio.wait_for(lookup.answered.wait(), 10)  # the first query has run: no fence yet

        conn = await asyncpg.connect(fresh.primary_url)
        try:
            await conn.execute("SELECT set_fence(ARRAY['aclient', 'aclient'])")  # a repeated key is fine
            written = wal_position(
                int(await conn.fetchval("SELECT lsn - '0/0'::pg_lsn FROM read_fences WHERE key = 'aclient'"))
            )
        finally:
            await conn.close()

        # Its client saw the write answered; it is queued while the first query is in flight.
        late = lookup.request(["aclient"])
        lookup.release.set()
        assert await asyncio.wait_for(early, 10) is None
        assert await asyncio.wait_for(late, 10) == written  # sharing the first query would give None
        assert lookup.queries == 2
    finally:
        await lookup.close()


async def test_stopping_the_lookup_sends_every_waiting_read_to_the_primary(fresh: Pair) -> None:
    lookup = HeldLookup(Settings(database_url=fresh.primary_url))
    in_flight = lookup.request(["aclient"])
    await asyncio.wait_for(lookup.answered.wait(), 10)
    queued = lookup.request(["aother"])  # queued behind the query held in flight
    await asyncio.wait_for(lookup.stop(), 10)  # shutdown
    for read in (in_flight, queued):  # neither hangs: each fails, and its read goes to the primary
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(read, 10)
    assert lookup._running is None and lookup._conn is None


def test_a_replica_sampled_too_long_ago_is_not_used() -> None:
    replica = Replica("postgresql://replica/conduit", 0, Settings(database_url="postgresql://primary/conduit"))
    replica.reachable = replica.in_recovery = True
    replica.replayed, replica.lag = 1000, 0.0
    replica.sampled = time.monotonic()
    assert replica.healthy
    replica.sampled = time.monotonic() - 1.5  # DB_REPLICA_MAX_LAG is 1 s: the monitor has stalled
    assert not replica.healthy
    replica.sampled, replica.lag = time.monotonic(), 1.5
    assert not replica.healthy


def test_a_token_on_a_route_without_authentication_still_names_the_user() -> None:
    app = web.Application()
    app[keys.SETTINGS] = Settings(database_url="postgresql://primary/conduit", jwt_secret=JWT_SECRET)
    token = issue_token(42, JWT_SECRET, 60)
    signed = make_mocked_request("GET", "/api/tags", headers={"Authorization": f"Token {token}"}, app=app)
    assert "u42" in fence_keys(signed)
    forged = make_mocked_request("GET", "/api/tags", headers={"Authorization": "Token not-a-token"}, app=app)
    assert not any(key.startswith("u") for key in fence_keys(forged))  # no 401 on this route, no user
    anonymous = make_mocked_request("GET", "/api/tags", app=app)
    assert fence_keys(anonymous) == fence_keys(forged)
