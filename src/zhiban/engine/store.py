"""The `jobs` table and the queries that claim, finish and re-arm jobs (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, mapped_column

from zhiban.store.db import Base, UTCDateTime, id_column_type, insert_or_skip, new_id

from .model import JobState


def _wall_now() -> datetime:
    # created_at/updated_at are audit bookkeeping in real time; scheduling fields use the engine's clock.
    return datetime.now(UTC)


class Job(Base):
    """A unit of durable work: run `kind` with `payload` at or after `due_at`, at least once."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(id_column_type(), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    state: Mapped[str] = mapped_column(String(16), default=JobState.PENDING.value)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=10)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    locked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_wall_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_wall_now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        # The claim query scans pending jobs by due time and running jobs by lease end.
        Index("ix_jobs_state_due_at", "state", "due_at"),
        Index("ix_jobs_state_lease_until", "state", "lease_until"),
    )


JOBS = cast(Table, Job.__table__)


def _core(session: Session) -> Connection:
    # The session's connection, in its transaction: the hot statements below run as plain SQL, without the
    # ORM's bulk-statement machinery (autoflush, session synchronization), which costs more than the SQL.
    return session.connection()


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker now holds: (id, attempts) identifies this one run of it."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    dedup_key: str | None
    due_at: datetime


def insert_job(
    session: Session,
    *,
    kind: str,
    payload: dict[str, Any],
    due_at: datetime,
    dedup_key: str | None,
    max_attempts: int,
) -> str | None:
    """Insert a pending job; with a dedup_key already taken, insert nothing and return None."""
    job_id = new_id()
    now = _wall_now()
    values = {
        "id": job_id,
        "kind": kind,
        "payload": payload,
        "state": JobState.PENDING.value,
        "due_at": due_at,
        "dedup_key": dedup_key,
        "attempts": 0,
        "max_attempts": max_attempts,
        "created_at": now,
        "updated_at": now,
    }
    if dedup_key is None:
        _core(session).execute(insert(JOBS).values(**values))
        return job_id
    stmt = insert_or_skip(session, JOBS, ["dedup_key"]).values(**values)
    inserted = _core(session).execute(stmt.returning(Job.id)).scalar_one_or_none()
    return job_id if inserted is not None else None


def find_id_by_dedup_key(session: Session, dedup_key: str) -> str | None:
    return session.execute(select(Job.id).where(Job.dedup_key == dedup_key)).scalar_one_or_none()


def _expired(now: datetime) -> ColumnElement[bool]:
    return and_(Job.state == JobState.RUNNING.value, Job.lease_until <= now)


def bury_expired(session: Session, now: datetime) -> int:
    """Mark dead the running jobs whose lease ran out on their last allowed attempt."""
    victims = select(Job.id).where(_expired(now), Job.attempts >= Job.max_attempts).limit(100)
    if session.get_bind().dialect.name == "postgresql":
        victims = victims.with_for_update(skip_locked=True)
    result = _core(session).execute(
        update(JOBS)
        .where(Job.id.in_(victims))
        .values(
            state=JobState.DEAD.value,
            last_error="lease expired: the worker stopped or hung during its last allowed attempt",
            finished_at=now,
            lease_until=None,
            locked_by=None,
            updated_at=_wall_now(),
        )
    )
    return int(result.rowcount or 0)


