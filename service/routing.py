"""Route declarations: one decorator says method, path, models, auth and transaction, and the
same declaration registers the aiohttp route and feeds the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ValidationError

from service import keys
from service.auth import CurrentUser, authenticate
from service.db import connection
from service.errors import TOKEN_MISSING, ApiError, unauthorized, unprocessable, validation_errors
from service.sqlfiles import queries

Auth = Literal["none", "optional", "required"]
Handler = Callable[..., Awaitable[Any]]

_PATH_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


def path_parameters(path: str) -> list[str]:
    """The names of a route template's parameters: '/a/{slug}/c/{id:\\d+}' -> ['slug', 'id']."""
    return _PATH_PARAMETER.findall(path)


def field_names(model: type[BaseModel]) -> list[str]:
    """A model's field names as they appear on the wire (their aliases)."""
    return [info.alias or name for name, info in model.model_fields.items()]


@dataclass(frozen=True)
class Endpoint:
    """Everything known about one operation."""

    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    auth: Auth = "none"
    transaction: bool = False
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    # The path parameters as a model: validated (422) and passed to the handler as `params`.
    params: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    # Check that the token's user still exists before the handler runs; off for handlers whose
    # own query of the user answers 401 when it is gone (saves a query).
    verify_user: bool = True
    # Read from the primary even when replicas are configured (reads are otherwise spread over
    # healthy replicas; see service/replicas.py).
    primary: bool = False

    def __post_init__(self) -> None:
        # Every path parameter is declared, so it is validated and documented by the same model.
        declared = sorted(field_names(self.params)) if self.params is not None else []
        if declared != sorted(path_parameters(self.path)):
            raise ValueError(f"{self.operation_id}: params {declared} do not match the path {self.path}")

    def statuses(self) -> list[int]:
        """Every status the operation can answer, for the OpenAPI document. (405 belongs to no
        operation: it answers a method that the path does not declare.)"""
        codes = {self.status, 503}  # 503: the database cannot serve the request now
        if self.auth != "none":
            codes.add(401)  # a bad token, even where the token is optional
        if self.body is not None:
            codes.update((400, 413, 422))  # 400: the body did not arrive whole (the client left)
        if self.query is not None or self.params is not None:
            codes.add(422)
        codes.update(self.errors)
        return sorted(codes)


@dataclass
class Api:
    """A list of endpoints, declared by decorators in the handler modules."""

    endpoints: list[Endpoint] = field(default_factory=list)

    def route(self, method: str, path: str, *, tag: str, summary: str, **options: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method=method,
                    path=path,
                    handler=handler,
                    operation_id=handler.__name__,
                    summary=summary,
                    tag=tag,
                    **options,
                )
            )
            return handler

        return register

    def setup(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, endpoint.path, _adapter(endpoint), name=endpoint.operation_id)


_users = queries("users")


def _adapter(endpoint: Endpoint) -> Handler:
    """The aiohttp handler: token, then body and query validated, then the user checked in the
    database, then the endpoint's own handler; its model becomes the JSON response."""
    requires = endpoint.auth == "required"

    async def handle(request: web.Request) -> web.StreamResponse:
        user = authenticate(request, requires) if endpoint.auth != "none" else None
        kwargs: dict[str, Any] = {}
        if endpoint.params is not None:
            kwargs["params"] = _validate(endpoint.params, dict(request.match_info))
        if endpoint.query is not None:
            kwargs["query"] = _validate(endpoint.query, dict(request.query))
        if endpoint.body is not None:
            kwargs["body"] = await read_body(request, endpoint.body)
        if user is not None and endpoint.verify_user:
            await ensure_user_exists(request, user)
        result = await endpoint.handler(request, **kwargs)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=endpoint.status)
        return web.Response(
            body=result.json_bytes(), status=endpoint.status, content_type="application/json", charset="utf-8"
        )

    handle.endpoint = endpoint  # type: ignore[attr-defined]  # an attribute of the function object
    handle.transactional = endpoint.transaction  # type: ignore[attr-defined]  # read by connection_middleware
    handle.primary = endpoint.primary  # type: ignore[attr-defined]  # read by connection_middleware
    handle.__name__ = endpoint.operation_id
    return handle


def _validate(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ApiError(422, validation_errors(error)) from None


async def read_body(request: web.Request, model: type[BaseModel]) -> Any:
    """The request body as `model`; 413 before reading when it is too large, 422 when it is not
    JSON of the right shape."""
    limit = request.app[keys.SETTINGS].max_body_size
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, {"body": [f"is too large (maximum is {limit} bytes)"]})
    if request.content_type != "application/json":
        raise unprocessable("body", "must be JSON (Content-Type: application/json)")
    try:
        raw = await request.read()  # aiohttp stops at client_max_size (413) for chunked bodies
    except ConnectionError:
        # The client went away mid-body: its fault, not the database's (which the generic
        # ConnectionError mapping in service/errors.py would otherwise report).
        raise ApiError(400, {"body": ["is incomplete (the connection closed mid-body)"]}) from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise ApiError(422, validation_errors(error)) from None


async def ensure_user_exists(request: web.Request, user: CurrentUser) -> None:
    """A valid token whose user has been deleted is still a 401."""
    conn = await connection(request)
    if not await conn.fetchval(_users.exists, user.id):
        raise unauthorized()  # the token's user no longer exists


def current_user(request: web.Request) -> CurrentUser:
    user: CurrentUser | None = request.get(keys.USER)  # aiohttp types get() loosely; __getitem__ is typed
    if user is None:
        raise unauthorized(TOKEN_MISSING)
    return user


def viewer_id(request: web.Request) -> int | None:
    user: CurrentUser | None = request.get(keys.USER)
    return user.id if user is not None else None


__all__ = ["Api", "Endpoint", "asyncpg", "connection", "current_user", "viewer_id"]
