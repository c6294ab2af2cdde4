"""GET /api/openapi.json: an OpenAPI 3.1 document generated from the route declarations, served
from a per-app cache, whose error shapes are the ones the service really answers."""

from __future__ import annotations

import io
import json

import jsonschema
import pytest
from aiohttp.test_utils import make_mocked_request
from openapi_spec_validator import validate

import service.openapi
from schemas.base import Model, Title
from service import keys
from service.app import api_endpoints
from service.errors import json_error
from service.routing import Api
from tests.helpers import auth, register


def schema_validator(document: dict, name: str) -> jsonschema.Draft202012Validator:
    """A validator for one of the document's component schemas, its $refs resolved in place."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


async def test_the_document_is_served_as_valid_openapi_3_1(client):
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["components"]["securitySchemes"]["Token"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": document["components"]["securitySchemes"]["Token"]["description"],
    }


async def test_every_declared_operation_is_documented_with_every_status(client):
    document = await (await client.get("/api/openapi.json")).json()
    endpoints = api_endpoints().endpoints
    assert sum(len(item) for item in document["paths"].values()) == len(endpoints)
    for endpoint in endpoints:
        operation = document["paths"][service.openapi.openapi_path(endpoint.path)][endpoint.method.lower()]
        assert operation["operationId"] == endpoint.operation_id
        assert sorted(int(code) for code in operation["responses"]) == endpoint.statuses()
        security = {"none": None, "optional": [{"Token": []}, {}], "required": [{"Token": []}]}[endpoint.auth]
        assert operation.get("security") == security, endpoint.operation_id
        for code in endpoint.statuses():
            if code >= 400:
                shape = "ServerErrorBody" if code >= 500 else "ErrorBody"
                response = document["components"]["responses"][operation["responses"][str(code)]["$ref"].split("/")[-1]]
                assert response["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{shape}"}


def test_the_document_follows_the_declarations():
    """Nothing is written by hand: a new route, its fields and its statuses appear by themselves."""

    class Note(Model):
        title: Title
        page_count: int

    class NoteRequest(Model):
        note: Note

    api = Api()

    @api.route(
        "POST",
        "/api/notes",
        tag="Notes",
        summary="Write a note",
        auth="required",
        body=NoteRequest,
        response=NoteRequest,
        status=201,
        errors=(409,),
    )
    async def create_note(request, body):  # pragma: no cover - never called
        """Notes are short."""

    document = service.openapi.build_document(api)
    validate(document)
    operation = document["paths"]["/api/notes"]["post"]
    assert operation["description"] == "Notes are short."
    assert sorted(operation["responses"]) == ["201", "400", "401", "409", "413", "422", "503"]
    assert operation["security"] == [{"Token": []}]
    note = document["components"]["schemas"]["Note"]
    assert note["required"] == ["title", "pageCount"]
    assert note["properties"]["title"]["maxLength"] == 200


def test_a_path_parameter_must_be_declared():
    api = Api()
    with pytest.raises(ValueError, match=r"params \[\] do not match the path /api/notes/\{id\}"):

        @api.route("GET", "/api/notes/{id}", tag="Notes", summary="A note")
        async def get_note(request):  # pragma: no cover - never called
            pass


async def test_the_document_is_built_once_per_app(make_client, monkeypatch):
    builds = []
    real_build = service.openapi.build_document

    def counting_build(api: Api) -> dict:
        builds.append(api)
        return real_build(api)

    monkeypatch.setattr(service.openapi, "build_document", counting_build)
    client = await make_client()
    first = await (await client.get("/api/openapi.json")).read()
    second = await (await client.get("/api/openapi.json")).read()
    assert first == second
    assert len(builds) == 1


async def test_error_answers_have_the_documented_shapes(client):
    document = await (await client.get("/api/openapi.json")).json()
    error_body = schema_validator(document, "ErrorBody")
    token = (await register(client))["token"]
    answers = {
        401: await client.get("/api/user"),
        404: await client.get("/api/articles/no-such-article"),
        422: await client.post("/api/articles", json={"article": {}}, headers=auth(token)),
        405: await client.patch("/api/tags"),
        413: await client.post(
            "/api/users", data=io.BytesIO(b"x" * (1024 * 1024 + 1)), headers={"Content-Type": "application/json"}
        ),
    }
    for status, response in answers.items():
        assert response.status == status
        assert response.content_type == "application/json"
        error_body.validate(await response.json())
    assert answers[405].headers["Allow"] == "GET"
    assert answers[401].headers["WWW-Authenticate"] == "Token"


def test_a_server_error_names_the_request():
    """The 5xx shape (ServerErrorBody) is the one json_error writes."""
    document = service.openapi.build_document(api_endpoints())
    request = make_mocked_request("GET", "/api/tags")
    request[keys.REQUEST_ID] = "abc-123"
    response = json_error(503, {"database": ["the database is unreachable"]}, request)
    body = json.loads(response.body)
    schema_validator(document, "ServerErrorBody").validate(body)
    assert body == {"errors": {"database": ["the database is unreachable"]}, "requestId": "abc-123"}
