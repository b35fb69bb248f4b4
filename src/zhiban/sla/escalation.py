"""Notices of SLA warnings and breaches: whom to tell (the escalation chain), and their inbox."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput, NotFound
from zhiban.identity import service as identity
from zhiban.identity.model import Person, Principal, Role, Team
from zhiban.sla import notices
from zhiban.sla.recompute import _Ticket
from zhiban.sla.store import (
    ClockRow,
    NotificationRow,
)

# -- notifications -------------------------------------------------------------------------------------


class _NoticeTicket(_Ticket, Protocol):
    """A ticket whose SLA notices are told: a `TicketSummary`, or any object that says so."""

    @property
    def subject(self) -> str: ...
    @property
    def team_id(self) -> str | None: ...
    @property
    def assignee_id(self) -> str | None: ...


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


def notify(session: Session, clock: Clock, ticket: _NoticeTicket, row: ClockRow, kind: str) -> list[NotificationRow]:
    """Record the in-app notifications of a warning or breach (once per person) and queue their mail in notify."""
    made = []
    now = clock.now()
    for person, level in escalation_chain(session, ticket, kind):
        exists = session.scalar(
            select(NotificationRow.id).where(
                NotificationRow.ticket_id == ticket.id,
                NotificationRow.metric == row.metric,
                NotificationRow.cycle == row.cycle,
                NotificationRow.kind == kind,
                NotificationRow.person_id == person.id,
            )
        )
        if exists is not None:
            continue
        note = NotificationRow(
            person_id=person.id,
            ticket_id=ticket.id,
            metric=row.metric,
            cycle=row.cycle,
            kind=kind,
            level=level,
            due_at=row.due_at,
            created_at=now,
        )
        try:
            with session.begin_nested():
                session.add(note)
                session.flush()
        except IntegrityError:
            continue  # another run recorded it first
        notices.queue_mail(session, clock, note, person, ticket.subject)
        made.append(note)
    return made


def list_notifications(
    session: Session, principal: Principal, *, unread_only: bool = False, limit: int = 50
) -> list[NotificationRow]:
    """The caller's own SLA notifications, newest first (customers have none)."""
    if not 1 <= limit <= 200:
        raise InvalidInput("limit must be 1-200")
    if not principal.is_staff:
        return []
    query = select(NotificationRow).where(NotificationRow.person_id == principal.person_id)
    if unread_only:
        query = query.where(NotificationRow.read_at.is_(None))
    return list(
        session.scalars(query.order_by(NotificationRow.created_at.desc(), NotificationRow.id.desc()).limit(limit))
    )


def mark_read(session: Session, clock: Clock, principal: Principal, notification_id: int) -> NotificationRow:
    note = session.get(NotificationRow, notification_id)
    if note is None or note.person_id != principal.person_id:
        raise NotFound(f"no notification {notification_id}")
    if note.read_at is None:
        note.read_at = clock.now()
        session.flush()
    return note
