"""The escalation auditor: steps that are due and not done, and pages whose hand-off a crash cut short.

Both are pages someone may not be getting. An `unknown` page (an e-mail, SMS or call that may or may not
have gone out, see docs/DELIVERY.md) is not repeated; the next escalation step still fires on its timer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.engine import JobContext
from zhiban.incidents.model import IncidentStatus
from zhiban.incidents.service import AUDIT_GRACE, ensure_auditor
from zhiban.incidents.store import EscalationStepRow, IncidentRow
from zhiban.notify import service as notify

log = logging.getLogger("zhiban.incidents.audit")


@dataclass(frozen=True)
class OverdueStep:
    incident_id: str
    incident_number: int
    generation: int
    step_no: int
    due_at: datetime
    late_by: timedelta


def overdue_steps(session: Session, clock: Clock, grace: timedelta = AUDIT_GRACE) -> list[OverdueStep]:
    """Escalation steps due more than `grace` ago and still not fired: pages that should have gone out."""
    now = clock.now()
    rows = session.execute(
        select(EscalationStepRow, IncidentRow.number)
        .join(IncidentRow, IncidentRow.id == EscalationStepRow.incident_id)
        .where(EscalationStepRow.state == "scheduled", EscalationStepRow.due_at < now - grace)
        .order_by(EscalationStepRow.due_at)
        .limit(500)
    ).all()
    return [
        OverdueStep(step.incident_id, number, step.generation, step.step_no, step.due_at, now - step.due_at)
        for step, number in rows
    ]


@dataclass(frozen=True)
class UnknownPage:
    incident_id: str
    incident_number: int
    notification_id: str
    person_id: str | None
    channel: str
    handed_at: datetime | None


def unknown_pages(session: Session, limit: int = 500) -> list[UnknownPage]:
    """Pages of still-triggered incidents whose hand-off was cut short and not repeated: maybe never received."""
    triggered = select(IncidentRow.id).where(IncidentRow.status == IncidentStatus.TRIGGERED)
    pages = notify.unknown_handoffs(session, "incident", triggered, limit=limit)
    ids = {p.subject_id for p in pages}
    query = select(IncidentRow.id, IncidentRow.number).where(IncidentRow.id.in_(ids))
    numbers = {incident_id: number for incident_id, number in session.execute(query)} if ids else {}
    return [
        UnknownPage(p.subject_id, numbers[p.subject_id], p.id, p.person_id, p.channel, p.handed_at)
        for p in pages
        if p.subject_id in numbers
    ]


def audit(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The periodic `incident.audit` job: log overdue steps loudly and arm the next audit."""
    with ctx.session_factory() as session, session.begin():
        late = overdue_steps(session, ctx.clock)
        for step in late:
            log.error(
                "escalation step overdue: incident #%d step %d due %s (late by %s)",
                step.incident_number,
                step.step_no,
                step.due_at.isoformat(),
                step.late_by,
            )
        for page in unknown_pages(session):
            log.error(
                "page outcome unknown: incident #%d, %s to person %s handed over at %s and cut short; not repeated",
                page.incident_number,
                page.channel,
                page.person_id,
                page.handed_at.isoformat() if page.handed_at else "?",
            )
        # Keep auditing while any step is still to fire; the next incident re-arms it otherwise.
        if session.scalar(select(func.count()).where(EscalationStepRow.state == "scheduled")):
            ensure_auditor(session, ctx.clock)
        ctx.finish(session)
