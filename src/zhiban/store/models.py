"""Imports every feature's tables so that Base.metadata (and Alembic) sees them all."""

from __future__ import annotations

from zhiban.features import feature_modules

feature_modules("store")
