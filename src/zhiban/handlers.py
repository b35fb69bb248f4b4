"""The desk's job registry: every feature's handlers, gathered for the worker."""

from __future__ import annotations

import importlib

from zhiban.engine import JobRegistry

# Modules that expose `registry: JobRegistry` with their handlers.
FEATURE_HANDLERS: list[str] = []


def desk_registry() -> JobRegistry:
    """All handlers of all features in one registry."""
    registry = JobRegistry()
    for name in FEATURE_HANDLERS:
        registry.include(importlib.import_module(name).registry)
    return registry
