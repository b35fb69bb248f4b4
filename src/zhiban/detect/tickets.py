"""Tickets and telemetry incidents: the customer's ticket joins the incident that already explains it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from zhiban.core.errors import NotFound
from zhiban.detect.service import SYSTEM
from zhiban.detect.store import incident_organizations
from zhiban.tickets.model import TicketRef


def open_telemetry_incidents(session: Session, organization_id: str) -> list[str]:
    """Ids of open incidents the detector opened that hurt this organization's apps."""
    from zhiban.incidents import service as incidents
    from zhiban.incidents.model import is_open

    found = []
    for link in incident_organizations(session, organization_id):
        try:
            view = incidents.get_incident(session, SYSTEM, link.incident_id)
        except NotFound:
            continue
        if is_open(view.incident.status) and link.incident_id not in found:
            found.append(link.incident_id)
    return found


def link_to_open_incidents(session: Session, tickets: Sequence[TicketRef]) -> list[str]:
    """Link tickets of one organization to every open telemetry incident of it; returns the incidents' ids."""
    from zhiban.incidents import service as incidents

    if not tickets:
        return []
    linked = open_telemetry_incidents(session, tickets[0].organization_id)
    for incident_id in linked:
        for ticket in tickets:
            incidents.link_ticket(session, incident_id, ticket.id)
    return linked
