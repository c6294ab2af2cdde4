"""Probes for orchestrators: liveness never touches the database, readiness asks it."""

from __future__ import annotations

import logging

from aiohttp import web

from service import keys
from service.db import ping

log = logging.getLogger("service.health")


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    lifecycle = request.app[keys.LIFECYCLE]
    if lifecycle.draining:
        return _unready(request, "shutting down")
    if not lifecycle.migrated.is_set():
        return _unready(request, "database not migrated yet")
    writable = request.app[keys.SETTINGS].db_target_session_attrs in ("read-write", "primary")
    try:
        asked = await ping(request.app[keys.POOL], request.app[keys.POOL_GATE], writable=writable)
    except Exception as error:  # noqa: BLE001 - any failure means not ready
        log.info("readiness check failed: %r", error)
        return _unready(request, "database unreachable")
    if not asked:
        # Every connection is lent to requests, so the database is answering. Declaring a busy
        # instance unready would only move its load onto the others (and then them too).
        return web.json_response({"status": "ready", "pool": "saturated"})
    return web.json_response({"status": "ready"})


def _unready(request: web.Request, reason: str) -> web.Response:
    # Like every 5xx body, it names the request id.
    body = {"status": "unavailable", "reason": reason, "requestId": request.get(keys.REQUEST_ID)}
    return web.json_response(body, status=503)


def setup(app: web.Application) -> None:
    app.router.add_get("/livez", livez, name="livez")
    app.router.add_get("/readyz", readyz, name="readyz")
