"""Reference points for the benchmark, outside the service: what aiohttp and asyncpg allow on
this machine, served by the same gunicorn + uvloop worker, one process.

    /json      a fixed JSON document: the ceiling of aiohttp itself
    /db        one article row by primary key through a pool: the ceiling of "pool + one SELECT"
    /connect   the same row over a connection opened for the request (the anti-pattern)

Run: gunicorn tests.bench.refapp:create_app --worker-class aiohttp.GunicornUVLoopWebWorker
with REF_DATABASE_URL and REF_ARTICLES (ids are drawn from 1..REF_ARTICLES). For `make
bench-levers` only: REF_RESET=skip leaves out asyncpg's reset query on release, and REF_GATE=1
takes /db's connections through the service's first-come-first-served gate (service.db.Gate)."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import asyncpg
import orjson
from aiohttp import web

if TYPE_CHECKING:
    from service.db import Gate

POOL = web.AppKey("pool", asyncpg.Pool)
GATE: web.AppKey[Gate | None] = web.AppKey("gate")
DSN = web.AppKey("dsn", str)
ARTICLES = web.AppKey("articles", int)
QUERY = "SELECT id, slug, title, description, created_at FROM articles WHERE id = $1"
FIXED = orjson.dumps({"message": "Hello, World!"})


def _row_json(row: asyncpg.Record | None) -> bytes:
    assert row is not None  # the bench seeds every id it asks for
    return orjson.dumps({"article": dict(row)})


async def fixed(request: web.Request) -> web.Response:
    return web.Response(body=FIXED, content_type="application/json")


async def pooled(request: web.Request) -> web.Response:
    article_id = random.randint(1, request.app[ARTICLES])
    gate = request.app[GATE]
    if gate is not None:
        await gate.enter(60)
    try:
        async with request.app[POOL].acquire() as conn:
            row = await conn.fetchrow(QUERY, article_id)
    finally:
        if gate is not None:
            gate.leave()
    return web.Response(body=_row_json(row), content_type="application/json")


async def connect_per_request(request: web.Request) -> web.Response:
    article_id = random.randint(1, request.app[ARTICLES])
    conn = await asyncpg.connect(request.app[DSN])
    try:
        row = await conn.fetchrow(QUERY, article_id)
    finally:
        await conn.close()
    return web.Response(body=_row_json(row), content_type="application/json")


async def _skip_reset_query(conn: asyncpg.Connection) -> None:
    """For `make bench-levers` only (REF_RESET=skip): what asyncpg's reset query on release costs.
    asyncpg still rolls back and drops listeners; only the query that restores session state
    (RESET ALL, UNLISTEN *, CLOSE ALL, advisory unlocks) is skipped, as service.db.keep_session does:
    sound only where no request leaves session state behind (tests/test_session_state.py)."""


async def pool_ctx(app: web.Application):
    # Same size as the service's default (DB_POOL_MAX_SIZE=10), so the comparison is fair.
    reset = _skip_reset_query if os.environ.get("REF_RESET") == "skip" else None
    app[POOL] = await asyncpg.create_pool(app[DSN], min_size=10, max_size=10, reset=reset)
    if os.environ.get("REF_GATE") == "1":
        from service.db import Gate

        app[GATE] = Gate(10)
    else:
        app[GATE] = None
    yield
    await app[POOL].close()


async def create_app() -> web.Application:
    app = web.Application()
    app[DSN] = os.environ["REF_DATABASE_URL"]
    app[ARTICLES] = int(os.environ.get("REF_ARTICLES", "10000"))
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get("/json", fixed)
    app.router.add_get("/db", pooled)
    app.router.add_get("/connect", connect_per_request)
    return app
