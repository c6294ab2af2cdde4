"""Tokens: every defective token is a 401 with the JSON error shape, on required and optional
routes alike; only a well-formed HS256 token, in its time window, for a living user, passes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest

from tests.helpers import auth, register

SECRET = "test-secret-test-secret-test-secret-0123"  # conftest's JWT_SECRET


def claims(user_id: int, **overrides: int | str) -> dict:
    now = int(time.time())
    return {"sub": str(user_id), "iat": now, "nbf": now, "exp": now + 3600, **overrides}


def signed(payload: dict, key: str = SECRET) -> str:
    return jwt.encode(payload, key, "HS256")


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(payload: dict) -> str:
    """alg none: a header that claims no signature, and none."""
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


def hmac_signed(header: dict, payload: dict, digest=hashlib.sha256) -> str:
    """A token signed by hand, so the header can claim any algorithm."""
    header_and_body = f"{b64(header)}.{b64(payload)}"
    signature = hmac.new(SECRET.encode(), header_and_body.encode(), digest).digest()
    return f"{header_and_body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def without(name: str, payload: dict) -> dict:
    return {key: value for key, value in payload.items() if key != name}


BAD_TOKENS = {
    "expired": lambda uid: signed(
        claims(uid, iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200, exp=int(time.time()) - 60)
    ),
    "not yet valid": lambda uid: signed(claims(uid, nbf=int(time.time()) + 3600)),
    "other key": lambda uid: signed(claims(uid), key="another-secret-another-secret-0123456789"),
    "alg none": lambda uid: unsigned(claims(uid)),
    # The right secret, but not the configured algorithm.
    "HS512": lambda uid: hmac_signed({"alg": "HS512", "typ": "JWT"}, claims(uid), hashlib.sha512),
    # Key confusion: the header says RS256, the signature is HMAC with the shared secret.
    "RS256 header": lambda uid: hmac_signed({"alg": "RS256", "typ": "JWT"}, claims(uid)),
    "malformed": lambda uid: "not-a-jwt",
    "three junk parts": lambda uid: "a.b.c",
    "truncated": lambda uid: signed(claims(uid))[:-6],
    "no exp": lambda uid: signed(without("exp", claims(uid))),
    "no sub": lambda uid: signed(without("sub", claims(uid))),
    "sub not an id": lambda uid: signed(claims(uid, sub="alice")),
    "sub out of range": lambda uid: signed(claims(uid, sub=str(2**70))),
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_defective_token_is_401(client, kind):
    user = await register(client)
    me = (await (await client.get("/api/user", headers=auth(user["token"]))).json())["user"]
    assert me["username"] == user["username"]  # the genuine token works: the harness can tell
    uid = jwt.decode(user["token"], SECRET, algorithms=["HS256"])["sub"]
    token = BAD_TOKENS[kind](int(uid))
    for method, path, body in [
        ("GET", "/api/user", None),  # required auth
        ("GET", "/api/articles", None),  # optional auth: a bad token is not "anonymous"
        ("POST", "/api/articles", {"article": {"title": "t", "description": "d", "body": "b"}}),
    ]:
        response = await client.request(method, path, json=body, headers=auth(token))
        assert response.status == 401, (kind, path, await response.text())
        assert response.content_type == "application/json"
        assert "token" in (await response.json())["errors"]


@pytest.mark.parametrize("header", ["Token", "Token ", "Basic dXNlcjpwYXNz", "Bearer", "Token \u00ff\u00fe"])
async def test_malformed_authorization_header_is_401(client, header):
    response = await client.get("/api/user", headers={"Authorization": header})
    assert response.status == 401
    assert "token" in (await response.json())["errors"]


async def test_token_of_a_deleted_user_is_401(client, db):
    user = await register(client)
    assert (await client.get("/api/user", headers=auth(user["token"]))).status == 200
    await db.execute("DELETE FROM users WHERE username = $1", user["username"])
    for method, path in [("GET", "/api/user"), ("GET", "/api/articles"), ("PUT", "/api/user")]:
        body = {"user": {"bio": "back from the dead"}} if method == "PUT" else None
        response = await client.request(method, path, json=body, headers=auth(user["token"]))
        assert response.status == 401, (path, await response.text())
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_token_lifetime_is_configurable(make_client):
    client = await make_client(JWT_EXPIRY="90")
    user = await register(client)
    decoded = jwt.decode(user["token"], SECRET, algorithms=["HS256"])
    assert decoded["exp"] - decoded["iat"] == 90


async def test_hand_made_tokens_are_valid_when_nothing_is_wrong(client):
    """Control for the forgeries above: the same construction with the right algorithm passes."""
    user = await register(client)
    uid = int(jwt.decode(user["token"], SECRET, algorithms=["HS256"])["sub"])
    token = hmac_signed({"alg": "HS256", "typ": "JWT"}, claims(uid))
    response = await client.get("/api/user", headers=auth(token))
    assert response.status == 200, await response.text()
