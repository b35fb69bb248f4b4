"""Read-only transactions: on SQLite they begin DEFERRED, so a reader never queues behind a writer (WAL), and a
write inside one fails instead of taking the write lock; a read-only API route answers while a writer holds it."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from tests.tenancy import bearer, build_world
from zhiban.desk import Desk
from zhiban.identity.store import ApiTokenRow
from zhiban.store.db import is_read_only
from zhiban.tickets import service as tickets


def test_sqlite_reader_does_not_wait_for_a_writer(desk: Desk, client: TestClient) -> None:
    if desk.db.dialect.name != "sqlite":
        pytest.skip("PostgreSQL readers never wait for writers")
    w = build_world(desk)
    with desk.transaction() as s:
        alice = tickets.identity.principal_of(tickets.identity.person(s, w.alice_id))  # type: ignore[arg-type]
        tid = tickets.create_ticket(s, desk.clock, alice, subject="No audio", body="since 9:00").id
    writer = desk.sessions()
    writer.begin()
    writer.execute(text("UPDATE tickets SET subject = 'renamed' WHERE id = :id"), {"id": tid})  # holds the lock
    try:
        started = time.monotonic()
        with desk.read_transaction() as s:
            assert is_read_only(s)
            assert s.scalar(text("SELECT subject FROM tickets WHERE id = :id"), {"id": tid}) == "No audio"
            with pytest.raises(OperationalError, match="readonly"):
                s.execute(text("UPDATE tickets SET subject = 'x'"))
        # A read-only route answers at once too (its token's first use is stamped apart, after the writer).
        listed = client.get("/api/v1/tickets", headers=bearer(w.alice_token))
        assert time.monotonic() - started < 5
    finally:
        writer.rollback()
        writer.close()
    assert listed.status_code == 200 and [t["id"] for t in listed.json()] == [tid]
    with desk.transaction() as s:  # the pooled connection writes again afterwards
        assert not is_read_only(s)
        s.execute(text("UPDATE tickets SET subject = 'renamed' WHERE id = :id"), {"id": tid})
    for _ in range(100):  # the token's use is stamped once the writer is gone
        with desk.read_transaction() as s:
            if s.scalar(select(ApiTokenRow.last_used_at).where(ApiTokenRow.person_id == w.alice_id)) is not None:
                break
        time.sleep(0.1)
    else:
        raise AssertionError("the token's use was never recorded")
