"""A pooled PostgreSQL connection that idled is checked before use; one in steady use is not pinged."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from zhiban.store import db
from zhiban.store.db import make_engine


def test_a_connection_cut_while_idle_is_replaced_before_it_fails(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        pid = conn.execute(text("select pg_backend_pid()")).scalar_one()
    with engine.connect() as conn:  # straight back from the pool: the same connection
        assert conn.execute(text("select pg_backend_pid()")).scalar_one() == pid
    # The server drops the pooled connection (a restart, a failover) while it idles in the pool.
    admin = make_engine(pg_url, pool_pre_ping=False)
    with admin.connect() as other:
        other.execute(text(f"select pg_terminate_backend({int(pid)})"))
    admin.dispose()
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)
    with engine.connect() as conn:
        assert conn.execute(text("select 1")).scalar_one() == 1
        assert conn.execute(text("select pg_backend_pid()")).scalar_one() != pid
    engine.dispose()
