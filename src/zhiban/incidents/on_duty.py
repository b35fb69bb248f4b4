"""Internal incidents that page the engineer on duty for a ticket: one per ticket, through a service's policy.

A ticket incident is the same incident as any other (durable steps, channels, signed ack links, the
auditor), with `ticket_id` set: it is never shown on a status page, and raising the ticket again re-triggers
the same incident rather than opening a second one.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.incidents.alerts import _incident_row, _next_number
from zhiban.incidents.catalog import get_service
from zhiban.incidents.escalation import Urgency
from zhiban.incidents.events import IncidentChangeKind
from zhiban.incidents.lifecycle import _resolve
from zhiban.incidents.model import IncidentStatus
from zhiban.incidents.paging import _event, changed, start_escalation
from zhiban.incidents.store import IncidentRow, ServiceRow


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
