"""The FastAPI application: routers mounted from the features, static files, errors, metrics."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from zhiban import __version__
from zhiban.desk import Desk
from zhiban.features import feature_modules, load_hooks
from zhiban.web import observability, problems


def create_app(desk: Desk) -> FastAPI:
    """The web app of one desk; every router reads the desk from app.state."""
    app = FastAPI(
        title="zhiban",
        version=__version__,
        summary="值班 — 7x24 support and incident desk for real-time audio/video vendors",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.desk = desk
    problems.install(app)
    observability.install(app)
    static = resources.files("zhiban.web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    load_hooks()
    for part in ("api", "views"):
        for module in feature_modules(part):
            app.include_router(module.router)
    # A feature may answer a hot path before routing (plain ASGI); added last, so it runs first.
    for module in feature_modules("api"):
        middleware = getattr(module, "asgi_middleware", None)
        if middleware is not None:
            app.add_middleware(middleware)
    return app
