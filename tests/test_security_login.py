"""Login abuse: failed logins are counted per account and per client address in PostgreSQL,
so every worker (here: two app instances on one database) sees the same counts; past
LOGIN_MAX_FAILURES within LOGIN_WINDOW the answer is 429 with Retry-After. X-Forwarded-For
names the client only when the connection comes from a trusted proxy."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.helpers import register

MAX = 3
LIMITS = {"LOGIN_MAX_FAILURES": str(MAX), "LOGIN_WINDOW": "900"}
_addresses = (f"203.0.113.{i}" for i in itertools.count(1))


def login(email: str, password: str) -> dict:
    return {"user": {"email": email, "password": password}}


def from_address(address: str | None = None) -> dict:
    return {"X-Forwarded-For": address or next(_addresses)}


async def test_failures_per_account_across_two_instances(make_client, db):
    """Each attempt comes from a new address (through a trusted proxy), so only the account's own
    count can refuse it; the failures are split over two app instances sharing the database."""
    one = await make_client(**LIMITS, TRUSTED_PROXIES="127.0.0.1")
    two = await make_client(**LIMITS, TRUSTED_PROXIES="127.0.0.1")
    await register(one, "alice", password="right-password")
    await register(one, "bob", password="right-password")
    for attempt in range(MAX):
        instance = (one, two)[attempt % 2]
        response = await instance.post(
            "/api/users/login", json=login("alice@example.com", "wrong-password"), headers=from_address()
        )
        assert response.status == 401, attempt
    for instance in (two, one):
        refused = await instance.post(
            "/api/users/login", json=login("ALICE@example.com", "right-password"), headers=from_address()
        )
        assert refused.status == 429, await refused.text()
        assert 1 <= int(refused.headers["Retry-After"]) <= 900
        assert "login" in (await refused.json())["errors"]
    other = await two.post("/api/users/login", json=login("bob@example.com", "right-password"), headers=from_address())
    assert other.status == 200


async def test_failures_per_address_across_two_instances(make_client, db):
    """Different accounts, one client address: the address's count refuses it, on either
    instance, even with the right password for an account that has never failed."""
    one = await make_client(**LIMITS)
    two = await make_client(**LIMITS)
    await register(one, "carol", password="right-password")
    for attempt in range(MAX):
        instance = (one, two)[attempt % 2]
        response = await instance.post("/api/users/login", json=login(f"guess{attempt}@example.com", "whatever1"))
        assert response.status == 401
    for instance in (one, two):
        refused = await instance.post("/api/users/login", json=login("carol@example.com", "right-password"))
        assert refused.status == 429
        assert int(refused.headers["Retry-After"]) >= 1


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(make_client, db):
    """Without TRUSTED_PROXIES a client cannot pick a fresh address per attempt with a header."""
    client = await make_client(**LIMITS)
    for attempt in range(MAX):
        response = await client.post(
            "/api/users/login", json=login(f"g{attempt}@example.com", "whatever1"), headers=from_address()
        )
        assert response.status == 401
    refused = await client.post("/api/users/login", json=login("new@example.com", "whatever1"), headers=from_address())
    assert refused.status == 429
    keys = {row["key"] for row in await db.fetch("SELECT key FROM login_failures")}
    assert {k for k in keys if k.startswith("address:")} == {"address:127.0.0.1"}


async def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(make_client, db):
    """The proxy appends the address it saw; whatever the client put before it does not count."""
    client = await make_client(**LIMITS, TRUSTED_PROXIES="127.0.0.1/32, 10.0.0.0/8")
    for attempt in range(MAX):
        # The client forges a new left-most entry each time; the proxies append the real hops.
        spoofed = {"X-Forwarded-For": f"{next(_addresses)}, 198.51.100.9, 10.1.2.3"}
        response = await client.post(
            "/api/users/login", json=login(f"h{attempt}@example.com", "whatever1"), headers=spoofed
        )
        assert response.status == 401
    refused = await client.post(
        "/api/users/login",
        json=login("x@example.com", "whatever1"),
        headers={"X-Forwarded-For": "192.0.2.1, 198.51.100.9"},
    )
    assert refused.status == 429
    elsewhere = await client.post(
        "/api/users/login", json=login("x@example.com", "whatever1"), headers={"X-Forwarded-For": "198.51.100.10"}
    )
    assert elsewhere.status == 401
    keys = {row["key"] for row in await db.fetch("SELECT key FROM login_failures WHERE key LIKE 'address:%'")}
    assert keys == {"address:198.51.100.9", "address:198.51.100.10"}


async def test_garbage_forwarded_for_from_a_trusted_proxy_is_no_error(make_client, db):
    """An entry that is not an IP address ends the chain: the trusted peer is counted instead."""
    client = await make_client(LOGIN_MAX_FAILURES="100", TRUSTED_PROXIES="127.0.0.1")
    headers = [
        "not-an-address",
        "",
        " , ,",
        "1.2.3.4, <script>",
        "999.1.1.1",
        "'; DROP TABLE users; --",
        "::1, fe80::1%eth0",
    ]
    for n, header in enumerate(headers):
        response = await client.post(
            "/api/users/login", json=login(f"y{n}@example.com", "whatever1"), headers={"X-Forwarded-For": header}
        )
        assert response.status == 401, (header, response.status)
    # Bytes that are not UTF-8 reach the service as lone surrogates, which PostgreSQL cannot store.
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    body = b'{"user": {"email": "z@example.com", "password": "whatever1"}}'
    writer.write(
        b"POST /api/users/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"X-Forwarded-For: \xff\xfe, \xed\xa0\x80\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    assert status_line.split()[1] == b"401", status_line
    keys = {row["key"] for row in await db.fetch("SELECT DISTINCT key FROM login_failures WHERE key LIKE 'address:%'")}
    assert keys == {"address:127.0.0.1", "address:fe80::1%eth0"}


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
async def test_a_burst_of_parallel_guesses_gets_no_more_tries_than_a_sequence(make_client, db, pool_mode):
    """Each attempt is entered before its password is checked, so parallel attempts count each
    other: of many at once, at most LOGIN_MAX_FAILURES are answered 401, the rest 429. In
    transaction mode (PgBouncer) the entry is inside the request's transaction, so attempts on
    the same keys are serialized by an advisory lock until it commits."""
    client = await make_client(
        **LIMITS, TRUSTED_PROXIES="127.0.0.1", DB_POOL_MAX_SIZE="16", DB_ACQUIRE_TIMEOUT="10", DB_POOL_MODE=pool_mode
    )
    await register(client, "dave", password="right-password")
    attempts = [
        client.post("/api/users/login", json=login("dave@example.com", f"guess-{i:04}"), headers=from_address())
        for i in range(12)
    ]
    statuses = sorted(response.status for response in await asyncio.gather(*attempts))
    assert statuses.count(401) <= MAX, statuses
    assert set(statuses) <= {401, 429}, statuses
    assert await db.fetchval("SELECT count(*) FROM login_failures WHERE key = 'account:dave@example.com'") <= MAX


async def test_successful_logins_are_not_failures(make_client, db):
    client = await make_client(**LIMITS)
    await register(client, "erin", password="right-password")
    for _ in range(MAX + 2):
        response = await client.post("/api/users/login", json=login("erin@example.com", "right-password"))
        assert response.status == 200
    assert await db.fetchval("SELECT count(*) FROM login_failures") == 0


async def test_a_success_clears_the_accounts_failures(make_client, db):
    client = await make_client(**LIMITS, TRUSTED_PROXIES="127.0.0.1")
    await register(client, "fay", password="right-password")
    for _ in range(2):
        for _ in range(MAX - 1):
            wrong = await client.post(
                "/api/users/login", json=login("fay@example.com", "wrong-password"), headers=from_address()
            )
            assert wrong.status == 401
        right = await client.post(
            "/api/users/login", json=login("fay@example.com", "right-password"), headers=from_address()
        )
        assert right.status == 200


async def test_failures_expire_after_the_window_and_retry_after_says_when(make_client, db):
    client = await make_client(**LIMITS)
    for attempt in range(MAX):
        assert (await client.post("/api/users/login", json=login(f"w{attempt}@example.com", "whatever1"))).status == 401
    # Age the failures instead of waiting: the oldest leaves the window in 100 s.
    await db.execute(
        "UPDATE login_failures SET failed_at = now() - interval '800 seconds'"
        " WHERE id = (SELECT min(id) FROM login_failures WHERE key LIKE 'address:%')"
    )
    refused = await client.post("/api/users/login", json=login("w@example.com", "whatever1"))
    assert refused.status == 429
    assert 60 <= int(refused.headers["Retry-After"]) <= 100  # the oldest entry's expiry, not the newest's (900)
    await db.execute("UPDATE login_failures SET failed_at = now() - interval '901 seconds'")
    allowed = await client.post("/api/users/login", json=login("w@example.com", "whatever1"))
    assert allowed.status == 401
