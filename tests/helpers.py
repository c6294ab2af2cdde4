"""Small helpers for tests that talk to the API."""

from __future__ import annotations

import itertools

from service import keys

_counter = itertools.count(1)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


async def register(client, username: str | None = None, password: str = "password123") -> dict:
    username = username or f"user{next(_counter)}"
    response = await client.post(
        "/api/users", json={"user": {"username": username, "email": f"{username}@example.com", "password": password}}
    )
    assert response.status == 201, await response.text()
    return (await response.json())["user"]


async def create_article(client, token: str, title: str = "A title", tags: list[str] | None = None, **fields) -> dict:
    article = {"title": title, "description": "about it", "body": "the body", "tagList": tags or [], **fields}
    response = await client.post("/api/articles", json={"article": article}, headers=auth(token))
    assert response.status == 201, await response.text()
    return (await response.json())["article"]


def all_given_back(client) -> bool:
    """Every pool connection, and every place at the gate in front of the pool, is free again."""
    app = client.server.app
    pool, gate = app[keys.POOL], app[keys.POOL_GATE]
    return pool.get_idle_size() == pool.get_size() and gate.free == pool.get_max_size() and gate.waiting == 0
