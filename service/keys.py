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
    from service.security import Cors
    from service.settings import Settings
    from service.shutdown import InFlight

SETTINGS = web.AppKey("settings", "Settings")
POOL = web.AppKey("pool", asyncpg.Pool)
# Requests take pool connections through this, first come first served (service/db.py).
POOL_GATE = web.AppKey("pool_gate", "Gate")
LIFECYCLE = web.AppKey("lifecycle", "Lifecycle")
METRICS = web.AppKey("metrics", "Metrics")
CORS = web.AppKey("cors", "Cors")
IN_FLIGHT = web.AppKey("in_flight", "InFlight")
OPENAPI = web.AppKey("openapi", "Document")
ACCESS_LOG = web.AppKey("access_log", "AccessLog")

LEASE = web.RequestKey("lease", "Lease")
USER = web.RequestKey("user", "CurrentUser | None")
REQUEST_ID = web.RequestKey("request_id", str)