def claim_due(
    session: Session,
    *,
    worker_id: str,
    kinds: frozenset[str],
    now: datetime,
    lease_until: datetime,
    limit: int,
) -> list[ClaimedJob]:
    """Atomically take up to `limit` due jobs of `kinds`: pending ones, and running ones whose lease expired.

    One UPDATE … WHERE id IN (SELECT … LIMIT n) … RETURNING statement: PostgreSQL skips rows that
    another claimer has locked; SQLite takes its single write lock for the statement, so two processes
    never hold one job. Each claim counts as an attempt, a reclaim after an expired lease included.
    """
    if not kinds or limit < 1:
        return []
    claimable = or_(
        and_(Job.state == JobState.PENDING.value, Job.due_at <= now),
        and_(_expired(now), Job.attempts < Job.max_attempts),
    )
    candidates = select(Job.id).where(Job.kind.in_(sorted(kinds)), claimable).order_by(Job.due_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    rows = (
        _core(session)
        .execute(
            update(JOBS)
            .where(Job.id.in_(candidates))
            .values(
                state=JobState.RUNNING.value,
                attempts=Job.attempts + 1,
                lease_until=lease_until,
                locked_by=worker_id,
                updated_at=_wall_now(),
            )
            .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts, Job.dedup_key, Job.due_at)
        )
        .all()
    )
    claimed = [ClaimedJob(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]
    claimed.sort(key=lambda job: job.due_at)
    return claimed


def _held(job_id: str, worker_id: str, attempt: int) -> ColumnElement[bool]:
    # (locked_by, attempts) names one run: a zombie of an earlier run, or another worker, never matches.
    return and_(
        Job.id == job_id,
        Job.state == JobState.RUNNING.value,
        Job.locked_by == worker_id,
        Job.attempts == attempt,
    )


def mark_done(session: Session, *, job_id: str, worker_id: str, attempt: int, now: datetime) -> bool:
    """Finish the job if this run still holds it; False means the lease was lost (nothing changed)."""
    result = _core(session).execute(
        update(JOBS)
        .where(_held(job_id, worker_id, attempt))
        .values(
            state=JobState.DONE.value,
            finished_at=now,
            lease_until=None,
            last_error=None,
            updated_at=_wall_now(),
        )
    )
    return int(result.rowcount or 0) == 1


def mark_done_many(session: Session, *, worker_id: str, runs: list[tuple[str, int]], now: datetime) -> int:
    """Finish the runs (job id, attempt) this worker still holds, in one statement; returns how many."""
    if not runs:
        return 0
    result = _core(session).execute(
        update(JOBS)
        .where(
            tuple_(Job.id, Job.attempts).in_(runs),
            Job.state == JobState.RUNNING.value,
            Job.locked_by == worker_id,
        )
        .values(
            state=JobState.DONE.value,
            finished_at=now,
            lease_until=None,
            last_error=None,
            updated_at=_wall_now(),
        )
    )
    return int(result.rowcount or 0)


def mark_failed(
    session: Session,
    *,
    job_id: str,
    worker_id: str,
    attempt: int,
    error: str,
    now: datetime,
    retry_at: datetime | None,
) -> bool:
    """Record a failed run: back to pending at `retry_at`, or dead when `retry_at` is None."""
    if retry_at is None:
        values: dict[str, Any] = {"state": JobState.DEAD.value, "finished_at": now}
    else:
        values = {"state": JobState.PENDING.value, "due_at": retry_at}
    result = _core(session).execute(
        update(JOBS)
        .where(_held(job_id, worker_id, attempt))
        .values(last_error=error, lease_until=None, locked_by=None, updated_at=_wall_now(), **values)
    )
    return int(result.rowcount or 0) == 1


def extend_leases(
    session: Session, *, worker_id: str, runs: list[tuple[str, int]], lease_until: datetime
) -> set[tuple[str, int]]:
    """Push the lease of the runs (job id, attempt) this worker still holds; return the runs still held."""
    if not runs:
        return set()
    held = (
        _core(session)
        .execute(
            update(JOBS)
            .where(
                tuple_(Job.id, Job.attempts).in_(runs),
                Job.state == JobState.RUNNING.value,
                Job.locked_by == worker_id,
            )
            .values(lease_until=lease_until, updated_at=_wall_now())
            .returning(Job.id, Job.attempts)
        )
        .all()
    )
    return {(str(job_id), int(attempt)) for job_id, attempt in held}


def release(session: Session, *, worker_id: str, runs: list[tuple[str, int]], now: datetime) -> int:
    """Hand back runs interrupted by a shutdown: pending again, due now, the attempt refunded."""
    if not runs:
        return 0
    result = _core(session).execute(
        update(JOBS)
        .where(
            tuple_(Job.id, Job.attempts).in_(runs),
            Job.state == JobState.RUNNING.value,
            Job.locked_by == worker_id,
        )
        .values(
            state=JobState.PENDING.value,
            due_at=now,
            attempts=Job.attempts - 1,
            lease_until=None,
            locked_by=None,
            updated_at=_wall_now(),
        )
    )
    return int(result.rowcount or 0)


def delete_pending_by_dedup_key(session: Session, dedup_key: str) -> bool:
    result = session.execute(
        delete(Job)
        .where(Job.dedup_key == dedup_key, Job.state == JobState.PENDING.value)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def move_pending(session: Session, dedup_key: str, due_at: datetime) -> bool:
    result = session.execute(
        update(Job)
        .where(Job.dedup_key == dedup_key, Job.state == JobState.PENDING.value)
        .values(due_at=due_at, updated_at=_wall_now())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def revive_dead(session: Session, job_id: str, due_at: datetime) -> bool:
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.DEAD.value)
        .values(
            state=JobState.PENDING.value,
            due_at=due_at,
            attempts=0,
            finished_at=None,
            locked_by=None,
            lease_until=None,
            updated_at=_wall_now(),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    return {str(state): int(count) for state, count in rows}


def delete_done_before(session: Session, finished_before: datetime) -> int:
    result = session.execute(
        delete(Job)
        .where(Job.state == JobState.DONE.value, Job.finished_at < finished_before)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def insert_jobs(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert pending jobs in bulk; a row whose dedup_key is taken is skipped. Returns how many were inserted.

    Each row has kind, payload, due_at, dedup_key and max_attempts (already checked by the caller).
    """
    if not rows:
        return 0
    stmt = insert_or_skip(session, JOBS, ["dedup_key"])
    now = _wall_now()
    values = [
        {**row, "id": new_id(), "state": JobState.PENDING.value, "attempts": 0, "created_at": now, "updated_at": now}
        for row in rows
    ]
    # Inserted ids come back through RETURNING, batched into multi-row statements by SQLAlchemy.
    return len(_core(session).execute(stmt.returning(Job.id), values).all())


def delete_pending_by_dedup_keys(session: Session, dedup_keys: list[str]) -> int:
    """Delete the pending jobs holding any of these keys; returns how many were deleted."""
    deleted = 0
    # coalesce() keeps SQLite's planner (no table statistics) on the dedup_key index: on a bare `state = ?`
    # it would scan every pending job instead.
    pending = func.coalesce(Job.state, "") == JobState.PENDING.value
    for start in range(0, len(dedup_keys), 1000):
        result = session.execute(
            delete(Job)
            .where(Job.dedup_key.in_(dedup_keys[start : start + 1000]), pending)
            .execution_options(synchronize_session=False)
        )
        deleted += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return deleted
