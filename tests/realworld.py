"""Helpers for the RealWorld API tests: reading answers the way the spec states them, the
common calls (follow, favorite, comment), and a count of the statements a request runs."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncpg

from service import keys
from service.auth import issue_token
from tests.helpers import auth

JWT_SECRET = "test-secret-test-secret-test-secret-0123"  # conftest's app_env

ISO_MILLIS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
URL_SAFE_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

USER_KEYS = {"email", "token", "username", "bio", "image"}
PROFILE_KEYS = {"username", "bio", "image", "following"}
SUMMARY_KEYS = {
    "slug",
    "title",
    "description",
    "tagList",
    "createdAt",
    "updatedAt",
    "favorited",
    "favoritesCount",
    "author",
}
ARTICLE_KEYS = SUMMARY_KEYS | {"body"}
COMMENT_KEYS = {"id", "createdAt", "updatedAt", "body", "author"}


async def ok(response, status: int = 200) -> Any:
    """The JSON body of a success answer with the given status."""
    text = await response.text()
    assert response.status == status, f"{response.status}: {text}"
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    return await response.json()


async def errors(response, status: int) -> dict[str, list[str]]:
    """The spec's error body, `{"errors": {"<field>": ["<message>", ...]}}`, of a failed answer."""
    text = await response.text()
    assert response.status == status, f"{response.status}: {text}"
    assert response.content_type == "application/json", text
    body = await response.json()
    assert set(body) <= {"errors", "requestId"}, body
    assert isinstance(body["errors"], dict) and body["errors"], body
    for field, messages in body["errors"].items():
        assert isinstance(field, str) and field
        assert isinstance(messages, list) and messages, body
        assert all(isinstance(message, str) and message for message in messages), body
    return body["errors"]


async def follow(client, token: str, username: str) -> dict:
    return (await ok(await client.post(f"/api/profiles/{username}/follow", headers=auth(token))))["profile"]


async def favorite(client, token: str, slug: str) -> dict:
    return (await ok(await client.post(f"/api/articles/{slug}/favorite", headers=auth(token))))["article"]


async def comment(client, token: str, slug: str, body: str = "a comment") -> dict:
    response = await client.post(
        f"/api/articles/{slug}/comments", json={"comment": {"body": body}}, headers=auth(token)
    )
    return (await ok(response, 201))["comment"]


async def articles(client, query: str = "", token: str | None = None, path: str = "/api/articles") -> dict:
    """The list answer for `path?query`, with `articles` and `articlesCount`."""
    url = f"{path}?{query}" if query else path
    return await ok(await client.get(url, headers=auth(token) if token else {}))


def slugs(listing: dict) -> list[str]:
    return [article["slug"] for article in listing["articles"]]


async def quick_users(db, usernames: list[str]) -> list[str]:
    """Users stored directly (skipping argon2, which costs tens of milliseconds each) for tests
    that need many authors; returns a token for each. They cannot log in."""
    rows = await db.fetch(
        "INSERT INTO users (username, email, password_hash) "
        "SELECT name, name || '@example.com', 'not-a-hash' FROM unnest($1::text[]) AS name RETURNING id, username",
        usernames,
    )
    ids = {row["username"]: row["id"] for row in rows}
    return [issue_token(ids[name], JWT_SECRET, 3600) for name in usernames]


async def member(db, username: str) -> dict:
    """A user as register() returns one (username, email, token), stored directly: argon2 costs
    about 0.2 s of CPU per password, and only tests/test_users.py is about registering."""
    [token] = await quick_users(db, [username])
    return {"username": username, "email": f"{username}@example.com", "token": token}


async def members(db, *usernames: str) -> list[dict]:
    tokens = await quick_users(db, list(usernames))
    return [
        {"username": name, "email": f"{name}@example.com", "token": token}
        for name, token in zip(usernames, tokens, strict=True)
    ]


class QueryLog:
    """Every statement the app's database connection runs, observed with asyncpg's own query
    logger (asyncpg >= 0.29). The app must be built with a pool of exactly one connection
    (DB_POOL_MIN_SIZE=DB_POOL_MAX_SIZE=1): then that connection serves every request, and the
    logger, which lives on the connection, sees all of their statements."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, record: Any) -> None:
        self.statements.append(record.query)

    @classmethod
    async def attach(cls, client) -> QueryLog:
        pool: asyncpg.Pool = client.server.app[keys.POOL]
        assert pool.get_max_size() == 1, "build the app with DB_POOL_MIN_SIZE=1 DB_POOL_MAX_SIZE=1"
        log = cls()
        async with pool.acquire() as conn:
            conn.add_query_logger(log)
        return log

    async def count(self, request) -> int:
        """How many statements one request ran (it must succeed)."""
        self.statements.clear()
        await ok(await request)
        # asyncpg hands each record to the logger with loop.call_soon: let pending ones run.
        await asyncio.sleep(0)
        return len(self.statements)
