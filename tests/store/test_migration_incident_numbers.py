"""Migration 0014: on PostgreSQL incident numbers continue from the counter row in a sequence, with no number
given twice; SQLite keeps the counter row."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from zhiban.incidents.alerts import _reserve_numbers
from zhiban.store.db import make_engine
from zhiban.store.migrate import upgrade


def test_numbers_continue_after_the_last_one_given(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0012")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO incident_counter (id, last_number) VALUES (1, 41)"))
        upgrade(engine)
        with Session(engine) as session, session.begin():
            assert _reserve_numbers(session, 2) == [42, 43]
        with engine.begin() as conn:
            has_sequence = conn.execute(
                text(
                    "SELECT count(*) FROM pg_sequences"
                    " WHERE sequencename = 'incident_numbers' AND schemaname = current_schema()"
                )
                if engine.dialect.name == "postgresql"
                else text("SELECT 0")
            ).scalar()
        assert has_sequence == (1 if engine.dialect.name == "postgresql" else 0)
    finally:
        engine.dispose()
