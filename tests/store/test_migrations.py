"""Migrations create exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import zhiban.store.models  # noqa: F401
from zhiban.store.db import Base, make_engine
from zhiban.store.migrate import current_revision, upgrade
from zhiban.tickets.store import FTS_TABLE


def _described_by_models(name: str | None, type_: str, parent: object) -> bool:
    """SQLite's FTS5 table for ticket search and its shadow tables are created by DDL, not declared as tables."""
    return not (type_ == "table" and name is not None and name.startswith(FTS_TABLE))


def test_upgrade_matches_models_and_is_repeatable(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        upgrade(engine)  # a second run is a no-op, as on every restart of `zhiban serve`
        assert current_revision(engine) is not None
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": False, "include_name": _described_by_models}),
                Base.metadata,
            )
        assert diff == [], f"models and migrations differ: {diff}"
    finally:
        engine.dispose()
