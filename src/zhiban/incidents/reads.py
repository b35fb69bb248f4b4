"""Reading incidents: the list, and one incident with its timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiban.core.errors import Forbidden, InvalidInput, NotFound
from zhiban.identity.model import Principal
from zhiban.incidents.lifecycle import _visible_to_org
from zhiban.incidents.model import (
    IncidentStatus,
)
from zhiban.incidents.store import (
    AlertRow,
    IncidentEventRow,
    IncidentRow,
    IncidentTicketRow,
    ResponderRow,
    ServiceRow,
)

# --- reading --------------------------------------------------------------------------------------


def list_incidents(
    session: Session, principal: Principal, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> list[IncidentRow]:
    """Incidents the caller may see, newest first (customers: only those linked to their organization)."""
    query = select(IncidentRow)
    if not principal.is_staff:
        if principal.organization_id is None:
            return []
        query = query.where(_visible_to_org(principal.organization_id))
    if status is not None:
        if status == "open":
            query = query.where(IncidentRow.status != IncidentStatus.RESOLVED)
        elif status in {s.value for s in IncidentStatus}:
            query = query.where(IncidentRow.status == status)
        else:
            raise InvalidInput("status must be open, triggered, acknowledged or resolved")
    query = query.order_by(IncidentRow.triggered_at.desc(), IncidentRow.number.desc())
    return list(session.scalars(query.limit(limit).offset(offset)))


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    actor_id: str | None
    body: str
    data: dict[str, Any]


@dataclass(frozen=True)
class IncidentView:
    incident: IncidentRow
    service_name: str
    timeline: list[TimelineEntry]
    ticket_ids: list[int]
    responder_ids: list[str]
    alerts: list[AlertRow]


def get_incident(session: Session, principal: Principal, incident_id: str) -> IncidentView:
    """One incident with its timeline; customers get the public part only, staff also notes and pages."""
    incident = session.get(IncidentRow, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    if not principal.is_staff:
        visible = principal.organization_id is not None and session.scalar(
            select(IncidentRow.id).where(IncidentRow.id == incident_id, _visible_to_org(principal.organization_id))
        )
        if not visible:
            raise NotFound(f"no incident {incident_id}")  # not Forbidden: its existence is not theirs to learn
    events_query = select(IncidentEventRow).where(IncidentEventRow.incident_id == incident.id)
    if not principal.is_staff:
        events_query = events_query.where(IncidentEventRow.internal.is_(False))
    timeline = [
        TimelineEntry(e.at, e.kind, e.actor_id, e.body, dict(e.data))
        for e in session.scalars(events_query.order_by(IncidentEventRow.id).limit(2000))
    ]
    alerts: list[AlertRow] = []
    if principal.is_staff:
        from zhiban.notify import service as notify

        for n in notify.notifications_of(session, "incident", incident.id):
            moment = n.finished_at or n.handed_at or n.created_at
            timeline.append(
                TimelineEntry(
                    moment,
                    f"notification_{n.state}",
                    None,
                    n.channel,
                    {"person": n.person_id, "channel": n.channel, "key": n.idempotency_key, "error": n.last_error},
                )
            )
        timeline.sort(key=lambda e: e.at)
        alerts = list(
            session.scalars(
                select(AlertRow).where(AlertRow.incident_id == incident.id).order_by(AlertRow.created_at).limit(200)
            )
        )
    tickets_query = select(IncidentTicketRow.ticket_id).where(IncidentTicketRow.incident_id == incident.id)
    if not principal.is_staff:
        tickets_query = tickets_query.where(IncidentTicketRow.organization_id == principal.organization_id)
    service = session.get(ServiceRow, incident.service_id)
    responders = list(session.scalars(select(ResponderRow.person_id).where(ResponderRow.incident_id == incident.id)))
    return IncidentView(
        incident=incident,
        service_name=service.name if service else "",
        timeline=timeline,
        ticket_ids=sorted(session.scalars(tickets_query)),
        responder_ids=responders if principal.is_staff else [],
        alerts=alerts,
    )


def require_staff_for_write(principal: Principal) -> None:
    if not principal.is_staff:
        raise Forbidden("incidents are changed by agents and admins only")
