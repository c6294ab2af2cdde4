"""The error bodies every failure answers with."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Model


class ErrorBody(Model):
    """RealWorld's error shape: each key a field (or 'body', 'token', 'database', ...) with its
    messages."""

    errors: dict[str, list[str]]


class ServerErrorBody(ErrorBody):
    """A 5xx answer also names the request, so a report can be matched with the server's logs."""

    request_id: str = Field(description="the X-Request-ID of the request, the client's or a generated one")
