"""The interactive API page at /docs, served whole by swapd: no CDN, so it works offline and under
a Content-Security-Policy of ``'self'``.

FastAPI's own pages load Swagger UI (and ReDoc) from cdn.jsdelivr.net and start it with an inline
script; they are removed. Swagger UI's files ship in ``static/swagger-ui`` (version and license in
its README) and ``static/docs.js`` starts it.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

DOCS_PATH = "/docs"
STATIC_PATH = "/static"
STATIC_DIR = Path(__file__).parent / "static"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{static}/swagger-ui/swagger-ui.css">
<link rel="icon" type="image/png" href="{static}/swagger-ui/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{static}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{static}/docs.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Replace FastAPI's /docs, /docs/oauth2-redirect and /redoc with the page served here."""
    theirs = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes[:] = [
        r for r in app.router.routes if not (isinstance(r, Route) and r.path in theirs)
    ]
    app.docs_url = app.redoc_url = app.swagger_ui_oauth2_redirect_url = None
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    title = html.escape(f"{app.title} - API")

    async def docs(request: Request) -> HTMLResponse:
        root_path = str(request.scope.get("root_path", "")).rstrip("/")
        page = _PAGE.format(
            title=title,
            static=html.escape(root_path + STATIC_PATH),
            openapi_url=html.escape(root_path + openapi_url),
        )
        return HTMLResponse(page)

    app.add_route(DOCS_PATH, docs, include_in_schema=False)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")
