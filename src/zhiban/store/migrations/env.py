"""Alembic environment: runs against the engine handed over by zhiban.store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Engine

import zhiban.store.models  # noqa: F401  (registers every table)
from zhiban.store.db import Base

config = context.config
engine: Engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
