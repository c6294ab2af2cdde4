"""Request ids and the access log: the outermost middleware."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from aiohttp import web

from service import keys

access_log = logging.getLogger("service.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def route_template(request: web.Request) -> str:
    """The matched route's template (/api/articles/{slug}), never the raw path."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def request_middleware(request: web.Request, handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
    request[keys.REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        duration = time.perf_counter() - started
        route = route_template(request)
        metrics = request.app.get(keys.METRICS)
        if metrics is not None:
            metrics.observe_request(request.method, route, status, duration)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": request.method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(duration * 1000, 2),
                    }
                )
            )
