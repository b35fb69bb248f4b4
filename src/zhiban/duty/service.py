"""Paging the engineer on duty from tickets, by the plan's support mode.

- `queue` plans never page. `dedicated` plans give a new ticket to the organization's dedicated contact
  (else its backup) in business hours, and page the plan's paging priorities outside them. `standby`
  plans page their paging priorities at any hour.
- A page is the plan's incident service's escalation (the same durable steps, channels, ack links and
  auditor as alerts), opened in the transaction that filed or raised the ticket: a crash either left both
  or neither. One incident per ticket: raising it again while it pages changes nothing, and after it was
  resolved re-triggers the same incident.
- Solving or closing the ticket resolves its incident (pages stop). Resolving the incident does not
  solve the ticket: the customer still waits for an answer.
- The customer may ask to wake the engineer ("urgent") on an open ticket where the plan allows it, a
  limited number of times a day per organization.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Forbidden, InvalidInput, NotFound, RateLimited
from zhiban.identity import ratelimit
from zhiban.identity import service as identity
from zhiban.identity.model import Organization, Principal
from zhiban.incidents import service as incidents
from zhiban.incidents.events import IncidentChange, IncidentChangeKind
from zhiban.sla import service as sla
from zhiban.sla.model import SupportMode, SupportTerms
from zhiban.store.db import new_id
from zhiban.tickets import service as tickets
from zhiban.tickets.model import EventKind, OnDuty, Priority, Status, TicketChange

log = logging.getLogger("zhiban.duty")

REASON_PRIORITY = "priority"
REASON_URGENT = "urgent"
URGENT_WINDOW = timedelta(days=1)
_SEVERITY = {Priority.P1: "critical", Priority.P2: "error"}


def _terms(session: Session, org: Organization) -> SupportTerms:
    return sla.support_of(session, org.plan)


def on_ticket_change(session: Session, clock: Clock, change: TicketChange) -> None:
    """Page, hand to the dedicated contact, or stop paging, as this change of a ticket asks."""
    if change.kind in (EventKind.CREATED, EventKind.PRIORITY_CHANGED):
        priority = change.priority
        if priority is not None:
            _filed_or_raised(session, clock, change, priority)
    elif change.kind == EventKind.URGENT_REQUESTED:
        _page(session, clock, change.ticket.id, REASON_URGENT, change.actor_id)
    elif change.kind == EventKind.STATUS_CHANGED and change.status in (Status.SOLVED, Status.CLOSED):
        status = change.status.value if change.status else ""
        incidents.close_for_ticket(session, clock, change.ticket.id, via=f"ticket #{change.ticket.id} {status}")
    elif change.kind == EventKind.STATUS_CHANGED and change.data.get("frm") == Status.SOLVED.value:
        # "Still broken" on a solved ticket at 03:00 wakes someone again, as the ticket itself would.
        summary = tickets.summary(session, change.ticket.id)
        if summary is not None:
            _filed_or_raised(session, clock, change, Priority(summary.priority))


def _filed_or_raised(session: Session, clock: Clock, change: TicketChange, priority: Priority) -> None:
    org = identity.organization(session, change.ticket.organization_id)
    if org is None:
        return
    terms = _terms(session, org)
    if terms.mode == SupportMode.QUEUE:
        return  # the common case under a rush: one read of the plan, no calendar
    in_hours = sla.in_business_hours(session, clock, org, change.at)
    if terms.pages(priority, in_business_hours=in_hours):
        _page(session, clock, change.ticket.id, REASON_PRIORITY, change.actor_id, terms=terms, org=org)
    elif change.kind == EventKind.CREATED and terms.mode == SupportMode.DEDICATED and in_hours:
        _to_dedicated_contact(session, clock, org, change.ticket.id)


def _to_dedicated_contact(session: Session, clock: Clock, org: Organization, ticket_id: int) -> None:
    for person_id in (org.dedicated_contact_id, org.backup_contact_id):
        person = identity.person(session, person_id)
        if person is not None and person.active and person.is_staff:
            tickets.assign(session, clock, incidents.system_principal(), ticket_id, person.id)
            return


def _page(
    session: Session,
    clock: Clock,
    ticket_id: int,
    reason: str,
    actor_id: str | None,
    *,
    terms: SupportTerms | None = None,
    org: Organization | None = None,
) -> None:
    summary = tickets.summary(session, ticket_id)
    if summary is None:
        return
    org = org or identity.organization(session, summary.organization_id)
    if org is None:
        return
    terms = terms or _terms(session, org)
    if terms.paging_service_id is None:
        log.warning("ticket #%s should page but plan %r names no incident service", ticket_id, terms.plan)
        return
    existing = tickets.on_duty_of(session, ticket_id)
    incident_id = existing.incident_id if existing is not None else new_id()
    if existing is None and not tickets.open_on_duty(
        session, ticket_id, incident_id=incident_id, reason=reason, at=clock.now()
    ):
        found = tickets.on_duty_of(session, ticket_id)  # raised at once elsewhere: that one is the ticket's
        assert found is not None
        incident_id = found.incident_id
    priority = Priority(summary.priority)
    title = f"Ticket #{ticket_id} {priority.value} · {org.name}: {summary.subject}"
    incidents.page_for_ticket(
        session,
        clock,
        service_ref=terms.paging_service_id,
        ticket_id=ticket_id,
        incident_id=incident_id,
        title=title,
        severity=_SEVERITY.get(priority, "warning"),
        actor_id=actor_id,
    )


def on_incident_change(session: Session, clock: Clock, change: IncidentChange) -> None:
    """Tell the ticket what happened to its page: paged, acknowledged (by whom), or closed."""
    if change.ticket_id is None:
        return
    if change.kind == IncidentChangeKind.PAGED:
        tickets.on_duty_paged(session, clock, change.incident_id, change.at, paged=change.paged)
    elif change.kind == IncidentChangeKind.ACKNOWLEDGED:
        by = identity.person(session, change.actor_id)
        tickets.on_duty_acknowledged(session, clock, change.incident_id, change.at, by=by)
    elif change.kind == IncidentChangeKind.RESOLVED:
        tickets.on_duty_closed(session, clock, change.incident_id, change.at)


def request_urgent(session: Session, clock: Clock, principal: Principal, ticket_id: int, *, note: str = "") -> OnDuty:
    """The customer's "wake the engineer on duty" on an open ticket, within its plan's allowance."""
    ticket = tickets.find(session, principal, ticket_id)
    org = identity.organization(session, ticket.organization_id)
    if org is None:
        raise NotFound(f"no ticket #{ticket_id}")
    terms = _terms(session, org)
    priority = Priority(ticket.priority)
    if not terms.may_ask_urgent(priority):
        raise Forbidden(
            f"the {org.plan} plan does not include waking the engineer on duty for {priority.value} tickets"
        )
    if Status(ticket.status) in (Status.SOLVED, Status.CLOSED):
        raise InvalidInput("only an open ticket can be made urgent")
    current = tickets.on_duty_of(session, ticket_id)
    if current is not None and current.closed_at is None:
        return current  # already paging or acknowledged: asking again wakes nobody twice
    limit = _urgent_limit(terms)
    key = ratelimit.key_of(org.id)
    now = clock.now()
    if ratelimit.exhausted(session, limit, key, now):
        raise RateLimited(f"at most {terms.urgent_per_day} urgent requests a day for {org.name}")
    ratelimit.hit(session, limit, key, now)
    tickets.request_urgent(session, clock, principal, ticket_id, note=note)
    found = tickets.on_duty_of(session, ticket_id)
    assert found is not None
    return found


def _urgent_limit(terms: SupportTerms) -> ratelimit.Limit:
    return ratelimit.Limit("duty.urgent", terms.urgent_per_day, URGENT_WINDOW)


@dataclass(frozen=True, slots=True)
class UrgentOffer:
    """The portal's "wake the engineer on duty" action on a ticket: what the plan allows a day, what is left today."""

    per_day: int
    left_today: int


def urgent_offer(session: Session, clock: Clock, principal: Principal, ticket_id: int) -> UrgentOffer | None:
    """Whether the portal offers this customer the urgent action on this ticket (None: it does not).

    Offered where `request_urgent` would page: a customer's open ticket whose plan allows it for the ticket's
    priority, not while its engineer is already being paged. Spent allowances still show the action (its answer
    says so), with how many are left today.
    """
    ticket = tickets.find(session, principal, ticket_id)  # NotFound for another tenant's ticket
    if principal.is_staff or Status(ticket.status) in (Status.SOLVED, Status.CLOSED):
        return None  # agents raise the priority instead
    current = tickets.on_duty_of(session, ticket_id)
    if current is not None and current.closed_at is None:
        return None
    org = identity.organization(session, ticket.organization_id)
    if org is None:
        return None
    terms = _terms(session, org)
    if not terms.may_ask_urgent(Priority(ticket.priority)):
        return None
    used = ratelimit.used(session, _urgent_limit(terms), ratelimit.key_of(org.id), clock.now())
    return UrgentOffer(per_day=terms.urgent_per_day, left_today=max(terms.urgent_per_day - used, 0))
