"""An incident's life after it opens: acknowledge, resolve, re-trigger, notes, responders and tickets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, InvalidInput, NotFound
from zhiban.engine import JobContext, enqueue
from zhiban.identity import service as identity
from zhiban.identity.model import Principal
from zhiban.incidents.catalog import _staff_person, system_principal
from zhiban.incidents.events import IncidentChangeKind
from zhiban.incidents.model import (
    IncidentStatus,
)
from zhiban.incidents.paging import ACK_TIMEOUT_JOB, _event, _stop_paging, changed, page_person, start_escalation
from zhiban.incidents.store import (
    AlertRow,
    EscalationPolicyRow,
    IncidentEventRow,
    IncidentRow,
    IncidentTicketRow,
    ResponderRow,
    ServiceRow,
)

MAX_NOTE = 20_000


# --- acknowledge, resolve, re-trigger -------------------------------------------------------------


def _acknowledge(session: Session, clock: Clock, incident: IncidentRow, person_id: str | None, via: str) -> None:
    now = clock.now()
    incident.status = IncidentStatus.ACKNOWLEDGED.value
    incident.acknowledged_at = now
    incident.acknowledged_by = person_id
    incident.ack_seq += 1
    incident.updated_at = now
    _stop_paging(session, clock, incident, "acknowledged")
    _event(session, incident.id, "acknowledged", now, actor_id=person_id, body=via, internal=False)
    changed(session, clock, incident, IncidentChangeKind.ACKNOWLEDGED, actor_id=person_id)
    service = session.get(ServiceRow, incident.service_id)
    if service is not None and service.ack_timeout_minutes:
        enqueue(
            session,
            ACK_TIMEOUT_JOB,
            {"incident": incident.id, "ack_seq": incident.ack_seq},
            due_at=now + timedelta(minutes=service.ack_timeout_minutes),
            dedup_key=f"inc.acktimeout:{incident.id}:{incident.ack_seq}",
        )


def _resolve(session: Session, clock: Clock, incident: IncidentRow, person_id: str | None, via: str) -> None:
    now = clock.now()
    incident.status = IncidentStatus.RESOLVED.value
    incident.resolved_at = now
    incident.resolved_by = person_id
    incident.updated_at = now
    _stop_paging(session, clock, incident, "resolved")
    session.execute(
        update(AlertRow)
        .where(AlertRow.incident_id == incident.id, AlertRow.open_key.is_not(None))
        .values(open_key=None, status="resolved", resolved_at=now)
        .execution_options(synchronize_session=False)
    )
    _event(session, incident.id, "resolved", now, actor_id=person_id, body=via, internal=False)
    changed(session, clock, incident, IncidentChangeKind.RESOLVED, actor_id=person_id)


def _load_for_update(session: Session, incident_id: str) -> IncidentRow:
    row = session.scalar(select(IncidentRow).where(IncidentRow.id == incident_id).with_for_update())
    if row is None:
        raise NotFound(f"no incident {incident_id}")
    return row


def acknowledge(
    session: Session, clock: Clock, principal: Principal, incident_id: str, via: str = "web"
) -> IncidentRow:
    """Acknowledge as a staff member: paging stops; an acknowledgement that times out re-triggers."""
    principal.require_staff()
    incident = _load_for_update(session, incident_id)
    if incident.status == IncidentStatus.RESOLVED:
        raise Conflict(f"incident #{incident.number} is resolved")
    if incident.status == IncidentStatus.TRIGGERED:
        _acknowledge(session, clock, incident, principal.person_id, via)
    return incident


def resolve(session: Session, clock: Clock, principal: Principal, incident_id: str, via: str = "web") -> IncidentRow:
    """Resolve as a staff member: paging stops and its alerts close."""
    principal.require_staff()
    incident = _load_for_update(session, incident_id)
    if incident.status != IncidentStatus.RESOLVED:
        _resolve(session, clock, incident, principal.person_id, via)
    return incident


def acknowledge_as(session: Session, clock: Clock, incident_id: str, person_ref: str, via: str) -> IncidentRow:
    """Acknowledge as a person named by id or e-mail (CLI, signed links)."""
    from zhiban.identity.service import principal_of

    person = _staff_person(session, person_ref)
    return acknowledge(session, clock, principal_of(person), find_incident_id(session, incident_id), via)


def owning_team(session: Session, policy_id: str | None, acknowledged_by: str | None) -> str | None:
    """Who owns an incident: the team its policy pages first (a team target, a person's team, or a schedule's
    name), else the acknowledger's first team."""
    from zhiban.oncall import service as oncall

    policy = session.get(EscalationPolicyRow, policy_id) if policy_id else None
    for level in (policy.levels or ()) if policy is not None else ():
        for target in level.get("targets", ()):
            kind, ref = target.get("kind"), str(target.get("ref", ""))
            if kind == "team" and (team := identity.team(session, ref, by_name=False)) is not None:
                return team.name
            if kind == "person" and (teams := identity.teams_of(session, ref)):
                return teams[0].name
            if kind == "schedule" and (schedule := oncall.schedule_named(session, ref)) is not None:
                return schedule[1][:200]
    teams = identity.teams_of(session, acknowledged_by) if acknowledged_by else []
    return teams[0].name if teams else None


