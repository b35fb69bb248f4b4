"""The FastAPI application: routers mounted from the features, static files, errors, metrics."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from zhiban import __version__
from zhiban.desk import Desk
from zhiban.features import feature_modules, load_hooks
from zhiban.web import api_docs, limits, observability, problems
from zhiban.web.security_headers import SecurityHeadersMiddleware


def create_app(desk: Desk) -> FastAPI:
    """The web app of one desk; every router reads the desk from app.state."""
    app = FastAPI(
        title="zhiban",
        version=__version__,
        summary="值班 — 7x24 support and incident desk for real-time audio/video vendors",
        docs_url=None,  # web.api_docs serves /docs from vendored files
        redoc_url=None,
    )
    app.state.desk = desk
    problems.install(app)
    # Inside the request ids and metrics, so a refused body is counted; outside everything that reads bodies.
    app.add_middleware(limits.BodyLimit, caps=limits.caps(desk.settings))
    observability.install(app)
    static = resources.files("zhiban.web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.include_router(api_docs.router)
    load_hooks()
    for part in ("api", "views"):
        for module in feature_modules(part):
            app.include_router(module.router)
    # A feature may answer a hot path before routing (plain ASGI); added last, so it runs first.
    for module in feature_modules("api"):
        middleware = getattr(module, "asgi_middleware", None)
        if middleware is not None:
            app.add_middleware(middleware)
    # Outermost, so that every answer (fast paths and errors included) carries the browser hardening headers.
    app.add_middleware(SecurityHeadersMiddleware)
    return app
