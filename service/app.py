"""The application factory: builds the app from its parts; no I/O happens here."""

from __future__ import annotations

import logging

from aiohttp import web

from service import keys, metrics, observability, security, shutdown
from service.db import Lifecycle, connection_middleware, pool_ctx
from service.errors import error_middleware
from service.handlers import articles, comments, docs, health, profiles, users
from service.observability import request_middleware
from service.routing import Api
from service.security import cors_middleware
from service.settings import Settings, load_settings, resolved

API_MODULES = (users, profiles, articles, comments)


def api_endpoints() -> Api:
    """Every declared API endpoint, in declaration order (the OpenAPI document reads these)."""
    combined = Api()
    for module in API_MODULES:
        combined.endpoints.extend(module.api.endpoints)
    return combined


def build_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[request_middleware, error_middleware, cors_middleware, connection_middleware],
        client_max_size=settings.max_body_size,
        handler_args={},
    )
    app[keys.SETTINGS] = settings
    app[keys.LIFECYCLE] = Lifecycle()
    observability.setup(app)
    security.setup(app, resolved(settings.cors_origins))
    app.cleanup_ctx.append(pool_ctx)
    if settings.database_replica_urls:
        from service.replicas import replicas_ctx

        app.cleanup_ctx.append(replicas_ctx)  # after the primary's pool: it closes before it
    metrics.setup(app)  # after the pool: its sampler stops before the pool closes
    shutdown.setup(app)
    health.setup(app)
    api = api_endpoints()
    api.setup(app)
    docs.setup(app, api)
    return app


async def create_app() -> web.Application:
    """The one factory for `make run`, pytest-aiohttp and gunicorn: settings from the environment."""
    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return build_app(settings)
