"""Notices of SLA warnings and breaches: whom to tell, recorded in the one in-app inbox (notify.inbox) and mailed.

Whom to tell depends on the plan's support mode and the hour on the customer's calendar:

- `queue` plans (and any ticket whose organization or plan is unknown): the fixed chain, `escalation_chain`.
- `dedicated` and `standby` plans, in the organization's business hours: the assignee and the organization's
  dedicated contact (its backup when the contact is gone): the people who own the customer by day.
- the same plans out of business hours: whoever is on call for the plan's paging service now (the people its
  escalation policy would page first), and the assignee as well. The assignee is kept, not replaced: the notice
  is a mail and an in-app line, not a page, so it wakes nobody, and the assignee finds it in the morning; the
  team lead and managers are left out, since at night they are the ones asleep and the on-call engineer is not.
- When a rule finds nobody (no one on call, no assignee and no contact), the fixed chain is told, so a notice
  is never silently lost.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput
from zhiban.identity import service as identity
from zhiban.identity.model import Organization, Person, Principal, Role, Team
from zhiban.incidents import service as incidents
from zhiban.notify import inbox
from zhiban.notify.model import Notice
from zhiban.sla import notices
from zhiban.sla.model import Priority, SupportMode
from zhiban.sla.policies import in_business_hours, support_of
from zhiban.sla.recompute import _Ticket
from zhiban.sla.store import ClockRow

SLA_KINDS = (inbox.SLA_WARNING, inbox.SLA_BREACH)

# -- notifications -------------------------------------------------------------------------------------


class _NoticeTicket(_Ticket, Protocol):
    """A ticket whose SLA notices are told: a `TicketSummary`, or any object that says so."""

    @property
    def subject(self) -> str: ...
    @property
    def team_id(self) -> str | None: ...
    @property
    def assignee_id(self) -> str | None: ...
    @property
    def priority(self) -> str: ...


def _active_person(session: Session, person_id: str | None) -> Person | None:
    person = identity.person(session, person_id)
    return person if person is not None and person.active and person.role != Role.CUSTOMER else None


def _team_lead(session: Session, ticket: _NoticeTicket, assignee: Person | None) -> Person | None:
    teams: list[Team] = []
    team = identity.team(session, ticket.team_id, by_name=False)
    if team is not None:
        teams.append(team)
    if assignee is not None:
        teams.extend(identity.teams_of(session, assignee.id))
    for team in teams:
        lead = _active_person(session, team.lead_id)
        if lead is not None:
            return lead
    return None


def escalation_chain(session: Session, ticket: _NoticeTicket, kind: str) -> list[tuple[Person, str]]:
    """Who hears of a warning (the assignee, else the team lead) or a breach (assignee → team lead → manager).

    Not an incidents escalation policy, on purpose: this chain is fixed and told all at once when the clock
    breaches (no timed levels, no acknowledgement, no repeats), and its people come from the ticket (its
    assignee and team), which no policy target names. Delivery is the same as pages': notify's outbox.
    """
    assignee = _active_person(session, ticket.assignee_id)
    lead = _team_lead(session, ticket, assignee)
    chain: list[tuple[Person, str]] = []
    if assignee is not None:
        chain.append((assignee, "assignee"))
    if lead is not None and (kind == "breach" or not chain):
        chain.append((lead, "team_lead"))
    if kind == "breach":
        chain.extend((m, "manager") for m in identity.admins(session, limit=3))
    seen: set[str] = set()
    unique = []
    for person, level in chain:
        if person.id not in seen:
            seen.add(person.id)
            unique.append((person, level))
    return unique


def _unique(chain: list[tuple[Person | None, str]]) -> list[tuple[Person, str]]:
    seen: set[str] = set()
    unique = []
    for person, level in chain:
        if person is not None and person.id not in seen:
            seen.add(person.id)
            unique.append((person, level))
    return unique


def _dedicated_contact(session: Session, org: Organization) -> Person | None:
    for person_id in (org.dedicated_contact_id, org.backup_contact_id):
        person = _active_person(session, person_id)
        if person is not None:
            return person
    return None


def recipients(session: Session, clock: Clock, ticket: _NoticeTicket, kind: str) -> list[tuple[Person, str]]:
    """Who hears of this warning or breach now: by the plan's support mode and the customer's hours (see above)."""
    org = identity.organization(session, ticket.organization_id)
    terms = support_of(session, org.plan) if org is not None else None
    if org is None or terms is None or terms.mode == SupportMode.QUEUE:
        return escalation_chain(session, ticket, kind)
    now = clock.now()
    assignee = _active_person(session, ticket.assignee_id)
    chain: list[tuple[Person | None, str]]
    if in_business_hours(session, clock, org, now):
        chain = [(assignee, "assignee"), (_dedicated_contact(session, org), "dedicated_contact")]
    else:
        on_call = incidents.on_call_for_service(session, terms.paging_service_id, now)
        chain = [(_active_person(session, person_id), "on_call") for person_id in on_call]
        chain.append((assignee, "assignee"))
    return _unique(chain) or escalation_chain(session, ticket, kind)


def notice_key(ticket_id: int, metric: str, cycle: int, kind: str) -> str:
    """What an SLA notice is about: once per person for a ticket's clock, cycle and kind."""
    return f"sla:{ticket_id}:{metric}:{cycle}:{kind}"


def _pages_on_call(session: Session, ticket: _NoticeTicket) -> bool:
    """Whether the ticket is one its plan would page the engineer on duty for out of hours (its priority)."""
    org = identity.organization(session, ticket.organization_id)
    terms = support_of(session, org.plan) if org is not None else None
    try:
        return terms is not None and terms.pages(Priority(ticket.priority), in_business_hours=False)
    except ValueError:
        return False


def notify(session: Session, clock: Clock, ticket: _NoticeTicket, row: ClockRow, kind: str) -> list[Notice]:
    """Record the in-app notices of a warning or breach (once per person) and queue their mail in notify.

    The person on call (out of hours; see `recipients`) for a ticket whose priority the plan pages for is also
    reached through their paging rules' channels, once per notice: a notice already recorded queues nothing.
    """
    made = []
    page: bool | None = None  # asked once, when someone on call is told
    for person, level in recipients(session, clock, ticket, kind):
        note = inbox.post(
            session,
            clock,
            person_id=person.id,
            kind=f"sla_{kind}",
            key=notice_key(ticket.id, row.metric, row.cycle, kind),
            title=ticket.subject,
            reason=level,
            ticket_id=ticket.id,
            due_at=row.due_at,
            data={"metric": row.metric, "cycle": row.cycle},
        )
        if note is None:
            continue  # told before (this run repeats, or another one got there first)
        notices.queue_mail(session, clock, note, person, ticket.subject)
        if level == "on_call":
            page = _pages_on_call(session, ticket) if page is None else page
            if page:
                notices.queue_pages(session, clock, note, person, ticket.subject)
        made.append(note)
    return made


def list_notifications(
    session: Session, principal: Principal, *, unread_only: bool = False, limit: int = 50
) -> list[Notice]:
    """The caller's own SLA notices from the inbox, unread first (customers have none)."""
    if not 1 <= limit <= inbox.MAX_PAGE:
        raise InvalidInput(f"limit must be 1-{inbox.MAX_PAGE}")
    return inbox.list_mine(session, principal, unread_only=unread_only, kinds=SLA_KINDS, limit=limit)


def mark_read(session: Session, clock: Clock, principal: Principal, notification_id: int) -> Notice:
    """Mark one of the caller's SLA notices read."""
    return inbox.mark_read(session, clock, principal, notification_id, kinds=SLA_KINDS)
