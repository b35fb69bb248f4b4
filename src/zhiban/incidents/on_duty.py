"""Internal incidents that page the engineer on duty for a ticket: one per ticket, through a service's policy.

A ticket incident is the same incident as any other (durable steps, channels, signed ack links, the
auditor), with `ticket_id` set: it is never shown on a status page, and raising the ticket again re-triggers
the same incident rather than opening a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.incidents.alerts import _incident_row, _next_number
from zhiban.incidents.catalog import _business_calendar, get_service, policy_of
from zhiban.incidents.escalation import TargetKind, Urgency, next_step, rotation_of
from zhiban.incidents.events import IncidentChangeKind
from zhiban.incidents.lifecycle import _resolve
from zhiban.incidents.model import IncidentStatus
from zhiban.incidents.paging import _event, _resolver, changed, start_escalation
from zhiban.incidents.store import EscalationPolicyRow, IncidentRow, ServiceRow


def _of_ticket(session: Session, ticket_id: int) -> IncidentRow | None:
    return session.scalar(select(IncidentRow).where(IncidentRow.ticket_id == ticket_id).with_for_update())


def page_for_ticket(
    session: Session,
    clock: Clock,
    *,
    service_ref: str,
    ticket_id: int,
    incident_id: str | None = None,
    title: str,
    severity: str = "critical",
    actor_id: str | None = None,
) -> tuple[IncidentRow, bool]:
    """(the ticket's incident, whether paging started now): opens it, re-triggers a resolved one, or leaves it."""
    incident = _of_ticket(session, ticket_id)
    if incident is not None:
        if incident.status != IncidentStatus.RESOLVED:
            return incident, False  # already paging, or someone has it
        return _raise_again(session, clock, incident, actor_id), True
    service = get_service(session, service_ref)
    now = clock.now()
    incident = _incident_row(service, _next_number(session), title, severity, f"ticket:{ticket_id}", Urgency.HIGH, now)
    if incident_id is not None:
        incident.id = incident_id  # chosen by the caller, so it could record the page before the first step fires
    incident.organization_id = None  # internal: the customer sees the page on its ticket, not as an incident
    incident.ticket_id = ticket_id
    try:
        with session.begin_nested():
            session.add(incident)
            session.flush()
    except IntegrityError:
        # Raised twice at once: the other transaction's incident is the ticket's one.
        existing = _of_ticket(session, ticket_id)
        assert existing is not None
        return existing, False
    _event(session, incident.id, "triggered", now, actor_id=actor_id, body=incident.title)
    start_escalation(session, clock, incident, service)
    return incident, True


def _raise_again(session: Session, clock: Clock, incident: IncidentRow, actor_id: str | None) -> IncidentRow:
    now = clock.now()
    incident.status = IncidentStatus.TRIGGERED.value
    incident.resolved_at = incident.resolved_by = None
    incident.acknowledged_at = incident.acknowledged_by = None
    incident.generation += 1
    incident.updated_at = now
    _event(session, incident.id, "retriggered", now, actor_id=actor_id, body="the ticket was raised again")
    changed(session, clock, incident, IncidentChangeKind.RETRIGGERED, actor_id=actor_id)
    service = session.get(ServiceRow, incident.service_id)
    assert service is not None
    start_escalation(session, clock, incident, service)
    return incident


def close_for_ticket(session: Session, clock: Clock, ticket_id: int, *, via: str) -> bool:
    """Resolve the ticket's incident (its pages stop); False if it has none open."""
    incident = _of_ticket(session, ticket_id)
    if incident is None or incident.status == IncidentStatus.RESOLVED:
        return False
    _resolve(session, clock, incident, None, via=via)
    return True


def is_ticket_incident(session: Session, incident_id: str) -> bool:
    return session.scalar(select(IncidentRow.ticket_id).where(IncidentRow.id == incident_id)) is not None


@dataclass(frozen=True)
class FirstPage:
    """Whom a ticket's page through a service would wake first at a moment: its policy's first level with people."""

    service_id: str
    service_name: str
    policy_id: str
    policy_name: str
    level: int  # 1-based, as the policy editor numbers levels
    people: tuple[str, ...]  # person ids, in the order they are paged
    schedules: tuple[str, ...]  # the level's schedule targets (their shifts say until when)


def first_page(session: Session, service_ref: str, at: datetime) -> FirstPage | None:
    """The first step a new ticket incident on this service would fire at `at`, as the escalation plans it;
    None when the service has no policy or nobody is reachable."""
    service = get_service(session, service_ref)
    policy_row = session.get(EscalationPolicyRow, service.policy_id) if service.policy_id else None
    if policy_row is None:
        return None
    policy = policy_of(policy_row)
    business = _business_calendar(policy_row.calendar_country, policy_row.calendar_zone)
    # Ticket incidents are high urgency: the first step is due at once, whatever the support hours.
    step = next_step(
        policy,
        None,
        at,
        Urgency.HIGH,
        _resolver(session),
        is_business_time=business.is_open,
        # The next incident's turn: numbers only grow, so the newest one's number + 1 (a preview, not a promise).
        round_robin_offset=rotation_of((session.scalar(select(func.max(IncidentRow.number))) or 0) + 1),
    )
    if step is None:
        return None
    level = policy.levels[step.level_index]
    schedules = tuple(t.ref for t in level.targets if t.kind is TargetKind.SCHEDULE)
    return FirstPage(
        service.id, service.name, policy_row.id, policy_row.name, step.level_index + 1, step.targets, schedules
    )
