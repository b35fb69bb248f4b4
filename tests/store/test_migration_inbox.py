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


def test_0011_ties_notices_to_their_tickets(db_url: str) -> None:
    """Notices naming a ticket that is gone are dropped; the others stay, and go when their ticket does."""
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0010")
        now = datetime(2026, 12, 1, tzinfo=UTC)
        with engine.begin() as conn:
            seed_ticket(conn, now)
            for key, ticket_id in (("about-7", 7), ("about-gone", 99), ("about-nothing", None)):
                conn.execute(
                    text(
                        "INSERT INTO inbox (person_id, kind, key, reason, title, ticket_id, data, created_at)"
                        " VALUES ('p1', 'ticket_new', :key, 'team', 'x', :ticket, '{}', :now)"
                    ),
                    {"key": key, "ticket": ticket_id, "now": now},
                )
        upgrade(engine)
        with engine.begin() as conn:
            assert set(conn.execute(text("SELECT key FROM inbox")).scalars()) == {"about-7", "about-nothing"}
            assert conn.execute(text("SELECT channel FROM drills")).all() == []  # the new column exists
            conn.execute(text("DELETE FROM tickets WHERE id = 7"))
            assert list(conn.execute(text("SELECT key FROM inbox")).scalars()) == ["about-nothing"]
    finally:
        engine.dispose()
