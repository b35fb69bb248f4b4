"""The desk's job registry: every feature's handlers, gathered for the worker."""

from __future__ import annotations

from zhiban.engine import JobRegistry
from zhiban.features import feature_modules, load_hooks


def desk_registry() -> JobRegistry:
    """All handlers of all features (each feature's `jobs.registry`) in one registry."""
    load_hooks()
    registry = JobRegistry()
    for module in feature_modules("jobs"):
        registry.include(module.registry)
    return registry
