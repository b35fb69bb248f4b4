"""What the tables of tickets, SLA, incidents and notify say about a drill: the read side's queries for drills."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhiban.drills.model import Observation
from zhiban.drills.store import DrillRow
from zhiban.identity.store import TeamRow
from zhiban.incidents.store import EscalationStepRow, IncidentEventRow, IncidentRow, ServiceRow
from zhiban.notify.store import NotificationRow
from zhiban.sla.store import ClockRow
from zhiban.tickets.store import TicketEventRow, TicketRow

UNASSIGNED = "unassigned"  # as reports say of an incident nobody owns


def filed_ticket(session: Session, requester_id: str, subject: str) -> int | None:
    """The ticket a drill already filed as its customer (found by its subject, which names the drill)."""
    query = select(TicketRow.id).where(TicketRow.requester_id == requester_id, TicketRow.subject == subject)
    return session.scalar(query.order_by(TicketRow.id).limit(1))


def _first(session: Session, ticket_id: int, kind: str, now: datetime) -> datetime | None:
    query = select(func.min(TicketEventRow.at)).where(
        TicketEventRow.ticket_id == ticket_id, TicketEventRow.kind == kind, TicketEventRow.at <= now
    )
    return session.scalar(query)


def observe(session: Session, drill: DrillRow, now: datetime, target: timedelta | None) -> Observation:
    """What the tables say about a drill up to `now`: the ticket's log (filed, paged, acknowledged, answered),
    its team and SLA clock, and the on-duty incident's pages."""
    from zhiban.incidents import service as incidents

    ticket = session.get(TicketRow, drill.ticket_id) if drill.ticket_id else None
    incident = session.get(IncidentRow, drill.incident_id) if drill.incident_id else None
    first_reply = paged = acknowledged = team = None
    clock_started = False
    if ticket is not None:
        # The ticket's log, not the incident's columns: a re-trigger (acknowledgement timeout) clears those.
        first_reply = _first(session, ticket.id, "agent_reply", now)
        paged = _first(session, ticket.id, "on_duty_paged", now)
        acknowledged = _first(session, ticket.id, "on_duty_acknowledged", now)
        team = session.scalar(select(TeamRow.name).where(TeamRow.id == ticket.team_id)) if ticket.team_id else None
        clock_started = (
            session.scalar(select(ClockRow.ticket_id).where(ClockRow.ticket_id == ticket.id).limit(1)) is not None
        )
    incident_team_name = None
    sent, failures, nobody, timeline = 0, [], False, []
    if incident is not None:
        service = session.get(ServiceRow, incident.service_id)
        policy_id = service.policy_id if service else None
        incident_team_name = incidents.owning_team(session, policy_id, incident.acknowledged_by) or UNASSIGNED
        for row in session.scalars(
            select(NotificationRow)
            .where(NotificationRow.subject_kind == "incident", NotificationRow.subject_id == incident.id)
            .limit(500)
        ):
            if row.state == "sent":
                sent += 1
            elif row.state == "failed":
                failures.append(f"{row.channel}: {(row.last_error or 'failed')[:200]}")
        kinds = set(session.scalars(select(IncidentEventRow.kind).where(IncidentEventRow.incident_id == incident.id)))
        steps = list(session.scalars(select(EscalationStepRow).where(EscalationStepRow.incident_id == incident.id)))
        nobody = "nobody_to_page" in kinds or any(s.state == "done" and not s.paged for s in steps)
        if "no_policy" in kinds:
            timeline.append("the plan's incident service has no escalation policy")
    return Observation(
        ended_at=now,
        target=target,
        ticket_created_at=ticket.created_at if ticket else None,
        paged_at=paged,
        acknowledged_at=acknowledged,
        first_response_at=first_reply,
        ticket_team=team,
        expected_team=drill.expected_team,
        sla_clock_started=clock_started,
        incident_team=incident_team_name,
        pages_sent=sent,
        page_failures=tuple(failures),
        nobody_on_call=nobody,
        timeline_problems=tuple(timeline),
    )
