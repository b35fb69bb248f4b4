"""The agent's in-app notices of tickets and pages: who hears of a new ticket, an assignment, a page.

They go to notify's one inbox (SLA warnings and breaches are written there by sla itself). Listening here
keeps the graph one-way: notify knows neither tickets nor incidents, and neither of them knows the inbox.

- A new ticket is told to its team's members. The team is set by triage, which hears the same `created`
  change (later, or in a job of its own), so the listener only queues one cheap job (`TELL_TEAM_JOB`), which
  reads the team once the ticket is committed: the filing path pays one insert, not one per team member.
- A ticket assigned is told to the new assignee at once (unless they took it themselves).
- A page is told to each person an escalation step paged, in the step's own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.engine import enqueue
from zhiban.identity import service as identity
from zhiban.identity.model import Person
from zhiban.incidents.events import IncidentChange, IncidentChangeKind
from zhiban.notify import inbox
from zhiban.tickets import service as tickets
from zhiban.tickets.model import EventKind, TicketChange

TELL_TEAM_JOB = "duty.tell_team"
MAX_TEAM_NOTICES = 200  # a team is told of a new ticket; a team bigger than this is a queue, not a team
TEAM_WAIT = timedelta(seconds=15)  # a ticket triage has not routed yet is looked at again after this …
TEAM_WAITS = 8  # … this many times (two minutes), then it is nobody's team's


def _staff(person: Person | None) -> bool:
    return person is not None and person.active and person.is_staff


def on_ticket_change(session: Session, clock: Clock, change: TicketChange) -> None:
    """A new ticket queues the team's notices; an assignment tells the assignee."""
    if change.kind == EventKind.CREATED:
        ticket_id = change.ticket.id
        enqueue(session, TELL_TEAM_JOB, {"ticket_id": ticket_id}, due_at=change.at, dedup_key=f"tell-team:{ticket_id}")
    elif change.kind == EventKind.ASSIGNED:
        to = change.data.get("to")
        if isinstance(to, str) and to != change.actor_id:
            _tell_assignee(session, clock, change, to)


def _tell_assignee(session: Session, clock: Clock, change: TicketChange, person_id: str) -> None:
    if not _staff(identity.person(session, person_id)):
        return
    summary = tickets.summary(session, change.ticket.id)
    if summary is None:
        return
    inbox.post(
        session,
        clock,
        person_id=person_id,
        kind=inbox.TICKET_ASSIGNED,
        key=f"assigned:{summary.id}:{change.seq}",
        title=summary.subject,
        reason="assignee",
        ticket_id=summary.id,
        data={"priority": summary.priority, "by": change.actor_id},
    )


def tell_team(session: Session, clock: Clock, ticket_id: int, attempt: int = 0) -> int:
    """Tell the members of a new ticket's team (its assignee excepted) that it came in; how many were told.

    Triage routes new tickets in batches of its own, which may run after this job: a ticket with no team yet is
    looked at again a little later (a bounded number of times; a ticket no rule routes is nobody's team's)."""
    summary = tickets.summary(session, ticket_id)
    if summary is None:
        return 0
    if summary.team_id is None:
        if attempt < TEAM_WAITS:
            due = clock.now() + TEAM_WAIT
            payload = {"ticket_id": ticket_id, "attempt": attempt + 1}
            enqueue(session, TELL_TEAM_JOB, payload, due_at=due, dedup_key=f"tell-team:{ticket_id}:{attempt + 1}")
        return 0
    data: dict[str, Any] = {"priority": summary.priority, "team_id": summary.team_id}
    drafts = [
        inbox.Draft(
            person.id,
            inbox.TICKET_NEW,
            f"new:{ticket_id}",
            title=summary.subject,
            reason="team",
            ticket_id=ticket_id,
            data=data,
        )
        for person in identity.team_members(session, summary.team_id)[:MAX_TEAM_NOTICES]
        if _staff(person) and person.id != summary.assignee_id
    ]
    return inbox.post_many(session, clock, drafts)


def on_incident_changes(session: Session, clock: Clock, changes: Sequence[IncidentChange]) -> None:
    """Each person a step paged finds the page in their inbox (a storm's pages: one statement)."""
    drafts = [
        inbox.Draft(
            person_id,
            inbox.PAGE,
            # A step pages once (its own transaction); the moment tells a re-trigger's pages from the first.
            f"page:{change.incident_id}:{change.at.isoformat()}",
            title=change.title,
            reason="paged",
            ticket_id=change.ticket_id,
            incident_id=change.incident_id,
            data={"number": change.number},
        )
        for change in changes
        if change.kind == IncidentChangeKind.PAGED
        for person_id in change.people
    ]
    inbox.post_many(session, clock, drafts)
