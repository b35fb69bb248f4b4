"""The escalation auditor: steps that are due and not done are pages someone is not getting."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.engine import JobContext
from zhiban.incidents.service import AUDIT_GRACE, ensure_auditor
from zhiban.incidents.store import EscalationStepRow, IncidentRow

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
        # Keep auditing while any step is still to fire; the next incident re-arms it otherwise.
        if session.scalar(select(func.count()).where(EscalationStepRow.state == "scheduled")):
            ensure_auditor(session, ctx.clock)
        ctx.finish(session)
