"""Batch kinds: a worker claims a rush of one kind together and runs it in one handler call; a failing batch
falls back to one job at a time, so one bad job fails alone."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from zhiban.core.clock import FrozenClock
from zhiban.engine import JobContext, JobRegistry, Worker, enqueue, job_counts, list_jobs
from zhiban.store.db import session_factory, transaction


def test_a_rush_of_a_batch_kind_runs_in_few_calls_and_a_bad_job_fails_alone(engine: Engine, clock: FrozenClock) -> None:
    factory = session_factory(engine)
    calls: list[list[int]] = []
    registry = JobRegistry()

    @registry.batch_handler("test.batch", max_batch=50)
    def handle(ctx: JobContext, payloads: list[dict[str, Any]]) -> None:
        numbers = [int(p["n"]) for p in payloads]
        calls.append(numbers)
        if 13 in numbers:
            raise RuntimeError("thirteen")
        with transaction(ctx.session_factory) as s:
            ctx.finish(s)

    @registry.handler("test.single")
    def single(ctx: JobContext, payload: dict[str, Any]) -> None:
        calls.append([-1])

    with transaction(factory) as s:
        for n in range(120):
            enqueue(s, "test.batch", {"n": n}, due_at=clock.now())
        enqueue(s, "test.single", {}, due_at=clock.now())
    worker = Worker(factory, registry, clock)
    ran = 0
    while worker.run_once(limit=4):
        ran += 1
    done = sorted(n for numbers in calls if len(numbers) > 1 or 13 not in numbers for n in numbers if n >= 0)
    # Three claims of up to 50 took the 120 jobs; the batch holding 13 ran again one job at a time.
    batches = [numbers for numbers in calls if len(numbers) > 1]
    assert len(batches) == 3 and sorted(n for b in batches for n in b) == list(range(120))
    assert [-1] in calls and ran <= 5
    assert set(done) == set(range(120))
    with transaction(factory) as s:
        counts = job_counts(s)
        assert counts["done"] == 120 and counts["pending"] == 1  # 13 waits for its retry; nothing else does
        assert [j.payload for j in list_jobs(s, state="pending")] == [{"n": 13}]