def incident_for_link(session: Session, incident_id: str) -> IncidentRow | None:
    """The incident a signed acknowledge link names (the link is the credential: no principal)."""
    return session.get(IncidentRow, incident_id)


def find_incident_id(session: Session, ref: str) -> str:
    """An incident id from an id or a number (`42` or `#42`)."""
    text = ref.strip().lstrip("#")
    if text.isdigit() and len(text) < 10:
        found = session.scalar(select(IncidentRow.id).where(IncidentRow.number == int(text)))
        if found:
            return found
    return text


def ack_timed_out(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `incident.ack_timeout` timer: an acknowledgement nobody followed up re-triggers the incident."""
    clock = ctx.clock
    with ctx.session_factory() as session, session.begin():
        incident = session.scalar(
            select(IncidentRow).where(IncidentRow.id == str(payload.get("incident"))).with_for_update()
        )
        if (
            incident is not None
            and incident.status == IncidentStatus.ACKNOWLEDGED
            and incident.ack_seq == int(payload.get("ack_seq", -1))
        ):
            now = clock.now()
            incident.status = IncidentStatus.TRIGGERED.value
            incident.acknowledged_at = None
            incident.acknowledged_by = None
            incident.generation += 1
            incident.updated_at = now
            _event(session, incident.id, "retriggered", now, body="acknowledgement timed out", internal=False)
            changed(session, clock, incident, IncidentChangeKind.RETRIGGERED)
            service = session.get(ServiceRow, incident.service_id)
            assert service is not None
            start_escalation(session, clock, incident, service)
        ctx.finish(session)


# --- notes, responders, tickets -------------------------------------------------------------------


def add_note(session: Session, clock: Clock, principal: Principal, incident_id: str, body: str) -> IncidentEventRow:
    """An internal note on the timeline (staff only; customers never see notes)."""
    principal.require_staff()
    body = body.strip()
    if not 1 <= len(body) <= MAX_NOTE:
        raise InvalidInput(f"a note is 1-{MAX_NOTE} characters")
    incident = session.get(IncidentRow, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    row = IncidentEventRow(
        incident_id=incident.id,
        kind="note",
        at=clock.now(),
        actor_id=principal.person_id,
        body=body,
        data={},
        internal=True,
    )
    session.add(row)
    session.flush()
    return row


def add_responder(
    session: Session, clock: Clock, principal: Principal, incident_id: str, person_ref: str
) -> ResponderRow:
    """Add a responder by hand; while the incident is triggered they are paged at once."""
    principal.require_staff()
    incident = _load_for_update(session, incident_id)
    person = _staff_person(session, person_ref)
    existing = session.get(ResponderRow, (incident.id, person.id))
    if existing is not None:
        return existing
    now = clock.now()
    row = ResponderRow(incident_id=incident.id, person_id=person.id, added_by=principal.person_id, added_at=now)
    session.add(row)
    _event(
        session,
        incident.id,
        "responder_added",
        now,
        actor_id=principal.person_id,
        data={"person": person.id},
        body=person.name,
    )
    if incident.status != IncidentStatus.RESOLVED:
        service = session.get(ServiceRow, incident.service_id)
        assert service is not None
        page_person(session, clock, incident, service, person.id, 0, target_prefix="responder.")
    session.flush()
    return row


def link_ticket(session: Session, incident_id: str, ticket_id: int) -> bool:
    """Link a ticket to an incident (its organization then sees the incident); False if already linked."""
    if session.get(IncidentRow, incident_id) is None:
        raise NotFound(f"no incident {incident_id}")
    if session.get(IncidentTicketRow, (incident_id, ticket_id)) is not None:
        return False
    from zhiban.tickets.service import get_ticket

    ticket = get_ticket(session, system_principal(), ticket_id).ticket
    session.add(
        IncidentTicketRow(
            incident_id=incident_id,
            ticket_id=ticket.id,
            organization_id=ticket.organization_id,
            linked_at=ticket.updated_at,
        )
    )
    session.flush()
    return True


def _visible_to_org(organization_id: str) -> Any:
    linked = exists().where(
        IncidentTicketRow.incident_id == IncidentRow.id, IncidentTicketRow.organization_id == organization_id
    )
    return or_(IncidentRow.organization_id == organization_id, linked)


def open_incidents_for_org(session: Session, organization_id: str) -> list[IncidentRow]:
    """Open incidents a customer organization may see (its own service, or linked to its tickets)."""
    query = select(IncidentRow).where(IncidentRow.status != IncidentStatus.RESOLVED, _visible_to_org(organization_id))
    return list(session.scalars(query.order_by(IncidentRow.triggered_at.desc()).limit(200)))
