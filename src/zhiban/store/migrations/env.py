"""Alembic environment: runs against the engine handed over by zhiban.store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Engine

import zhiban.store.models  # noqa: F401  (registers every table)
from zhiban.store.db import Base

config = context.config
engine: Engine = config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    raw = connection.connection.dbapi_connection if sqlite else None
    if raw is not None:
        # SQLite alters a table by copying it and dropping the old one. With foreign keys on, that drop deletes
        # the old rows first: refused when others reference them (RESTRICT), or cascading into them (CASCADE).
        # Off for the migration (outside any transaction, where the pragma applies), checked before commit.
        raw.execute("PRAGMA foreign_keys=OFF")
    try:
        with connection.begin():
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=sqlite,  # SQLite alters tables by copying them
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
    finally:
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=ON")
