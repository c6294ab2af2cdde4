"""Response headers every answer carries (no Server version, nosniff) and CORS for browser
front-ends: preflights answered here, allowed origins echoed on every response, errors included."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from service import keys
from service.errors import ApiError

ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-ID"
# Headers a browser script may read besides the CORS-safelisted ones.
EXPOSED_HEADERS = "X-Request-ID, Retry-After, WWW-Authenticate"
PREFLIGHT_MAX_AGE = "600"


class Cors:
    """CORS_ORIGINS as a predicate: exact origins (scheme://host[:port]) or `*` for any."""

    def __init__(self, origins: list[str]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(origin.rstrip("/").lower() for origin in origins if origin != "*")
        self.enabled = self.any or bool(self.origins)

    def allows(self, origin: str | None) -> bool:
        # Only printable ASCII is echoed back: a header value we reflect must be one we can send.
        if not origin or not origin.isascii() or not origin.isprintable():
            return False
        return self.any or origin.lower() in self.origins


def _cors(request: web.Request) -> Cors:
    return request.app[keys.CORS]


def is_preflight(request: web.Request) -> bool:
    return (
        request.method == hdrs.METH_OPTIONS
        and hdrs.ORIGIN in request.headers
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    )


@web.middleware
async def cors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer a CORS preflight for an existing path: 204 with the path's methods when the origin
    is allowed, 403 without any Access-Control-Allow-Origin when it is not. No route declares
    OPTIONS, so the router's 405 for the path says which methods exist."""
    if not is_preflight(request):
        return await handler(request)
    missing = request.match_info.http_exception
    if not isinstance(missing, web.HTTPMethodNotAllowed):
        return await handler(request)  # an unknown path stays a 404
    if not _cors(request).allows(request.headers[hdrs.ORIGIN]):
        raise ApiError(403, {"origin": ["not allowed to call this API from a browser"]})
    return web.Response(
        status=204,
        headers={
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ", ".join(sorted(missing.allowed_methods)),
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ALLOWED_HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: PREFLIGHT_MAX_AGE,
        },
    )


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Runs for every response the app sends (handlers, error middleware, router 404/405),
    after aiohttp has filled in its default headers and before they are written."""
    headers = response.headers
    headers.popall(hdrs.SERVER, None)  # aiohttp's default names the Python and aiohttp versions
    headers["X-Content-Type-Options"] = "nosniff"
    cors = request.app.get(keys.CORS)
    if cors is None or not cors.enabled:
        return
    headers.add(hdrs.VARY, hdrs.ORIGIN)  # the answer depends on Origin: caches must key on it
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and cors.allows(origin) and hdrs.ACCESS_CONTROL_ALLOW_ORIGIN not in headers:
        headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        if not is_preflight(request):
            headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = EXPOSED_HEADERS


def setup(app: web.Application, cors_origins: list[str]) -> None:
    app[keys.CORS] = Cors(cors_origins)
    app.on_response_prepare.append(on_response_prepare)
