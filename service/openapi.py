"""The OpenAPI 3.1 document, generated from the route declarations (`service.routing.Endpoint`)
and the pydantic models they name: adding a route, a field or an error status changes it, and
nothing in it is written by hand."""

from __future__ import annotations

import inspect
from functools import cached_property
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from schemas.errors import ErrorBody, ServerErrorBody
from service.routing import Api, Endpoint, path_parameters

OPENAPI_VERSION = "3.1.0"
TITLE = "Conduit API"
DESCRIPTION = (
    "The RealWorld Conduit API. Every error answers with a JSON body "
    '`{"errors": {"<field>": ["<message>", ...]}}`; 5xx answers also carry `requestId`, the '
    "request's `X-Request-ID`. A method that a path does not declare answers 405 with an `Allow` "
    "header (see `components.responses.MethodNotAllowed`)."
)
REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "Token"
JSON = "application/json"

# Each error status: the reusable response's name, its meaning here, and the headers it carries.
_ERRORS: dict[int, tuple[str, str, tuple[str, ...]]] = {
    400: ("BadRequest", "The request body did not arrive whole (the client closed the connection).", ()),
    401: (
        "Unauthorized",
        "The token is missing, malformed, expired or names no user (at login: wrong credentials).",
        ("WWW-Authenticate",),
    ),
    403: ("Forbidden", "The resource belongs to another user.", ()),
    404: ("NotFound", "No such resource.", ()),
    405: ("MethodNotAllowed", "The path does not declare this method; `Allow` lists the ones it does.", ("Allow",)),
    409: (
        "Conflict",
        "The username or email is already taken (`has already been taken`), or no free slug could be found "
        "for the title (retrying may succeed).",
        (),
    ),
    413: ("PayloadTooLarge", "The request body is larger than the service accepts (MAX_BODY_SIZE).", ()),
    422: ("UnprocessableEntity", "The input is invalid: each failing field with its messages.", ()),
    429: (
        "TooManyRequests",
        "Too many failed logins for the account or the address; retry after `Retry-After`.",
        ("Retry-After",),
    ),
    503: (
        "ServiceUnavailable",
        "The database cannot serve the request now; retry after `Retry-After`.",
        ("Retry-After",),
    ),
}
_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id: the client's `X-Request-ID` if valid, else a generated one.",
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {"description": "`Token`: the scheme the API expects.", "schema": {"type": "string"}},
    "Allow": {"description": "The methods the path declares.", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}},
}


def build_document(api: Api) -> dict[str, Any]:
    """The whole document for the endpoints of `api`."""
    schemas = _Schemas(api.endpoints)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in api.endpoints:
        paths.setdefault(openapi_path(endpoint.path), {})[endpoint.method.lower()] = _operation(endpoint, schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": TITLE, "version": _version(), "description": DESCRIPTION},
        "tags": [{"name": tag} for tag in sorted({endpoint.tag for endpoint in api.endpoints})],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "responses": {name: _error_response(status, schemas) for status, (name, _, _) in _ERRORS.items()},
            "headers": _HEADERS,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Token <jwt>` with the token that registration or login answered "
                    "(`Bearer <jwt>` is accepted too).",
                }
            },
        },
    }


class Document:
    """The document of one app, built on first use and kept as JSON bytes."""

    def __init__(self, api: Api) -> None:
        self._api = api

    @cached_property
    def json_bytes(self) -> bytes:
        return orjson.dumps(build_document(self._api))


class _Schemas:
    """Every model the endpoints name, as JSON Schemas under components/schemas: request models
    in pydantic's validation mode, responses in its serialization mode."""

    def __init__(self, endpoints: list[Endpoint]) -> None:
        wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {}
        for endpoint in endpoints:
            if endpoint.body is not None:
                wanted[(endpoint.body, "validation")] = None
            if endpoint.response is not None:
                wanted[(endpoint.response, "serialization")] = None
        wanted[(ErrorBody, "serialization")] = None
        wanted[(ServerErrorBody, "serialization")] = None
        refs, top = models_json_schema(list(wanted), by_alias=True, ref_template=REF)
        self._refs = refs
        self.components: dict[str, Any] = dict(top.get("$defs", {}))

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return self._refs[(model, mode)]

    def parameters(self, model: type[BaseModel], location: str) -> list[dict[str, Any]]:
        """One parameter per field of a query or path model, in declaration order."""
        schema = model.model_json_schema(by_alias=True, ref_template=REF, mode="validation")
        self.components.update(schema.get("$defs", {}))
        required = set(schema.get("required", ()))
        result = []
        for name, declared in schema["properties"].items():
            field_schema = _without_null(dict(declared))
            field_schema.pop("title", None)
            parameter: dict[str, Any] = {
                "name": name,
                "in": location,
                "required": location == "path" or name in required,
            }
            description = field_schema.pop("description", None)
            if description:
                parameter["description"] = description
            parameter["schema"] = field_schema
            result.append(parameter)
        return result


def _operation(endpoint: Endpoint, schemas: _Schemas) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": [endpoint.tag],
        "summary": endpoint.summary,
        "operationId": endpoint.operation_id,
    }
    description = inspect.getdoc(endpoint.handler)
    if description:
        operation["description"] = description
    parameters = []
    if endpoint.params is not None:
        parameters += schemas.parameters(endpoint.params, "path")
    if endpoint.query is not None:
        parameters += schemas.parameters(endpoint.query, "query")
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": schemas.ref(endpoint.body, "validation")}},
        }
    operation["responses"] = {str(status): _response(endpoint, status, schemas) for status in endpoint.statuses()}
    if endpoint.auth == "required":
        operation["security"] = [{SECURITY_SCHEME: []}]
    elif endpoint.auth == "optional":
        operation["security"] = [{SECURITY_SCHEME: []}, {}]
    return operation


def _response(endpoint: Endpoint, status: int, schemas: _Schemas) -> dict[str, Any]:
    if status in _ERRORS:
        return {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}
    if status >= 400:
        raise ValueError(f"{endpoint.operation_id}: error status {status} has no description in service.openapi")
    response: dict[str, Any] = {
        "description": HTTPStatus(status).phrase,
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
    }
    if endpoint.response is not None:
        response["content"] = {JSON: {"schema": schemas.ref(endpoint.response, "serialization")}}
    return response


def _error_response(status: int, schemas: _Schemas) -> dict[str, Any]:
    _, description, headers = _ERRORS[status]
    model = ServerErrorBody if status >= 500 else ErrorBody
    return {
        "description": f"{HTTPStatus(status).phrase}: {description}",
        "headers": {name: {"$ref": f"#/components/headers/{name}"} for name in ("X-Request-ID", *headers)},
        "content": {JSON: {"schema": schemas.ref(model, "serialization")}},
    }


def openapi_path(path: str) -> str:
    """aiohttp's '{id:\\d+}' is OpenAPI's '{id}'."""
    for name in path_parameters(path):
        start = path.index("{" + name)
        path = path[:start] + "{" + name + "}" + path[path.index("}", start) + 1 :]
    return path


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter is simply left out; its schema need not admit null (and a query
    string could not carry one)."""
    branches = schema.get("anyOf")
    if isinstance(branches, list):
        rest = [branch for branch in branches if branch != {"type": "null"}]
        if len(rest) == 1 and len(rest) < len(branches):
            del schema["anyOf"]
            if schema.get("default", ...) is None:
                del schema["default"]
            schema = {**rest[0], **schema}
    return schema


def _version() -> str:
    try:
        return version("conduit-aiohttp")
    except PackageNotFoundError:
        return "0"
