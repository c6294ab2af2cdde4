"""Headers on every answer (errors and router 404/405 included): nosniff, no Server version;
CORS: allowed origins get their origin back (preflight: methods and request headers too), any
other origin gets no Access-Control-Allow-Origin; production allows only configured origins."""

from __future__ import annotations

import pytest
from aiohttp import web

from tests.helpers import auth, register

APP = "https://app.example.com"
EVIL = "https://evil.example.net"


async def every_kind_of_answer(client) -> dict[str, object]:
    user = await register(client)

    async def chunks():
        for _ in range(3):
            yield b"x" * 1024

    return {
        "200": await client.get("/api/tags"),
        "201": await client.post(
            "/api/articles",
            headers=auth(user["token"]),
            json={"article": {"title": "t", "description": "d", "body": "b"}},
        ),
        "204 preflight": await client.options(
            "/api/articles", headers={"Origin": APP, "Access-Control-Request-Method": "POST"}
        ),
        "401": await client.get("/api/user"),
        "404 router": await client.get("/no/such/path"),
        "404 handler": await client.get("/api/profiles/nobody"),
        "405": await client.patch("/api/tags"),
        "413": await client.post("/api/users", data=chunks(), headers={"Content-Type": "application/json"}),
        "422": await client.post("/api/users", json={"user": {}}),
        "livez": await client.get("/livez"),
    }


async def test_no_server_version_and_nosniff_on_every_answer(make_client):
    client = await make_client(MAX_BODY_SIZE="2048", CORS_ORIGINS=APP)
    for kind, response in (await every_kind_of_answer(client)).items():
        assert "Server" not in response.headers, (kind, response.headers.get("Server"))
        assert response.headers.get("X-Content-Type-Options") == "nosniff", kind


async def test_no_server_version_on_test_only_routes_that_fail_or_stream(app_env, db, aiohttp_client):
    """Two answers no middleware can stamp: an unhandled error, and a response the handler sends
    itself (its headers are on the wire before the middlewares see it). The prepare signal does."""
    from service.app import create_app
    from tests.conftest import ProductionLikeServer

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("boom")

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"streamed")
        return response

    app = await create_app()
    app.router.add_get("/test-only/boom", boom)
    app.router.add_get("/test-only/streamed", streamed)
    client = await aiohttp_client(ProductionLikeServer(app))
    for path, status in [("/test-only/boom", 500), ("/test-only/streamed", 200)]:
        response = await client.get(path)
        assert response.status == status
        assert "Server" not in response.headers, path
        assert response.headers.get("X-Content-Type-Options") == "nosniff", path


def preflight(origin: str, method: str = "PUT", headers: str = "authorization,content-type,x-request-id") -> dict:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


def allowed_headers(response) -> set[str]:
    return {h.strip().lower() for h in response.headers.get("Access-Control-Allow-Headers", "").split(",")}


def allowed_methods(response) -> set[str]:
    return {m.strip() for m in response.headers.get("Access-Control-Allow-Methods", "").split(",")}


async def test_preflight_from_an_allowed_origin(make_client):
    client = await make_client(CORS_ORIGINS=f"{APP}, https://other.example.org")
    response = await client.options("/api/articles/some-slug", headers=preflight(APP))
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert {"GET", "PUT", "DELETE"} <= allowed_methods(response)
    assert {"authorization", "content-type", "x-request-id"} <= allowed_headers(response)
    assert "Origin" in response.headers.getall("Vary")


async def test_preflight_from_another_origin_gets_no_allow_origin(make_client):
    client = await make_client(CORS_ORIGINS=APP)
    for origin in (EVIL, APP + ".evil.example.net", "null", "http://app.example.com"):
        response = await client.options("/api/articles", headers=preflight(origin, "POST"))
        assert "Access-Control-Allow-Origin" not in response.headers, origin
        assert "Access-Control-Allow-Methods" not in response.headers, origin
        assert response.status == 403
        assert (await response.json())["errors"]


async def test_actual_requests_get_allow_origin_only_for_allowed_origins(make_client):
    client = await make_client(CORS_ORIGINS=APP)
    allowed = await client.get("/api/tags", headers={"Origin": APP})
    assert allowed.headers["Access-Control-Allow-Origin"] == APP
    assert "x-request-id" in allowed.headers["Access-Control-Expose-Headers"].lower()
    error = await client.get("/api/user", headers={"Origin": APP})  # a browser must be able to read errors
    assert error.status == 401 and error.headers["Access-Control-Allow-Origin"] == APP
    other = await client.get("/api/tags", headers={"Origin": EVIL})
    assert other.status == 200
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_development_allows_any_origin_by_default(make_client):
    client = await make_client()
    response = await client.options("/api/users/login", headers=preflight(EVIL, "POST", "content-type"))
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == EVIL
    assert allowed_methods(response) == {"POST"}


@pytest.mark.parametrize(("configured", "allowed"), [(None, []), (APP, [APP])])
async def test_production_allows_only_configured_origins(make_client, configured, allowed):
    overrides = {"APP_ENV": "production", "SHUTDOWN_DELAY": "0"}
    if configured is not None:
        overrides["CORS_ORIGINS"] = configured
    client = await make_client(**overrides)
    for origin in (APP, EVIL, "http://localhost:3000"):
        response = await client.options("/api/articles", headers=preflight(origin, "GET"))
        actual = await client.get("/api/articles", headers={"Origin": origin})
        if origin in allowed:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == origin
            assert actual.headers["Access-Control-Allow-Origin"] == origin
        else:
            assert "Access-Control-Allow-Origin" not in response.headers, origin
            assert "Access-Control-Allow-Origin" not in actual.headers, origin


async def test_preflight_for_an_unknown_path_is_a_404(make_client):
    client = await make_client(CORS_ORIGINS=APP)
    response = await client.options("/no/such/path", headers=preflight(APP))
    assert response.status == 404
