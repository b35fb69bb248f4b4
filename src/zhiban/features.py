"""The desk's features, and the parts each may offer, found by convention.

A feature `zhiban.<name>` may have: `store` (tables), `api` / `views` (a `router`; `api` may add an
`asgi_middleware` that answers a hot path before routing), `cli` (a Typer
`app`, mounted as `zhiban <name> …`), `jobs` (a `registry` of job handlers), `hooks` (imported so
it can subscribe to other features' events), and `messages/{zh,en}.json` (its UI strings).
Adding a feature means adding its name here; nothing else in the core changes.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

FEATURES = [
    "engine",
    "identity",
    "tickets",
    "calendars",
    "sla",
    "oncall",
    "incidents",
    "duty",
    "notify",
    "mail",
    "hotline",
    "chat",
    "apps",
    "telemetry",
    "detect",
    "kb",
    "triage",
    "reports",
    "status",
    "drills",
]


def feature_modules(part: str) -> list[ModuleType]:
    """Every feature's `part` module that exists (e.g. "api"), imported, in FEATURES order."""
    found = []
    for feature in FEATURES:
        name = f"zhiban.{feature}.{part}"
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:  # the feature package itself is absent
            continue
        if spec is not None:
            found.append(importlib.import_module(name))
    return found


def load_hooks() -> None:
    """Import every feature's event subscriptions (idempotent: modules import once)."""
    feature_modules("hooks")
