"""Request ids, Prometheus metrics at /metrics, and the health endpoints."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import text

from zhiban.core import logging as zlog

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("zhiban_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "zhiban_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def install(app: FastAPI) -> None:
    """Add request ids and metrics to every request, and mount /metrics, /healthz and /readyz."""

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id", "")[:64] or uuid.uuid4().hex
        token = zlog.request_id.set(rid)
        start = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            zlog.request_id.reset(token)
        route = request.scope.get("route")
        # Label by route template, not raw path, so ids do not explode the metric's cardinality.
        name = getattr(route, "path", "unmatched")
        LATENCY.labels(request.method, name).observe(time.perf_counter() - start)
        REQUESTS.labels(request.method, name, str(response.status_code)).inc()
        response.headers["X-Request-Id"] = rid
        return response

    router = APIRouter(tags=["operations"])

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

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
