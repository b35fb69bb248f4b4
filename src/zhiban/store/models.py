"""Imports every feature's tables so that Base.metadata (and Alembic) sees them all."""

from __future__ import annotations

import importlib

FEATURE_STORES = [
    "zhiban.identity.store",
    "zhiban.tickets.store",
    "zhiban.engine.store",
]


def load_all() -> None:
    for name in FEATURE_STORES:
        importlib.import_module(name)


load_all()
