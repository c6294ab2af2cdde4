"""The error body every failure answers with."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Model


class ErrorBody(Model):
    """RealWorld's error shape: each key a field (or 'body', 'token', 'database', ...)."""

    errors: dict[str, list[str]]
    request_id: str | None = Field(None, description="X-Request-ID of the request (5xx answers only)")
