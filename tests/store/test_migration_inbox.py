"""Migration 0009 moves the SLA's in-app notices into the one inbox, keeping their ids (the outbox names their
mail by id) and what they were about."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from tests.store.rows import seed_ticket
from zhiban.store.db import make_engine
from zhiban.store.migrate import upgrade


def test_sla_notices_become_inbox_notices(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0008")
        now = datetime(2026, 12, 1, tzinfo=UTC)
        with engine.begin() as conn:
            seed_ticket(conn, now)
            conn.execute(
                text(
                    "INSERT INTO sla_notifications (id, person_id, ticket_id, metric, cycle, kind, level, due_at,"
                    " created_at, read_at, emailed_at) VALUES (41, 'p1', 7, 'first_response', 1, 'breach',"
                    " 'assignee', :now, :now, NULL, :now)"
                ),
                {"now": now},
            )
        upgrade(engine)
        with engine.begin() as conn:
            row = conn.execute(
                text("SELECT id, person_id, kind, key, reason, title, ticket_id, read_at, emailed_at FROM inbox")
            ).one()
            key = "sla:7:first_response:1:breach"
            assert tuple(row[:7]) == (41, "p1", "sla_breach", key, "assignee", "直播卡顿", 7)
            assert row.read_at is None and row.emailed_at is not None
            # A notice written after the move takes a fresh id (PostgreSQL's sequence follows the copied ids).
            conn.execute(
                text(
                    "INSERT INTO inbox (person_id, kind, key, reason, title, data, created_at)"
                    " VALUES ('p1', 'page', 'page:x', 'paged', 'x', '{}', :now)"
                ),
                {"now": now},
            )
            ids = conn.execute(text("SELECT id FROM inbox ORDER BY id")).scalars().all()
        assert ids[0] == 41 and ids[1] > 41
    finally:
        engine.dispose()
