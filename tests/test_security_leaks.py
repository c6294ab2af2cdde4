"""Nothing leaked: an unexpected error answers a generic JSON 500 naming the request id while
the log keeps the details; no response carries a password hash; a failed login says the same,
and costs the same work, whether the email is unknown or the password wrong."""

from __future__ import annotations

import json
import logging
from typing import Literal

import argon2
import pytest
from aiohttp import web

from service import auth as auth_module
from service.db import connection
from tests.conftest import ProductionLikeServer
from tests.helpers import auth, create_article, register

SECRET_DETAILS = (
    "Traceback",
    "no_such_table",
    "SELECT",
    "/work/",
    ".py",
    "line ",
    "asyncpg",
    "aiohttp",
    "Python",
    "RuntimeError",
    "UndefinedTable",
    "password_hash",
)


async def raise_runtime_error(request: web.Request) -> web.Response:
    raise RuntimeError("SELECT password_hash FROM users -- in /work/service/handlers/users.py line 42")


async def run_broken_sql(request: web.Request) -> web.Response:
    conn = await connection(request)
    await conn.fetch("SELECT password_hash FROM no_such_table")
    return web.json_response({})


@pytest.fixture
async def client_with_faults(app_env, db, aiohttp_client):
    """The real app from the real factory, plus two test-only routes that fail: one in Python,
    one in PostgreSQL. Nothing of the kind exists in the service itself."""
    from service.app import create_app

    app = await create_app()
    app.router.add_get("/test-only/python-error", raise_runtime_error)
    app.router.add_get("/test-only/sql-error", run_broken_sql)
    return await aiohttp_client(ProductionLikeServer(app))


@pytest.mark.parametrize(
    ("path", "detail"), [("/test-only/python-error", "RuntimeError"), ("/test-only/sql-error", "no_such_table")]
)
async def test_unexpected_error_is_a_generic_500_with_the_request_id(client_with_faults, caplog, path, detail):
    caplog.set_level(logging.ERROR, logger="service.errors")
    response = await client_with_faults.get(path, headers={"X-Request-ID": "leak-check-1"})
    assert response.status == 500
    assert response.content_type == "application/json"
    assert await response.json() == {"errors": {"server": ["internal error"]}, "requestId": "leak-check-1"}
    everything = await response.text() + "".join(f"{k}: {v}" for k, v in response.headers.items())
    for secret in SECRET_DETAILS:
        assert secret not in everything, secret
    # The log has what the client does not: the request id, the route and the whole traceback.
    records = [r for r in caplog.records if r.name == "service.errors"]
    assert len(records) == 1
    logged = records[0].getMessage() + caplog.text
    assert "leak-check-1" in records[0].getMessage() and path in records[0].getMessage()
    assert records[0].exc_info is not None and detail in logged and "Traceback" in caplog.text


async def test_generated_request_id_is_in_the_500_body_and_header(client_with_faults):
    response = await client_with_faults.get("/test-only/python-error")
    body = await response.json()
    assert body["requestId"] and body["requestId"] == response.headers["X-Request-ID"]


async def test_no_response_contains_a_password_hash(client, db):
    bodies: list[str] = []

    async def call(method: str, path: str, token: str | None = None, **kwargs) -> None:
        response = await client.request(method, path, headers=auth(token) if token else {}, **kwargs)
        if response.status != 204:
            bodies.append(await response.text())

    alice = await register(client, "alice", password="alice-password")
    bob = await register(client, "bob", password="bob-password")
    article = await create_article(client, alice["token"], title="Hashes", tags=["x"])
    slug = article["slug"]
    await call("POST", "/api/users/login", json={"user": {"email": "alice@example.com", "password": "alice-password"}})
    await call("POST", "/api/users/login", json={"user": {"email": "alice@example.com", "password": "wrong-one!"}})
    await call("GET", "/api/user", alice["token"])
    await call("PUT", "/api/user", alice["token"], json={"user": {"password": "another-password", "bio": "b"}})
    await call("PUT", "/api/user", alice["token"], json={"user": {"email": "bob@example.com"}})
    await call(
        "POST", "/api/users", json={"user": {"username": "alice", "email": "a2@example.com", "password": "password123"}}
    )
    await call("GET", "/api/profiles/alice")
    await call("POST", "/api/profiles/alice/follow", bob["token"])
    await call("GET", f"/api/articles/{slug}", bob["token"])
    await call("POST", f"/api/articles/{slug}/favorite", bob["token"])
    await call("GET", "/api/articles?limit=100", bob["token"])
    await call("GET", "/api/articles/feed", bob["token"])
    await call("POST", f"/api/articles/{slug}/comments", bob["token"], json={"comment": {"body": "hi"}})
    await call("GET", f"/api/articles/{slug}/comments")
    hashes = [row["password_hash"] for row in await db.fetch("SELECT password_hash FROM users")]
    assert all(h.startswith("$argon2id$") for h in hashes) and len(hashes) == 2
    for body in bodies:
        assert "$argon2" not in body, body
        assert not {key for key in keys_of(json.loads(body)) if "password" in key.lower()}, body
        for stored in hashes:
            assert stored not in body and stored.split("$")[-1] not in body


def keys_of(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


class CountingHasher(argon2.PasswordHasher):
    """The real hasher, recording which hash each verification ran against."""

    def __init__(self) -> None:
        super().__init__()
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:  # argon2's parameter names
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


async def test_unknown_email_and_wrong_password_do_the_same_work(client, db, monkeypatch):
    """Timing is not asserted (no timed tests); the cause of equal timing is: each failure runs
    exactly one argon2 verification, against hashes of identical cost parameters, and answers the
    same body."""
    await register(client, "alice", password="right-password")
    stored = await db.fetchval("SELECT password_hash FROM users WHERE username = 'alice'")
    hasher = CountingHasher()
    monkeypatch.setattr(auth_module, "_hasher", hasher)
    answers = {}
    for case, email in [("wrong password", "alice@example.com"), ("unknown email", "nobody@example.com")]:
        hasher.verified.clear()
        response = await client.post("/api/users/login", json={"user": {"email": email, "password": "not-it-at-all"}})
        answers[case] = (response.status, await response.json())
        assert len(hasher.verified) == 1, case
        assert argon2.extract_parameters(hasher.verified[0]) == argon2.extract_parameters(stored), case
    assert answers["wrong password"] == answers["unknown email"]
    assert answers["unknown email"][0] == 401
