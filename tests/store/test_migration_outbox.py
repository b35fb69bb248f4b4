"""The one-outbox migration gives messages queued before it their kind, from the stored message."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import text

from zhiban.store.db import make_engine
from zhiban.store.migrate import upgrade


def test_messages_queued_before_get_their_event_as_kind(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0001")
        now = datetime(2026, 12, 1, tzinfo=UTC)
        with engine.begin() as conn:
            for key, event in (("page-1", "incident.page"), ("status-1", "status.update")):
                message = {"subject": "s", "text": "t", "idempotency_key": key, "event": event}
                conn.execute(
                    text(
                        "INSERT INTO notifications (id, idempotency_key, subject_kind, subject_id, channel,"
                        " destination, rate_key, message, state, due_at, attempts, job_seq, created_at)"
                        " VALUES (:id, :key, 'incident', 'i1', 'email', :dest, 'email:x', :message, 'sent',"
                        " :now, 1, 0, :now)"
                    ),
                    {"id": key, "key": key, "dest": json.dumps({"config": {}}), "message": json.dumps(message),
                     "now": now},
                )  # fmt: skip
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, kind, ticket_id FROM notifications ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [("page-1", "incident.page", None), ("status-1", "status.update", None)]
    finally:
        engine.dispose()
