"""Handlers and test-only tables for the engine's process tests (imported by the worker subprocesses too)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from zhiban.engine import JobContext, JobRegistry, urgent_kind
from zhiban.store.db import UTCDateTime, transaction

metadata = MetaData()

# One row per effect key: the visible, must-happen-once result of a job.
effects = Table(
    "engine_test_effects",
    metadata,
    Column("effect_key", String(100), primary_key=True),
    Column("job_id", String(32), nullable=False),
    Column("worker", String(200), nullable=False),
)

# One row per handler run (start, and end if it got there): to see duplicate or overlapping runs.
runs = Table(
    "engine_test_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker", String(200), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime(), nullable=True),
)

registry = JobRegistry()

GATE_TIMEOUT_S = 30.0


def insert_effect(session: Session, key: str, ctx: JobContext) -> None:
    """Insert the effect once: a second insert of the same key does nothing (idempotent handler)."""
    values = {"effect_key": key, "job_id": ctx.job_id, "worker": ctx.worker_id}
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    session.execute(module.insert(effects).values(**values).on_conflict_do_nothing(index_elements=["effect_key"]))


def start_run(ctx: JobContext) -> int:
    with transaction(ctx.session_factory) as session:
        return int(
            session.execute(
                insert(runs)
                .values(job_id=ctx.job_id, attempt=ctx.attempt, worker=ctx.worker_id, started_at=datetime.now(UTC))
                .returning(runs.c.id)
            ).scalar_one()
        )


def end_run(ctx: JobContext, run_id: int) -> None:
    with transaction(ctx.session_factory) as session:
        session.execute(update(runs).where(runs.c.id == run_id).values(ended_at=datetime.now(UTC)))


def wait_for_gate(path: str) -> None:
    """Block until the test creates the gate file: the test kills the worker while we wait here."""
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} never opened")
        time.sleep(0.02)


@registry.handler("test.effect_then_done")
def effect_then_done(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Wait at the gate, then write the effect and mark the job done in one transaction."""
    run_id = start_run(ctx)
    wait_for_gate(payload["gate"])
    with transaction(ctx.session_factory) as session:
        insert_effect(session, payload["key"], ctx)
        ctx.finish(session)
    end_run(ctx, run_id)


@registry.handler("test.effect_then_wait")
def effect_then_wait(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Commit the effect first, then wait at the gate: a kill here leaves the effect without `done`."""
    run_id = start_run(ctx)
    with transaction(ctx.session_factory) as session:
        insert_effect(session, payload["key"], ctx)
    wait_for_gate(payload["gate"])
    end_run(ctx, run_id)


@registry.handler("test.record")
def record(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Record the run's start; then, in one transaction, its end, the job's effect and `done`."""
    run_id = start_run(ctx)
    time.sleep(float(payload.get("sleep", 0.0)))
    with transaction(ctx.session_factory) as session:
        insert_effect(session, payload["key"], ctx)
        session.execute(update(runs).where(runs.c.id == run_id).values(ended_at=datetime.now(UTC)))
        ctx.finish(session)


# A kind a person waits for: queuing it wakes workers in other processes (engine.wakeup), not only their poll.
URGENT = urgent_kind("test.urgent")
registry.add(URGENT, record, urgent=True)
