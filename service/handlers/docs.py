"""The API's own description: the OpenAPI document and a Swagger UI page to read it, served from
the swagger-ui-bundle-v2 package so that the page needs nothing from the network."""

from __future__ import annotations

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from service import keys
from service.openapi import TITLE, Document
from service.routing import Api

OPENAPI_PATH = "/api/openapi.json"
DOCS_PATH = "/api/docs"

# The only files of the bundle the page uses, with their content types (not guessed from the
# platform's MIME table).
_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}

# Our initializer lives in its own file rather than inline, so that a Content-Security-Policy
# with script-src 'self' allows the page. validatorUrl null: Swagger UI would otherwise send the
# document to an online validator.
_INIT_JS = f"""window.addEventListener("load", function () {{
  window.ui = SwaggerUIBundle({{
    url: "{OPENAPI_PATH}",
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    persistAuthorization: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  }});
}});
""".encode()

_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{TITLE}</title>
  <link rel="stylesheet" href="{DOCS_PATH}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{DOCS_PATH}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{DOCS_PATH}/swagger-ui-bundle.js"></script>
  <script src="{DOCS_PATH}/init.js"></script>
</body>
</html>
""".encode()


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[keys.OPENAPI].json_bytes, content_type="application/json")


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(body=_PAGE, content_type="text/html", charset="utf-8")


async def docs_init(request: web.Request) -> web.Response:
    return web.Response(body=_INIT_JS, content_type="text/javascript", charset="utf-8")


async def docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    content_type = _ASSETS.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    return web.FileResponse(swagger_ui_path / name, headers={"Content-Type": content_type})


def setup(app: web.Application, api: Api) -> None:
    app[keys.OPENAPI] = Document(api)
    app.router.add_get(OPENAPI_PATH, openapi_json, name="openapi", allow_head=False)
    app.router.add_get(DOCS_PATH, docs_page, name="docs", allow_head=False)
    app.router.add_get(f"{DOCS_PATH}/init.js", docs_init, name="docs_init", allow_head=False)
    app.router.add_get(DOCS_PATH + "/{name}", docs_asset, name="docs_asset", allow_head=False)
