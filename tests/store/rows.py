"""Rows written with plain SQL at an old schema revision, for the migration tests (no ORM: the models are newer)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, text


def seed_ticket(conn: Connection, now: datetime) -> None:
    """Organization o1 (LiveCo), its customer p1 and p1's ticket #7, in the columns every revision has."""
    conn.execute(
        text(
            "INSERT INTO organizations (id, name, slug, plan, country, timezone, language, created_at)"
            " VALUES ('o1', 'LiveCo', 'liveco', 'enterprise', 'CN', 'Asia/Shanghai', 'zh', :now)"
        ),
        {"now": now},
    )
    conn.execute(
        text(
            "INSERT INTO people (id, email, name, role, organization_id, timezone, language, active, created_at)"
            " VALUES ('p1', 'dev@liveco.test', 'Dev', 'customer', 'o1', 'UTC', 'en', :yes, :now)"
        ),
        {"now": now, "yes": True},
    )
    conn.execute(
        text(
            "INSERT INTO tickets (id, organization_id, requester_id, subject, status, priority, channel,"
            " created_at, updated_at) VALUES (7, 'o1', 'p1', '直播卡顿', 'new', 'P1', 'api', :now, :now)"
        ),
        {"now": now},
    )
