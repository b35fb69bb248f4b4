"""RFC 9457 problem JSON for every 4xx/5xx, each with a stable `type`."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from zhiban.core.errors import PROBLEM_BASE, ZhibanError

log = logging.getLogger("zhiban.web")

MEDIA_TYPE = "application/problem+json"

# Stable slugs for HTTP errors raised by the framework itself (routing, methods, size limits).
HTTP_TYPES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "rate-limited",
}


def wants_html(request: Request) -> bool:
    """A browser asking for a page (not the API) gets an HTML error page or a login redirect."""
    path = request.url.path
    if path.startswith(("/api/", "/v2/", "/openapi", "/docs", "/healthz", "/readyz", "/metrics")):
        return False
    return "text/html" in request.headers.get("accept", "")


def _html_error(request: Request, status: int, title: str, detail: str) -> Response:
    if status == 401:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    from zhiban.web.templating import render

    return render(request, "error.html", status, title=title, detail=detail)


def problem(status: int, type_: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + type_, "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem JSON."""

    @app.exception_handler(ZhibanError)
    async def _domain(request: Request, exc: ZhibanError) -> Response:
        if wants_html(request):
            return _html_error(request, exc.status, exc.title, exc.detail)
        return problem(exc.status, exc.type_, exc.title, exc.detail, instance=request.url.path, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))} for err in exc.errors()[:20]
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem(422, "invalid-input", "Invalid input", detail, instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        type_ = HTTP_TYPES.get(exc.status_code, "http-error" if exc.status_code < 500 else "internal-error")
        title = type_.replace("-", " ").capitalize()
        if wants_html(request):
            return _html_error(request, exc.status_code, title, str(exc.detail))
        return problem(exc.status_code, type_, title, str(exc.detail), instance=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem(500, "internal-error", "Internal error", "an unexpected error occurred; it has been logged")
