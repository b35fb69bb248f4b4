"""Upgrading a desk that has data keeps it: SQLite alters a table by copying it, which must neither be refused
by nor cascade through the foreign keys pointing at it (organizations are altered by 0008 and 0010)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from tests.store.rows import seed_ticket
from zhiban.store.db import make_engine
from zhiban.store.migrate import upgrade


def test_upgrading_from_0007_keeps_organizations_people_and_tickets(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0007")
        now = datetime(2026, 12, 1, tzinfo=UTC)
        with engine.begin() as conn:
            seed_ticket(conn, now)
        upgrade(engine)
        with engine.connect() as conn:
            counts = [
                conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in ("organizations", "people", "tickets")
            ]
            assert counts == [1, 1, 1]
            row = conn.execute(text("SELECT dedicated_contact_id, drill FROM organizations")).one()
            assert row[0] is None and not row[1]
    finally:
        engine.dispose()
