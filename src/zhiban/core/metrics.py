"""The desk's one Prometheus registry: what /metrics serves, whichever feature counts into it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

REGISTRY = CollectorRegistry(auto_describe=True)
