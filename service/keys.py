"""Every typed key for application and request state, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

if TYPE_CHECKING:
    from service.auth import CurrentUser
    from service.db import Gate, Lease, Lifecycle
    from service.metrics import Metrics
    from service.observability import AccessLog
    from service.openapi import Document
    from service.replicas import Replicas
    from service.security import Cors
    from service.settings import Settings
    from service.shutdown import InFlight

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
POOL = web.AppKey("pool", asyncpg.Pool)
# Requests take pool connections through this, first come first served (service/db.py).
POOL_GATE: web.AppKey[Gate] = web.AppKey("pool_gate")
# The worker's replicas, their monitor and the fence lookups; absent without DATABASE_REPLICA_URLS.
REPLICAS: web.AppKey[Replicas] = web.AppKey("replicas")
LIFECYCLE: web.AppKey[Lifecycle] = web.AppKey("lifecycle")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
CORS: web.AppKey[Cors] = web.AppKey("cors")
IN_FLIGHT: web.AppKey[InFlight] = web.AppKey("in_flight")
OPENAPI: web.AppKey[Document] = web.AppKey("openapi")
ACCESS_LOG: web.AppKey[AccessLog] = web.AppKey("access_log")

LEASE: web.RequestKey[Lease] = web.RequestKey("lease")
# A write's user when the request is not signed in (registration): its read-your-writes fence.
WRITER = web.RequestKey("writer", int)
USER: web.RequestKey[CurrentUser | None] = web.RequestKey("user")
REQUEST_ID = web.RequestKey("request_id", str)
