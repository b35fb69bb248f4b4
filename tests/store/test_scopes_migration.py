"""Migration 0003 (scopes): existing tokens keep what their coarse scopes allowed; new scopes are not granted twice."""

from __future__ import annotations

import sqlalchemy as sa

from zhiban.store.db import make_engine
from zhiban.store.migrate import upgrade


def test_legacy_tokens_gain_the_finer_scopes_they_stood_for(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0001")
        people = sa.table(
            "people",
            *(sa.column(c) for c in ("id", "email", "name", "role", "timezone", "language", "active", "created_at")),
        )
        tokens = sa.table(
            "api_tokens",
            *(sa.column(c) for c in ("id", "person_id", "name", "prefix", "digest", "created_at")),
            sa.column("scopes", sa.JSON()),
        )
        old = {
            "a" * 32: ["tickets:read", "tickets:write"],
            "b" * 32: ["tickets:read"],
            "c" * 32: ["admin"],
            "d" * 32: ["incidents:write"],
        }
        with engine.begin() as conn:
            conn.execute(
                sa.insert(people).values(
                    id="p" * 32,
                    email="a@b.test",
                    name="A",
                    role="agent",
                    timezone="UTC",
                    language="en",
                    active=True,
                    created_at="2026-11-01 00:00:00+00:00",
                )
            )
            for i, (token_id, scopes) in enumerate(old.items()):
                conn.execute(
                    sa.insert(tokens).values(
                        id=token_id,
                        person_id="p" * 32,
                        name="t",
                        prefix=f"pre{i}",
                        digest="0" * 64,
                        created_at="2026-11-01 00:00:00+00:00",
                        scopes=scopes,
                    )
                )
        upgrade(engine)
        with engine.connect() as conn:
            now = dict(conn.execute(sa.select(tokens.c.id, tokens.c.scopes)).all())
        assert set(now["a" * 32]) == {
            "tickets:read",
            "tickets:write",
            "oncall:read",
            "oncall:write",
            "reports:read",
            "kb:read",
            "kb:write",
            "incidents:read",
            "telemetry:read",
        }
        assert set(now["b" * 32]) == {
            "tickets:read",
            "oncall:read",
            "reports:read",
            "kb:read",
            "incidents:read",
            "telemetry:read",
        }
        assert now["c" * 32] == ["admin"] and now["d" * 32] == ["incidents:write"]
    finally:
        engine.dispose()
