"""Retention of the agent's inbox: a read notice is deleted after ZHIBAN_INBOX_RETENTION_DAYS (default 90), an
unread one after ZHIBAN_INBOX_UNREAD_RETENTION_DAYS (default 365), counted from when it was posted.

A daily job (`notify.inbox_retention`, 02:00 UTC) deletes them in batches of BATCH rows, each batch its own short
transaction (a long delete would hold the rows and, on SQLite, the one write lock, against the desk's writers);
MAX_BATCHES per run, then a new run continues at once. The job is armed for the next day by any transaction that
posts a notice (one insert-if-absent) and by each run while notices remain: no start-up step is needed, and a desk
whose inbox is empty stops waking for it. The days are read at each run, through the settings notify.hooks hands over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.settings import Settings, SettingsSource
from zhiban.engine import JobContext, enqueue, enqueue_many, has_job
from zhiban.notify.store import InboxRow

RETENTION_JOB = "notify.inbox_retention"
BATCH = 1_000
MAX_BATCHES = 20
RUN_AT = time(2, 0)  # UTC: the small hours of the desk's main zones' night (10:00 in Shanghai is past it)
_ARMED = "zhiban.notify.retention_armed"  # session.info: the transaction that armed tomorrow's run

# The retention days, read at each run from the settings notify.hooks hands over (rule 6).
current_settings: SettingsSource[Settings] = SettingsSource("zhiban.notify.hooks")


@dataclass(frozen=True)
class Retention:
    read_days: int = 90
    unread_days: int = 365

    @classmethod
    def of(cls, settings: Settings) -> Retention:
        read = settings.inbox_retention_days
        return cls(read, max(read, settings.inbox_unread_retention_days))  # unread is never kept less than read


def prune_batch(session: Session, now: datetime, retention: Retention, limit: int | None = None) -> int:
    """Delete up to `limit` (BATCH) notices past their retention, oldest first; how many were deleted."""
    limit = limit or BATCH
    read_before = now - timedelta(days=retention.read_days)
    unread_before = now - timedelta(days=retention.unread_days)
    old = or_(
        and_(InboxRow.created_at < read_before, InboxRow.read_at.is_not(None)), InboxRow.created_at < unread_before
    )
    ids = list(session.scalars(select(InboxRow.id).where(old).order_by(InboxRow.created_at).limit(limit)))
    if ids:
        session.execute(delete(InboxRow).where(InboxRow.id.in_(ids)).execution_options(synchronize_session=False))
    return len(ids)


def _tomorrow(now: datetime) -> tuple[datetime, str]:
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime.combine(day, RUN_AT, tzinfo=UTC), f"{RETENTION_JOB}:{day.isoformat()}"


def arm(session: Session, clock: Clock) -> None:
    """Make sure tomorrow's run is queued (once per transaction; an insert-if-absent)."""
    transaction = session.get_transaction()
    if transaction is not None and session.info.get(_ARMED) is transaction:
        return
    due, key = _tomorrow(clock.now())
    # Read first: every transaction that posts a notice (each page, each routed ticket) comes here, and an insert
    # of the same key waits on PostgreSQL for the transaction that inserted it first to commit, which would make
    # a storm's pages and a rush's tickets queue behind each other; only the day's first ones insert.
    if not has_job(session, key):
        enqueue_many(session, [(RETENTION_JOB, {}, due, key)])
    session.info[_ARMED] = transaction


def run(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `notify.inbox_retention` job: delete what is past its retention, batch by batch; queue what comes next."""
    retention = Retention.of(current_settings())
    now = ctx.clock.now()
    deleted = 0
    for _ in range(MAX_BATCHES):
        with ctx.session_factory() as session, session.begin():
            deleted = prune_batch(session, now, retention)
        if deleted < BATCH:
            break
    with ctx.session_factory() as session, session.begin():
        if deleted == BATCH:  # more than a run's worth: the next run continues at once
            part = int(payload.get("part", 0)) + 1
            key = f"{RETENTION_JOB}:{now.date().isoformat()}:{part}"
            enqueue(session, RETENTION_JOB, {"part": part}, due_at=now, dedup_key=key)
        elif session.scalar(select(InboxRow.id).limit(1)) is not None:
            arm(session, ctx.clock)
        ctx.finish(session)
