"""The agent's in-app inbox: one list of notices per person, whichever feature has something to tell.

SLA warnings and breaches (sla.escalation), new tickets for a team, tickets assigned, and pages (duty.notices,
which hears tickets' and incidents' changes) are all rows of `inbox`, written here in the caller's transaction.
A notice is recorded once per person and key; its mail, if any, goes through the outbox as every message does.
Notices are kept for a while, then deleted (notify.retention), and go with the ticket they name (a foreign key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput, NotFound
from zhiban.core.principal import Principal
from zhiban.notify import retention
from zhiban.notify.model import Notice
from zhiban.notify.store import InboxRow
from zhiban.store.db import insert_or_skip

TICKET_NEW = "ticket_new"  # a new ticket for one of my teams
TICKET_ASSIGNED = "ticket_assigned"  # a ticket given to me
SLA_WARNING = "sla_warning"
SLA_BREACH = "sla_breach"
PAGE = "page"  # an incident paging me
KINDS = (TICKET_NEW, TICKET_ASSIGNED, SLA_WARNING, SLA_BREACH, PAGE)
MAX_PAGE = 100
MAX_TITLE = 300


def _value(row: InboxRow) -> Notice:
    return Notice(
        id=row.id,
        person_id=row.person_id,
        kind=row.kind,
        key=row.key,
        reason=row.reason,
        title=row.title,
        ticket_id=row.ticket_id,
        incident_id=row.incident_id,
        due_at=row.due_at,
        data=dict(row.data or {}),
        created_at=row.created_at,
        read_at=row.read_at,
        emailed_at=row.emailed_at,
        email_error=row.email_error,
    )


@dataclass(frozen=True)
class Draft:
    """One notice to record: for whom, of what kind, about what (`key`: once per person)."""

    person_id: str
    kind: str
    key: str
    title: str = ""
    reason: str = ""
    ticket_id: int | None = None
    incident_id: str | None = None
    due_at: datetime | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


def _values(clock: Clock, draft: Draft) -> dict[str, Any]:
    if draft.kind not in KINDS:
        raise InvalidInput(f"inbox kind must be one of {KINDS}")
    return {
        "person_id": draft.person_id,
        "kind": draft.kind,
        "key": draft.key[:200],
        "reason": draft.reason[:32],
        "title": draft.title[:MAX_TITLE],
        "ticket_id": draft.ticket_id,
        "incident_id": draft.incident_id,
        "due_at": draft.due_at,
        "data": dict(draft.data),
        "created_at": clock.now(),
    }


def _table() -> Table:
    return cast(Table, InboxRow.__table__)


def post(
    session: Session,
    clock: Clock,
    *,
    person_id: str,
    kind: str,
    key: str,
    title: str = "",
    reason: str = "",
    ticket_id: int | None = None,
    incident_id: str | None = None,
    due_at: datetime | None = None,
    data: Mapping[str, Any] | None = None,
) -> Notice | None:
    """Record one notice for a person; None when this person already has the notice of this key."""
    draft = Draft(person_id, kind, key, title, reason, ticket_id, incident_id, due_at, dict(data or {}))
    # One statement: a notice someone (or a concurrent run) recorded first is kept, not an error.
    stmt = insert_or_skip(session, _table(), ["person_id", "key"]).values(_values(clock, draft))
    row = session.execute(stmt.returning(*_table().c)).mappings().first()
    if row is None:
        return None
    retention.arm(session, clock)
    return Notice(**{**row, "data": dict(row["data"] or {})})


def post_many(session: Session, clock: Clock, drafts: Sequence[Draft]) -> int:
    """Record many notices in one statement (pages to a step's people, a new ticket to its team); how many were
    new (a person who has a notice of the same key keeps the one they have)."""
    if not drafts:
        return 0
    rows = [_values(clock, d) for d in drafts]
    stmt = insert_or_skip(session, _table(), ["person_id", "key"]).returning(_table().c.id)
    made = len(session.execute(stmt, rows).all())
    if made:
        retention.arm(session, clock)
    return made


def _mine(principal: Principal) -> Any:
    return InboxRow.person_id == principal.person_id


def list_mine(
    session: Session,
    principal: Principal,
    *,
    unread_only: bool = False,
    kinds: tuple[str, ...] | None = None,
    limit: int = 50,
) -> list[Notice]:
    """The caller's own notices, unread first, newest first within each; a bounded page (customers have none)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1-{MAX_PAGE}")
    if kinds is not None and any(k not in KINDS for k in kinds):
        raise InvalidInput(f"kind must be one of {KINDS}")
    if not principal.is_staff:
        return []
    query = select(InboxRow).where(_mine(principal))
    if unread_only:
        query = query.where(InboxRow.read_at.is_(None))
    if kinds:
        query = query.where(InboxRow.kind.in_(kinds))
    order = (InboxRow.read_at.is_not(None), InboxRow.created_at.desc(), InboxRow.id.desc())
    return [_value(row) for row in session.scalars(query.order_by(*order).limit(limit))]


def unread_count(session: Session, principal: Principal) -> int:
    """How many of the caller's notices are unread."""
    if not principal.is_staff:
        return 0
    query = select(func.count()).select_from(InboxRow).where(_mine(principal), InboxRow.read_at.is_(None))
    return session.scalar(query) or 0


def mark_read(
    session: Session, clock: Clock, principal: Principal, notice_id: int, *, kinds: tuple[str, ...] | None = None
) -> Notice:
    """Mark one of the caller's notices read (another person's notice does not exist for the caller)."""
    row = session.get(InboxRow, notice_id)
    if row is None or row.person_id != principal.person_id or (kinds is not None and row.kind not in kinds):
        raise NotFound(f"no notification {notice_id}")
    if row.read_at is None:
        row.read_at = clock.now()
        session.flush()
    return _value(row)


def mark_all_read(session: Session, clock: Clock, principal: Principal) -> int:
    """Mark every unread notice of the caller read; how many were."""
    done = session.execute(
        update(InboxRow).where(_mine(principal), InboxRow.read_at.is_(None)).values(read_at=clock.now())
    )
    return int(getattr(done, "rowcount", 0) or 0)


def get(session: Session, notice_id: int) -> Notice | None:
    """A notice by id, for the feature that wrote it (its mail's fate, a legacy job)."""
    row = session.get(InboxRow, notice_id)
    return _value(row) if row is not None else None


def stamp_mail(session: Session, notice_id: int, *, sent_at: datetime | None = None, error: str | None = None) -> None:
    """Record the fate of a notice's mail: sent (when), or why it failed."""
    row = session.get(InboxRow, notice_id)
    if row is None:
        return
    if error is not None:
        row.email_error = error[:500]
    elif sent_at is not None:
        row.emailed_at = sent_at
