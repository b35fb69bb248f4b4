"""/docs: Swagger UI from the desk's own static files, started by a script file (no CDN, no inline script),
so the API docs work offline and under the same Content-Security-Policy as every page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from zhiban.web.scopes import PUBLIC

router = APIRouter(include_in_schema=False, dependencies=[PUBLIC])

_ASSETS = "/static/vendor/swagger-ui"
PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zhiban API</title>
<link rel="stylesheet" href="{_ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{_ASSETS}/favicon-32x32.png">
</head>
<body data-openapi="/openapi.json">
<div id="swagger-ui"></div>
<script src="{_ASSETS}/swagger-ui-bundle.js"></script>
<script src="{_ASSETS}/docs.js"></script>
</body>
</html>
"""


@router.get("/docs", response_class=HTMLResponse)
def api_docs() -> HTMLResponse:
    """The API's interactive documentation (public: it shows the schema, which /openapi.json serves anyway)."""
    return HTMLResponse(PAGE)
