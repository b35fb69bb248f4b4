"""Request ids, Prometheus metrics at /metrics, and the health endpoints."""

from __future__ import annotations

import hmac
import time
import uuid

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zhiban.core import logging as zlog
from zhiban.core.errors import NotFound, Unauthorized
from zhiban.core.metrics import REGISTRY

REQUESTS = Counter("zhiban_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "zhiban_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-Id (bounded), or a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            return value.decode("latin-1")[:64] or uuid.uuid4().hex
    return uuid.uuid4().hex


def observe(method: str, route: str, status: int, started: float) -> None:
    """Count a request answered, and its latency since `started` (time.perf_counter())."""
    LATENCY.labels(method, route).observe(time.perf_counter() - started)
    REQUESTS.labels(method, route, str(status)).inc()


class ObserveMiddleware:
    """Request ids and metrics for every HTTP request, as plain ASGI (cheaper than BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        token = zlog.request_id.set(rid)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            zlog.request_id.reset(token)
            # Label by route template, not raw path, so ids do not explode the metric's cardinality.
            route = scope.get("route")
            observe(scope.get("method", ""), getattr(route, "path", "unmatched"), status, start)


def require_metrics_token(request: Request, token: str) -> None:
    """Metrics name routes, jobs and volumes: served only to a scraper holding the configured token."""
    if not token:
        raise NotFound("not found")
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
        raise Unauthorized("send Authorization: Bearer <ZHIBAN_METRICS_TOKEN>")


def install(app: FastAPI) -> None:
    """Add request ids and metrics to every request, and mount /metrics, /healthz and /readyz."""

    app.add_middleware(ObserveMiddleware)

    from zhiban.web.scopes import PUBLIC

    router = APIRouter(tags=["operations"], dependencies=[PUBLIC])

    @router.get("/healthz", summary="Liveness: the process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: the database answers", responses={503: {"description": "not ready"}})
    def readyz(request: Request) -> JSONResponse:
        try:
            with request.app.state.desk.engine.connect() as conn:
                conn.execute(text("select 1"))
        except Exception as exc:  # any database failure means not ready
            return JSONResponse({"status": "unavailable", "detail": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok"})

    @router.get(
        "/metrics",
        summary="Prometheus metrics (Authorization: Bearer ZHIBAN_METRICS_TOKEN; off when that is unset)",
        response_class=Response,
        responses={401: {"description": "no or wrong token"}, 404: {"description": "metrics are off"}},
    )
    def metrics(request: Request) -> Response:
        require_metrics_token(request, request.app.state.desk.settings.metrics_token)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
