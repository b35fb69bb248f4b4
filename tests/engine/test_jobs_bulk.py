"""Bulk enqueue and cancel behave like their one-at-a-time forms (SLA recomputes re-arm thousands of timers)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine

from zhiban.core.clock import FrozenClock
from zhiban.core.errors import InvalidInput
from zhiban.engine import enqueue, list_jobs
from zhiban.engine.service import cancel_many, enqueue_many
from zhiban.engine.store import Job
from zhiban.store.db import session_factory, transaction


def test_enqueue_many_skips_taken_keys_and_cancel_many_only_deletes_pending(engine: Engine, clock: FrozenClock) -> None:
    factory = session_factory(engine)
    now = clock.now()
    with transaction(factory) as s:
        first = enqueue(s, "sla.breach", {"ticket": 1}, due_at=now, dedup_key="breach:1")
    with transaction(factory) as s:
        made = enqueue_many(
            s,
            [
                ("sla.breach", {"ticket": 1}, now + timedelta(hours=1), "breach:1"),  # taken: keeps the first job
                ("sla.breach", {"ticket": 2}, now + timedelta(hours=2), "breach:2"),
                ("sla.warning", {"ticket": 2}, now + timedelta(hours=1), "warning:2"),
            ],
        )
    assert made == 2
    with transaction(factory) as s:
        jobs = {j.dedup_key: j for j in list_jobs(s)}
        assert set(jobs) == {"breach:1", "breach:2", "warning:2"}
        assert jobs["breach:1"].id == first and jobs["breach:1"].due_at == now
        # A job already done is not pending: cancelling it is a no-op, like `cancel`.
        s.execute(update(Job).where(Job.dedup_key == "breach:2").values(state="done"))
    with transaction(factory) as s:
        assert cancel_many(s, ["breach:1", "breach:2", "warning:2", "never:made"]) == 2
    with transaction(factory) as s:
        assert [j.dedup_key for j in list_jobs(s)] == ["breach:2"]
    with transaction(factory) as s, pytest.raises(InvalidInput):
        cancel_many(s, [""])
