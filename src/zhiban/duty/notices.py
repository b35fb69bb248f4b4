"""The agent's in-app notices of tickets and pages: who hears of a new ticket, an assignment, a page.

They go to notify's one inbox (SLA warnings and breaches are written there by sla itself). Listening here
keeps the graph one-way: notify knows neither tickets nor incidents, and neither of them knows the inbox.

- A ticket is told to the members of the team it is given to, in the transaction that routes it (triage's
  batch, an agent's correction): the filing path pays nothing for it, and a storm of new tickets costs one
  read of their summaries, one of each team's members and one insert per batch.
- A ticket assigned is told to the new assignee at once (unless they took it themselves).
- A page is told to each person an escalation step paged, in the step's own transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.identity import service as identity
from zhiban.identity.model import Person
from zhiban.incidents.events import IncidentChange, IncidentChangeKind
from zhiban.notify import inbox
from zhiban.tickets import service as tickets
from zhiban.tickets.model import EventKind, TicketChange

TELL_TEAM_JOB = "duty.tell_team"  # queued by desks before 0.1 (the team heard once the ticket committed)
MAX_TEAM_NOTICES = 200  # a team is told of a new ticket; a team bigger than this is a queue, not a team


def _staff(person: Person | None) -> bool:
    return person is not None and person.active and person.is_staff


def on_ticket_change(session: Session, clock: Clock, change: TicketChange) -> None:
    """An assignment tells the assignee (unless they took it themselves)."""
    if change.kind == EventKind.ASSIGNED:
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


def on_routed(session: Session, clock: Clock, routed: Mapping[int, str]) -> int:
    """Tell the members of each team (the ticket's assignee excepted) of the tickets just given to it; how many
    notices were written. A ticket told again (routed back) is not told twice to the same person."""
    summaries = tickets.summaries(session, list(routed))
    members: dict[str, list[Person]] = {}
    drafts: list[inbox.Draft] = []
    for ticket_id, team_id in routed.items():
        summary = summaries.get(ticket_id)
        if summary is None:
            continue
        if team_id not in members:
            members[team_id] = [p for p in identity.team_members(session, team_id)[:MAX_TEAM_NOTICES] if _staff(p)]
        data: dict[str, Any] = {"priority": summary.priority, "team_id": team_id}
        drafts += [
            inbox.Draft(
                person.id,
                inbox.TICKET_NEW,
                f"new:{ticket_id}",
                title=summary.subject,
                reason="team",
                ticket_id=ticket_id,
                data=data,
            )
            for person in members[team_id]
            if person.id != summary.assignee_id
        ]
    return inbox.post_many(session, clock, drafts)


def tell_team(session: Session, clock: Clock, ticket_id: int) -> int:
    """A job queued by an older desk: tell the ticket's team if it has one by now (routing tells it since)."""
    summary = tickets.summary(session, ticket_id)
    if summary is None or summary.team_id is None:
        return 0
    return on_routed(session, clock, {ticket_id: summary.team_id})


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
