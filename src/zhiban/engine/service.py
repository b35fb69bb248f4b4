"""Use cases of the job engine, run inside the caller's transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, event, select
from sqlalchemy.orm import Session

from zhiban.core.errors import Conflict, InvalidInput, NotFound

from . import store, wakeup
from .model import (
    JobState,
    check_dedup_key,
    check_kind,
    check_limit,
    check_max_attempts,
    check_moment,
    check_payload,
)
from .store import Job

_ENQUEUED_FLAG = "zhiban.engine.enqueued"
_BULK_ROWS = 5000  # rows per bulk statement: bounded memory and statement size
_listeners: list[Callable[[], None]] = []
_listeners_lock = threading.Lock()


@dataclass(frozen=True)
class JobView:
    """A read-only snapshot of one job, for listings and the admin pages."""

    id: str
    kind: str
    payload: dict[str, Any]
    state: str
    due_at: datetime
    dedup_key: str | None
    attempts: int
    max_attempts: int
    last_error: str | None
    lease_until: datetime | None
    locked_by: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


def _view(job: Job) -> JobView:
    return JobView(
        id=job.id,
        kind=job.kind,
        payload=job.payload,
        state=job.state,
        due_at=job.due_at,
        dedup_key=job.dedup_key,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        last_error=job.last_error,
        lease_until=job.lease_until,
        locked_by=job.locked_by,
        created_at=job.created_at,
        updated_at=job.updated_at,
        finished_at=job.finished_at,
    )


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    due_at: datetime,
    dedup_key: str | None = None,
    max_attempts: int = 10,
) -> str:
    """Add a job in the caller's transaction and return its id; an existing dedup_key returns that job's id."""
    check_kind(kind)
    check_payload(payload)
    check_moment("due_at", due_at)
    check_dedup_key(dedup_key)
    check_max_attempts(max_attempts)
    # Two tries: the job that held our dedup_key may be cancelled (deleted) between our insert and select.
    for _ in range(2):
        job_id = store.insert_job(
            session, kind=kind, payload=payload, due_at=due_at, dedup_key=dedup_key, max_attempts=max_attempts
        )
        if job_id is not None:
            session.info[_ENQUEUED_FLAG] = True
            wakeup.announce(session, (kind,))
            return job_id
        assert dedup_key is not None
        existing = store.find_id_by_dedup_key(session, dedup_key)
        if existing is not None:
            return existing
    raise Conflict(f"job with dedup_key {dedup_key!r} was being changed concurrently; try again")


def cancel(session: Session, dedup_key: str) -> bool:
    """Delete the pending job with this key (freeing the key); False if none is pending (running, done, dead)."""
    check_dedup_key(dedup_key)
    return store.delete_pending_by_dedup_key(session, dedup_key)


def has_job(session: Session, dedup_key: str) -> bool:
    """Whether a job with this dedup key is in the queue (any state), as the caller's transaction sees it.

    A plain read, no lock: checking before an insert-if-absent that most transactions would make spares them the
    wait an insert of the same key makes on PostgreSQL while another uncommitted transaction holds it."""
    return store.find_id_by_dedup_key(session, dedup_key) is not None


def enqueue_many(
    session: Session,
    jobs: Iterable[tuple[str, dict[str, Any], datetime, str | None]],
    *,
    max_attempts: int = 10,
) -> int:
    """Add many (kind, payload, due_at, dedup_key) jobs in one go, like `enqueue` for each; returns how many are new.

    A dedup_key already held by a job inserts nothing (as `enqueue`, which would return that job's id).
    """
    check_max_attempts(max_attempts)
    rows = [
        {
            "kind": check_kind(kind),
            "payload": check_payload(payload),
            "due_at": check_moment("due_at", due_at),
            "dedup_key": check_dedup_key(dedup_key),
            "max_attempts": max_attempts,
        }
        for kind, payload, due_at, dedup_key in jobs
    ]
    inserted = 0
    for start in range(0, len(rows), _BULK_ROWS):
        inserted += store.insert_jobs(session, rows[start : start + _BULK_ROWS])
    if inserted:
        session.info[_ENQUEUED_FLAG] = True
        wakeup.announce(session, {str(row["kind"]) for row in rows})
    return inserted


def cancel_many(session: Session, dedup_keys: Iterable[str]) -> int:
    """Delete the pending jobs with these keys, like `cancel` for each; returns how many were pending."""
    keys = []
    for key in dedup_keys:
        if check_dedup_key(key) is None:
            raise InvalidInput("cancelling a job needs its dedup_key")
        keys.append(key)
    return store.delete_pending_by_dedup_keys(session, keys) if keys else 0


def reschedule(session: Session, dedup_key: str, *, due_at: datetime) -> bool:
    """Move the pending job with this key to a new due time; False if none is pending."""
    check_dedup_key(dedup_key)
    check_moment("due_at", due_at)
    moved = store.move_pending(session, dedup_key, due_at)
    if moved:
        session.info[_ENQUEUED_FLAG] = True
    return moved


def retry_job(session: Session, job_id: str, *, due_at: datetime) -> None:
    """Put a dead job back to pending with a fresh attempt budget."""
    check_moment("due_at", due_at)
    if store.revive_dead(session, job_id, due_at):
        session.info[_ENQUEUED_FLAG] = True
        return
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    raise Conflict(f"job {job_id} is {job.state}, only a dead job can be retried")


def get_job(session: Session, job_id: str) -> JobView:
    """One job by id."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return _view(job)


def list_jobs(session: Session, state: str | None = None, kind: str | None = None, limit: int = 100) -> list[JobView]:
    """Jobs by state and kind: the dead-lettered first, then the soonest due."""
    check_limit(limit)
    dead_first = case((Job.state == JobState.DEAD.value, 0), else_=1)
    query = select(Job).order_by(dead_first, Job.due_at, Job.id).limit(limit).execution_options(populate_existing=True)
    if state is not None:
        if state not in {s.value for s in JobState}:
            raise InvalidInput(f"unknown job state {state!r}")
        query = query.where(Job.state == state)
    if kind is not None:
        query = query.where(Job.kind == check_kind(kind))
    return [_view(job) for job in session.execute(query).scalars()]


def job_counts(session: Session) -> dict[str, int]:
    """How many jobs are in each state (every state present, zero included)."""
    counts = {state.value: 0 for state in JobState}
    counts.update(store.count_by_state(session))
    return counts


def purge_done(session: Session, *, finished_before: datetime) -> int:
    """Delete done jobs finished before a moment; their dedup keys become free again."""
    check_moment("finished_before", finished_before)
    return store.delete_done_before(session, finished_before)


def add_commit_listener(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` after any session in this process commits new due work; returns the unsubscriber.

    In `zhiban serve` this wakes the in-process worker at once instead of at its next poll.
    """
    with _listeners_lock:
        _listeners.append(callback)

    def remove() -> None:
        with _listeners_lock:
            if callback in _listeners:
                _listeners.remove(callback)

    return remove


@event.listens_for(Session, "after_commit")
def _wake_listeners(session: Session) -> None:
    wakeup.forget(session)
    if not session.info.pop(_ENQUEUED_FLAG, False):
        return
    with _listeners_lock:
        callbacks = list(_listeners)
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_rollback")
def _forget_enqueued(session: Session) -> None:
    wakeup.forget(session)
    session.info.pop(_ENQUEUED_FLAG, None)
