"""Domain errors and the middleware that turns every error into the API's JSON shape."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from schemas.errors import ErrorBody, ServerErrorBody
from service import keys

log = logging.getLogger("service.errors")

RETRY_AFTER_SECONDS = "1"


class ApiError(Exception):
    """An error the client caused or must know about, with the RealWorld error body."""

    def __init__(self, status: int, errors: dict[str, list[str]], headers: dict[str, str] | None = None) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors
        self.headers = headers or {}


def unprocessable(field: str, message: str) -> ApiError:
    return ApiError(422, {field: [message]})


# The token's messages, in RealWorld's short style: no token at all, and every other defect
# (malformed, forged, expired, or naming a user that no longer exists).
TOKEN_MISSING = "is missing"  # noqa: S105 (a message about the token, not a secret)
TOKEN_INVALID = "is invalid"  # noqa: S105 (a message about the token, not a secret)


def unauthorized(message: str = TOKEN_INVALID) -> ApiError:
    return ApiError(401, {"token": [message]}, {"WWW-Authenticate": "Token"})


def forbidden(what: str) -> ApiError:
    return ApiError(403, {what: ["forbidden"]})


def not_found(what: str) -> ApiError:
    return ApiError(404, {what: ["not found"]})


class DatabaseUnavailable(Exception):
    """No connection could be had (pool exhausted, server down, read-only, overloaded)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def validation_errors(error: ValidationError) -> dict[str, list[str]]:
    """pydantic's errors in the RealWorld shape: one key per field, its messages in a list, each
    in the spec's short style about the field ("can't be blank"), never pydantic's sentence."""
    result: dict[str, list[str]] = {}
    for item in error.errors(include_url=False):
        loc = [part for part in item["loc"] if isinstance(part, str)]
        names = [part for part in loc if part not in _ENVELOPES]
        if item["type"] == "json_invalid" or not loc:
            field = "body"  # the request body as a whole
        elif not names:
            field = loc[-1]  # the envelope itself is missing or not an object: {"article": ...}
        else:
            field = names[-1]
        message = field_message(item)
        messages = result.setdefault(field, [])
        if message not in messages:  # two items of one list failing alike say it once
            messages.append(message)
    return result


BLANK = "can't be blank"
# By pydantic's error type: the message about the field, formatted with the error's context.
_MESSAGES = {
    "missing": BLANK,
    "string_too_short": "is too short (minimum is {min_length} characters)",
    "string_too_long": "is too long (maximum is {max_length} characters)",
    "string_pattern_mismatch": "is invalid",
    "string_type": "must be a string",
    "string_unicode": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "greater_than_equal": "must be greater than or equal to {ge}",
    "less_than_equal": "must be less than or equal to {le}",
    "list_type": "must be an array",
    "too_short": "is too short (minimum is {min_length} items)",
    "too_long": "is too long (maximum is {max_length} items)",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "json_invalid": "is not valid JSON",
    "json_type": "is not valid JSON",
}
# A type error on null: the field was sent empty.
_NULL_IS_BLANK = frozenset({"string_type", "model_type", "model_attributes_type", "dict_type"})


def field_message(item: Any) -> str:
    """One pydantic error as the message about its field."""
    kind, value = item["type"], item.get("input")
    if kind == "value_error":  # our own validators raise ValueError with a message in this style
        return str(item["ctx"]["error"])
    if kind == "string_too_short" and isinstance(value, str) and not value.strip():
        return BLANK
    if value is None and kind in _NULL_IS_BLANK:
        return BLANK
    template = _MESSAGES.get(kind, "is invalid")
    try:
        return template.format(**item.get("ctx", {}))
    except (KeyError, IndexError):
        return "is invalid"


_ENVELOPES = {"user", "article", "comment"}

# asyncpg and OS errors that mean "the database cannot serve this request now", by metric kind.
_UNAVAILABLE: tuple[tuple[type[BaseException], str, str], ...] = (
    (asyncpg.QueryCanceledError, "statement_timeout", "the database did not answer in time"),
    (asyncpg.LockNotAvailableError, "lock_timeout", "the database did not answer in time"),
    (asyncpg.DeadlockDetectedError, "conflict", "a concurrent change conflicted; retry"),
    (asyncpg.SerializationError, "conflict", "a concurrent change conflicted; retry"),
    (asyncpg.ReadOnlySQLTransactionError, "read_only", "the database is read-only"),
    (asyncpg.TargetServerAttributeNotMatched, "read_only", "no database server accepts writes"),
    (asyncpg.IdleInTransactionSessionTimeoutError, "idle_in_transaction", "the database ended an idle transaction"),
    (asyncpg.TooManyConnectionsError, "too_many_connections", "the database is overloaded"),
    (asyncpg.CannotConnectNowError, "cannot_connect", "the database is starting or stopping"),
    (asyncpg.AdminShutdownError, "admin_shutdown", "the database connection was closed"),
    (asyncpg.PostgresConnectionError, "connection", "the database connection failed"),
    (asyncpg.InterfaceError, "connection", "the database connection failed"),
    (asyncpg.InvalidCachedStatementError, "cached_statement", "the database schema changed; retry"),
    (asyncpg.OutdatedSchemaCacheError, "cached_statement", "the database schema changed; retry"),
    (asyncio.TimeoutError, "timeout", "the database did not answer in time"),
    (ConnectionError, "connection", "the database connection failed"),
    (OSError, "connection", "the database is unreachable"),
)


def classify_database_error(error: BaseException) -> DatabaseUnavailable | None:
    if isinstance(error, DatabaseUnavailable):
        return error
    for kind, name, message in _UNAVAILABLE:
        if isinstance(error, kind):
            return DatabaseUnavailable(name, message)
    return None


def json_error(status: int, errors: dict[str, list[str]], request: web.Request, **extra: Any) -> web.Response:
    """The error body, built from the models the OpenAPI document describes it with."""
    if status >= 500:
        body: ErrorBody = ServerErrorBody(errors=errors, request_id=request.get(keys.REQUEST_ID) or "unknown")
    else:
        body = ErrorBody(errors=errors)
    return web.Response(
        body=body.json_bytes(),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=extra.get("headers"),
    )


_HTTP_FIELDS = {401: "token", 404: "path", 405: "method", 413: "body", 415: "body", 429: "login"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Known errors become the spec's JSON; unknown ones are logged and answered with a bare 500."""
    try:
        return await handler(request)
    except ApiError as error:
        return json_error(error.status, error.errors, request, headers=error.headers)
    except web.HTTPException as error:
        if error.status < 400 or error.content_type == "application/json":
            raise
        field = _HTTP_FIELDS.get(error.status, "request")
        headers = {k: v for k, v in error.headers.items() if k.lower() in ("allow", "retry-after", "www-authenticate")}
        return json_error(error.status, {field: [error.reason.lower()]}, request, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        unavailable = classify_database_error(error)
        if unavailable is not None:
            metrics = request.app.get(keys.METRICS)
            if metrics is not None:
                metrics.db_error(unavailable.kind)
            log.warning("database unavailable (%s): %r", unavailable.kind, error)
            return json_error(
                503, {"database": [unavailable.message]}, request, headers={"Retry-After": RETRY_AFTER_SECONDS}
            )
        request_id = request.get(keys.REQUEST_ID)
        log.exception("unhandled error on %s %s (request %s)", request.method, request.path, request_id)
        return json_error(500, {"server": ["internal error"]}, request)
